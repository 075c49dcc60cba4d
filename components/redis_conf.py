"""redis.conf for the stack's Redis, as a pure function."""

from __future__ import annotations

from microstack_common import contract

# Redis forks for AOF rewrites; keeping maxmemory below the container limit
# leaves room for the copy-on-write pages so the kernel does not OOM-kill it.
MAXMEMORY_SHARE = 0.75


def render_redis_conf(*, password: str, memory_mb: int, maxmemory_policy: str) -> str:
    """Render redis.conf: password, memory cap and eviction, AOF persistence in /data.

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
            "dir /data",
            "appendonly yes",
            "appendfsync everysec",
            'save ""',
            "",
        ]
    )
