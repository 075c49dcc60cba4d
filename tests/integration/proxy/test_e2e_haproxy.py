"""HAProxy end to end: what the active circuit breaker adds.

Health checks take a dead replica out of rotation and, once it answers
`/health` again `rise` times, put it back with its weight ramped up over the
slow-start period; with no replica left, the fallback backend answers. The
state is read from HAProxy's own runtime API, not inferred from traffic.
"""

from __future__ import annotations

import signal
import time

import httpx
import pytest

from components.proxy.model import ProxyKind
from microstack_common import contract
from tests.integration.proxy.conftest import E2E_HEALTH, ProxyStarter
from tests.integration.proxy.harness import ProxyProcess, Replicas
from tests.integration.proxy.test_e2e_common import base_url

pytestmark = pytest.mark.slow


# `srv_op_state` values in `show servers state`.
DOWN, STARTING, RUNNING = "0", "1", "2"


def wait_for_state(proxy: ProxyProcess, server: str, op_states: set[str], timeout: float) -> float:
    """Seconds until `server` of backend api is in one of `op_states`; fails at timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proxy.servers_state("api")[server]["srv_op_state"] in op_states:
            return time.monotonic() - start
        time.sleep(0.05)
    pytest.fail(f"{server} did not reach state {op_states} within {timeout}s")


def test_killed_replica_leaves_rotation_within_interval_times_fall(start_proxy: ProxyStarter, pool: Replicas) -> None:
    proxy = start_proxy(ProxyKind.HAPROXY)
    pool.api[1].send_signal(signal.SIGKILL)
    bound = E2E_HEALTH.interval_seconds * E2E_HEALTH.fall
    elapsed = wait_for_state(proxy, "api-2", {DOWN}, timeout=bound + 2)
    assert elapsed <= bound


def test_fallback_backend_answers_once_no_replica_is_up(start_proxy: ProxyStarter, pool: Replicas) -> None:
    proxy = start_proxy(ProxyKind.HAPROXY)
    for replica in pool.api:
        replica.send_signal(signal.SIGKILL)
    for server in ("api-1", "api-2", "api-3"):
        wait_for_state(proxy, server, {DOWN}, timeout=10)
    with httpx.Client(base_url=base_url(proxy), timeout=10) as client:
        answer = client.get("/api/instance")
        auth = client.get("/auth/verify")
    assert answer.status_code == 503
    assert answer.json()["detail"] == "no healthy replica; retry later"
    assert answer.headers["Retry-After"] == str(proxy.model.retry_after_seconds)
    assert auth.status_code == 401, "auth still has its replica and is unaffected"


def test_recovered_replica_rejoins_by_health_with_slow_start(start_proxy: ProxyStarter, pool: Replicas) -> None:
    proxy = start_proxy(ProxyKind.HAPROXY)
    pool.api[0].send_signal(signal.SIGKILL)
    wait_for_state(proxy, "api-1", {DOWN}, timeout=10)
    pool.ensure_running()
    # During slow start HAProxy reports the server as STARTING, then RUNNING.
    wait_for_state(proxy, "api-1", {STARTING, RUNNING}, timeout=10)
    weights: list[int] = []
    states: list[str] = []
    deadline = time.monotonic() + proxy.model.slow_start_seconds + 3
    while time.monotonic() < deadline:
        weights.append(int(proxy.server_stats("api")["api-1"]["weight"]))
        states.append(proxy.servers_state("api")["api-1"]["srv_op_state"])
        if weights[-1] == 100:
            break
        time.sleep(0.1)
    assert states[0] == STARTING and states[-1] == RUNNING, states
    assert weights[0] < 100, "no slow start: full weight at once"
    assert weights[-1] == 100, weights
    assert weights == sorted(weights), "the weight only climbs"
    assert len(set(weights)) > 2, f"the weight ramped in steps: {weights}"
    with httpx.Client(base_url=base_url(proxy), timeout=10) as client:
        seen = {client.get("/api/instance").headers[contract.INSTANCE_HEADER] for _ in range(60)}
    assert "api-1" in seen
