"""What the circuit breaker counts as a replica's failure, for each proxy kind.

The real proxy binary in front of stand-in replicas (`standin.py`) with a
fixed capacity and an accept queue of 5: an overload with no fault takes no
replica out (HAProxy) and the fallback answers nothing, a replica answering
500 to everything costs clients at most a handful of requests, and a 500
that every replica gives is tried twice, not once per replica. Attempts are counted by the stand-ins themselves.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from components.proxy.model import HealthCheck, ProxyKind, RateLimit
from tests.integration.proxy.conftest import ModelFactory
from tests.integration.proxy.harness import Call, ProxyProcess, StandIns, run_load
from tests.integration.proxy.standin import BROKEN_PREFIX

pytestmark = pytest.mark.slow

KINDS = list(ProxyKind)
PROXY_ERRORS = frozenset({502, 503, 504})
# Three stand-ins of 4 workers at 0.1 s serve 12 requests at a time; 64
# clients keep every accept queue full, so SYNs are dropped and retried.
OVERLOAD_CLIENTS = 64
# The most requests a replica turning sick may cost clients.
SICK_BUDGET = 5


def start(
    kind: ProxyKind, make_model: ModelFactory, root: Path, standins: StandIns, check_interval: float = 2.0
) -> ProxyProcess:
    """The proxy with the default breaker and timeouts, no rate limit in the way.

    At the default 2 s interval a check connects within min(interval,
    connect) = 2 s and survives a SYN dropped by a full accept queue.
    """
    model = make_model(
        api_ports=standins.ports,
        health_check=HealthCheck(interval_seconds=check_interval),
        slow_start_seconds=0,
        rate_limit=RateLimit(requests_per_second=100_000, burst=100_000),
    )
    return ProxyProcess(kind, model, root).start()


def taken_out(proxy: ProxyProcess) -> int:
    """How often a replica was taken out: HAProxy's UP-to-DOWN transitions, nginx's warnings."""
    if proxy.kind is ProxyKind.HAPROXY:
        return sum(int(row["chkdown"] or 0) for row in proxy.server_stats("api").values())
    return Path(proxy.model.paths.error_log).read_text().count("upstream server temporarily disabled")


@pytest.mark.parametrize("kind", KINDS)
def test_overload_without_fault_takes_no_replica_out(
    kind: ProxyKind, make_model: ModelFactory, proxy_root: Path
) -> None:
    with StandIns(count=3) as standins:
        proxy = start(kind, make_model, proxy_root, standins)
        try:
            outcomes = asyncio.run(
                run_load(
                    f"http://127.0.0.1:{proxy.port}",
                    lambda n: Call("GET", "/api/instance"),
                    duration=6.0,
                    concurrency=OVERLOAD_CLIENTS,
                    timeout=30.0,
                )
            )
            statuses = [outcome.status for outcome in outcomes]
            assert len(statuses) > 100
            if kind is ProxyKind.HAPROXY:
                # Live traffic takes nothing out (no health-analyze failure).
                # On a loaded machine a check can meet the same full accept
                # queue as the clients; a replica that does not answer its
                # own checks is rightly out, and the others serve.
                stats = proxy.server_stats("api")
                assert sum(int(row["hanafail"] or 0) for row in stats.values()) == 0
            # nginx cannot tell a connect that outlasts its timeout from a dead
            # replica and may disable one, but its backup entries keep serving:
            # as with the ejection switched off, the fallback answers nothing.
            assert [s for s in statuses if s in PROXY_ERRORS or s == 0] == []
            assert set(statuses) == {200}
        finally:
            proxy.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_replica_turning_sick_costs_at_most_a_handful_of_requests(
    kind: ProxyKind, make_model: ModelFactory, proxy_root: Path
) -> None:
    with StandIns(count=3) as standins:
        # A 1 s interval: HAProxy's checks take the sick replica out within 3 s.
        proxy = start(kind, make_model, proxy_root, standins, check_interval=1.0)

        async def tick(elapsed: float) -> None:
            if elapsed >= 1.0 and not sick:
                sick.append(0)
                standins.make_sick(0)

        sick: list[int] = []
        try:
            outcomes = asyncio.run(
                run_load(
                    f"http://127.0.0.1:{proxy.port}",
                    lambda n: Call("GET", "/api/instance"),
                    duration=5.0,
                    concurrency=8,
                    on_tick=tick,
                )
            )
            assert sick
            failed = [outcome for outcome in outcomes if outcome.status != 200]
            assert len(failed) <= SICK_BUDGET, failed
            # The sick replica is out of rotation, not merely stepped around.
            assert taken_out(proxy) >= 1
        finally:
            proxy.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_a_500_every_replica_gives_is_tried_retries_plus_one_times_not_once_per_replica(
    kind: ProxyKind, make_model: ModelFactory, proxy_root: Path
) -> None:
    requests = 20
    # More replicas than attempts: the bound is `retries`, not the pool.
    with StandIns(count=4) as standins:
        proxy = start(kind, make_model, proxy_root, standins)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{proxy.port}", timeout=10) as client:
                statuses = [client.get(f"{BROKEN_PREFIX}/{n}").status_code for n in range(requests)]
            # The client gets the replicas' own 500, not the fallback.
            assert statuses == [500] * requests
            attempts = sum(standins.stats(index)["api"] for index in range(standins.count))
            assert attempts == (proxy.model.timeouts.retries + 1) * requests < standins.count * requests
            if kind is ProxyKind.HAPROXY:
                # A 500 is the request's failure, not the replica's: none is taken out.
                assert taken_out(proxy) == 0
        finally:
            proxy.stop()
