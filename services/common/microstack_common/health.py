"""The introspective `/health` report: one entry per dependency, bounded in time.

What is fatal is decided here. PostgreSQL holds the data, so an instance that
cannot reach it answers 503 ("failing") and proxies take it out of the pool.
Redis is only a cache: without it reads go to PostgreSQL, so its loss, like
low memory or disk, reports "degraded" with 200 and the instance keeps
serving. A draining instance answers 503 whatever its checks say.

Each change of the reported state is logged once, as a `health_state`
event (docs/logging.md, "Health events from the services"): the proxies'
view of a replica in the logs is matched by the replica's own, and a probe
every second adds no line while nothing changes.

Proxies poll every second or two, so each check has a short timeout and all
run concurrently: a report never takes much more than `CHECK_TIMEOUT_SECONDS`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

if TYPE_CHECKING:
    # Only a type here: lifecycle.py holds the instance's HealthStates.
    from microstack_common.lifecycle import Lifecycle

logger = logging.getLogger(__name__)

HEALTH_STATE_EVENT = "health_state"
# How loudly each state is logged: draining is planned, failing takes the instance out.
_STATE_LEVELS = {"ok": logging.INFO, "draining": logging.INFO, "degraded": logging.WARNING, "failing": logging.ERROR}

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


class HealthStates:
    """The state this instance's /health last reported; logs one `health_state` event per change.

    Reports come from concurrent /health requests (the event loop interleaves
    them at every await) and from the server when draining starts, so a
    lock guards the state, and a report that began before the one already
    observed is stale and ignored: a probe that started before Redis went
    away and finished after must not log "ok" between two "degraded". The
    instance counts as ok when it starts, so a healthy start logs nothing.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: tuple[str, str] = ("ok", "")
        self._observed_at = float("-inf")

    @property
    def state(self) -> str:
        return self._current[0]

    def observe(self, state: str, reason: str, detail: str = "", *, started: float | None = None) -> bool:
        """Record a report begun at `started` (monotonic; now if None); log and return True if it is a change.

        A change is another state, or the same state for another reason
        (degraded by Redis, then by Redis and memory).
        """
        started = time.monotonic() if started is None else started
        with self._lock:
            if started < self._observed_at:
                return False
            self._observed_at = started
            previous = self._current
            key = (state, "" if state == "ok" else reason)
            if key == previous:
                return False
            self._current = key
            # Logged under the lock, so the lines come in the order of the changes.
            fields: dict[str, Any] = {
                "event": HEALTH_STATE_EVENT,
                "state": state,
                "reason": reason,
                "previous_state": previous[0],
            }
            if detail:
                fields["detail"] = detail
            message = f"health {state} again" if state == "ok" else f"health {state}: {reason}"
            logger.log(_STATE_LEVELS.get(state, logging.WARNING), message, extra=fields)
            return True


def _problem(name: str, check: Mapping[str, Any]) -> str:
    """One unhealthy check in a few words, for the event's `detail`."""
    if "error" in check:
        return f"{name}: {check['error']}"
    if "limit_bytes" in check:
        free = 1 - check["used_bytes"] / check["limit_bytes"] if check["limit_bytes"] else 0.0
        return f"{name}: {free:.1%} free of the {check['source']} limit"
    if "total_bytes" in check:
        free = check["free_bytes"] / check["total_bytes"] if check["total_bytes"] else 0.0
        return f"{name}: {free:.1%} free at {check['path']}"
    return f"{name}: unhealthy"


def state_change(status: str, checks: Mapping[str, Check]) -> tuple[str, str]:
    """The event's (reason, detail) for a report: which checks failed and how, or why it is draining."""
    if status == "draining":
        return "draining", ""
    unhealthy = [name for name, check in checks.items() if not check["healthy"]]
    if status == "ok" or not unhealthy:
        return "recovered", ""
    return ",".join(unhealthy), "; ".join(_problem(name, checks[name]) for name in unhealthy)


async def health_report(
    *,
    service: str,
    instance: str,
    pool: asyncpg.Pool,
    redis: Redis,
    lifecycle: Lifecycle,
) -> tuple[int, dict[str, Any]]:
    """Run every check, log a change of state, and return (HTTP status, report body)."""
    started = time.monotonic()
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
    reason, detail = state_change(status, checks)
    lifecycle.health_states.observe(status, reason, detail, started=started)
    return code, {"status": status, "service": service, "instance": instance, "checks": checks}
