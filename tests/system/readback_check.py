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
deployment.

Both use tests/support/drift.py, which the unit tests run against the engine
model instead (tests/support/engine_state.py). `model_differences` holds that
model against this engine: the state read back from either must be the same.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import docker
from docker.errors import NotFound

from tests.support import readback, readback_service
from tests.support.drift import Drift, Gone, Observation, drift
from tests.support.engine_state import Daemon, stored
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
    Resource,
    mock_id,
)
from tests.system.realizer import Realized

REALIZER_LABEL_PREFIX = "microstack.system-test."


class RealEngine:
    """The realized program in a real engine, as a tests.support.drift `Engine`.

    Undoes what is the test's doing, not the program's (see the module
    docstring): the realizer's labels, the stand-in images, the engine's IDs
    where the program holds mock IDs, the auto-names of secrets and configs.
    """

    def __init__(self, program: Program, client: docker.DockerClient, realized: Realized) -> None:
        self.client, self.realized = client, realized
        self.image_ids = _image_ids(program, client, realized)
        self.image_references = _image_references(program, realized)
        self.engine_ids = {
            mock_id(name): real
            for table in (realized.networks, realized.secrets, realized.configs)
            for name, real in table.items()
        }

    def observe(self, resource: Resource) -> Observation | None:
        api = self.client.api
        if resource.type == NETWORK:
            network_id = self.realized.networks.get(resource.name)
            if network_id is None:
                return None
            return Observation(resource.inputs, _without_realizer_labels(api.inspect_network(network_id)))
        if resource.type == VOLUME:
            volume_name = self.realized.volumes.get(resource.name)
            if volume_name is None:
                return None
            return Observation(resource.inputs, _without_realizer_labels(api.inspect_volume(volume_name)))
        if resource.type == CONTAINER:
            container_id = self.realized.containers.get(resource.name)
            if container_id is None:
                return None
            declared = dict(resource.inputs)
            declared["image"] = self.image_ids.get(declared.get("image"), declared.get("image"))
            return Observation(declared, api.inspect_container(container_id))
        if resource.type == SERVICE:
            return self._service(resource)
        if resource.type in (SECRET, SERVICE_CONFIG):
            table = self.realized.secrets if resource.type == SECRET else self.realized.configs
            object_id = table.get(resource.name)
            if object_id is None:
                return None
            inspect = (api.inspect_secret if resource.type == SECRET else api.inspect_config)(object_id)
            # An auto-named object: a real `up` declares the name the provider gave it.
            declared = {**resource.inputs, "name": resource.inputs.get("name") or inspect["Spec"]["Name"]}
            return Observation(declared, inspect)
        return None

    def _service(self, resource: Resource) -> Observation | None:
        service_id = self.realized.services.get(resource.name)
        if service_id is None:
            return None
        declared = _with_engine_ids(resource.inputs, self.engine_ids)
        container = declared["taskSpec"]["containerSpec"]
        # An auto-named secret's or config's name is an output, unknown under
        # mocks; a real `up` declares the name the provider gave it.
        for key, kind in (("secrets", "secret"), ("configs", "config")):
            for ref in container.get(key) or []:
                name_key = f"{kind}Name"
                if not ref.get(name_key):
                    inspect = self.client.api.inspect_secret if kind == "secret" else self.client.api.inspect_config
                    ref[name_key] = inspect(ref[f"{kind}Id"])["Spec"]["Name"]
        container["image"] = self.image_references.get(container["image"], container["image"])
        try:
            return Observation(declared, _read_service_inspect(self.client, service_id, declared))
        except NotFound:
            raise Gone(resource.name) from None


def readback_changes(program: Program, client: docker.DockerClient, realized: Realized) -> list[Drift]:
    """Every change the provider's plan would show for the realized networks, volumes and containers."""
    return drift(program, RealEngine(program, client, realized), types=(NETWORK, VOLUME, CONTAINER))


def check_services(program: Program, client: docker.DockerClient, realized: Realized) -> list[Drift]:
    """Every change the plan would show for the realized Swarm services, secrets and configs.

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
    return drift(program, RealEngine(program, client, realized), types=(SECRET, SERVICE_CONFIG, SERVICE))


@dataclass(frozen=True)
class ModelDifference:
    """A field whose read-back state from the engine model differs from the one from the real engine."""

    resource: str
    path: str
    model: Any
    engine: Any

    def __str__(self) -> str:
        return f"{self.resource}: {self.path}: the model reads back {self.model!r}, the engine {self.engine!r}"


def model_differences(
    program: Program, client: docker.DockerClient, realized: Realized, daemon: Daemon
) -> list[ModelDifference]:
    """Where the engine model (tests/support/engine_state.py) reads back otherwise than the real engine.

    For each realized container, network and volume, the provider's state is
    read back twice, from the engine's inspect JSON and from the model's for
    the same declaration, and compared on every field a plan compares: the
    declared ones and those the schema does not mark Computed. An empty list
    is what lets the unit tests judge stack files with the model alone.
    """
    engine = RealEngine(program, client, realized)
    found: list[ModelDifference] = []
    readers = {CONTAINER: readback.read_container, NETWORK: readback.read_network, VOLUME: readback.read_volume}
    for type_token, read in readers.items():
        for resource in program.of_type(type_token):
            seen = engine.observe(resource)
            if seen is None:
                continue
            real = read(seen.inspect, seen.declared)
            model = read(stored(type_token, seen.declared, daemon), seen.declared)
            for path in readback.compared_fields(type_token, seen.declared):
                if readback.canonical(type_token, path, model.get(path)) != readback.canonical(
                    type_token, path, real.get(path)
                ):
                    found.append(ModelDifference(resource.name, path, model.get(path), real.get(path)))
    return found


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


# resourceDockerServiceRead: StateChangeConf Timeout 30 s, Delay 2 s (resource_docker_service_funcs.go).
_SERVICE_READ_SECONDS = 30


def _read_service_inspect(client: docker.DockerClient, service_id: str, declared: Mapping[str, Any]) -> dict[str, Any]:
    """The service's inspect JSON once Read would accept it (it polls while no endpoint mode shows)."""
    deadline = time.monotonic() + _SERVICE_READ_SECONDS
    while True:
        inspect = dict(client.api.inspect_service(service_id))
        spec = dict(inspect.get("Spec") or {})
        spec["Labels"] = {
            k: v for k, v in (spec.get("Labels") or {}).items() if not k.startswith(REALIZER_LABEL_PREFIX)
        }
        inspect["Spec"] = spec
        try:
            readback_service.read_service(inspect, declared)
            return inspect
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
