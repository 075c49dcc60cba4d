"""Cache-aside for single items in Redis under `item:<id>`.

Reads try Redis first and fill it on a miss; writes delete the key after the
database commits, so the next read refills it with the new row. Any Redis
failure is logged and treated as a miss: the cache can make the service
faster, never unavailable.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from microstack_api.models import Item

logger = logging.getLogger(__name__)

# Bounds staleness should an invalidation be lost while Redis is unreachable.
ITEM_TTL_SECONDS = 300


def item_key(item_id: int) -> str:
    return f"item:{item_id}"


async def cached_item(redis: Redis, item_id: int) -> Item | None:
    try:
        raw = await redis.get(item_key(item_id))
    except RedisError as error:
        logger.warning("cache read failed", extra={"error": f"{type(error).__name__}: {error}"})
        return None
    if raw is None:
        return None
    try:
        return Item.model_validate_json(raw)
    except ValidationError:
        logger.warning("discarding unreadable cache entry", extra={"key": item_key(item_id)})
        return None


async def store_item(redis: Redis, item: Item) -> None:
    try:
        await redis.set(item_key(item.id), item.model_dump_json(), ex=ITEM_TTL_SECONDS)
    except RedisError as error:
        logger.warning("cache write failed", extra={"error": f"{type(error).__name__}: {error}"})


async def invalidate_item(redis: Redis, item_id: int) -> None:
    try:
        await redis.delete(item_key(item_id))
    except RedisError as error:
        logger.warning(
            "cache invalidation failed; entry expires by TTL",
            extra={"key": item_key(item_id), "error": f"{type(error).__name__}: {error}"},
        )
