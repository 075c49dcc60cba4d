"""The introspective `/health` report: one entry per dependency, bounded in time.

What is fatal is decided here. PostgreSQL holds the data, so an instance that
cannot reach it answers 503 ("failing") and proxies take it out of the pool.
Redis is only a cache: without it reads go to PostgreSQL, so its loss, like
low memory or disk, reports "degraded" with 200 and the instance keeps
serving. A draining instance answers 503 whatever its checks say.

Proxies poll every second or two, so each check has a short timeout and all
run concurrently: a report never takes much more than `CHECK_TIMEOUT_SECONDS`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from microstack_common.lifecycle import Lifecycle

CHECK_TIMEOUT_SECONDS = 1.0
# The cache's probe answers well within the proxy's own check timeout
# (HAProxy's `timeout check`: a quarter of its interval, 250 ms at the
# shortest interval the stack config allows). Otherwise a Redis that hangs,
# or whose name does not resolve while its container is replaced (Docker's DNS
# then asks the host's resolvers), would make every replica's check time out
# at once, and the proxy would take them all out over a cache it does not need.
CACHE_CHECK_TIMEOUT_SECONDS = 0.15
# Below these free fractions the instance is degraded, not failing: it can
# still serve, but an operator should look before it gets worse.
MIN_FREE_MEMORY_FRACTION = 0.05
MIN_FREE_DISK_FRACTION = 0.05

Check = dict[str, Any]

# What a probe of an unreachable or broken dependency raises; anything else
# is a bug in the probe and should surface as one.
_PROBE_ERRORS = (
    TimeoutError,
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    RedisError,
)


async def _timed(probe: Callable[[], Awaitable[None]], timeout: float = CHECK_TIMEOUT_SECONDS) -> Check:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(probe(), timeout)
    except _PROBE_ERRORS as error:
        return {
            "healthy": False,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            "error": f"{type(error).__name__}: {error}".rstrip(": "),
        }
    return {"healthy": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


async def check_postgres(pool: asyncpg.Pool) -> Check:
    async def probe() -> None:
        async with pool.acquire(timeout=CHECK_TIMEOUT_SECONDS) as connection:
            await connection.fetchval("SELECT 1", timeout=CHECK_TIMEOUT_SECONDS)

    return await _timed(probe)


async def check_redis(redis: Redis) -> Check:
    async def probe() -> None:
        await redis.ping()

    return await _timed(probe, CACHE_CHECK_TIMEOUT_SECONDS)


def _stat_value(path: Path, key: str) -> int:
    for line in path.read_text().splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0


def _cgroup_memory() -> tuple[int, int] | None:
    """(working set, limit) bytes from the container's cgroup when a limit is set, else None.

    Both cgroup versions are read: v2 on current hosts, v1 on older kernels
    and Docker setups. The working set leaves out inactive page cache, which
    the kernel reclaims before it would OOM-kill (the figure `docker stats`
    shows); counting it would call a container that merely read files
    "degraded".
    """
    v2 = Path("/sys/fs/cgroup")
    v1 = Path("/sys/fs/cgroup/memory")
    try:
        if (v2 / "memory.max").exists():
            raw_limit = (v2 / "memory.max").read_text().strip()
            if raw_limit == "max":
                return None
            limit = int(raw_limit)
            current = int((v2 / "memory.current").read_text())
            inactive = _stat_value(v2 / "memory.stat", "inactive_file")
        elif (v1 / "memory.limit_in_bytes").exists():
            limit = int((v1 / "memory.limit_in_bytes").read_text())
            current = int((v1 / "memory.usage_in_bytes").read_text())
            inactive = _stat_value(v1 / "memory.stat", "total_inactive_file")
        else:
            return None
    except (OSError, ValueError):
        return None
    # cgroup v1 reports "no limit" as a number near 2**63.
    if limit >= 2**62:
        return None
    return max(0, current - inactive), limit


def _host_memory() -> tuple[int, int]:
    """(used, total) bytes from /proc/meminfo, counting reclaimable memory as free."""
    fields: dict[str, int] = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        fields[key] = int(rest.split()[0]) * 1024
    total = fields["MemTotal"]
    return total - fields.get("MemAvailable", fields.get("MemFree", 0)), total


def check_memory() -> Check:
    """Memory against the container's cgroup limit, or the host's when unlimited."""
    try:
        cgroup = _cgroup_memory()
        used, limit = cgroup if cgroup is not None else _host_memory()
        rss_pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, KeyError, IndexError) as error:
        return {"healthy": False, "error": f"memory unreadable: {error}"}
    free_fraction = 1 - used / limit if limit else 0.0
    return {
        "healthy": free_fraction >= MIN_FREE_MEMORY_FRACTION,
        "used_bytes": used,
        "limit_bytes": limit,
        "source": "cgroup" if cgroup is not None else "host",
        "process_rss_bytes": rss_pages * os.sysconf("SC_PAGE_SIZE"),
    }


def check_disk(path: str | None = None) -> Check:
    """Free space where the service writes temporary files."""
    where = path or tempfile.gettempdir()
    try:
        usage = shutil.disk_usage(where)
    except OSError as error:
        return {"healthy": False, "path": where, "error": str(error)}
    free_fraction = usage.free / usage.total if usage.total else 0.0
    return {
        "healthy": free_fraction >= MIN_FREE_DISK_FRACTION,
        "path": where,
        "free_bytes": usage.free,
        "total_bytes": usage.total,
    }


async def health_report(
    *,
    service: str,
    instance: str,
    pool: asyncpg.Pool,
    redis: Redis,
    lifecycle: Lifecycle,
) -> tuple[int, dict[str, Any]]:
    """Run every check and return (HTTP status, report body)."""
    postgres, redis_check = await asyncio.gather(check_postgres(pool), check_redis(redis))
    checks = {
        "postgres": postgres,
        "redis": redis_check,
        "memory": check_memory(),
        "disk": check_disk(),
    }
    if lifecycle.draining:
        status = "draining"
    elif not postgres["healthy"]:
        status = "failing"
    elif all(check["healthy"] for check in checks.values()):
        status = "ok"
    else:
        status = "degraded"
    code = 200 if status in ("ok", "degraded") else 503
    return code, {"status": status, "service": service, "instance": instance, "checks": checks}
