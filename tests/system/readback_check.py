"""What the Docker provider would report as drift for a realized stack.

`readback_changes` inspects every network, volume and container the realizer
created, reads each back the way the provider's Read does
(tests/support/readback.py) and diffs it against the inputs the program
declared. An empty list means `pulumi refresh && pulumi up` on this engine
would show no change for these resources.

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

from collections.abc import Mapping
from typing import Any

import docker

from tests.support import readback
from tests.support.program import CONTAINER, NETWORK, REMOTE_IMAGE, VOLUME, Program
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
