"""End to end on loopback, for each proxy kind: the real proxy binary with the
rendered config in front of real API and auth processes, PostgreSQL and Redis.

Load comes from an async client for a few seconds at a time; a replica is
stopped, killed or frozen in the middle and no client request may fail.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import socket
import ssl
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from components.proxy.model import PassiveCheck, ProxyKind, RateLimit
from microstack_common import contract
from tests.integration.proxy.conftest import E2E_HEALTH, ProxyStarter
from tests.integration.proxy.harness import (
    PACE_SECONDS,
    Call,
    Outcome,
    ProxyProcess,
    Replicas,
    failures,
    paced_gets,
    run_load,
    self_signed_tls,
)

pytestmark = pytest.mark.slow

KINDS = list(ProxyKind)


def base_url(proxy: ProxyProcess) -> str:
    return f"http://127.0.0.1:{proxy.port}"


def login(proxy: ProxyProcess) -> str:
    """Register a fresh user through the proxy and return a bearer token."""
    username = f"user-{uuid.uuid4().hex[:10]}"
    password = "correct horse battery staple"
    with httpx.Client(base_url=base_url(proxy), timeout=10) as client:
        registered = client.post("/auth/register", json={"username": username, "password": password})
        assert registered.status_code == 201, registered.text
        logged_in = client.post("/auth/login", json={"username": username, "password": password})
        assert logged_in.status_code == 200, logged_in.text
        return str(logged_in.json()["access_token"])


def create_item(proxy: ProxyProcess, token: str) -> int:
    with httpx.Client(base_url=base_url(proxy), timeout=10) as client:
        created = client.post(
            "/api/items",
            json={"name": "widget", "description": "made in a proxy test"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert created.status_code == 201, created.text
        return int(created.json()["id"])


@pytest.mark.parametrize("kind", KINDS)
def test_requests_spread_over_every_replica(kind: ProxyKind, start_proxy: ProxyStarter, pool: Replicas) -> None:
    proxy = start_proxy(kind)
    outcomes = asyncio.run(paced_gets(base_url(proxy), duration=1.5, max_requests=300))
    assert not failures(outcomes)
    seen = {outcome.instance for outcome in outcomes}
    assert seen == {f"api-{index}" for index in range(1, pool.api_count + 1)}


def mixed_calls(token: str, item_id: int) -> Callable[[int], Call]:
    """GETs of the instance and an item, and authenticated POSTs, in turn."""
    auth = {"Authorization": f"Bearer {token}"}
    kinds = itertools.cycle(["instance", "item", "create"])

    def next_call(n: int) -> Call:
        match next(kinds):
            case "instance":
                return Call("GET", "/api/instance")
            case "item":
                return Call("GET", f"/api/items/{item_id}")
            case _:
                return Call("POST", "/api/items", {"name": f"load-{n}", "description": "x"}, auth)

    return next_call


@pytest.mark.parametrize("kind", KINDS)
def test_replica_stopped_with_sigterm_under_mixed_load_fails_no_request(
    kind: ProxyKind, start_proxy: ProxyStarter, pool: Replicas
) -> None:
    proxy = start_proxy(kind)
    token = login(proxy)
    item_id = create_item(proxy, token)
    stopped_at: float | None = None
    exited_at: float | None = None

    async def stop_one(elapsed: float) -> None:
        nonlocal stopped_at, exited_at
        if elapsed > 1.0 and stopped_at is None:
            stopped_at = elapsed
            pool.api[0].send_signal(signal.SIGTERM)
        process = pool.api[0].process
        if exited_at is None and process is not None and process.poll() is not None:
            exited_at = elapsed

    outcomes = asyncio.run(
        run_load(
            base_url(proxy),
            mixed_calls(token, item_id),
            duration=pool.drain_seconds + 3.0,
            concurrency=6,
            pause_seconds=PACE_SECONDS,
            on_tick=stop_one,
        )
    )
    assert pool.api[0].wait(10) == 0
    assert stopped_at is not None and exited_at is not None
    # The draining replica refuses reads with 503, which both proxies retry
    # elsewhere and take as a failure of that replica: it is out of rotation
    # before its listener closes, so no POST is caught by the close.
    failed = failures(outcomes)
    assert not failed, failed[:5]
    assert {o.method for o in outcomes} == {"GET", "POST"}
    # Item reads may come from nginx's cache, stamped by whoever filled it.
    after_exit = [o.instance for o in outcomes if o.started > exited_at and "/items/" not in o.path]
    assert after_exit and "api-1" not in after_exit


def truncated_in_flight(outcome: Outcome, fault_at: float) -> bool:
    """An answer already under way from the replica when it was killed or frozen.

    Its headers had reached the client through the proxy, so no proxy can
    retry it elsewhere: it ends truncated. Only requests started before the
    fault can end that way.
    """
    return (
        outcome.started <= fault_at
        and outcome.error is not None
        and "without sending complete message body" in outcome.error
    )


@pytest.mark.parametrize("kind", KINDS)
def test_replica_killed_under_get_load_fails_no_request(
    kind: ProxyKind, start_proxy: ProxyStarter, pool: Replicas
) -> None:
    proxy = start_proxy(kind)
    killed_at: float | None = None

    async def kill_one(elapsed: float) -> None:
        nonlocal killed_at
        if elapsed > 1.0 and killed_at is None:
            killed_at = elapsed
            pool.api[0].send_signal(signal.SIGKILL)

    outcomes = asyncio.run(paced_gets(base_url(proxy), duration=3.0, on_tick=kill_one))
    assert killed_at is not None
    failed = [o for o in failures(outcomes) if not truncated_in_flight(o, killed_at)]
    assert not failed, failed[:5]
    assert {o.instance for o in outcomes if o.started > 2.0} == {"api-2", "api-3"}


@pytest.mark.parametrize("kind", KINDS)
def test_replica_frozen_under_get_load_fails_no_request(
    kind: ProxyKind, start_proxy: ProxyStarter, pool: Replicas
) -> None:
    """SIGSTOP leaves the socket open: connections succeed and never get an answer.

    Both proxies time out the read and retry the GET elsewhere; HAProxy's
    health checks also take the replica out within interval × fall. One case
    no proxy can save: a response whose headers the replica had already sent
    when it froze has been forwarded to the client, so it ends truncated.
    Only requests in flight at the instant of the freeze can end that way.
    """
    proxy = start_proxy(kind)
    frozen_at: float | None = None
    down_after: float | None = None

    async def freeze_one(elapsed: float) -> None:
        nonlocal frozen_at, down_after
        if elapsed > 1.0 and frozen_at is None:
            frozen_at = elapsed
            pool.freeze(0)
        if kind is ProxyKind.HAPROXY and frozen_at is not None and down_after is None:
            state = await asyncio.to_thread(proxy.servers_state, "api")
            if state["api-1"]["srv_op_state"] == "0":
                down_after = elapsed - frozen_at

    outcomes = asyncio.run(paced_gets(base_url(proxy), duration=5.0, on_tick=freeze_one))
    assert frozen_at is not None
    failed = [o for o in failures(outcomes) if not truncated_in_flight(o, frozen_at)]
    assert not failed, failed[:5]
    assert len(failures(outcomes)) <= 6, "more truncated answers than requests could be in flight"
    if kind is ProxyKind.HAPROXY:
        assert down_after is not None, "the frozen replica was never marked down"
        assert down_after <= E2E_HEALTH.interval_seconds * E2E_HEALTH.fall


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("kind", KINDS)
def test_rate_limit_admits_rate_plus_burst_and_answers_the_configured_status(
    kind: ProxyKind, status: int, start_proxy: ProxyStarter
) -> None:
    limit = RateLimit(requests_per_second=10, burst=20, status=status)
    proxy = start_proxy(kind, rate_limit=limit)
    outcomes = asyncio.run(paced_gets(base_url(proxy), duration=1.0, max_requests=400))
    admitted = [o for o in outcomes if o.status == 200]
    limited = [o for o in outcomes if o.status == limit.status]
    assert len(admitted) + len(limited) == len(outcomes), {o.status for o in outcomes}
    expected = limit.requests_per_second + limit.burst
    assert abs(len(admitted) - expected) <= 0.2 * expected, (len(admitted), len(outcomes))
    with httpx.Client(base_url=base_url(proxy)) as client:
        answer = next((a for a in (client.get("/api/instance") for _ in range(100)) if a.status_code != 200), None)
        health = client.get(contract.HEALTH_PATH)
    assert answer is not None and answer.status_code == limit.status
    assert answer.json()["error"] == "rate limit exceeded"
    assert answer.headers["Retry-After"] == "1"
    assert health.status_code == 200, "the proxy's own /health is not rate limited"


@pytest.mark.parametrize("kind", KINDS)
def test_auth_flow_through_the_proxy(kind: ProxyKind, start_proxy: ProxyStarter) -> None:
    proxy = start_proxy(kind)
    token = login(proxy)
    with httpx.Client(base_url=base_url(proxy), timeout=10) as client:
        verified = client.get("/auth/verify", headers={"Authorization": f"Bearer {token}"})
        assert verified.status_code == 200
        assert verified.headers[contract.INSTANCE_HEADER] == "auth-1"
        anonymous = client.post("/api/items", json={"name": "nope"})
        assert anonymous.status_code == 401
        created = client.post("/api/items", json={"name": "mine"}, headers={"Authorization": f"Bearer {token}"})
        assert created.status_code == 201
        fetched = client.get(f"/api/items/{created.json()['id']}")
        assert fetched.status_code == 200
        assert fetched.json()["owner"] == verified.json()["sub"]


@pytest.mark.parametrize("kind", KINDS)
def test_request_id_reaches_the_service_and_both_logs(
    kind: ProxyKind, start_proxy: ProxyStarter, pool: Replicas
) -> None:
    proxy = start_proxy(kind)
    chosen = f"test-{uuid.uuid4().hex}"
    forged = 'evil","status":200,"x":"'
    with httpx.Client(base_url=base_url(proxy), timeout=10) as client:
        kept = client.get("/api/instance", headers={contract.REQUEST_ID_HEADER: chosen})
        replaced = client.get("/api/instance", headers={contract.REQUEST_ID_HEADER: forged})
        generated = client.get("/api/instance")
    assert kept.headers[contract.REQUEST_ID_HEADER] == chosen
    fresh = replaced.headers[contract.REQUEST_ID_HEADER]
    assert fresh != forged and "evil" not in fresh
    assert generated.headers[contract.REQUEST_ID_HEADER]
    served_by = next(r for r in pool.api if r.env[contract.Env.INSTANCE_NAME] == kept.headers[contract.INSTANCE_HEADER])
    records = proxy.access_log_records()  # every line parses as JSON, the forged one too
    assert any(record["request_id"] == chosen for record in records)
    assert any(record["request_id"] == fresh for record in records)
    assert any(chosen in json.dumps(record) for record in served_by.log_records())


@pytest.mark.parametrize("kind", KINDS)
def test_body_over_the_limit_is_refused_by_the_proxy(kind: ProxyKind, start_proxy: ProxyStarter) -> None:
    proxy = start_proxy(kind)
    with httpx.Client(base_url=base_url(proxy), timeout=10) as client:
        answer = client.post("/api/items", content=b"x" * (contract.MAX_BODY_BYTES + 1))
    assert answer.status_code == 413
    assert contract.INSTANCE_HEADER not in answer.headers


def handshake(port: int, cafile: str, version: ssl.TLSVersion) -> str:
    """Complete a TLS handshake offering only `version`; return what was negotiated."""
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = version
    context.maximum_version = version
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return str(tls.version())


@pytest.mark.parametrize("kind", KINDS)
def test_tls_serves_https_with_modern_protocols_and_redirects_http(
    kind: ProxyKind, start_proxy: ProxyStarter, proxy_root: Path
) -> None:
    tls = self_signed_tls(proxy_root)
    proxy = start_proxy(kind, tls=tls)
    https = f"https://localhost:{proxy.model.listen.https_port}"
    with httpx.Client(verify=ssl.create_default_context(cafile=tls.certificate_path), timeout=10) as client:
        answer = client.get(f"{https}/api/instance")
        redirect = client.get(f"http://localhost:{proxy.http_port}/api/instance?x=1")
    assert answer.status_code == 200
    assert redirect.status_code == 301
    assert redirect.headers["Location"] == f"{https}/api/instance?x=1"
    assert handshake(proxy.port, tls.certificate_path, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    assert handshake(proxy.port, tls.certificate_path, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"


@pytest.mark.parametrize("kind", KINDS)
def test_every_replica_down_gives_the_json_fallback(kind: ProxyKind, start_proxy: ProxyStarter, pool: Replicas) -> None:
    proxy = start_proxy(kind)
    for replica in pool.api:
        replica.send_signal(signal.SIGKILL)
        replica.wait(10)
    with httpx.Client(base_url=base_url(proxy), timeout=10) as client:
        answers = [client.get("/api/instance") for _ in range(5)]
        health = client.get(contract.HEALTH_PATH)
    for answer in answers:
        assert answer.status_code == 503
        assert answer.headers["content-type"].startswith("application/json")
        assert answer.json()["error"] == "service unavailable"
        assert answer.headers["Retry-After"] == str(proxy.model.retry_after_seconds)
        assert answer.headers[contract.REQUEST_ID_HEADER]
    assert health.status_code == 200
    assert health.json()["status"] == "ok"


@pytest.mark.parametrize("kind", KINDS)
def test_rolling_restart_of_every_replica_fails_no_request(
    kind: ProxyKind, start_proxy: ProxyStarter, pool: Replicas
) -> None:
    """Each replica in turn: SIGTERM (drain, exit 0), start again, healthy, next.

    For nginx this is the hard case: with a fail_timeout longer than the
    whole restart, every replica is still marked failed when the last one
    goes down, though the others are long back.
    """
    proxy = start_proxy(kind, passive_check=PassiveCheck(max_fails=1, fail_timeout_seconds=30))
    restarted = asyncio.Event()

    async def restart_all() -> None:
        for replica in pool.api:
            replica.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(replica.wait, 30) == 0
            await asyncio.to_thread(replica.start)
            await asyncio.to_thread(replica.wait_healthy, 30)
        restarted.set()

    async def load_while_restarting() -> list[Outcome]:
        task = asyncio.create_task(restart_all())
        outcomes: list[Outcome] = []
        while not restarted.is_set() and len(outcomes) < 50_000:
            outcomes += await paced_gets(base_url(proxy), duration=1.0)
        await task
        return outcomes

    outcomes = asyncio.run(asyncio.wait_for(load_while_restarting(), timeout=60))
    assert not failures(outcomes), failures(outcomes)[:5]
    assert {o.instance for o in outcomes} == {"api-1", "api-2", "api-3"}
