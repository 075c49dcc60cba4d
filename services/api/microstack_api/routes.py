"""The items resource and the instance endpoint, under `contract.API_PREFIX`.

Authentication answers: no token, a malformed header, a bad signature or an
expired token → 401 with `WWW-Authenticate: Bearer`. A valid token for a user
who does not own the item → 403 on update and delete. Reads are public.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response

from microstack_api import item_cache, repository
from microstack_api.models import MAX_ID, MAX_PAGE_SIZE, InstanceInfo, Item, ItemIn, ItemPage
from microstack_common import contract
from microstack_common.web import ClaimsDep, PoolDep, RedisDep, SettingsDep

router = APIRouter(prefix=contract.API_PREFIX, tags=["items"])

ItemId = Annotated[int, Path(ge=1, le=MAX_ID)]

_AUTH_RESPONSES: dict[int | str, dict[str, str]] = {
    401: {"description": "Missing, malformed, badly signed or expired bearer token"},
}
_OWNER_RESPONSES: dict[int | str, dict[str, str]] = {
    **_AUTH_RESPONSES,
    403: {"description": "The token is valid but its user does not own the item"},
    404: {"description": "No item with this id"},
}


@router.get("/instance")
async def instance(settings: SettingsDep) -> InstanceInfo:
    """Which service instance answered: for checking load balancing."""
    return InstanceInfo(service=settings.service_name, instance=settings.instance_name)


@router.get("/items")
async def list_items(
    pool: PoolDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> ItemPage:
    items, total = await repository.list_items(pool, limit=limit, offset=offset)
    return ItemPage(items=items, total=total, limit=limit, offset=offset)


@router.post("/items", status_code=201, responses=_AUTH_RESPONSES)
async def create_item(body: ItemIn, claims: ClaimsDep, pool: PoolDep) -> Item:
    return await repository.create_item(pool, body, owner=claims.sub)


@router.get("/items/{item_id}", responses={404: {"description": "No item with this id"}})
async def get_item(item_id: ItemId, response: Response, pool: PoolDep, redis: RedisDep) -> Item:
    """One item; `X-Cache: hit` when it came from Redis, `miss` when from PostgreSQL."""
    item = await item_cache.cached_item(redis, item_id)
    if item is not None:
        response.headers["X-Cache"] = "hit"
        return item
    item = await repository.get_item(pool, item_id)
    if item is None:
        raise HTTPException(404, f"item {item_id} not found", headers={"X-Cache": "miss"})
    await item_cache.store_item(redis, item)
    response.headers["X-Cache"] = "miss"
    return item


async def _require_owner(pool: PoolDep, item_id: int, subject: str) -> None:
    owner = await repository.get_owner(pool, item_id)
    if owner is None:
        raise HTTPException(404, f"item {item_id} not found")
    if owner != subject:
        raise HTTPException(403, f"item {item_id} belongs to another user")


@router.put("/items/{item_id}", responses=_OWNER_RESPONSES)
async def update_item(item_id: ItemId, body: ItemIn, claims: ClaimsDep, pool: PoolDep, redis: RedisDep) -> Item:
    await _require_owner(pool, item_id, claims.sub)
    item = await repository.update_item(pool, item_id, body)
    await item_cache.invalidate_item(redis, item_id)
    if item is None:
        raise HTTPException(404, f"item {item_id} not found")
    return item


@router.delete("/items/{item_id}", status_code=204, responses=_OWNER_RESPONSES)
async def delete_item(item_id: ItemId, claims: ClaimsDep, pool: PoolDep, redis: RedisDep) -> Response:
    await _require_owner(pool, item_id, claims.sub)
    deleted = await repository.delete_item(pool, item_id)
    await item_cache.invalidate_item(redis, item_id)
    if not deleted:
        raise HTTPException(404, f"item {item_id} not found")
    return Response(status_code=204)
