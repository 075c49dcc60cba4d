"""The Redis client, tuned to fail fast: Redis is a cache, never worth waiting for.

redis-py retries failed commands with backoff by default; a request would
then stall for seconds while Redis is down. Here a command fails after at
most `REDIS_TIMEOUT_SECONDS` without retries and the caller falls back to
PostgreSQL; the broken connection is dropped and the next command reconnects,
so service resumes by itself when Redis is back.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from microstack_common.settings import Settings

REDIS_TIMEOUT_SECONDS = 0.25


def create_redis(settings: Settings) -> Redis:
    return Redis(
        host=settings.redis_host,
        port=settings.redis_port,
        password=settings.redis_password,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        decode_responses=True,
        max_connections=50,
    )
