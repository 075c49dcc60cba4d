"""Fixtures for the service tests: an API and an auth process (or auth alone) on a fresh database."""

from __future__ import annotations

import pytest

from tests.support.servers import PostgresServer, RedisServer, ServiceStarter
from tests.support.service_stack import AuthStack, ServiceStack


@pytest.fixture
def stack(
    start_service: ServiceStarter,
    postgres_server: PostgresServer,
    clean_redis: RedisServer,
    fresh_database: str,
) -> ServiceStack:
    # Started together and then awaited: start-up is mostly imports, so the
    # two overlap and the fixture costs one start-up rather than two.
    api = start_service(
        "microstack_api", postgres_server, clean_redis, database=fresh_database, instance="api-t1", wait_ready=False
    )
    auth = start_service(
        "microstack_auth", postgres_server, clean_redis, database=fresh_database, instance="auth-t1", wait_ready=False
    )
    api.wait_healthy()
    auth.wait_healthy()
    return ServiceStack(auth, postgres_server, clean_redis, fresh_database, api=api)


@pytest.fixture
def auth_stack(
    start_service: ServiceStarter,
    postgres_server: PostgresServer,
    clean_redis: RedisServer,
    fresh_database: str,
) -> AuthStack:
    """The auth service alone, for tests of auth that need no API."""
    auth = start_service("microstack_auth", postgres_server, clean_redis, database=fresh_database, instance="auth-t1")
    return AuthStack(auth, postgres_server, clean_redis, fresh_database)
