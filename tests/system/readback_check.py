"""What the Docker provider would report as drift for a realized stack.

`readback_changes` inspects every network, volume and container the realizer
created, reads each back the way the provider's Read does
(tests/support/readback.py) and diffs it against the inputs the program
declared. An empty list means `pulumi refresh && pulumi up` on this engine
would show no change for these resources. `check_services` does the same for
Swarm services, secrets and configs (tests/support/readback_service.py).

Two things the realizer does differently from the provider are undone here,
because they are the test's doing, not the program's:

- The realizer labels everything it creates (`microstack.system-test.*`) so it
  can clean up. Labels of networks and volumes are read back (and ForceNew),
  so those keys are dropped before the read-back. Container labels are not
  read back at all.
- Containers run the locally built stand-in images, referenced by tag. The
  program gives a container its `RemoteImage`'s `image_id`, which the provider
  sets to the image's ID ("sha256:…", resource_docker_image_funcs.go), and
  Read then compares it with the container's image ID. Under mocks that ID is
  a fake, so the declared image is replaced by the ID of the image the
  realizer actually used for that `RemoteImage`.

Anything else the realizer does not send as the provider does shows up as a
change, on purpose: it is a difference between the system test and a real
deployment. Two such differences are known: the provider creates every
container with `network_mode` "bridge" (its schema Default) and then moves it
to its networks, while the realizer leaves NetworkMode to the Docker SDK
("default"), a ForceNew `networkMode` change; and the provider always sends a
restart policy ("no" by default), while the realizer omits it for "no", which
engines before 25.0 report as "" (a `restart` update).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import docker
from docker.errors import NotFound

from tests.support import readback, readback_service
from tests.support.program import (
    CONTAINER,
    IMAGE,
    NETWORK,
    REMOTE_IMAGE,
    SECRET,
    SERVICE,
    SERVICE_CONFIG,
    VOLUME,
    Program,
    mock_id,
)
from tests.system.realizer import Realized

REALIZER_LABEL_PREFIX = "microstack.system-test."


def readback_changes(
    program: Program, client: docker.DockerClient, realized: Realized
) -> list[tuple[str, readback.Change]]:
    """Every change the provider's plan would show after reading the realized objects back, by resource name."""
    changes: list[tuple[str, readback.Change]] = []
    for resource in program.of_type(NETWORK):
        network_id = realized.networks.get(resource.name)
        if network_id is not None:
            inspect = _without_realizer_labels(client.api.inspect_network(network_id))
            state = readback.read_network(inspect, resource.inputs)
            changes += [(resource.name, c) for c in readback.diff(NETWORK, resource.inputs, state)]
    for resource in program.of_type(VOLUME):
        volume_name = realized.volumes.get(resource.name)
        if volume_name is not None:
            inspect = _without_realizer_labels(client.api.inspect_volume(volume_name))
            state = readback.read_volume(inspect, resource.inputs)
            changes += [(resource.name, c) for c in readback.diff(VOLUME, resource.inputs, state)]
    image_ids = _image_ids(program, client, realized)
    for resource in program.of_type(CONTAINER):
        container_id = realized.containers.get(resource.name)
        if container_id is None:
            continue
        declared = dict(resource.inputs)
        declared["image"] = image_ids.get(declared.get("image"), declared.get("image"))
        try:
            state = readback.read_container(client.api.inspect_container(container_id), declared)
        except readback.RemovedByRead as removed:
            changes.append((resource.name, readback.Change("mustRun", True, str(removed), replaces=True)))
            continue
        changes += [(resource.name, c) for c in readback.diff(CONTAINER, declared, state)]
    return sorted(changes, key=lambda item: (item[0], item[1].path))


def _without_realizer_labels(inspect: Mapping[str, Any]) -> dict[str, Any]:
    labels = inspect.get("Labels") or {}
    return {
        **inspect,
        "Labels": {k: v for k, v in labels.items() if not k.startswith(REALIZER_LABEL_PREFIX)},
    }


def _image_ids(program: Program, client: docker.DockerClient, realized: Realized) -> dict[Any, str]:
    """The mock `image_id` of each realized `RemoteImage` → the ID of the image the realizer used for it."""
    ids: dict[Any, str] = {}
    for resource in program.of_type(REMOTE_IMAGE):
        reference = realized.images.get(resource.name)
        mock_id = resource.outputs.get("imageId")
        if reference is not None and mock_id is not None:
            ids[mock_id] = client.images.get(reference).id
    return ids


def check_services(
    program: Program, client: docker.DockerClient, realized: Realized
) -> list[tuple[str, readback.Change]]:
    """Every change the plan would show for the realized Swarm services, secrets and configs, by resource name.

    The Swarm counterpart of `readback_changes` (tests/support/readback_service.py
    ports the provider's Read). What the realizer does differently from the
    provider is undone first, as for containers: the declared mock IDs of
    networks, secrets and configs become the engine's IDs; a declared image
    becomes the local reference the realizer ran instead; the realizer's own
    labels are dropped from the service's labels. The realizer does not ask a
    registry, so `placement.platforms` stays empty (the program ignores it
    anyway) and a tag is not pinned to a digest.

    Read retries for 30 s while the service shows no endpoint mode (Swarm's
    allocator has not run yet); after that it fails, reported as a change of
    `endpointSpec`. A service that is gone is recreated: a replacing `name` change.
    """
    engine_ids = {
        mock_id(name): real
        for table in (realized.networks, realized.secrets, realized.configs)
        for name, real in table.items()
    }
    images = _image_references(program, realized)
    changes: list[tuple[str, readback.Change]] = []
    for resource in program.of_type(SERVICE):
        service_id = realized.services.get(resource.name)
        if service_id is None:
            continue
        declared = _with_engine_ids(resource.inputs, engine_ids)
        container = declared["taskSpec"]["containerSpec"]
        # An auto-named secret's or config's name is an output, unknown under
        # mocks; a real `up` declares the name the provider gave it.
        for key, kind in (("secrets", "secret"), ("configs", "config")):
            for ref in container.get(key) or []:
                name_key = f"{kind}Name"
                if not ref.get(name_key):
                    inspect = client.api.inspect_secret if kind == "secret" else client.api.inspect_config
                    ref[name_key] = inspect(ref[f"{kind}Id"])["Spec"]["Name"]
        container["image"] = images.get(container["image"], container["image"])
        try:
            state = _read_service(client, service_id, declared)
        except NotFound:
            changes.append((resource.name, readback.Change("name", declared.get("name"), None, replaces=True)))
            continue
        except readback.ReadPending as pending:
            changes.append(
                (resource.name, readback.Change("endpointSpec", declared.get("endpointSpec"), str(pending), False))
            )
            continue
        ignored = resource.options.get("ignore_changes") or []
        changes += [(resource.name, c) for c in readback_service.diff_service(declared, state, ignored)]
    for resource in program.of_type(SECRET):
        secret_id = realized.secrets.get(resource.name)
        if secret_id is not None:
            state = readback_service.read_secret(client.api.inspect_secret(secret_id), resource.inputs)
            changes += [(resource.name, c) for c in readback_service.diff_secret(resource.inputs, state)]
    for resource in program.of_type(SERVICE_CONFIG):
        config_id = realized.configs.get(resource.name)
        if config_id is not None:
            state = readback_service.read_service_config(client.api.inspect_config(config_id), resource.inputs)
            changes += [(resource.name, c) for c in readback_service.diff_service_config(resource.inputs, state)]
    return sorted(changes, key=lambda item: (item[0], item[1].path))


# resourceDockerServiceRead: StateChangeConf Timeout 30 s, Delay 2 s (resource_docker_service_funcs.go).
_SERVICE_READ_SECONDS = 30


def _read_service(client: docker.DockerClient, service_id: str, declared: Mapping[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + _SERVICE_READ_SECONDS
    while True:
        inspect = dict(client.api.inspect_service(service_id))
        spec = dict(inspect.get("Spec") or {})
        spec["Labels"] = {
            k: v for k, v in (spec.get("Labels") or {}).items() if not k.startswith(REALIZER_LABEL_PREFIX)
        }
        inspect["Spec"] = spec
        try:
            return readback_service.read_service(inspect, declared)
        except readback.ReadPending:
            if time.monotonic() >= deadline:
                raise
            time.sleep(2)


def _with_engine_ids(value: Any, engine_ids: Mapping[str, str]) -> Any:
    """`value` with every mock ID of a realized resource replaced by the engine's ID."""
    if isinstance(value, Mapping):
        return {k: _with_engine_ids(v, engine_ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_engine_ids(v, engine_ids) for v in value]
    if isinstance(value, str):
        return engine_ids.get(value, value)
    return value


def _image_references(program: Program, realized: Realized) -> dict[str, str]:
    """Each reference the program may give a service (name, mock image ID, mock repo digest) → the realizer's image."""
    references: dict[str, str] = {}
    for resource in program.of_type(REMOTE_IMAGE) + program.of_type(IMAGE):
        local = realized.images.get(resource.name)
        if local is None:
            continue
        candidates = (
            resource.inputs.get("name"),
            resource.inputs.get("imageName"),
            resource.outputs.get("imageId"),
            resource.outputs.get("imageName"),
            resource.outputs.get("repoDigest"),
        )
        references.update({str(ref): local for ref in candidates if ref})
    return references
