"""What `pulumi up` would do to a deployed stack, decided by the system test's planner (no engine).

The planner (tests/system/rollout.py) mirrors the engine's step generator;
these tests run the program under mocks before and after a change and check
the steps: the kind, the order, and which input made the difference.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import components.service
from tests.support.program import CONTAINER, READY_GATE, Program, Resource, run_program
from tests.system.realizer import GateRun, Realized, RealizeError
from tests.system.releases import Release, SourceTree, release_header
from tests.system.rollout import State, Step, UpError, apply, changes, plan

CONFIG: dict[str, Any] = {"logging": {"enabled": False}, "api": {"replicas": 2}}


def _program(**overrides: Any) -> Program:
    config = {key: {**CONFIG.get(key, {}), **value} for key, value in overrides.items()}
    return run_program({**CONFIG, **config})


def _by_name(steps: list[Step]) -> dict[str, Step]:
    return {step.name: step for step in steps if step.op != "delete"}


def _position(steps: list[Step], op: str, name: str) -> int:
    return next(i for i, step in enumerate(steps) if (step.op, step.name) == (op, name))


@pytest.fixture(scope="module")
def deployed() -> Program:
    return _program()


def test_a_no_change_up_has_no_steps(deployed: Program) -> None:
    steps = plan(State.declared(deployed), _program())
    assert changes(steps) == []
    assert {step.name for step in steps} == {r.name for r in deployed.resources}


def test_a_code_change_replaces_the_replicas_one_after_the_other(
    deployed: Program, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = SourceTree(tmp_path)
    monkeypatch.setattr(components.service, "_PROJECT_DIR", tmp_path)
    before = run_program(CONFIG)
    tree.deploy(Release("v2", (release_header("v2"),)))
    steps = plan(State.declared(before), run_program(CONFIG))
    by_name = _by_name(steps)

    assert by_name["api-image"].op == "update"
    assert by_name["api-built-image"].op == "replace"
    assert by_name["api-built-image"].changed == ["name"]
    for replica in ("api-1", "api-2"):
        assert (by_name[replica].op, by_name[replica].changed) == ("replace", ["image"])
        assert by_name[replica].delete_before_replace
        assert by_name[f"{replica}-ready"].op == "replace"
        assert by_name[f"{replica}-ready"].changed == ["containerId"]
    # The image is built before it is looked up; one replica at a time,
    # replica 2 only after replica 1's gate has passed.
    assert _position(steps, "update", "api-image") < _position(steps, "replace", "api-built-image")
    assert (
        _position(steps, "replace", "api-1")
        < _position(steps, "replace", "api-1-ready")
        < _position(steps, "replace", "api-2")
        < _position(steps, "replace", "api-2-ready")
    )
    # The gate waiting on the old replica goes before the replica itself.
    assert _position(steps, "delete", "api-1-ready") == _position(steps, "replace", "api-1") - 1
    untouched = {s.name for s in steps if s.op == "same"}
    assert {"auth-1", "auth-1-ready", "proxy-container", "postgres-container", "redis-container"} <= untouched


def test_a_changed_health_check_replaces_through_replace_on_changes(deployed: Program) -> None:
    (api_1,) = [r for r in deployed.containers if r.name == "api-1"]
    assert api_1.options["replace_on_changes"] == ["healthcheck"]
    checked = {**api_1.inputs, "healthcheck": {**api_1.inputs["healthcheck"], "interval": "7s"}}

    def with_api_1(resource: Resource) -> Program:
        return Program([resource if r.name == "api-1" else r for r in deployed.resources], {})

    steps = _by_name(plan(State.declared(deployed), with_api_1(replace(api_1, inputs=checked))))
    assert (steps["api-1"].op, steps["api-1"].changed) == ("replace", ["healthcheck.interval"])
    assert steps["api-1-ready"].op == "replace"
    # The provider alone would update it in place, which never reaches the container.
    without_option = replace(api_1, inputs=checked, options={**api_1.options, "replace_on_changes": []})
    steps = _by_name(plan(State.declared(deployed), with_api_1(without_option)))
    assert (steps["api-1"].op, steps["api-1-ready"].op) == ("update", "same")


def test_a_memory_change_updates_in_place(deployed: Program) -> None:
    steps = changes(plan(State.declared(deployed), _program(api={"memoryMb": 384})))
    assert [(s.op, s.name, s.changed) for s in steps] == [
        ("update", "api-1", ["memory"]),
        ("update", "api-2", ["memory"]),
    ]


def test_a_replaced_container_s_gate_is_replaced(deployed: Program) -> None:
    steps = _by_name(plan(State.declared(deployed), _program(api={"cpus": 1.0})))
    assert (steps["api-1"].op, steps["api-1"].changed) == ("replace", ["cpus"])
    assert (steps["api-1-ready"].op, steps["api-1-ready"].changed) == ("replace", ["containerId"])


def test_removing_a_replica_deletes_its_gate_before_it(deployed: Program) -> None:
    steps = plan(State.declared(_program(api={"replicas": 3})), deployed)
    # Last, after every create and update: what the program no longer declares.
    assert [(s.op, s.name) for s in steps[-2:]] == [("delete", "api-3-ready"), ("delete", "api-3")]
    assert [s.name for s in steps if s.op == "delete" and not s.delete_before_replace] == ["api-3-ready", "api-3"]


def test_a_gate_whose_settings_change_is_not_waited_for_again(deployed: Program) -> None:
    (gate,) = [r for r in deployed.of_type(READY_GATE) if r.name == "api-1-ready"]
    changed = replace(gate, inputs={**gate.inputs, "timeoutSeconds": 30.0})
    program = Program([changed if r.name == gate.name else r for r in deployed.resources], {})
    assert changes(plan(State.declared(deployed), program)) == []


class _Api:
    """The Docker API calls a delete makes, recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def stop(self, container_id: str, timeout: int) -> None:
        self.calls.append(("stop", container_id))

    def remove_container(self, container_id: str, force: bool, v: bool) -> None:
        self.calls.append(("remove", container_id))


class _Realizer:
    """Stands in for the realizer: containers get new IDs, gates of `broken` containers fail."""

    def __init__(self, program: Program, broken: set[str]) -> None:
        self.program = program
        self.broken = broken
        self.realized = Realized()
        self.api = _Api()
        self.created: list[str] = []

    def create(self, resource: Resource) -> None:
        self.created.append(resource.name)
        if resource.type == CONTAINER:
            self.realized.containers[resource.name] = f"{resource.name}-container-{len(self.created)}"
        elif resource.type == READY_GATE:
            container = resource.name.removesuffix("-ready")
            if container in self.broken:
                raise RealizeError(f"{resource.name}: container {container} did not become healthy")
            self.realized.gates[resource.name] = GateRun(
                self.realized.containers[container],
                {**resource.inputs, "containerId": self.realized.containers[container]},
            )


def test_a_failed_gate_stops_the_up_and_a_second_up_waits_on_it_again(deployed: Program) -> None:
    state = State.declared(deployed)
    broken = _program(api={"cpus": 1.0})
    realizer = _Realizer(broken, broken={"api-1"})
    with pytest.raises(UpError) as failed:
        apply(realizer, plan(state, broken), broken, state)  # type: ignore[arg-type]
    assert failed.value.step.name == "api-1-ready"
    assert "api-1 did not become healthy" in failed.value.reason
    assert "api-2" not in realizer.created
    assert "api-1-ready" not in state.entries, "a gate that failed is not in the state"
    assert state.entries["api-1"].inputs["cpus"] == "1.0"

    retry = changes(plan(state, broken))
    assert [(s.op, s.name) for s in retry][:1] == [("create", "api-1-ready")]
    assert _position(retry, "create", "api-1-ready") < _position(retry, "replace", "api-2")


def test_rolling_back_after_a_failed_rollout_replaces_only_the_replica_it_reached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = SourceTree(tmp_path)
    monkeypatch.setattr(components.service, "_PROJECT_DIR", tmp_path)
    good = Release("v2", (release_header("v2"),))
    tree.deploy(good)
    deployed = run_program(CONFIG)
    state = State.declared(deployed)
    tree.deploy(Release("v3", (release_header("v3"),)))
    broken = run_program(CONFIG)
    with pytest.raises(UpError):
        apply(_Realizer(broken, broken={"api-1"}), plan(state, broken), broken, state)  # type: ignore[arg-type]

    tree.deploy(good)
    steps = changes(plan(state, run_program(CONFIG)))
    replaced = {s.name for s in steps if s.type == CONTAINER}
    # api-2 still runs the image the rollback pulls again: its image ID is the same.
    assert replaced == {"api-1"}
