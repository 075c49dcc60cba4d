"""SQL for users; every function takes the pool it uses."""

from __future__ import annotations

import asyncpg


class DuplicateUserError(Exception):
    """A user with this username (ignoring case) already exists."""


async def create_user(pool: asyncpg.Pool, username: str, password_hash: str) -> int:
    try:
        user_id: int = await pool.fetchval(
            "INSERT INTO users (username, password_hash) VALUES ($1, $2) RETURNING id",
            username,
            password_hash,
        )
    except asyncpg.UniqueViolationError:
        raise DuplicateUserError(username) from None
    return user_id


async def find_user(pool: asyncpg.Pool, username: str) -> asyncpg.Record | None:
    record: asyncpg.Record | None = await pool.fetchrow(
        "SELECT id, username, password_hash FROM users WHERE lower(username) = lower($1)",
        username,
    )
    return record
