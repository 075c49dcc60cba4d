"""The services' `health_state` events: one JSON line per change of what /health reports, never per probe."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from microstack_common.health import HealthStates, state_change
from microstack_common.logs import JsonFormatter

SHARED_FIELDS = {"timestamp", "level", "message", "service", "instance", "request_id"}


Logged = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def logged() -> Iterator[Logged]:
    """Reads the JSON lines the health module has logged so far, parsed, in order."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("api", "api-2"))
    health_logger = logging.getLogger("microstack_common.health")
    health_logger.addHandler(handler)
    health_logger.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        health_logger.removeHandler(handler)
        health_logger.setLevel(logging.NOTSET)


def test_only_changes_are_logged_with_state_reason_and_previous_state(logged: Logged) -> None:
    states = HealthStates()
    # An instance starts ok: a healthy start logs nothing.
    assert not states.observe("ok", "recovered")
    assert states.observe("degraded", "redis", "redis: ConnectionError: refused")
    for _ in range(5):
        assert not states.observe("degraded", "redis", "redis: ConnectionError: refused")
    assert states.observe("degraded", "redis,memory", "redis: refused; memory: 3.0% free of the cgroup limit")
    assert states.observe("ok", "recovered")
    assert not states.observe("ok", "recovered")
    assert states.observe("draining", "draining")

    events = logged()
    assert [(e["state"], e["reason"], e["previous_state"]) for e in events] == [
        ("degraded", "redis", "ok"),
        ("degraded", "redis,memory", "degraded"),
        ("ok", "recovered", "degraded"),
        ("draining", "draining", "ok"),
    ]
    for event in events:
        assert event["event"] == "health_state"
        assert set(event) >= SHARED_FIELDS, event
        assert (event["service"], event["instance"]) == ("api", "api-2")
    assert events[0]["detail"] == "redis: ConnectionError: refused"
    assert events[0]["level"] == "WARNING"
    assert "detail" not in events[2]
    assert events[2]["level"] == "INFO"
    assert events[0]["message"] == "health degraded: redis"


def test_failing_is_an_error(logged: Logged) -> None:
    states = HealthStates()
    states.observe("failing", "postgres", "postgres: TimeoutError")
    (event,) = logged()
    assert (event["state"], event["reason"], event["level"]) == ("failing", "postgres", "ERROR")


def test_a_report_begun_before_the_last_observed_one_is_stale(logged: Logged) -> None:
    states = HealthStates()
    began_early = time.monotonic()
    assert states.observe("degraded", "redis", started=began_early + 1)
    # A probe that started before Redis went away finishes last: no "ok" in between.
    assert not states.observe("ok", "recovered", started=began_early)
    assert states.state == "degraded"
    assert [e["state"] for e in logged()] == ["degraded"]


def test_concurrent_reports_of_one_change_log_it_once(logged: Logged) -> None:
    states = HealthStates()
    barrier = threading.Barrier(16)

    def probe(state: str, reason: str) -> None:
        barrier.wait()
        for _ in range(200):
            states.observe(state, reason)

    for state, reason in (("degraded", "redis"), ("ok", "recovered"), ("draining", "draining")):
        threads = [threading.Thread(target=probe, args=(state, reason)) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert [e["state"] for e in logged()] == ["degraded", "ok", "draining"]


def _check(healthy: bool, **fields: Any) -> dict[str, Any]:
    return {"healthy": healthy, **fields}


def test_state_change_names_the_failed_checks_and_how_they_failed() -> None:
    checks = {
        "postgres": _check(True),
        "redis": _check(False, error="ConnectionError: Error 111 connecting"),
        "memory": _check(False, used_bytes=97, limit_bytes=100, source="cgroup"),
        "disk": _check(False, free_bytes=1, total_bytes=100, path="/tmp"),
    }
    reason, detail = state_change("degraded", checks)
    assert reason == "redis,memory,disk"
    assert detail == (
        "redis: ConnectionError: Error 111 connecting; memory: 3.0% free of the cgroup limit; disk: 1.0% free at /tmp"
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [("ok", ("recovered", "")), ("draining", ("draining", "")), ("failing", ("postgres", "postgres: TimeoutError"))],
)
def test_state_change_for_ok_draining_and_failing(status: str, expected: tuple[str, str]) -> None:
    checks = {"postgres": _check(status != "failing", error="TimeoutError"), "redis": _check(True)}
    assert state_change(status, checks) == expected
