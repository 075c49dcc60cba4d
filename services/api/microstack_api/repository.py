"""SQL for items; every function takes the pool it uses."""

from __future__ import annotations

import asyncpg

from microstack_api.models import Item, ItemIn

_COLUMNS = "id, name, description, owner, created_at, updated_at"


async def list_items(pool: asyncpg.Pool, *, limit: int, offset: int) -> tuple[list[Item], int]:
    async with pool.acquire() as connection:
        rows = await connection.fetch(f"SELECT {_COLUMNS} FROM items ORDER BY id LIMIT $1 OFFSET $2", limit, offset)
        total = await connection.fetchval("SELECT count(*) FROM items")
    return [Item(**dict(row)) for row in rows], int(total)


async def get_item(pool: asyncpg.Pool, item_id: int) -> Item | None:
    row = await pool.fetchrow(f"SELECT {_COLUMNS} FROM items WHERE id = $1", item_id)
    return Item(**dict(row)) if row else None


async def create_item(pool: asyncpg.Pool, item: ItemIn, owner: str) -> Item:
    row = await pool.fetchrow(
        f"INSERT INTO items (name, description, owner) VALUES ($1, $2, $3) RETURNING {_COLUMNS}",
        item.name,
        item.description,
        owner,
    )
    return Item(**dict(row))


async def get_owner(pool: asyncpg.Pool, item_id: int) -> str | None:
    owner: str | None = await pool.fetchval("SELECT owner FROM items WHERE id = $1", item_id)
    return owner


async def update_item(pool: asyncpg.Pool, item_id: int, item: ItemIn) -> Item | None:
    row = await pool.fetchrow(
        f"UPDATE items SET name = $2, description = $3, updated_at = now() WHERE id = $1 RETURNING {_COLUMNS}",
        item_id,
        item.name,
        item.description,
    )
    return Item(**dict(row)) if row else None


async def delete_item(pool: asyncpg.Pool, item_id: int) -> bool:
    status: str = await pool.execute("DELETE FROM items WHERE id = $1", item_id)
    return status == "DELETE 1"
