"""What survives a Redis restart on the same data directory, with the rendered redis.conf.

A replaced Redis container starts the same config on the same volume; here the
real redis-server does that on a temporary directory. With persistence off
nothing survives, not even what an earlier AOF-persisting version left in the
directory (components/redis_conf.py says why that is the right answer for a
cache of PostgreSQL rows).
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from components.redis_conf import DATA_DIR, render_redis_conf
from tests.support.binaries import require_binary
from tests.support.servers import free_port

pytestmark = pytest.mark.slow


class ConfiguredRedis:
    """redis-server on the rendered config, with only port, bind and dir pointed at the test's."""

    def __init__(self, data_dir: Path, *, extra: str = "") -> None:
        self.binary = require_binary("redis-server")
        self.password = secrets.token_urlsafe(18)
        self.port = free_port()
        self.data_dir = data_dir
        rendered = render_redis_conf(password=self.password, memory_mb=64, maxmemory_policy="allkeys-lru")
        # Redis changes into `dir` as it reads the line, so that one is replaced;
        # port and bind are overridden by later lines (the last one wins).
        assert f"\ndir {DATA_DIR}\n" in rendered
        self.conf = data_dir.parent / f"redis-{self.port}.conf"
        self.conf.write_text(
            rendered.replace(f"\ndir {DATA_DIR}\n", f"\ndir {data_dir}\n")
            + f"port {self.port}\nbind 127.0.0.1\n{extra}"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> redis.Redis:
        self.process = subprocess.Popen([self.binary, str(self.conf)], stdout=subprocess.DEVNULL)
        client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password, decode_responses=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return client
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM, as `docker stop` sends: Redis saves on it only if persistence is on."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)
        self.process = None


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "data"
    path.mkdir()
    yield path


def _fill(client: redis.Redis) -> None:
    # What the API writes (item_cache.py), and a key without a TTL for contrast.
    client.set("item:1", '{"id": 1, "name": "cached"}', ex=300)
    client.set("plain", "value")


def test_rendered_redis_persists_nothing_across_a_restart(data_dir: Path) -> None:
    server = ConfiguredRedis(data_dir)
    try:
        client = server.start()
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("save") == {"save": ""}
        _fill(client)
        assert client.dbsize() == 2
        server.stop()
        assert list(data_dir.iterdir()) == [], "nothing written to the data directory"

        client = server.start()
        assert client.dbsize() == 0
    finally:
        server.stop()


def test_an_aof_left_by_an_earlier_version_is_ignored(data_dir: Path) -> None:
    earlier = ConfiguredRedis(data_dir, extra="appendonly yes\nappendfsync always\n")
    try:
        client = earlier.start()
        _fill(client)
    finally:
        earlier.stop()
    assert any(data_dir.iterdir()), "the earlier config wrote its AOF"
    # Control: the earlier config does bring the keys back.
    try:
        assert earlier.start().dbsize() == 2
    finally:
        earlier.stop()

    current = ConfiguredRedis(data_dir)
    try:
        assert current.start().dbsize() == 0
    finally:
        current.stop()
