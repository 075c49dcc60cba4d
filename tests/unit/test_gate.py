"""The readiness gate's diff (waiting again exactly when what it waits on changed) and its Swarm condition."""

from __future__ import annotations

import pytest

from components.gate import GateError, ReadyGateProvider, _wait_with

OLD = {"containerId": "abc", "containerName": "api-1", "condition": "healthy", "__provider": "x"}


def test_a_replaced_container_replaces_its_gate() -> None:
    result = ReadyGateProvider().diff("abc", OLD, {**OLD, "containerId": "def"})
    assert result.changes and result.replaces == ["containerId"]


def test_a_changed_condition_replaces_the_gate() -> None:
    result = ReadyGateProvider().diff("abc", OLD, {**OLD, "condition": "exited-zero"})
    assert result.changes and result.replaces == ["condition"]


def test_timeouts_settle_time_and_a_new_provider_do_not_wait_again() -> None:
    news = {**OLD, "timeoutSeconds": 300, "settleSeconds": 11, "__provider": "y", "docker": {"host": "ssh://h"}}
    result = ReadyGateProvider().diff("abc", OLD, news)
    assert not result.changes and not result.replaces


def test_a_changed_service_spec_replaces_the_gate_so_the_next_up_checks_again() -> None:
    service = {**OLD, "condition": "service-updated", "specDigest": "1111"}
    result = ReadyGateProvider().diff("abc", service, {**service, "specDigest": "2222"})
    assert result.changes and result.replaces == ["specDigest"]


class _FakeSwarm:
    """The two Engine API calls the service gate makes, answering with a fixed service and tasks."""

    def __init__(self, state: str | None, image: str, running: int, replicas: int = 2) -> None:
        self.service = {
            "ID": "svc",
            "Spec": {
                "TaskTemplate": {"ContainerSpec": {"Image": image}},
                "Mode": {"Replicated": {"Replicas": replicas}},
            },
            "UpdateStatus": {"State": state, "Message": "update rolled back due to failure"} if state else None,
        }
        self.task_list = [{"Slot": i, "Status": {"State": "running"}, "UpdatedAt": str(i)} for i in range(running)]
        self.api = self

    def inspect_service(self, _id: str) -> dict:
        return self.service

    def tasks(self, filters: dict) -> list[dict]:
        return self.task_list

    def close(self) -> None:
        pass


def _gate(client: _FakeSwarm, image: str = "repo/api@sha256:new", timeout: float = 0.01) -> None:
    _wait_with(
        client,
        {
            "containerId": "svc",
            "containerName": "api",
            "condition": "service-updated",
            "expectedImage": image,
            "timeoutSeconds": timeout,
        },
    )


def test_a_service_that_converged_on_the_declared_image_passes() -> None:
    _gate(_FakeSwarm("completed", "repo/api@sha256:new", running=2))
    _gate(_FakeSwarm(None, "repo/api@sha256:new", running=2))


@pytest.mark.parametrize("state", ["rollback_completed", "rollback_paused", "paused", "rollback_started"])
def test_a_service_swarm_rolled_back_fails_the_gate_naming_it(state: str) -> None:
    with pytest.raises(GateError, match=f"service api update {state}: update rolled back"):
        _gate(_FakeSwarm(state, "repo/api@sha256:old", running=2))


def test_a_service_running_another_image_than_declared_fails_the_gate() -> None:
    with pytest.raises(GateError, match="runs repo/api@sha256:old, not the declared repo/api@sha256:new"):
        _gate(_FakeSwarm("completed", "repo/api@sha256:old", running=2))


def test_a_service_short_of_replicas_times_out() -> None:
    with pytest.raises(GateError, match="did not converge"):
        _gate(_FakeSwarm("completed", "repo/api@sha256:new", running=1))
