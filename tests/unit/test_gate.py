"""The readiness gate's diff: waiting again exactly when its container (or condition) changed."""

from __future__ import annotations

from components.gate import ReadyGateProvider

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
