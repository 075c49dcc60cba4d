"""Fixtures for the proxy tests: models pointed at private temp dirs and loopback."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from components.proxy.model import (
    Cache,
    HealthCheck,
    Listen,
    PassiveCheck,
    ProxyKind,
    ProxyModel,
    RateLimit,
    Server,
    Timeouts,
    UpstreamGroup,
)
from tests.integration.proxy.harness import ProxyProcess, Replicas, private_dir, proxy_paths, worker_user
from tests.support.servers import PostgresServer, RedisServer, SecretFiles, free_port

ModelFactory = Callable[..., ProxyModel]
ProxyStarter = Callable[..., ProxyProcess]


@pytest.fixture
def proxy_root() -> Iterator[Path]:
    """A directory for one proxy's config, logs, cache and sockets."""
    root = private_dir("microstack-proxy-")
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def make_model(proxy_root: Path) -> ModelFactory:
    """Build a ProxyModel for `proxy_root` with loopback listeners and servers.

    `api_ports`/`auth_ports` list the replicas' ports; other keyword
    arguments override ProxyModel fields.
    """

    def build(
        api_ports: list[int] | None = None,
        auth_ports: list[int] | None = None,
        **overrides: object,
    ) -> ProxyModel:
        api = api_ports if api_ports is not None else [free_port()]
        auth = auth_ports if auth_ports is not None else [free_port()]
        fields: dict[str, object] = {
            "upstreams": (
                UpstreamGroup("api", tuple(Server("127.0.0.1", port) for port in api)),
                UpstreamGroup("auth", tuple(Server("127.0.0.1", port) for port in auth)),
            ),
            "listen": Listen("127.0.0.1", free_port(), free_port()),
            "cache": Cache(directory=str(proxy_root / "cache")),
            "paths": proxy_paths(proxy_root),
            "user": worker_user(),
        }
        fields.update(overrides)
        return ProxyModel(**fields)  # type: ignore[arg-type]

    return build


@pytest.fixture(scope="session")
def replicas(
    postgres_server: PostgresServer, redis_server: RedisServer, jwt_secrets: SecretFiles
) -> Iterator[Replicas]:
    """Three API replicas and one auth instance on one database, for the whole session."""
    database = postgres_server.create_database(f"proxy_{uuid.uuid4().hex[:8]}")
    pool = Replicas(postgres_server, redis_server, jwt_secrets, api_count=3, database=database)
    try:
        yield pool.start()
    finally:
        pool.stop()


@pytest.fixture
def pool(replicas: Replicas) -> Replicas:
    """The replicas, every one running and healthy at the start of the test."""
    replicas.ensure_running()
    return replicas


# Timings short enough for a test to watch failover in a few seconds. The
# health check keeps `interval × fall` above its worst case (interval +
# timeout + (fall - 1) × (fast interval + timeout) = 2.6 s < 3 s).
E2E_HEALTH = HealthCheck(interval_seconds=1.0, fall=3, rise=2, timeout_seconds=0.4, fast_interval_seconds=0.2)
# The connect timeout is the check timeout: HAProxy's check on a frozen replica
# fails only after min(interval, connect), and these tests overload nothing
# (the default, above the SYN retransmission, is tested in test_e2e_overload).
E2E_TIMEOUTS = Timeouts(connect_seconds=0.4, read_seconds=2.0, retries=2)


def e2e_fields(proxy_root: Path) -> dict[str, object]:
    """Model fields of the end-to-end proxies: short timings, a rate limit out of the way, a 1 s cache."""
    return {
        "health_check": E2E_HEALTH,
        "timeouts": E2E_TIMEOUTS,
        "passive_check": PassiveCheck(max_fails=1, fail_timeout_seconds=2),
        "slow_start_seconds": 4.0,
        "rate_limit": RateLimit(requests_per_second=10_000, burst=10_000),
        "cache": Cache(ttl_seconds=1, directory=str(proxy_root / "cache")),
    }


@pytest.fixture
def start_proxy(pool: Replicas, make_model: ModelFactory, proxy_root: Path) -> Iterator[ProxyStarter]:
    """Start a proxy of a kind in front of `pool`; keyword arguments override model fields."""
    started: list[ProxyProcess] = []

    def start(kind: ProxyKind, *, wrapped: bool = False, **overrides: object) -> ProxyProcess:
        fields = e2e_fields(proxy_root)
        fields.update(overrides)
        model = make_model(api_ports=pool.api_ports, auth_ports=pool.auth_ports, **fields)
        proxy = ProxyProcess(kind, model, proxy_root, wrapped=wrapped)
        started.append(proxy)
        return proxy.start()

    yield start
    for proxy in started:
        proxy.stop()
