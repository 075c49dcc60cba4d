"""nginx end to end: what only the passive circuit breaker does.

nginx open source never probes a replica; it learns from failed requests.
So the two behaviours to prove are the stale cache that keeps reads alive
while every replica is down, and a replica coming back into rotation on its
own once `fail_timeout` has passed.
"""

from __future__ import annotations

import signal
import time

import httpx
import pytest

from components.proxy.model import ProxyKind
from microstack_common import contract
from tests.integration.proxy.conftest import ProxyStarter
from tests.integration.proxy.harness import Replicas
from tests.integration.proxy.test_e2e_common import base_url, create_item, login

pytestmark = pytest.mark.slow


def test_cached_items_are_served_while_every_replica_is_down(start_proxy: ProxyStarter, pool: Replicas) -> None:
    proxy = start_proxy(ProxyKind.NGINX)
    item_id = create_item(proxy, login(proxy))
    with httpx.Client(base_url=base_url(proxy), timeout=10) as client:
        first = client.get(f"/api/items/{item_id}")
        assert first.headers["X-Cache-Status"] == "MISS"
        # nginx stores the entry as the answer completes; the next read hits it.
        later = [client.get(f"/api/items/{item_id}").headers["X-Cache-Status"] for _ in range(3)]
        assert "HIT" in later, later
        for replica in pool.api:
            replica.send_signal(signal.SIGKILL)
            replica.wait(10)
        # nginx keeps expiry times in whole seconds: wait past the next one.
        time.sleep(proxy.model.cache.ttl_seconds + 1.2)
        stale = client.get(f"/api/items/{item_id}")
        uncached = client.get("/api/instance")
    assert stale.status_code == 200
    assert stale.headers["X-Cache-Status"] == "STALE"
    assert stale.json() == first.json()
    assert stale.headers[contract.REQUEST_ID_HEADER] != first.headers[contract.REQUEST_ID_HEADER]
    assert uncached.status_code == 503
    assert uncached.json()["error"] == "service unavailable"


def test_credentialed_reads_are_never_cached(start_proxy: ProxyStarter) -> None:
    proxy = start_proxy(ProxyKind.NGINX)
    token = login(proxy)
    item_id = create_item(proxy, token)
    with httpx.Client(base_url=base_url(proxy), timeout=10) as client:
        statuses = [
            client.get(f"/api/items/{item_id}", headers={"Authorization": f"Bearer {token}"}).headers["X-Cache-Status"]
            for _ in range(2)
        ]
        anonymous = client.get(f"/api/items/{item_id}").headers["X-Cache-Status"]
    assert statuses == ["BYPASS", "BYPASS"]
    assert anonymous == "MISS"


def test_restarted_replica_rejoins_after_fail_timeout(start_proxy: ProxyStarter, pool: Replicas) -> None:
    proxy = start_proxy(ProxyKind.NGINX)
    pool.api[0].send_signal(signal.SIGKILL)
    pool.api[0].wait(10)
    with httpx.Client(base_url=base_url(proxy), timeout=10) as client:
        while_down = {client.get("/api/instance").headers[contract.INSTANCE_HEADER] for _ in range(20)}
        pool.ensure_running()
        deadline = time.monotonic() + proxy.model.passive_check.fail_timeout_seconds + 5
        seen: set[str] = set()
        while "api-1" not in seen and time.monotonic() < deadline:
            answer = client.get("/api/instance")
            assert answer.status_code == 200
            seen.add(answer.headers[contract.INSTANCE_HEADER])
            time.sleep(0.02)
    assert while_down == {"api-2", "api-3"}
    assert "api-1" in seen
