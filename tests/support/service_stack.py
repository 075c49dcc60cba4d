"""An API and an auth process on one database, with direct clients for checking them.

Tests and benchmarks use this to act as a client (register, log in, call the
API with the token) and as an observer (read PostgreSQL and Redis directly to
see what the services really stored, rather than trusting their answers).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import asyncpg
from redis import Redis

from tests.support.servers import PostgresServer, RedisServer, ServiceProcess


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def query(postgres: PostgresServer, database: str, sql: str, *args: object) -> list[asyncpg.Record]:
    """Run one SQL statement on `database` over a connection of the caller's own."""

    async def run() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(postgres.dsn(database))
        try:
            return list(await connection.fetch(sql, *args))
        finally:
            await connection.close()

    return asyncio.run(run())


@dataclass
class AuthStack:
    """An auth process on its database: enough to register, log in and verify."""

    auth: ServiceProcess
    postgres: PostgresServer
    redis: RedisServer
    database: str

    # Imported by name: inside this class `redis` is the server field.
    def redis_client(self) -> Redis:
        return Redis.from_url(self.redis.url(), decode_responses=True)

    def query(self, sql: str, *args: object) -> list[asyncpg.Record]:
        return query(self.postgres, self.database, sql, *args)

    def register(self, username: str | None = None, password: str = "correct horse battery") -> tuple[str, str]:
        """Register a new user; return (username, password)."""
        name = username or f"user_{uuid.uuid4().hex[:10]}"
        reply = self.auth.request("POST", "/auth/register", json_body={"username": name, "password": password})
        if reply.status != 201:
            raise AssertionError(f"register {name}: {reply.status} {reply.body!r}")
        return name, password

    def login(self, username: str | None = None, password: str = "correct horse battery") -> str:
        """Register a new user (or use `username`'s existing account) and return a bearer token."""
        if username is None:
            username, password = self.register(password=password)
        reply = self.auth.request("POST", "/auth/login", json_body={"username": username, "password": password})
        if reply.status != 200:
            raise AssertionError(f"login {username}: {reply.status} {reply.body!r}")
        token: str = reply.json()["access_token"]
        return token


@dataclass
class ServiceStack(AuthStack):
    """An API process beside the auth process, on the same database."""

    api: ServiceProcess
