"""Failover benchmark: our nginx config, our HAProxy config and the seed's nginx config.

Each proxy runs in front of the same three API replicas (real processes on
loopback, with PostgreSQL and Redis) and gets the same GET load while one
replica is killed (SIGKILL), while one is frozen (SIGSTOP), and while every
replica is restarted in turn (SIGTERM, graceful). For each run it prints the
failed requests, p50/p99 latency, requests per second and the seconds until
the faulty replica was out of rotation; then the proxies' overhead against
calling one replica directly.

"Out of rotation": for HAProxy, when its runtime API reports the server DOWN;
for nginx, which has no such API in open source, the start of the first
one-second stretch in which no request (first try or retry) went to the
replica, read from the access log's upstream addresses. A dash means it was
still being tried at the end of the run.

The stand-in scenarios run each proxy in front of three stand-in replicas
(`tests/integration/proxy/standin.py`: a few workers each, an accept queue
of 5, a fixed delay per request) instead of the real services:

- "overload": no fault, many times more concurrent clients than the
  replicas can serve. Every replica is healthy; none should be taken out.
- "sick replica": from 1.5 s on, one replica accepts connections and
  answers everything, its `/health` included, with 500.
- "fails everywhere": every replica answers 500 to the requested path; the
  proxy should try it at most twice.

Besides our two configs, they run nginx with its ejection on live traffic
switched off (`max_fails=0`), HAProxy with live connections observed
(`observe layer4 error-limit 3 on-error fastinter`; ours observes none) and
the seed's nginx config. For each run they print the answers clients got
(200, 500 and the proxy's own 502/503/504 fallback), the attempts the
replicas saw per request, and how often live traffic took a replica out:
HAProxy's `hanafail` (observe tripped) and `chkdown` (UP to DOWN) counters,
nginx's "upstream server temporarily disabled" warnings.

Run from the repository root: `venv/bin/python -m bench.bench_failover` (about five
minutes on two cores). Needs nginx, haproxy, PostgreSQL and Redis installed
(the stand-in scenarios alone, `--scenario overload` etc., need neither database).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import json
import shutil
import signal
import statistics
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path

from components.proxy.model import (
    Cache,
    HealthCheck,
    Listen,
    PassiveCheck,
    ProxyKind,
    ProxyModel,
    RateLimit,
    Server,
    UpstreamGroup,
)
from tests.integration.proxy.harness import (
    Call,
    Outcome,
    ProxyProcess,
    Replicas,
    StandIns,
    failures,
    private_dir,
    proxy_paths,
    run_load,
    worker_user,
)
from tests.integration.proxy.standin import BROKEN_PREFIX
from tests.support.servers import PostgresServer, RedisServer, SecretFiles, free_port

CONCURRENCY = 8
# Seconds of load per scenario: a rolling restart of three replicas (drain,
# exit, start, healthy) takes about three times as long as one fault.
SCENARIO_SECONDS = {"kill": 8.0, "freeze": 8.0, "rolling restart": 15.0}
FAULT_AT = 1.5
CLIENT_TIMEOUT = 10.0
# Name, proxy kind, and whether it runs the seed's config instead of ours.
PROXIES = (
    ("nginx (ours)", ProxyKind.NGINX, False),
    ("haproxy (ours)", ProxyKind.HAPROXY, False),
    ("nginx (seed)", ProxyKind.NGINX, True),
)
# The stand-in scenarios: clients, seconds, the path, and when the first
# replica turns sick (None: never). Three stand-ins of 4 workers at 0.1 s
# serve 12 requests at a time (120/s), with 3 x 6 more in their accept
# queues: 64 clients are about twice what fits.
STANDIN_SCENARIOS: dict[str, tuple[int, float, str, float | None]] = {
    "overload": (64, 10.0, "/api/instance", None),
    "sick replica": (8, 10.0, "/api/instance", FAULT_AT),
    "fails everywhere": (8, 5.0, BROKEN_PREFIX + "/item", None),
}
# The same proxies plus variants of ours: nginx with its ejection on live
# traffic switched off (max_fails=0), HAProxy with live connections observed
# (error-limit 3, on-error fastinter; ours observes none).
STANDIN_PROXIES = (
    ("nginx (ours)", ProxyKind.NGINX, False, None),
    ("nginx (ours, no ejection)", ProxyKind.NGINX, False, "no ejection"),
    ("haproxy (ours)", ProxyKind.HAPROXY, False, None),
    ("haproxy (ours, observe)", ProxyKind.HAPROXY, False, "observe"),
    ("nginx (seed)", ProxyKind.NGINX, True, None),
)
STANDIN_CLIENT_TIMEOUT = 30.0
PROXY_ERRORS = frozenset({502, 503, 504})
# The seed's compose file: nginx with these upstream and retry settings and
# nginx's default timeouts (60 s), nothing else of the circuit breaker.
SEED_NGINX = """\
worker_processes 2;
pid {root}/proxy.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    client_body_temp_path {root}/tmp/client_body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    log_format bench escape=json '{{"msec":$msec,"request_time":$request_time,'
        '"status":$status,"upstream_addr":"$upstream_addr"}}';
    access_log {root}/access.log bench;
    upstream api {{
        least_conn;
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location = /health {{ return 200 'ok'; }}
        location /api/ {{
            proxy_pass http://api;
            proxy_next_upstream error timeout invalid_header http_500 http_502 http_503;
        }}
    }}
}}
"""


@dataclass
class Proxy:
    """One proxy under test: its process and how to tell which replica it still uses."""

    name: str
    process: ProxyProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.process.http_port}"


@dataclass(frozen=True)
class Row:
    proxy: str
    scenario: str
    outcomes: list[Outcome]
    duration: float
    out_of_rotation: float | None

    def cells(self) -> list[str]:
        latencies = sorted(o.latency for o in self.outcomes if o.status)
        p50 = statistics.median(latencies) * 1000 if latencies else float("nan")
        p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else float("nan")
        out = "-" if self.out_of_rotation is None else f"{self.out_of_rotation:.2f}"
        return [
            self.proxy,
            self.scenario,
            str(len(self.outcomes)),
            str(len(failures(self.outcomes))),
            f"{p50:.1f}",
            f"{p99:.1f}",
            f"{len(self.outcomes) / self.duration:.0f}",
            out,
        ]


def our_model(root: Path, api_ports: list[int], auth_port: int, port: int) -> ProxyModel:
    """Our config as a stack would deploy it, on loopback, without the rate limit in the way."""
    return ProxyModel(
        upstreams=(
            UpstreamGroup("api", tuple(Server("127.0.0.1", p) for p in api_ports)),
            UpstreamGroup("auth", (Server("127.0.0.1", auth_port),)),
        ),
        listen=Listen("127.0.0.1", port, free_port()),
        rate_limit=RateLimit(requests_per_second=100_000, burst=100_000),
        cache=Cache(directory=str(root / "cache")),
        health_check=HealthCheck(interval_seconds=1.0, fall=3, rise=2),
        slow_start_seconds=5.0,
        paths=proxy_paths(root),
        user=worker_user(),
    )


class SeedNginx(ProxyProcess):
    """nginx with the seed's config text instead of a rendered one."""

    def __post_init__(self) -> None:
        servers = "\n".join(
            f"        server {s.address} max_fails=3 fail_timeout=30s;" for s in self.model.upstream("api").servers
        )
        self.config = self.root / "nginx.conf"
        self.config.write_text(SEED_NGINX.format(root=self.root, servers=servers, port=self.model.listen.http_port))


def nginx_attempt_times(proxy: ProxyProcess, address: str) -> list[float]:
    """Epoch times at which requests that nginx sent to `address` (first try or retry) arrived."""
    times = []
    for line in proxy.log_path.read_text().splitlines():
        record = json.loads(line)
        if address in str(record.get("upstream_addr", "")).replace(" ", "").split(","):
            times.append(float(record["msec"]) - float(record["request_time"]))
    return times


def first_quiet_start(times: list[float], fault: float, end: float) -> float | None:
    """Seconds after `fault` from which no attempt followed for one second."""
    after = sorted(t for t in times if t >= fault)
    points = [fault, *after]
    for current, following in zip(points, [*points[1:], end], strict=True):
        if following - current >= 1.0:
            return current - fault
    return None


async def scenario(
    proxy: Proxy, name: str, fault: Callable[[], Coroutine[None, None, None]]
) -> tuple[list[Outcome], float, float]:
    """Run the GET load, trigger `fault` at FAULT_AT; return outcomes, fault and end epoch times."""
    fault_epoch = 0.0
    started = False

    async def tick(elapsed: float) -> None:
        nonlocal fault_epoch, started
        if elapsed >= FAULT_AT and not started:
            started = True
            fault_epoch = time.time()
            asyncio.get_running_loop().create_task(fault())

    outcomes = await run_load(
        proxy.url,
        lambda n: Call("GET", "/api/instance"),
        duration=SCENARIO_SECONDS[name],
        concurrency=CONCURRENCY,
        timeout=CLIENT_TIMEOUT,
        on_tick=tick,
    )
    return outcomes, fault_epoch, time.time()


async def haproxy_down_after(proxy: ProxyProcess, server: str, since: float, limit: float) -> float | None:
    while time.time() - since < limit:
        state = await asyncio.to_thread(proxy.servers_state, "api")
        if state[server]["srv_op_state"] == "0":
            return time.time() - since
        await asyncio.sleep(0.05)
    return None


async def inject(name: str, proxy: Proxy, replicas: Replicas, result: dict[str, float | None]) -> None:
    """Cause the fault `name`; for HAProxy, record when the victim went DOWN."""
    since = time.time()
    if name == "kill":
        replicas.api[0].send_signal(signal.SIGKILL)
    elif name == "freeze":
        replicas.freeze(0)
    else:
        for replica in replicas.api:
            replica.send_signal(signal.SIGTERM)
            await asyncio.to_thread(replica.wait, 30)
            await asyncio.to_thread(replica.start)
            await asyncio.to_thread(replica.wait_healthy, 30)
        return
    if proxy.process.kind is ProxyKind.HAPROXY:
        limit = SCENARIO_SECONDS[name] - FAULT_AT
        result["down"] = await haproxy_down_after(proxy.process, "api-1", since, limit)


def run_scenarios(
    name: str, scenarios: list[str], start_proxy: Callable[[], ProxyProcess], replicas: Replicas
) -> list[Row]:
    """Each fault against a freshly started proxy, so no run inherits another's failure state."""
    rows = []
    address = f"127.0.0.1:{replicas.api[0].port}"
    for scenario_name in scenarios:
        replicas.ensure_running()
        with start_proxy() as process:
            proxy = Proxy(name, process)
            result: dict[str, float | None] = {"down": None}
            started = time.monotonic()
            outcomes, fault_epoch, end_epoch = asyncio.run(
                scenario(proxy, scenario_name, functools.partial(inject, scenario_name, proxy, replicas, result))
            )
            duration = time.monotonic() - started
            out: float | None = None
            if scenario_name != "rolling restart":
                if process.kind is ProxyKind.HAPROXY:
                    out = result["down"]
                else:
                    out = first_quiet_start(nginx_attempt_times(process, address), fault_epoch, end_epoch)
            rows.append(Row(name, scenario_name, outcomes, duration, out))
    replicas.ensure_running()
    return rows


@dataclass(frozen=True)
class StandInRow:
    """One stand-in scenario against one proxy config."""

    proxy: str
    scenario: str
    outcomes: list[Outcome]
    attempts: int
    observe_trips: int | None
    taken_out: int

    def cells(self) -> list[str]:
        statuses = [o.status for o in self.outcomes]
        latencies = sorted(o.latency for o in self.outcomes if o.status)
        p50 = statistics.median(latencies) * 1000 if latencies else float("nan")
        p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000 if latencies else float("nan")
        return [
            self.proxy,
            self.scenario,
            str(len(statuses)),
            str(statuses.count(200)),
            str(statuses.count(500)),
            str(sum(1 for status in statuses if status in PROXY_ERRORS)),
            str(statuses.count(0)),
            f"{self.attempts / max(1, len(statuses)):.2f}",
            f"{p50:.0f}",
            f"{p99:.0f}",
            "-" if self.observe_trips is None else str(self.observe_trips),
            str(self.taken_out),
        ]


def standin_model(root: Path, ports: list[int], port: int, variant: str | None) -> ProxyModel:
    """`our_model` in front of stand-ins, or one of the variants in STANDIN_PROXIES.

    With the default health check (2 s interval): a check then connects
    within min(interval, connect) = 2 s and survives one SYN retransmission
    of a full accept queue; with a 1 s interval it fails on every dropped SYN.
    """
    model = dataclasses.replace(our_model(root, ports, free_port(), port), health_check=HealthCheck())
    if variant == "no ejection":
        return dataclasses.replace(model, passive_check=PassiveCheck(max_fails=0))
    if variant == "observe":
        return dataclasses.replace(model, health_check=dataclasses.replace(model.health_check, error_limit=3))
    return model


def taken_out_by_traffic(process: ProxyProcess) -> tuple[int | None, int]:
    """HAProxy: (observe trips, UP-to-DOWN transitions); nginx: (None, servers disabled)."""
    if process.kind is ProxyKind.HAPROXY:
        stats = process.server_stats("api").values()
        return sum(int(row["hanafail"] or 0) for row in stats), sum(int(row["chkdown"] or 0) for row in stats)
    log = Path(process.model.paths.error_log)
    text = log.read_text(errors="replace") if log.exists() else ""
    return None, text.count("upstream server temporarily disabled")


def run_standin_scenario(name: str, scenario_name: str, kind: ProxyKind, seed: bool, variant: str | None) -> StandInRow:
    clients, seconds, path, sick_at = STANDIN_SCENARIOS[scenario_name]
    root = private_dir("microstack-bench-")
    try:
        with StandIns(count=3) as standins:

            async def tick(elapsed: float) -> None:
                if sick_at is not None and elapsed >= sick_at and not sick:
                    sick.append(0)
                    standins.make_sick(0)

            sick: list[int] = []
            model = standin_model(root, standins.ports, free_port(), variant)
            with (SeedNginx if seed else ProxyProcess)(kind, model, root) as process:
                outcomes = asyncio.run(
                    run_load(
                        f"http://127.0.0.1:{process.http_port}",
                        lambda n: Call("GET", path),
                        duration=seconds,
                        concurrency=clients,
                        timeout=STANDIN_CLIENT_TIMEOUT,
                        on_tick=tick,
                    )
                )
                trips, taken_out = taken_out_by_traffic(process)
            attempts = sum(standins.stats(index)["api"] for index in range(standins.count))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return StandInRow(name, scenario_name, outcomes, attempts, trips, taken_out)


def print_standin_table(rows: list[StandInRow]) -> None:
    header = [
        "proxy",
        "scenario",
        "requests",
        "200",
        "500",
        "fallback",
        "no answer",
        "attempts/req",
        "p50 ms",
        "p99 ms",
        "observe trips",
        "taken out",
    ]
    table = [header, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    print(
        "\nStand-in replicas: 3 x 4 workers, accept queue 5, 0.1 s per request; "
        + "; ".join(f"{name}: {c} clients for {s:.0f} s" for name, (c, s, _, _) in STANDIN_SCENARIOS.items())
        + f"; the sick replica turns sick at {FAULT_AT} s"
    )
    for index, line in enumerate(table):
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))


def overhead(url: str, label: str) -> Row:
    outcomes = asyncio.run(run_load(url, lambda n: Call("GET", "/api/instance"), duration=3.0, concurrency=CONCURRENCY))
    return Row(label, "no fault", outcomes, 3.0, None)


def print_table(title: str, rows: list[Row]) -> None:
    header = ["proxy", "scenario", "requests", "failed", "p50 ms", "p99 ms", "req/s", "out of rotation s"]
    table = [header, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    print(f"\n{title}")
    for index, line in enumerate(table):
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--proxy", action="append", choices=[name for name, _, _, _ in STANDIN_PROXIES], help="repeatable"
    )
    parser.add_argument(
        "--scenario", action="append", choices=[*SCENARIO_SECONDS, *STANDIN_SCENARIOS], help="repeatable"
    )
    args = parser.parse_args()
    standin_rows = [
        run_standin_scenario(name, scenario_name, kind, seed, variant)
        for scenario_name in STANDIN_SCENARIOS
        if args.scenario is None or scenario_name in args.scenario
        for name, kind, seed, variant in STANDIN_PROXIES
        if args.proxy is None or name in args.proxy
    ]
    if standin_rows:
        print_standin_table(standin_rows)
    proxies = [p for p in PROXIES if args.proxy is None or p[0] in args.proxy]
    scenarios = [name for name in SCENARIO_SECONDS if args.scenario is None or name in args.scenario]
    if not scenarios or not proxies:
        return
    with PostgresServer() as postgres, RedisServer() as redis:
        secrets = SecretFiles.create()
        replicas = Replicas(postgres, redis, secrets, api_count=3).start()
        roots: list[Path] = []
        try:
            failover_rows: list[Row] = []
            overhead_rows = [overhead(replicas.api[1].base_url, "direct to one replica")]
            for name, kind, seed in proxies:

                def start_proxy(kind: ProxyKind = kind, seed: bool = seed) -> ProxyProcess:
                    root = private_dir("microstack-bench-")
                    roots.append(root)
                    model = our_model(root, replicas.api_ports, replicas.auth.port, free_port())
                    return (SeedNginx if seed else ProxyProcess)(kind, model, root)

                with start_proxy() as process:
                    overhead_rows.append(overhead(f"http://127.0.0.1:{process.http_port}", name))
                failover_rows += run_scenarios(name, scenarios, start_proxy, replicas)
            print_table(
                f"Failover: GET /api/instance, {CONCURRENCY} concurrent clients, 3 API replicas, "
                f"fault at {FAULT_AT} s, runs of {SCENARIO_SECONDS['kill']:.0f} s "
                f"({SCENARIO_SECONDS['rolling restart']:.0f} s for the restart), client timeout {CLIENT_TIMEOUT:.0f} s",
                failover_rows,
            )
            print_table("Overhead: the same GET load for 3 s without faults", overhead_rows)
        finally:
            replicas.stop()
            for root in roots:
                shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
