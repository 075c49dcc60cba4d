"""HAProxy end to end: what the active circuit breaker adds.

Health checks take a dead replica out of rotation and, once it answers
`/health` again `rise` times, put it back with its weight ramped up over the
slow-start period; with no replica left, the fallback backend answers. The
state is read from HAProxy's own runtime API, not inferred from traffic.
"""

from __future__ import annotations

import contextlib
import signal
import time
import uuid
from pathlib import Path

import httpx
import pytest

from components.proxy import render_haproxy
from components.proxy.model import DnsDiscovery, ProxyKind, Server, UpstreamGroup
from microstack_common import contract
from tests.integration.proxy.conftest import E2E_HEALTH, ModelFactory, ProxyStarter
from tests.integration.proxy.harness import FakeDns, ProxyProcess, Replicas, http_get
from tests.integration.proxy.test_e2e_common import base_url
from tests.support.servers import (
    PostgresServer,
    RedisServer,
    SecretFiles,
    ServiceProcess,
    free_port,
    service_env,
)

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


def test_dns_discovery_follows_replicas_without_a_config_change(
    make_model: ModelFactory,
    proxy_root: Path,
    postgres_server: PostgresServer,
    redis_server: RedisServer,
    jwt_secrets: SecretFiles,
) -> None:
    """Replicas share one name and port on different loopback addresses, as
    containers share an alias on a Docker network; a DNS server on loopback
    plays Docker's. Scaling up and down changes only its answers."""
    port = free_port()
    hosts = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    database = postgres_server.create_database(f"dns_{uuid.uuid4().hex[:8]}")
    replicas = []
    for index, host in enumerate(hosts, start=1):
        env = service_env(
            postgres_server, redis_server, jwt_secrets, instance=f"dns-api-{index}", port=port, database=database
        )
        env[contract.Env.HOST] = host
        replicas.append(ServiceProcess("microstack_api", env, wait_ready=False))
    with FakeDns() as dns, contextlib.ExitStack() as stack:
        for replica in replicas:
            stack.enter_context(replica)
        for host in hosts:
            deadline = time.monotonic() + 60
            while not healthy(host, port) and time.monotonic() < deadline:
                time.sleep(0.1)
        dns.records["api"] = hosts[:2]
        model = make_model(
            upstreams=(
                UpstreamGroup("api", discovery=DnsDiscovery("api", port, max_servers=4)),
                UpstreamGroup("auth", (Server("127.0.0.1", free_port()),)),
            ),
            dns_resolver=Server("127.0.0.1", dns.port),
            dns_hold_seconds=1.0,
            health_check=E2E_HEALTH,
            slow_start_seconds=0,
        )
        proxy = stack.enter_context(ProxyProcess(ProxyKind.HAPROXY, model, proxy_root))
        assert wait_for_instances(proxy, {"dns-api-1", "dns-api-2"})
        dns.records["api"] = hosts
        assert wait_for_instances(proxy, {"dns-api-1", "dns-api-2", "dns-api-3"})
        dns.records["api"] = hosts[1:]
        assert wait_for_instances(proxy, {"dns-api-2", "dns-api-3"})
        assert proxy.config.read_text() == render_haproxy(model), "the config never changed"


def healthy(host: str, port: int) -> bool:
    try:
        return http_get(port, contract.HEALTH_PATH, host=host)[0] == 200
    except OSError:
        return False


def wait_for_instances(proxy: ProxyProcess, expected: set[str], timeout: float = 15.0) -> bool:
    """True once 40 requests in a row are answered by exactly the `expected` replicas."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base_url(proxy), timeout=10) as client:
        while time.monotonic() < deadline:
            answers = [client.get("/api/instance") for _ in range(40)]
            seen = {answer.headers.get(contract.INSTANCE_HEADER) for answer in answers}
            if seen == expected and all(answer.status_code == 200 for answer in answers):
                return True
            time.sleep(0.3)
    return False
