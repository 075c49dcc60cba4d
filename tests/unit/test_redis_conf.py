"""redis.conf from components/redis_conf.py: a password-protected cache that persists nothing."""

from __future__ import annotations

import pytest

from components.redis_conf import render_redis_conf


def _directives(text: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in text.splitlines() if line)


def test_redis_conf_is_a_cache_without_persistence() -> None:
    conf = _directives(render_redis_conf(password="pw-123", memory_mb=256, maxmemory_policy="allkeys-lru"))
    assert conf == {
        "port": "6379",
        "bind": "0.0.0.0",
        "protected-mode": "yes",
        "requirepass": '"pw-123"',
        "maxmemory": "192mb",
        "maxmemory-policy": "allkeys-lru",
        "dir": "/data",
        "appendonly": "no",
        "save": '""',
    }


def test_small_memory_keeps_a_floor_for_maxmemory() -> None:
    conf = _directives(render_redis_conf(password="pw", memory_mb=16, maxmemory_policy="noeviction"))
    assert conf["maxmemory"] == "16mb"


@pytest.mark.parametrize("password", ['with"quote', "with space", "new\nline", "cr\rx"])
def test_a_password_redis_conf_cannot_hold_is_refused(password: str) -> None:
    with pytest.raises(ValueError, match="Redis password"):
        render_redis_conf(password=password, memory_mb=64, maxmemory_policy="allkeys-lru")
