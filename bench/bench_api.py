"""Throughput and latency of ONE API instance against real PostgreSQL and Redis.

Starts PostgreSQL (durable: fsync and synchronous commit on, as in
production), Redis and one `python -m microstack_api` on loopback, then runs
three scenarios for a fixed time each with a pool of keep-alive connections:

- cached read:   GET /api/items/{id} over a small set of ids already in Redis
- uncached read: GET /api/items/{id} for ids read once each after a Redis flush
                 (PostgreSQL read + cache fill)
- write:         POST /api/items with a bearer token (INSERT + commit)

The load generator is a minimal asyncio HTTP/1.1 client in this process, so
on a small machine it shares the CPU with the service: read the figures as a
lower bound for the service and compare runs on the same machine.

    python bench/bench_api.py [seconds-per-scenario] [connections]
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "services/common")]

import redis  # noqa: E402

from microstack_common.tokens import issue_token  # noqa: E402
from tests.support.servers import (  # noqa: E402
    PostgresServer,
    RedisServer,
    SecretFiles,
    ServiceProcess,
    service_env,
)

RequestFactory = Callable[[int], bytes]


class Connection:
    """One keep-alive HTTP/1.1 connection; just enough of the protocol for this benchmark."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()


def post(path: str, body: dict[str, object], token: str) -> bytes:
    payload = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def run_load(
    port: int,
    make_request: RequestFactory,
    expected: int,
    seconds: float,
    connections: int,
    max_requests: int | None = None,
) -> tuple[list[float], int, float]:
    """Drive `connections` loops for `seconds` or `max_requests`, whichever ends first.

    Returns (latencies in s, error count, elapsed seconds).
    """
    latencies: list[float] = []
    errors = 0
    counter = 0
    began = time.perf_counter()
    deadline = began + seconds
    limit = max_requests if max_requests is not None else float("inf")

    async def worker() -> None:
        nonlocal errors, counter
        connection = await Connection.open(port)
        try:
            while time.perf_counter() < deadline and counter < limit:
                counter += 1
                request = make_request(counter)
                started = time.perf_counter()
                status = await connection.send(request)
                latencies.append(time.perf_counter() - started)
                if status != expected:
                    errors += 1
        finally:
            connection.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return latencies, errors, time.perf_counter() - began


def report(name: str, latencies: list[float], errors: int, seconds: float) -> None:
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    print(f"{name:<14} {len(ordered):>9} {len(ordered) / seconds:>10.0f} {p50:>9.2f} {p99:>9.2f} {errors:>7}")


def main(seconds: float, connections: int) -> None:
    with PostgresServer(durable=True) as postgres, RedisServer() as cache_server:
        secrets = SecretFiles.create(postgres.workdir)
        env = service_env(postgres, cache_server, secrets, instance="bench-api")
        token, _ = issue_token(secrets.jwt_signing_key, subject="1", username="bench", ttl_seconds=3600)
        with ServiceProcess("microstack_api", env) as api:
            cache = redis.Redis.from_url(cache_server.url())

            async def scenarios() -> None:
                # Writes first: they also create the rows the uncached reads need.
                latencies, errors, elapsed = await run_load(
                    api.port,
                    lambda n: post("/api/items", {"name": f"item-{n}", "description": "bench"}, token),
                    201,
                    seconds,
                    connections,
                )
                report("write", latencies, errors, elapsed)
                rows = len(latencies)

                # Each id read once after a flush: every request is a miss.
                cache.flushall()
                latencies, errors, elapsed = await run_load(
                    api.port, lambda n: get(f"/api/items/{n}"), 200, seconds, connections, max_requests=rows
                )
                report("uncached read", latencies, errors, elapsed)

                hot = 50
                for item_id in range(1, hot + 1):
                    api.get(f"/api/items/{item_id}")
                latencies, errors, elapsed = await run_load(
                    api.port, lambda n: get(f"/api/items/{n % hot + 1}"), 200, seconds, connections
                )
                report("cached read", latencies, errors, elapsed)

            print(
                f"one API instance, {connections} keep-alive connections, {seconds:.0f} s per scenario, "
                "PostgreSQL durable (fsync on), Redis local"
            )
            print(f"{'scenario':<14} {'requests':>9} {'req/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7}")
            asyncio.run(scenarios())
            cache.close()
        api.cleanup()


if __name__ == "__main__":
    main(
        float(sys.argv[1]) if len(sys.argv) > 1 else 10.0,
        int(sys.argv[2]) if len(sys.argv) > 2 else 16,
    )
