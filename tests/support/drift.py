"""Judge a whole declared program with the provider's read-back: what would a second `pulumi up` change?

`drift(program, engine)` reads every container, network, volume, Swarm
service, secret and config the program declares back the way the Docker
provider's Read does (tests/support/readback.py, readback_service.py) and
diffs the state against the declaration. It does not care where the inspect
JSON comes from:

- `ModelEngine` (here) builds it from the declaration with the engine model
  (tests/support/engine_state.py): the unit tests judge every stack file's
  mock graph in seconds, with no Docker engine;
- the system test's `RealEngine` (tests/system/readback_check.py) asks the
  engine it realized the program in.

An empty list means `pulumi refresh && pulumi up` would show no change for
these resources. Each `Drift` names the resource, the field, the declared
value and the value read back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from tests.support import readback, readback_service
from tests.support.engine_state import Daemon, stored, stored_config, stored_secret
from tests.support.program import (
    CONTAINER,
    IMAGE,
    NETWORK,
    SECRET,
    SERVICE,
    SERVICE_CONFIG,
    VOLUME,
    Program,
    Resource,
)

# The types the provider reads back, in the order a report lists them.
JUDGED = (NETWORK, VOLUME, CONTAINER, SECRET, SERVICE_CONFIG, SERVICE)


@dataclass(frozen=True)
class Drift:
    """One field a plan after a refresh would show as changed."""

    resource: str
    path: str
    declared: Any
    read_back: Any
    replaces: bool

    def __str__(self) -> str:
        action = "replace" if self.replaces else "update"
        return f"{self.resource}: {self.path}: declared {self.declared!r}, read back {self.read_back!r} ({action})"


def describe(drifts: Iterable[Drift]) -> str:
    return "\n".join(f"  {d}" for d in drifts)


@dataclass(frozen=True)
class Observation:
    """What the provider would compare: the declaration as it reaches the provider, and the engine's inspect JSON."""

    declared: Mapping[str, Any]
    inspect: Mapping[str, Any]


class Gone(LookupError):
    """The object no longer exists: Read drops it from the state and the next `up` creates it again."""


class Engine(Protocol):
    def observe(self, resource: Resource) -> Observation | None:
        """The declaration and inspect JSON of `resource`, None when it was never created here.

        May raise `Gone`, or readback.ReadPending when Read would poll until it times out.
        """


def _read(resource: Resource, seen: Observation) -> list[readback.Change]:
    declared, inspect = seen.declared, seen.inspect
    if resource.type == SERVICE:
        ignored = resource.options.get("ignore_changes") or []
        state = readback_service.read_service(inspect, declared)
        return readback_service.diff_service(declared, state, ignored)
    if resource.type == SECRET:
        return readback_service.diff_secret(declared, readback_service.read_secret(inspect, declared))
    if resource.type == SERVICE_CONFIG:
        return readback_service.diff_service_config(declared, readback_service.read_service_config(inspect, declared))
    reader: Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]] = {
        CONTAINER: readback.read_container,
        NETWORK: readback.read_network,
        VOLUME: readback.read_volume,
    }[resource.type]
    return readback.diff(resource.type, declared, reader(inspect, declared))


def drift(program: Program, engine: Engine, types: Iterable[str] = JUDGED) -> list[Drift]:
    """Every change the provider's plan would show after reading the program's resources back from `engine`."""
    wanted = set(types)
    found: list[Drift] = []
    for type_token in JUDGED:
        if type_token not in wanted:
            continue
        for resource in program.of_type(type_token):
            try:
                seen = engine.observe(resource)
            except Gone:
                found.append(Drift(resource.name, "name", resource.inputs.get("name"), None, replaces=True))
                continue
            except readback.ReadPending as pending:
                # Read fails; reported as the field it waits for (a service's endpoint mode).
                declared = resource.inputs.get("endpointSpec")
                found.append(Drift(resource.name, "endpointSpec", declared, str(pending), replaces=False))
                continue
            if seen is None:
                continue
            try:
                changes = _read(resource, seen)
            except readback.RemovedByRead as removed:
                found.append(Drift(resource.name, "mustRun", True, str(removed), replaces=True))
                continue
            found += [Drift(resource.name, c.path, c.declared, c.state, c.replaces) for c in changes]
    return sorted(found, key=lambda d: (d.resource, d.path))


# A digest the mock registry answers with, and the platform of the image it names.
REGISTRY_DIGEST = "sha256:" + "5e" * 32
REGISTRY_PLATFORMS = (("amd64", "linux"),)


class ModelEngine:
    """The engine model (tests/support/engine_state.py) as an `Engine`: every declared resource, as created.

    A Swarm secret's or config's name is an output the provider makes up
    (pulumi-docker's auto-naming, `<name>-<7 hex>`); a real `up` declares that
    name from then on, so the model does the same. Services are created with a
    registry that answers (so a tag is pinned to its digest and the platforms
    filled), as on a real deployment, except for an image the program builds
    and does not push (`skipPush`, a stack without `images.registry`): the
    registry does not know it, the Docker client leaves the tag unpinned.
    """

    def __init__(self, program: Program, daemon: Daemon | None = None) -> None:
        self.daemon = daemon or Daemon()
        self.local_only = {
            str(image.inputs.get("imageName")) for image in program.of_type(IMAGE) if image.inputs.get("skipPush")
        }

    def observe(self, resource: Resource) -> Observation | None:
        if resource.type in (CONTAINER, NETWORK, VOLUME):
            return Observation(resource.inputs, stored(resource.type, resource.inputs, self.daemon))
        if resource.type == SERVICE:
            image = resource.inputs["taskSpec"]["containerSpec"]["image"]
            if image in self.local_only:
                inspect = readback_service.stored_service(resource.inputs)
            else:
                inspect = readback_service.stored_service(
                    resource.inputs, registry_digest=REGISTRY_DIGEST, platforms=REGISTRY_PLATFORMS
                )
            return Observation(resource.inputs, inspect)
        if resource.type in (SECRET, SERVICE_CONFIG):
            name = resource.inputs.get("name") or _auto_name(resource.name)
            declared = {**resource.inputs, "name": name}
            make = stored_secret if resource.type == SECRET else stored_config
            return Observation(declared, make(resource.inputs, name))
        return None


def _auto_name(resource_name: str) -> str:
    return f"{resource_name}-{hashlib.sha256(resource_name.encode()).hexdigest()[:7]}"
