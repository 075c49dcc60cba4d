"""redis.conf for the stack's Redis, as a pure function.

What Redis holds, and so why it persists nothing: the API's cache-aside
entries `item:<id>` (services/api item_cache.py), each a copy of a PostgreSQL
row with a 300 s TTL, deleted when the row changes. Nothing else: sessions are
stateless JWTs, and rate limits live in the proxy. Losing Redis costs one
PostgreSQL read per item on its next read, which every entry costs anyway
within 5 minutes as its TTL runs out; no data and no login is lost.

Persisting it would buy at most those 5 minutes of warm cache, and would bring
back entries that are wrong: a delete whose invalidation was in the last
second of an AOF (`appendfsync everysec`) before a crash, and, after
PostgreSQL is restored to an earlier moment, cached rows that no longer exist
or whose ids new rows reuse. So AOF and RDB are off and a restarted or
replaced Redis starts empty (tests/integration/cache shows it with the real
server). For the same reason Redis is emptied (restarted) after a PostgreSQL
restore.
"""

from __future__ import annotations

from microstack_common import contract

# maxmemory bounds the dataset only; client buffers and allocator overhead come
# on top, so it stays below the container limit and eviction starts before the
# kernel's OOM killer would.
MAXMEMORY_SHARE = 0.75

# Redis's working directory in its container (its volume's mount point).
DATA_DIR = "/data"


def render_redis_conf(*, password: str, memory_mb: int, maxmemory_policy: str) -> str:
    """Render redis.conf: password, memory cap and eviction, no persistence (module docstring).

    The password makes this file a secret; it is uploaded like one.
    """
    if any(ch in password for ch in '"\n\r '):
        raise ValueError("the Redis password must not contain quotes, spaces or newlines")
    maxmemory_mb = max(16, int(memory_mb * MAXMEMORY_SHARE))
    return "\n".join(
        [
            f"port {contract.REDIS_PORT}",
            "bind 0.0.0.0",
            "protected-mode yes",
            f'requirepass "{password}"',
            f"maxmemory {maxmemory_mb}mb",
            f"maxmemory-policy {maxmemory_policy}",
            f"dir {DATA_DIR}",
            "appendonly no",
            'save ""',
            "",
        ]
    )
