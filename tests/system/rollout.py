"""Apply a change to a realized stack the way `pulumi up` does: plan the steps, then run them in the engine.

The system test plays the Pulumi engine for a second, third, ... `up`: given
the state of the last one and a newly declared program, `plan` decides per
resource what the engine decides, and `apply` runs those steps against the
real Docker engine through the realizer. The rules mirror the engine's step
generator (pulumi/pulumi pkg/resource/deploy/step_generator.go):

- in the program but not in the state: create; in the state but not in the
  program: delete, after everything else, dependents first (GenerateDeletes);
- in both: the old inputs (the state of the last apply: no `--refresh`; the
  read-back test shows that state equals the declared inputs) against the new
  ones. No difference is a same step. A difference is a replacement when the
  provider says so (ForceNew, from the port in tests/support/readback.py; the
  provider's own `diff` for dynamic resources) or the path is under the
  resource's `replace_on_changes` (applyReplaceOnChanges); otherwise an
  update in place (continueStepsFromDiff);
- a replacement deletes the old resource first when `delete_before_replace`
  is declared, and first of all deletes the dependents that will be replaced
  because of it (calculateDependentReplacements); otherwise it creates the new
  one and deletes the old one after every other step.

A resource's step runs only after the steps of everything it depends on: its
explicit `depends_on` (a component stands for the custom resources under it,
pulumi/pulumi sdk/python/lib/pulumi/runtime/rpc.py `_add_dependency`) and the
resources whose outputs it takes as inputs. The Python SDK sends a
registration only once those dependencies' URNs resolve
(sdk/python/lib/pulumi/runtime/_depends_on.py `_resolve_depends_on_urns`),
which happens when their own step has finished, so the dependency order is
also the order in which the steps run. Here they run one at a time.

Under Pulumi's mocks an ID is the same fake value on every run
(`tests.support.program.mock_id`), so a replaced resource would look
unchanged to its dependents. The state therefore records for each resource an
identity that changes whenever it is created (a container's real ID, a gate's
ID, otherwise a generation), and inputs are compared with every mock ID and
every generated output (a password's `result`) resolved to the identity of
the resource it belongs to. A resource being created or replaced in this `up`
has no identity yet (`UNKNOWN`): its dependents see a change. Outputs that
derive from the content (an image's ID) are compared as the mocks give them,
which derive them from the inputs: an image pulled again by the same
reference leaves its containers unchanged, as in the engine.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from docker.errors import NotFound

from tests.support.program import (
    CONTAINER,
    IMAGE,
    NETWORK,
    RANDOM_PASSWORD,
    READY_GATE,
    REMOTE_IMAGE,
    SECRET,
    SERVICE,
    SERVICE_CONFIG,
    TLS_PRIVATE_KEY,
    TLS_SELF_SIGNED_CERT,
    VOLUME,
    Program,
    Resource,
    mock_id,
)
from tests.support.readback import replaces
from tests.system.realizer import Realizer, load_provider

Op = Literal["create", "update", "replace", "delete", "same"]

# Swarm objects: where the realizer keeps their engine IDs.
_SWARM_OBJECTS = {SERVICE: "services", SECRET: "secrets", SERVICE_CONFIG: "configs"}
# What a dependent sees of a resource created or replaced in the same `up`
# (the engine's plan has its outputs as unknowns).
UNKNOWN = "<unknown until created>"
PROVIDER_KEY = "__provider"
DYNAMIC_PREFIX = "pulumi-python:dynamic"
_COMPONENT_PREFIX = "microstack:"
# Types whose replacement rules live here (readback.py ports the rest):
# terraform-provider-docker v3.9.0 internal/provider/resource_docker_image.go
# (docker_image is pulumi-docker's RemoteImage) marks these ForceNew;
# keepLocally and forceRemove are updated in state only.
_REMOTE_IMAGE_FORCE_NEW = {"name", "pullTriggers", "triggers", "platform", "build"}
# Fields resourceDockerContainerUpdate applies, all in one ContainerUpdate
# call when any of them changed (resource_docker_container_funcs.go, v3.9.0).
_CONTAINER_UPDATE_FIELDS = (
    "restart",
    "maxRetryCount",
    "cpuShares",
    "memory",
    "memoryReservation",
    "cpuSet",
    "memorySwap",
)
_MIB = 1024 * 1024
# docker_service's ForceNew attributes (resourceDockerService schema,
# resource_docker_service.go, v3.9.0): the rest is one ServiceUpdate. `mode`
# is ForceNew only when the block appears or goes; replicas change in place.
_SERVICE_FORCE_NEW = (
    "name",
    "auth",
    "taskSpec.containerSpec.labels",
    "taskSpec.containerSpec.hosts",
    "taskSpec.containerSpec.sysctl",
    "taskSpec.networksAdvanceds[*].name",
    "taskSpec.networksAdvanceds[*].aliases",
    "taskSpec.networksAdvanceds[*].driverOpts",
    "mode.global",
)
# docker_secret and docker_config have no Update: every argument is ForceNew
# (resource_docker_secret.go, resource_docker_config.go).
_SECRET_FORCE_NEW = {"name", "data", "labels"}
# Outputs a provider generates anew for each incarnation. The other computed
# outputs the mocks fake (an image's ID, a repo digest) derive from the
# inputs, as the real ones derive from the content: pulling the same
# reference again gives the same image ID, and dependents see no change.
_GENERATED = {
    RANDOM_PASSWORD: ("result",),
    TLS_PRIVATE_KEY: ("privateKeyPem", "publicKeyPem"),
    TLS_SELF_SIGNED_CERT: ("certPem",),
}


@dataclass
class Step:
    """One step of an `up`, as the engine names them."""

    op: Op
    name: str
    type: str
    changed: list[str] = field(default_factory=list)
    """Input paths that differ from the state ("image", "healthcheck.interval", "envs")."""
    delete_before_replace: bool = False


@dataclass(frozen=True)
class Applied:
    """A step that ran, with when (time.monotonic()) and for how long."""

    step: Step
    started: float
    seconds: float


class UpError(RuntimeError):
    """A step failed: the `up` stops there, as the engine stops scheduling steps after an error."""

    def __init__(self, step: Step, reason: str, done: list[Applied]) -> None:
        super().__init__(f"pulumi up failed at {step.op} of {step.name} ({step.type}): {reason}")
        self.step = step
        self.reason = reason
        self.done = done


@dataclass
class Entry:
    """What the state holds for one resource after its last successful step."""

    resource: Resource
    """As declared when it was applied (type, name, inputs, options)."""
    inputs: dict[str, Any]
    """The inputs, references resolved to the identities they had then."""
    outputs: dict[str, Any]
    """A dynamic resource's outputs are what its provider returned."""
    identity: str
    engine_id: str | None
    """What deleting it needs: a container's or network's ID, a volume's name, a gate's ID."""
    dependencies: frozenset[str]


@dataclass
class State:
    """The stack's state: resource name → its entry, as the engine's snapshot after an `up`."""

    entries: dict[str, Entry] = field(default_factory=dict)
    pending_deletes: list[Entry] = field(default_factory=list)
    """Old incarnations of create-before-delete replacements not deleted yet (an `up` failed first)."""
    generation: int = 0

    def next_identity(self, name: str) -> str:
        self.generation += 1
        return f"{mock_id(name)}#{self.generation}"

    @classmethod
    def declared(cls, program: Program) -> State:
        """The state as if every resource of `program` had been created exactly as declared (no engine)."""
        state = cls()
        graph = _Graph(program)
        for name in graph.order():
            resource = graph.resources[name]
            state._record(resource, graph, state.next_identity(name), None)
        return state

    @classmethod
    def from_realized(cls, realizer: Realizer) -> State:
        """The state after `realizer.realize()`: what it created, containers and gates by their real IDs."""
        state = cls()
        realized = realizer.realized
        graph = _Graph(realizer.program)
        for name in graph.order():
            resource = graph.resources[name]
            engine_id: str | None = None
            outputs = None
            if resource.type == CONTAINER:
                engine_id = realized.containers.get(name)
                identity = engine_id
            elif resource.type == READY_GATE:
                run = realized.gates.get(name)
                identity = engine_id = run.id if run else None
                outputs = run.outputs if run else None
            elif resource.type in (IMAGE, REMOTE_IMAGE):
                identity = state.next_identity(name) if name in realized.images else None
            elif resource.type == NETWORK:
                engine_id = realized.networks.get(name)
                identity = state.next_identity(name) if engine_id else None
            elif resource.type == VOLUME:
                engine_id = realized.volumes.get(name)
                identity = state.next_identity(name) if engine_id else None
            elif resource.type == SERVICE:
                # By its real ID, as a container: a gate takes it as an input.
                identity = engine_id = realized.services.get(name)
            elif resource.type in _SWARM_OBJECTS:
                engine_id = getattr(realized, _SWARM_OBJECTS[resource.type]).get(name)
                identity = state.next_identity(name) if engine_id else None
            else:
                identity = state.next_identity(name)
            if identity is not None:
                state._record(resource, graph, identity, engine_id, outputs)
        return state

    def identities(self) -> dict[str, str]:
        """Each resource's identity by name."""
        return {name: entry.identity for name, entry in self.entries.items()}

    def _record(
        self,
        resource: Resource,
        graph: _Graph,
        identity: str,
        engine_id: str | None,
        outputs: Mapping[str, Any] | None = None,
    ) -> Entry:
        identities = self.identities() | {resource.name: identity}
        entry = Entry(
            resource=resource,
            inputs=graph.resolve(resource.inputs, identities),
            outputs=dict(outputs) if outputs is not None else graph.resolve(resource.outputs, identities),
            identity=identity,
            engine_id=engine_id,
            dependencies=frozenset(graph.dependencies(resource.name)),
        )
        self.entries[resource.name] = entry
        return entry


class _Graph:
    """A declared program's resources, what refers to what, and the order the engine registers them in."""

    def __init__(self, program: Program) -> None:
        self.resources = {r.name: r for r in program.resources}
        # A value standing for one incarnation of a resource: its mock ID and
        # what its provider generates anew each time (a password).
        self.owners_of: dict[str, set[str]] = {}
        # Names of networks and volumes: a reference (an Output) but the same
        # string for any incarnation, so it orders and never resolves.
        self.named: dict[str, str] = {}
        for resource in program.resources:
            self.owners_of.setdefault(mock_id(resource.name), set()).add(resource.name)
            for key in _GENERATED.get(resource.type, ()):
                if isinstance(resource.outputs.get(key), str):
                    self.owners_of.setdefault(resource.outputs[key], set()).add(resource.name)
            if resource.type in (NETWORK, VOLUME) and isinstance(resource.outputs.get("name"), str):
                self.named[resource.outputs["name"]] = resource.name
        self._dependencies = {name: self._dependencies_of(self.resources[name]) for name in self.resources}

    def resolve(self, value: Any, identities: Mapping[str, str]) -> Any:
        """`value` with every reference to a resource replaced by that resource's identity."""
        if isinstance(value, dict):
            return {k: v if k == PROVIDER_KEY else self.resolve(v, identities) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, identities) for v in value]
        if isinstance(value, str) and value in self.owners_of:
            owners = sorted(self.owners_of[value])
            found = [identities.get(owner, UNKNOWN) for owner in owners]
            if UNKNOWN in found:
                return UNKNOWN
            # A mock ID is the ID itself; another computed output is a value of that incarnation.
            if len(owners) == 1 and value == mock_id(owners[0]):
                return found[0]
            return "#".join([value, *found])
        return value

    def references(self, resource: Resource) -> set[str]:
        return {owner for v in _leaves(resource.inputs) for owner in self.owners_of.get(v, ())} - {resource.name}

    def dependencies(self, name: str) -> set[str]:
        return self._dependencies.get(name, set())

    def _dependencies_of(self, resource: Resource) -> set[str]:
        # The resources whose outputs its inputs take (recorded by
        # tests/support/program.py), and those the mock values name.
        found = set(resource.options.get("property_dependencies") or []) | self.references(resource)
        found |= {self.named[v] for v in _leaves(resource.inputs) if v in self.named}
        for dependency in resource.options.get("depends_on") or []:
            found |= self._expand(getattr(dependency, "_name", ""))
        return (found & self.resources.keys()) - {resource.name}

    def _expand(self, name: str) -> set[str]:
        """A component stands for the custom resources under it (not those under a custom resource)."""
        if name not in self.resources or not _is_component(self.resources[name].type):
            return {name}
        found: set[str] = set()
        for child in self.resources.values():
            if child.options.get("parent") == name:
                found |= self._expand(child.name)
        return found

    def order(self) -> list[str]:
        """Every resource after its dependencies; independent ones by name."""
        remaining = {name: set(self.dependencies(name)) for name in self.resources}
        ordered: list[str] = []
        while remaining:
            ready = sorted(name for name, deps in remaining.items() if not deps & remaining.keys())
            if not ready:
                raise ValueError(f"dependency cycle among {sorted(remaining)}")
            ordered.extend(ready)
            for name in ready:
                del remaining[name]
        return ordered

    def dependents_by_reference(self, name: str) -> set[str]:
        """Resources whose inputs refer to `name`'s outputs."""
        return {other for other, resource in self.resources.items() if name in self.references(resource)}


def _is_component(resource_type: str) -> bool:
    return resource_type.startswith(_COMPONENT_PREFIX)


def _is_dynamic(resource_type: str) -> bool:
    return resource_type.startswith(DYNAMIC_PREFIX)


def _leaves(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key != PROVIDER_KEY:
                yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, str):
        yield value


# --- plan ------------------------------------------------------------------------


def plan(state: State, new: Program) -> list[Step]:
    """The steps `pulumi up` takes from `state` to `new`, in the order the engine runs them.

    Same steps are included (op "same"); `changes(plan(...))` is what a
    no-change `up` must leave empty.
    """
    graph = _Graph(new)
    steps: list[Step] = []
    planned: dict[str, Step] = {}
    identities = state.identities()
    for name in graph.order():
        resource = graph.resources[name]
        step = _step(state.entries.get(name), resource, graph.resolve(resource.inputs, identities))
        if step.op in ("create", "replace"):
            identities[name] = UNKNOWN
        planned[name] = step
        steps.append(step)
    steps = _delete_dependents_first(steps, planned, graph)
    removed = [entry for name, entry in state.entries.items() if name not in graph.resources]
    for entry in _dependents_first(removed):
        steps.append(Step("delete", entry.resource.name, entry.resource.type))
    return steps


def changes(steps: Iterable[Step]) -> list[Step]:
    """The steps that change something (what `pulumi up` counts)."""
    return [step for step in steps if step.op != "same"]


def _step(old: Entry | None, resource: Resource, news: dict[str, Any]) -> Step:
    options = resource.options
    delete_first = bool(options.get("delete_before_replace"))
    if old is None:
        return Step("create", resource.name, resource.type, delete_before_replace=delete_first)
    changed = [p for p in _changed_paths(old.inputs, news) if not _under(p, options.get("ignore_changes") or [])]
    if resource.type == IMAGE:
        # pulumi-docker's Image: a change of registry credentials alone is no change (provider.go, diffUpdates).
        changed = [p for p in changed if not p.startswith(("registry.username", "registry.password"))]
    if _is_dynamic(resource.type):
        replace_keys, any_change = _dynamic_diff(old, resource, news)
    else:
        replace_keys = [p for p in changed if _force_new(resource.type, p)]
        any_change = bool(changed)
    replace_keys += [p for p in changed if _under(p, options.get("replace_on_changes") or [])]
    if replace_keys:
        return Step("replace", resource.name, resource.type, changed or replace_keys, delete_first)
    if any_change:
        return Step("update", resource.name, resource.type, changed)
    return Step("same", resource.name, resource.type)


def _dynamic_diff(old: Entry, resource: Resource, news: dict[str, Any]) -> tuple[list[str], bool]:
    """Ask the resource's own provider, as the engine does (pulumi/dynamic/__main__.py, Diff).

    The engine passes the old outputs as `olds`. A provider that cannot say
    (changes None) leaves it to the engine, which compares the inputs and
    updates on any difference.
    """
    provider = load_provider(resource.inputs)
    result = provider.diff(old.engine_id or "", dict(old.outputs), dict(news))
    if result.changes is None:
        changed = _changed_paths(_without_provider(old.inputs), _without_provider(news))
        return list(result.replaces or []), bool(changed)
    return list(result.replaces or []), bool(result.changes)


def _without_provider(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k != PROVIDER_KEY}


def _force_new(resource_type: str, path: str) -> bool:
    if resource_type in (CONTAINER, NETWORK, VOLUME):
        return replaces(resource_type, path)
    if resource_type == REMOTE_IMAGE:
        return _parts(path)[0] in _REMOTE_IMAGE_FORCE_NEW
    if resource_type == IMAGE:
        # pulumi-docker v4.11 provider/provider.go Diff: every change is an update (a rebuild).
        return False
    if resource_type == SERVICE:
        return _under(path, _SERVICE_FORCE_NEW)
    if resource_type in (SECRET, SERVICE_CONFIG):
        return _parts(path)[0] in _SECRET_FORCE_NEW
    if resource_type == RANDOM_PASSWORD:
        # terraform-provider-random: every argument of random_password requires replacement.
        return True
    if _is_component(resource_type):
        return False
    raise ValueError(f"no replacement rules for {resource_type} (path {path!r}); add them to tests/system/rollout.py")


def _changed_paths(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Paths where `new` differs from `old`; a missing value and None are the same (no value)."""
    if isinstance(old, dict) and isinstance(new, dict):
        found: list[str] = []
        for key in sorted(old.keys() | new.keys()):
            if key == PROVIDER_KEY:
                continue
            found += _changed_paths(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else key)
        return found
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [
            path
            for i, (a, b) in enumerate(zip(old, new, strict=True))
            for path in _changed_paths(a, b, f"{prefix}[{i}]")
        ]
    return [] if old == new else [prefix]


_PATH_PART = re.compile(r"[^.\[\]]+|\[[^\]]*\]")


def _parts(path: str) -> list[str]:
    """'healthcheck.tests[0]' → ['healthcheck', 'tests', '[0]']; a Python name is camelCased as the SDK does."""
    parts = [p.strip("[]\"'") if p.startswith("[") else p for p in _PATH_PART.findall(path)]
    if parts:
        head, *rest = parts[0].split("_")
        parts[0] = head + "".join(word.title() for word in rest)
    return parts


def _under(path: str, patterns: Iterable[str]) -> bool:
    """Whether a declared property path (`replace_on_changes`, `ignore_changes`) contains `path`.

    As PropertyPath.Contains: each part of the pattern equals the path's or is "*".
    """
    parts = _parts(path)
    for pattern in patterns:
        wanted = _parts(pattern)
        if len(wanted) <= len(parts) and all(w in ("*", p) for w, p in zip(wanted, parts, strict=False)):
            return True
    return False


def _delete_dependents_first(steps: list[Step], planned: Mapping[str, Step], graph: _Graph) -> list[Step]:
    """Before a delete-before-replace, delete what will be replaced because of it, dependents first.

    calculateDependentReplacements: a resource whose inputs take the
    condemned one's outputs, and which the provider would replace for that
    change, is deleted before it (its replacement is created in its own turn).
    """
    result: list[Step] = []
    deleted: set[str] = set()
    for step in steps:
        if step.op == "replace" and step.delete_before_replace:
            condemned: list[str] = []
            frontier = [step.name]
            while frontier:
                for dependent in sorted(graph.dependents_by_reference(frontier.pop())):
                    if planned[dependent].op == "replace" and dependent not in condemned and dependent not in deleted:
                        condemned.append(dependent)
                        frontier.append(dependent)
            for name in reversed(condemned):
                result.append(Step("delete", name, planned[name].type, delete_before_replace=True))
                deleted.add(name)
        result.append(step)
    return result


def _dependents_first(entries: list[Entry]) -> list[Entry]:
    names = {entry.resource.name: entry for entry in entries}
    ordered: list[Entry] = []
    remaining = dict(names)
    while remaining:
        # A resource goes once nothing that still has to go depends on it.
        ready = sorted(
            name for name in remaining if not any(name in remaining[o].dependencies for o in remaining if o != name)
        )
        if not ready:
            raise ValueError(f"dependency cycle among {sorted(remaining)}")
        for name in ready:
            ordered.append(remaining.pop(name))
    return ordered


# --- apply -------------------------------------------------------------------------


def apply(realizer: Realizer, steps: list[Step], new: Program, state: State) -> list[Applied]:
    """Run `steps` (from `plan(state, new)`) in the engine, one at a time; `state` follows each success.

    On the first failure raise UpError naming the resource and the reason;
    nothing after it runs, what ran stays done, and the state keeps what it
    had for the failed step (a failed replacement's create leaves the old
    entry; one deleted before it is gone, as with the engine).
    """
    realizer.program = new
    graph = _Graph(new)
    done: list[Applied] = []
    deleted_early: set[str] = set()
    for step in steps:
        started = time.monotonic()
        try:
            _run(realizer, step, graph, state, deleted_early)
        except Exception as error:
            raise UpError(step, str(error), done) from error
        done.append(Applied(step, started, time.monotonic() - started))
    # Old incarnations of create-before-delete replacements go last, as the
    # engine's delete steps for them do; so do those an earlier failed `up` left.
    for entry in _dependents_first(state.pending_deletes):
        step = Step("delete", entry.resource.name, entry.resource.type)
        started = time.monotonic()
        try:
            _delete(realizer, entry)
        except Exception as error:
            raise UpError(step, str(error), done) from error
        state.pending_deletes.remove(entry)
        done.append(Applied(step, started, time.monotonic() - started))
    return done


def _run(realizer: Realizer, step: Step, graph: _Graph, state: State, deleted_early: set[str]) -> None:
    old = state.entries.get(step.name)
    if step.op == "delete":
        if old is not None:
            _delete(realizer, old)
            del state.entries[step.name]
        deleted_early.add(step.name)
        return
    resource = graph.resources[step.name]
    if step.op == "same":
        assert old is not None
        state.entries[step.name] = replace(
            old,
            resource=resource,
            inputs=graph.resolve(resource.inputs, state.identities()),
            dependencies=frozenset(graph.dependencies(step.name)),
        )
    elif step.op == "update":
        assert old is not None
        try:
            outputs = _update(realizer, old, resource, graph.resolve(resource.inputs, state.identities()), step.changed)
        except Exception:
            if resource.type == SERVICE:
                # resourceDockerServiceUpdate has no partial state: a failed
                # converge (Swarm rolled back) still records the new spec, and
                # the bridge saves it with initialization errors
                # (pulumi-terraform-bridge pkg/tfbridge/provider.go, Update).
                state.entries[step.name] = replace(
                    old,
                    resource=resource,
                    inputs=graph.resolve(resource.inputs, state.identities()),
                    outputs=graph.resolve(resource.outputs, state.identities()),
                    dependencies=frozenset(graph.dependencies(step.name)),
                )
            raise
        state.entries[step.name] = replace(
            old,
            resource=resource,
            inputs=graph.resolve(resource.inputs, state.identities()),
            outputs=outputs if outputs is not None else graph.resolve(resource.outputs, state.identities()),
            dependencies=frozenset(graph.dependencies(step.name)),
        )
    elif step.op == "create" or step.delete_before_replace:
        if old is not None and step.name not in deleted_early:
            _delete(realizer, old)
            del state.entries[step.name]
        _create(realizer, resource, graph, state)
    else:
        _create(realizer, resource, graph, state)
        if old is not None:
            state.pending_deletes.append(old)


def _create(realizer: Realizer, resource: Resource, graph: _Graph, state: State) -> None:
    realizer.create(resource)
    name = resource.name
    outputs = None
    engine_id: str | None = None
    if resource.type == CONTAINER:
        identity = engine_id = realizer.realized.containers[name]
    elif resource.type == SERVICE:
        identity = engine_id = realizer.realized.services[name]
    elif resource.type == READY_GATE:
        run = realizer.realized.gates[name]
        identity = engine_id = run.id
        outputs = run.outputs
    else:
        identity = state.next_identity(name)
        if resource.type == NETWORK:
            engine_id = realizer.realized.networks[name]
        elif resource.type == VOLUME:
            engine_id = realizer.realized.volumes[name]
        elif resource.type in _SWARM_OBJECTS:
            engine_id = getattr(realizer.realized, _SWARM_OBJECTS[resource.type])[name]
    state._record(resource, graph, identity, engine_id, outputs)


def _delete(realizer: Realizer, entry: Entry) -> None:
    """The provider's Delete for the resource as the state has it (the engine passes the old state)."""
    resource, api = entry.resource, realizer.api
    if resource.options.get("retain_on_delete"):
        return
    if resource.type == CONTAINER and entry.engine_id:
        inputs = resource.inputs
        # resourceDockerContainerDelete: stop within destroy_grace_seconds
        # (0, an immediate kill, when not declared) unless attached, then
        # remove by force with the declared remove_volumes (default true).
        try:
            if not inputs.get("attach"):
                api.stop(entry.engine_id, timeout=int(inputs.get("destroyGraceSeconds") or 0))
            api.remove_container(entry.engine_id, force=True, v=bool(inputs.get("removeVolumes", True)))
        except NotFound:
            pass
        if realizer.realized.containers.get(resource.name) == entry.engine_id:
            del realizer.realized.containers[resource.name]
    elif resource.type == NETWORK and entry.engine_id:
        api.remove_network(entry.engine_id)
    elif resource.type == VOLUME and entry.engine_id:
        api.remove_volume(entry.engine_id)
    elif resource.type == READY_GATE:
        load_provider(resource.inputs).delete(entry.engine_id or "", dict(entry.outputs))
    elif resource.type == SERVICE and entry.engine_id:
        realizer.remove_service_id(resource.name, entry.engine_id)
    elif resource.type == SECRET and entry.engine_id:
        with suppress(NotFound):
            api.remove_secret(entry.engine_id)
    elif resource.type == SERVICE_CONFIG and entry.engine_id:
        with suppress(NotFound):
            api.remove_config(entry.engine_id)
    # Images stay (keepLocally; built images are the test's cache); Pulumi-only
    # resources have nothing in the engine.


def _update(
    realizer: Realizer, old: Entry, resource: Resource, news: dict[str, Any], changed: list[str]
) -> dict[str, Any] | None:
    """The provider's Update; returns a dynamic resource's new outputs."""
    if resource.type == CONTAINER:
        if {_parts(p)[0] for p in changed} & set(_CONTAINER_UPDATE_FIELDS) and old.engine_id:
            _update_container(realizer, old.engine_id, resource.inputs)
    elif resource.type == IMAGE:
        # pulumi-docker's Image Update builds (and pushes) again.
        realizer.create(resource)
    elif resource.type == SERVICE:
        # resourceDockerServiceUpdate: the whole spec in one ServiceUpdate, then converge.
        realizer.update_service(resource)
    elif _is_dynamic(resource.type):
        provider = load_provider(resource.inputs)
        result = provider.update(old.engine_id or "", dict(old.outputs), news)
        return {**(result.outs or {}), PROVIDER_KEY: resource.inputs[PROVIDER_KEY]}
    return None


def _update_container(realizer: Realizer, container_id: str, inputs: Mapping[str, Any]) -> None:
    """resourceDockerContainerUpdate: restart policy and resources in one ContainerUpdate.

    Zero means "unchanged" to the engine for each resource field, which is
    what the provider sends for an undeclared one.
    """
    memory_swap = inputs.get("memorySwap")
    swap = None
    if memory_swap is not None:
        swap = int(memory_swap) * _MIB if int(memory_swap) > 0 else int(memory_swap)
    realizer.api.update_container(
        container_id,
        restart_policy={"Name": inputs.get("restart", "no"), "MaximumRetryCount": int(inputs.get("maxRetryCount", 0))},
        cpu_shares=int(inputs.get("cpuShares") or 0) or None,
        mem_limit=int(inputs.get("memory") or 0) * _MIB or None,
        mem_reservation=int(inputs.get("memoryReservation") or 0) * _MIB or None,
        cpuset_cpus=inputs.get("cpuSet") or None,
        memswap_limit=swap,
    )
