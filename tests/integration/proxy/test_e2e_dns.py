"""Both proxies finding replicas through DNS, as on Swarm with `endpoint_mode: dnsrr`.

The API replicas listen on one port at 127.0.0.2-4, as a service's tasks do
at their own addresses; a DNS server on loopback plays Docker's embedded one
and answers `tasks.api` with the running "tasks". The tests change its
answers (a task added, one removed, none left), kill a replica under load,
and measure what nginx keeps and loses without an upstream block.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from components.proxy import render
from components.proxy.model import DnsDiscovery, ProxyKind, Server, UpstreamGroup
from microstack_common import contract
from tests.integration.proxy.conftest import ModelFactory, e2e_fields
from tests.integration.proxy.harness import (
    FakeDns,
    ProxyProcess,
    Replicas,
    failures,
    paced_gets,
)
from tests.integration.proxy.test_e2e_common import base_url, create_item, login, truncated_in_flight
from tests.support.servers import PostgresServer, RedisServer, SecretFiles

pytestmark = pytest.mark.slow

KINDS = list(ProxyKind)
TASKS = "tasks.api"
HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
VALID_SECONDS = 1
# How long after a DNS change the proxies must follow it: the answer's
# validity, HAProxy's 1 s query interval, and a new server's first checks.
FOLLOW_SECONDS = VALID_SECONDS + 4

DnsProxyStarter = Callable[..., ProxyProcess]


@pytest.fixture(scope="module")
def dns_replicas(
    postgres_server: PostgresServer, redis_server: RedisServer, jwt_secrets: SecretFiles
) -> Iterator[Replicas]:
    """API replicas api-1..3 on HOSTS (one shared port) and one auth instance, for this module."""
    database = postgres_server.create_database(f"dns_{uuid.uuid4().hex[:8]}")
    pool = Replicas(postgres_server, redis_server, jwt_secrets, database=database, api_hosts=HOSTS)
    try:
        yield pool.start()
    finally:
        pool.stop()


@pytest.fixture
def tasks(dns_replicas: Replicas) -> Replicas:
    """The replicas, every one running and healthy at the start of the test."""
    dns_replicas.ensure_running()
    return dns_replicas


@pytest.fixture
def dns() -> Iterator[FakeDns]:
    """Docker's DNS stand-in, answering `tasks.api` with every replica."""
    with FakeDns() as server:
        server.records[TASKS] = list(HOSTS)
        yield server


@pytest.fixture
def start_dns_proxy(
    tasks: Replicas, dns: FakeDns, make_model: ModelFactory, proxy_root: Path
) -> Iterator[DnsProxyStarter]:
    """Start a proxy of a kind that finds the API through `dns`; keyword arguments override model fields."""
    started: list[ProxyProcess] = []

    def start(kind: ProxyKind, **overrides: object) -> ProxyProcess:
        fields = e2e_fields(proxy_root)
        fields.update(
            upstreams=(
                UpstreamGroup("api", discovery=DnsDiscovery(TASKS, tasks.api[0].port, max_servers=4)),
                UpstreamGroup("auth", (Server("127.0.0.1", tasks.auth.port),)),
            ),
            dns_resolver=dns.address,
            dns_valid_seconds=VALID_SECONDS,
            slow_start_seconds=0,
        )
        fields.update(overrides)
        proxy = ProxyProcess(kind, make_model(**fields), proxy_root)
        started.append(proxy)
        return proxy.start()

    yield start
    for proxy in started:
        proxy.stop()


def instances_seen(proxy: ProxyProcess, count: int = 40) -> tuple[set[str | None], list[int]]:
    """Which replicas answered `count` GETs in a row, and the statuses."""
    with httpx.Client(base_url=base_url(proxy), timeout=10) as client:
        answers = [client.get("/api/instance") for _ in range(count)]
    return {answer.headers.get(contract.INSTANCE_HEADER) for answer in answers}, [a.status_code for a in answers]


def seconds_until_instances(proxy: ProxyProcess, expected: set[str], timeout: float) -> float:
    """Seconds until 40 GETs in a row are all answered, by exactly `expected`; fails at timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        seen, statuses = instances_seen(proxy)
        assert set(statuses) == {200}, statuses
        if seen == expected:
            return time.monotonic() - start
        time.sleep(0.1)
    pytest.fail(f"traffic did not settle on {sorted(expected)} within {timeout}s (last: {seen})")


@pytest.mark.parametrize("kind", KINDS)
def test_requests_spread_over_the_resolved_replicas(kind: ProxyKind, start_dns_proxy: DnsProxyStarter) -> None:
    proxy = start_dns_proxy(kind)
    outcomes = asyncio.run(paced_gets(base_url(proxy), duration=1.5, max_requests=300))
    assert not failures(outcomes)
    counts = {name: sum(o.instance == name for o in outcomes) for name in ("api-1", "api-2", "api-3")}
    # nginx picks the first address of an answer it rotates at random for
    # each request; HAProxy balances by least connections.
    assert all(count >= len(outcomes) / 6 for count in counts.values()), counts


@pytest.mark.parametrize("kind", KINDS)
def test_traffic_follows_the_dns_answer_as_tasks_come_and_go(
    kind: ProxyKind, start_dns_proxy: DnsProxyStarter, dns: FakeDns
) -> None:
    dns.records[TASKS] = list(HOSTS[:2])
    proxy = start_dns_proxy(kind)
    seconds_until_instances(proxy, {"api-1", "api-2"}, timeout=FOLLOW_SECONDS)
    dns.records[TASKS] = list(HOSTS)
    added = seconds_until_instances(proxy, {"api-1", "api-2", "api-3"}, timeout=FOLLOW_SECONDS + 5)
    dns.records[TASKS] = list(HOSTS[1:])
    removed = seconds_until_instances(proxy, {"api-2", "api-3"}, timeout=FOLLOW_SECONDS + 5)
    assert added <= FOLLOW_SECONDS, added
    assert removed <= FOLLOW_SECONDS, removed
    assert proxy.config.read_text() == render(proxy.model, kind), "the config never changed"


@pytest.mark.parametrize("kind", KINDS)
def test_replica_killed_under_get_load_fails_no_request(
    kind: ProxyKind, start_dns_proxy: DnsProxyStarter, tasks: Replicas
) -> None:
    """The killed task stays in the DNS answer (Swarm removes it a little
    later): nginx moves to the next resolved address, HAProxy retries on
    another server until its checks take the dead one out."""
    proxy = start_dns_proxy(kind)
    killed_at: float | None = None

    async def kill_one(elapsed: float) -> None:
        nonlocal killed_at
        if elapsed > 1.0 and killed_at is None:
            killed_at = elapsed
            tasks.api[1].send_signal(signal.SIGKILL)

    outcomes = asyncio.run(paced_gets(base_url(proxy), duration=3.0, on_tick=kill_one))
    assert killed_at is not None
    failed = [o for o in failures(outcomes) if not truncated_in_flight(o, killed_at)]
    assert not failed, failed[:5]
    assert {o.instance for o in outcomes if o.started > killed_at + 0.2} == {"api-1", "api-3"}


def first_tries_on(proxy: ProxyProcess, address: str) -> int:
    """Access log records whose first upstream attempt went to `address`."""
    return sum(
        str(record["upstream_addr"]).startswith(address + ",")
        for record in proxy.access_log_records()
        if record["uri"] == "/api/instance"
    )


def test_nginx_keeps_no_failure_memory_until_dns_drops_the_task(
    start_dns_proxy: DnsProxyStarter, tasks: Replicas, dns: FakeDns
) -> None:
    """Without an upstream block there is no max_fails/fail_timeout: every
    request whose rotated answer starts with the dead task tries it first
    again (and is retried on the next address). It stops once the task has
    left the DNS answer for `valid` seconds."""
    proxy = start_dns_proxy(ProxyKind.NGINX)
    dead = f"{HOSTS[1]}:{tasks.api[1].port}"
    tasks.api[1].send_signal(signal.SIGKILL)
    tasks.api[1].wait(10)
    seen, statuses = instances_seen(proxy, count=60)
    assert set(statuses) == {200} and seen == {"api-1", "api-3"}
    while_resolved = first_tries_on(proxy, dead)
    # A static upstream would have skipped it for fail_timeout after one failure.
    assert while_resolved > 5, while_resolved
    dns.records[TASKS] = [HOSTS[0], HOSTS[2]]
    time.sleep(VALID_SECONDS + 1)
    instances_seen(proxy, count=60)
    assert first_tries_on(proxy, dead) == while_resolved


def test_nginx_serves_stale_reads_while_every_task_is_gone(
    start_dns_proxy: DnsProxyStarter, tasks: Replicas, dns: FakeDns
) -> None:
    """Every task killed, first still in the answer, then gone from DNS (as
    once Swarm has removed them): cached reads are served stale both times.
    In nginx 1.22's code a failed resolution ends the request with 502
    without looking at the stale cache, but with
    `proxy_cache_background_update` an expired entry is answered at once and
    only the background update resolves (and fails)."""
    proxy = start_dns_proxy(ProxyKind.NGINX)
    item_id = create_item(proxy, login(proxy))
    with httpx.Client(base_url=base_url(proxy), timeout=10) as client:
        first = client.get(f"/api/items/{item_id}")
        assert "HIT" in [client.get(f"/api/items/{item_id}").headers["X-Cache-Status"] for _ in range(3)]
        for replica in tasks.api:
            replica.send_signal(signal.SIGKILL)
            replica.wait(10)
        time.sleep(proxy.model.cache.ttl_seconds + 1.2)
        refused = client.get(f"/api/items/{item_id}")
        del dns.records[TASKS]
        time.sleep(VALID_SECONDS + 1)
        unresolved = client.get(f"/api/items/{item_id}")
        time.sleep(0.5)
        uncached = client.get("/api/instance")
    for stale in (refused, unresolved):
        assert stale.status_code == 200
        assert stale.headers["X-Cache-Status"] == "STALE"
        assert stale.json() == first.json()
    assert f"{TASKS} could not be resolved" in Path(proxy.model.paths.error_log).read_text()
    assert uncached.status_code == 503
    assert uncached.json()["error"] == "service unavailable"


@pytest.mark.parametrize("kind", KINDS)
def test_a_name_without_tasks_gets_the_json_fallback(
    kind: ProxyKind, start_dns_proxy: DnsProxyStarter, dns: FakeDns
) -> None:
    del dns.records[TASKS]
    proxy = start_dns_proxy(kind)
    with httpx.Client(base_url=base_url(proxy), timeout=10) as client:
        answers = [client.get("/api/instance") for _ in range(3)]
        auth = client.get("/auth/verify")
        health = client.get(contract.HEALTH_PATH)
    for answer in answers:
        assert answer.status_code == 503
        assert answer.json()["error"] == "service unavailable"
        assert answer.headers["Retry-After"] == str(proxy.model.retry_after_seconds)
    assert auth.status_code == 401, "auth has static servers and is unaffected"
    assert health.status_code == 200
