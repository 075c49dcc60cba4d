"""The asyncpg pool and schema migrations under a PostgreSQL advisory lock.

N replicas start at the same moment against one database. Each takes the
same session-level advisory lock before looking at `schema_migrations`, so
exactly one applies a migration and the others find it recorded when their
turn comes. Each migration runs in its own transaction with its record, so a
crash leaves the schema at a known version.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import asyncpg

from microstack_common import contract
from microstack_common.settings import Settings

logger = logging.getLogger(__name__)

# One key for every microstack service: auth and api may share a database,
# and their migrations then also take turns.
MIGRATION_LOCK_KEY = 0x6D696372  # "micr"

CONNECT_TIMEOUT_SECONDS = 2.0
# Upper bound for one statement: a request waiting on a lock longer than this
# gives up instead of holding a pool connection forever.
COMMAND_TIMEOUT_SECONDS = 15.0


async def create_pool(settings: Settings, *, wait_seconds: float = 60.0) -> asyncpg.Pool:
    """Connect, retrying while PostgreSQL is still starting (containers start together)."""
    deadline = time.monotonic() + wait_seconds
    attempt = 0
    while True:
        attempt += 1
        try:
            pool = await asyncpg.create_pool(
                host=settings.database_host,
                port=settings.database_port,
                user=settings.database_user,
                password=settings.database_password,
                database=settings.database_name,
                min_size=1,
                max_size=contract.DATABASE_POOL_SIZE,
                timeout=CONNECT_TIMEOUT_SECONDS,
                command_timeout=COMMAND_TIMEOUT_SECONDS,
            )
        except (TimeoutError, OSError, asyncpg.PostgresError) as error:
            if time.monotonic() >= deadline or isinstance(
                error, asyncpg.InvalidPasswordError | asyncpg.InvalidCatalogNameError
            ):
                raise
            logger.warning(
                "postgres not reachable yet",
                extra={"attempt": attempt, "error": f"{type(error).__name__}: {error}"},
            )
            await asyncio.sleep(min(2.0, 0.2 * attempt))
            continue
        if pool is None:  # create_pool only returns None when awaited oddly
            raise RuntimeError("asyncpg returned no pool")
        return pool


async def migrate(pool: asyncpg.Pool, service: str, migrations: Sequence[str]) -> int:
    """Apply `migrations` (version = index + 1) not yet recorded for `service`.

    Returns how many this process applied (0 when another replica got there first).
    """
    applied_now = 0
    async with pool.acquire() as connection:
        await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        try:
            await connection.execute(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    service text NOT NULL,
                    version integer NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (service, version)
                )
                """
            )
            rows = await connection.fetch("SELECT version FROM schema_migrations WHERE service = $1", service)
            done = {row["version"] for row in rows}
            for version, sql in enumerate(migrations, start=1):
                if version in done:
                    continue
                async with connection.transaction():
                    await connection.execute(sql)
                    await connection.execute(
                        "INSERT INTO schema_migrations (service, version) VALUES ($1, $2)",
                        service,
                        version,
                    )
                applied_now += 1
                logger.info("applied migration", extra={"version": version})
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    return applied_now
