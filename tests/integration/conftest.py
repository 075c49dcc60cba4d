"""Real servers shared by the integration tests (services and end-to-end).

PostgreSQL and Redis are started once per session on free loopback ports;
each test that runs services gets its own empty database (`fresh_database`)
and a flushed Redis, so tests do not see each other's rows or cache keys.
A test that stops a server gets private ones (`private_postgres`,
`private_redis`) so the shared ones stay up for everyone else.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.servers import (
    PostgresServer,
    RedisServer,
    SecretFiles,
    ServiceProcess,
    ServiceStarter,
    service_env,
)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    with server:
        yield server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    with server:
        yield server


@pytest.fixture(scope="session")
def jwt_secrets(tmp_path_factory: pytest.TempPathFactory) -> SecretFiles:
    return SecretFiles.create(Path(tmp_path_factory.mktemp("secrets")))


@pytest.fixture
def fresh_database(postgres_server: PostgresServer) -> str:
    """The name of a new, empty database on the shared server."""
    return postgres_server.create_database(f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def clean_redis(redis_server: RedisServer) -> RedisServer:
    """The shared Redis with every key removed (services use item ids from 1 again)."""
    with redis.Redis.from_url(redis_server.url()) as client:
        client.flushall()
    return redis_server


@pytest.fixture
def private_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL of this test's own, which it may stop and restart."""
    server = PostgresServer()
    with server:
        yield server


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own, which it may stop and restart."""
    server = RedisServer()
    with server:
        yield server


@pytest.fixture
def start_service(jwt_secrets: SecretFiles) -> Iterator[ServiceStarter]:
    """Start `python -m <module>` processes; all are stopped after the test.

    Call as `start_service("microstack_api", postgres, redis, database=...,
    instance=..., wait_ready=True, env={...overrides})`.
    """
    started: list[ServiceProcess] = []

    def start(
        module: str,
        postgres: PostgresServer,
        redis: RedisServer,
        *,
        database: str | None = None,
        instance: str | None = None,
        wait_ready: bool = True,
        env: dict[str, str] | None = None,
    ) -> ServiceProcess:
        service = module.removeprefix("microstack_")
        environment = service_env(
            postgres,
            redis,
            jwt_secrets,
            service=service,
            instance=instance or f"{service}-{len(started) + 1}",
            database=database,
        )
        environment.update(env or {})
        process = ServiceProcess(module, environment, wait_ready=wait_ready)
        started.append(process)
        return process.start()

    yield start
    # SIGTERM everything first, then wait: the services drain in parallel.
    for process in started:
        if process.process is not None and process.process.poll() is None:
            process.process.terminate()
    for process in started:
        process.cleanup()
