"""The readiness gate (components/gate.py) against real containers.

The gate is what makes a failed rollout stop where it failed: its create
raises, naming the container and the reason, whenever the container is not
ready, so the `up` fails on this and every later run until the container is
fixed. These tests run its waiting code against containers in the real engine.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress
from typing import Any

import docker
import pytest

from components.gate import GateError, ReadyGateProvider, wait_until_ready
from tests.system.images import BuiltImages
from tests.system.realizer import SESSION_LABEL

SECOND = 10**9


@pytest.fixture
def run(docker_client: docker.DockerClient, test_images: BuiltImages) -> Iterator[Callable[..., tuple[str, str]]]:
    """Start a throw-away container from the Python base image; returns (id, name)."""
    made: list[str] = []

    def start(command: str, *, health: str | None = None, restart: bool = False) -> tuple[str, str]:
        name = f"gate-test-{uuid.uuid4().hex[:8]}"
        created = docker_client.api.create_container(
            test_images.python,
            name=name,
            command=["sh", "-c", command],
            labels={SESSION_LABEL: "gate-test"},
            host_config=docker_client.api.create_host_config(
                log_config=docker.types.LogConfig(type="local"),
                restart_policy={"Name": "always"} if restart else None,
            ),
            healthcheck={"test": ["CMD-SHELL", health], "interval": SECOND // 2, "retries": 1} if health else None,
        )
        made.append(created["Id"])
        docker_client.api.start(created["Id"])
        return created["Id"], name

    yield start
    for container_id in made:
        with suppress(docker.errors.NotFound):
            docker_client.api.remove_container(container_id, force=True)


def _props(container_id: str, name: str, condition: str, timeout: float, settle: float = 0) -> dict[str, Any]:
    return {
        "containerId": container_id,
        "containerName": name,
        "condition": condition,
        "timeoutSeconds": timeout,
        "settleSeconds": settle,
        "docker": {},
    }


def test_a_healthy_container_passes_after_the_settle_time(run: Callable[..., tuple[str, str]]) -> None:
    container_id, name = run("sleep 600", health="true")
    started = time.monotonic()
    wait_until_ready(_props(container_id, name, "healthy", timeout=30, settle=2))
    assert time.monotonic() - started >= 2


def test_an_unhealthy_container_fails_naming_it_and_its_last_probe(run: Callable[..., tuple[str, str]]) -> None:
    container_id, name = run("echo starting; sleep 600", health="echo database unreachable; exit 1")
    with pytest.raises(GateError) as failure:
        wait_until_ready(_props(container_id, name, "healthy", timeout=4))
    message = str(failure.value)
    assert f"container {name} did not become healthy within 4 s" in message
    assert "database unreachable" in message
    assert "starting" in message  # the last log lines


def test_a_crash_looping_container_fails_at_once_not_at_the_timeout(run: Callable[..., tuple[str, str]]) -> None:
    container_id, name = run("echo cannot connect; exit 1", health="true", restart=True)
    started = time.monotonic()
    with pytest.raises(GateError) as failure:
        wait_until_ready(_props(container_id, name, "healthy", timeout=120))
    assert time.monotonic() - started < 60
    assert f"container {name} keeps exiting" in str(failure.value)
    assert "cannot connect" in str(failure.value)


def test_a_container_without_a_health_check_cannot_be_waited_on(run: Callable[..., tuple[str, str]]) -> None:
    container_id, name = run("sleep 600")
    with pytest.raises(GateError, match="has no health check"):
        wait_until_ready(_props(container_id, name, "healthy", timeout=5))


def test_a_job_that_exits_zero_passes(run: Callable[..., tuple[str, str]]) -> None:
    container_id, name = run("echo done")
    wait_until_ready(_props(container_id, name, "exited-zero", timeout=30))


def test_a_failed_job_runs_once_more_then_fails_with_its_exit_code(
    docker_client: docker.DockerClient, run: Callable[..., tuple[str, str]]
) -> None:
    container_id, name = run("echo attempt; exit 3")
    with pytest.raises(GateError) as failure:
        wait_until_ready(_props(container_id, name, "exited-zero", timeout=30))
    assert f"container {name} failed with exit code 3 (2 runs)" in str(failure.value)
    logs = docker_client.api.logs(container_id).decode()
    assert logs.count("attempt") == 2


def test_a_removed_container_fails_the_gate(
    docker_client: docker.DockerClient, run: Callable[..., tuple[str, str]]
) -> None:
    container_id, name = run("sleep 600", health="true")
    docker_client.api.remove_container(container_id, force=True)
    with pytest.raises(GateError, match="no longer exists"):
        wait_until_ready(_props(container_id, name, "healthy", timeout=5))


def test_the_provider_creates_the_gate_with_the_container_as_its_id(run: Callable[..., tuple[str, str]]) -> None:
    container_id, name = run("sleep 600", health="true")
    result = ReadyGateProvider().create(_props(container_id, name, "healthy", timeout=30))
    assert result.id == container_id
    assert result.outs == {"containerId": container_id, "containerName": name, "condition": "healthy"}
