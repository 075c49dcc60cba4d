"""With logging on, the containers' log lines reach Logstash's GELF port intact.

ELK itself is not run here (its images cannot be built from Debian
packages); a GELF listener of the test's own takes Logstash's place on the
host's loopback, where the program points every container's gelf driver.
The session's stacks (conftest.py, shared with test_stack.py) run this way,
with the ELK containers the program declares left out.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import docker
import httpx
import pytest

from microstack_common import contract
from tests.system.gelf import GelfListener
from tests.system.stack import Stack

pytestmark = pytest.mark.slow

ARRIVAL_SECONDS = 30


def _wait_for(gelf: GelfListener, predicate: Any, what: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + ARRIVAL_SECONDS
    while time.monotonic() < deadline:
        found = gelf.matching(predicate)
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"no GELF message {what} within {ARRIVAL_SECONDS}s; errors: {gelf.errors[:3]}")


def _json_line(message: dict[str, Any]) -> dict[str, Any] | None:
    try:
        parsed = json.loads(message.get("short_message", ""))
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


@pytest.mark.parametrize("path", [f"{contract.API_PREFIX}/items", f"{contract.AUTH_PREFIX}/verify"])
def test_service_log_lines_arrive_as_gelf_with_the_json_intact(
    nginx_stack: Stack, gelf: GelfListener, docker_client: docker.DockerClient, path: str
) -> None:
    logging_stack = nginx_stack
    request_id = f"gelf-{uuid.uuid4().hex}"
    httpx.get(f"{logging_stack.base_url}{path}", headers={contract.REQUEST_ID_HEADER: request_id}, timeout=10)
    role = "api" if path.startswith(contract.API_PREFIX) else "auth"
    names = {logging_stack.container_name(r) for r in logging_stack.containers_with_role(role)}

    def from_service(message: dict[str, Any]) -> bool:
        line = _json_line(message)
        return message.get("_container_name") in names and line is not None and request_id in line.values()

    (message, *_) = _wait_for(gelf, from_service, f"from {role} with request id {request_id}")
    assert message["version"] == "1.1"
    # Docker keeps a local copy of each line alongside the gelf driver
    # (dual logging); the GELF message must carry the same line, unaltered.
    container = docker_client.containers.get(message["_container_id"])
    printed = [line for line in container.logs().decode().splitlines() if request_id in line]
    assert message["short_message"] in printed


def test_a_killed_replica_and_its_return_arrive_as_breaker_events(
    stack: Stack, gelf: GelfListener, docker_client: docker.DockerClient
) -> None:
    """Through Docker's gelf driver from the proxy container's log wrapper: down, then up."""
    breaker_stack = stack
    command = breaker_stack.program.container("proxy-container").inputs["command"]
    kind = str(command[command.index("--proxy") + 1])
    (proxy,) = breaker_stack.containers_with_role("proxy")
    proxy_name = breaker_stack.container_name(proxy)
    replica = breaker_stack.containers_with_role("api")[0]
    container = docker_client.containers.get(breaker_stack.container_id(replica))
    started = time.time()

    def event(name: str, replica_name: str | None = None) -> Any:
        def matches(message: dict[str, Any]) -> bool:
            line = _json_line(message)
            return (
                message.get("_container_name") == proxy_name
                and message.get("timestamp", 0) >= started
                and line is not None
                and line.get("event") == name
                and line.get("upstream") == "api"
                and (replica_name is None or line.get("replica") == replica_name)
            )

        return matches

    def traffic_until(predicate: Any, what: str) -> dict[str, Any]:
        # nginx notices a dead replica only on live traffic.
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=breaker_stack.base_url, timeout=10) as client:
            while time.monotonic() < deadline:
                found = gelf.matching(predicate)
                if found:
                    line = _json_line(found[0])
                    assert line is not None
                    return line
                client.get(f"{contract.API_PREFIX}/instance")
                time.sleep(0.2)
        raise AssertionError(f"no {what} from {proxy_name} within 60s; errors: {gelf.errors[:3]}")

    networks = container.attrs["NetworkSettings"]["Networks"].values()
    addresses = {f"{n['IPAddress']}:{contract.API_PORT}" for n in networks}
    container.kill()
    try:
        down = traffic_until(event("replica_down", "api-1"), "replica_down")
    finally:
        container.reload()
        if container.status != "running":
            container.start()
    assert down["proxy"] == kind and down["service"] == "proxy" and down["instance"] == proxy_name
    assert down["reason"] and down["detail"], down
    # The replica's own name and address, also from HAProxy, whose discovery
    # slot holding it may have any number.
    assert down["address"] in addresses, down
    up = traffic_until(event("replica_up", "api-1"), "replica_up")
    assert up["level"] == "INFO" and up["reason"], up
