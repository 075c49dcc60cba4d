"""A service logs its own view of its health: one `health_state` JSON line per change, none per probe.

Real PostgreSQL and Redis, stopped and started under a running API process;
the lines are read from the process's stdout, as Docker's log driver gets them.
"""

from __future__ import annotations

import signal
import time
from typing import Any

from microstack_common import contract
from tests.support.servers import PostgresServer, RedisServer, ServiceProcess, ServiceStarter

SHARED_FIELDS = {"timestamp", "level", "message", "service", "instance", "request_id"}
PROBES_WHILE_UNCHANGED = 5


def health_events(service: ServiceProcess) -> list[dict[str, Any]]:
    records = service.log_records()
    assert not [r for r in records if "raw" in r], "every line is JSON"
    for record in records:
        assert set(record) >= SHARED_FIELDS, record
    return [r for r in records if r.get("event") == "health_state"]


def probe_until(service: ServiceProcess, status: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while service.get(contract.HEALTH_PATH, timeout=2.0).json()["status"] != status:
        assert time.monotonic() < deadline, f"/health did not report {status} within {timeout}s"
        time.sleep(0.1)


def probe(service: ServiceProcess, times: int = PROBES_WHILE_UNCHANGED) -> None:
    for _ in range(times):
        service.get(contract.HEALTH_PATH, timeout=2.0)


def test_redis_going_away_and_back_logs_degraded_naming_redis_then_ok(
    start_service: ServiceStarter, postgres_server: PostgresServer, private_redis: RedisServer, fresh_database: str
) -> None:
    api = start_service("microstack_api", postgres_server, private_redis, database=fresh_database, instance="api-7")
    probe(api)
    assert health_events(api) == [], "a healthy start and ok probes log no health event"

    private_redis.stop()
    probe_until(api, "degraded")
    probe(api)
    private_redis.start()
    probe_until(api, "ok")
    probe(api)

    events = health_events(api)
    assert [(e["state"], e["reason"], e["previous_state"]) for e in events] == [
        ("degraded", "redis", "ok"),
        ("ok", "recovered", "degraded"),
    ]
    degraded, recovered = events
    assert degraded["level"] == "WARNING"
    assert degraded["detail"].startswith("redis: ")
    assert (degraded["service"], degraded["instance"]) == ("api", "api-7")
    assert recovered["level"] == "INFO"


def test_postgres_going_away_logs_failing_naming_postgres(
    start_service: ServiceStarter, private_postgres: PostgresServer, clean_redis: RedisServer
) -> None:
    api = start_service("microstack_api", private_postgres, clean_redis)
    private_postgres.stop()
    probe_until(api, "failing")
    probe(api)
    private_postgres.start()
    probe_until(api, "ok", timeout=15.0)

    events = health_events(api)
    assert [(e["state"], e["reason"]) for e in events] == [("failing", "postgres"), ("ok", "recovered")]
    assert events[0]["level"] == "ERROR"


def test_sigterm_logs_draining_at_once_even_when_nothing_probes(
    start_service: ServiceStarter, postgres_server: PostgresServer, clean_redis: RedisServer, fresh_database: str
) -> None:
    auth = start_service(
        "microstack_auth",
        postgres_server,
        clean_redis,
        database=fresh_database,
        env={contract.Env.SHUTDOWN_DRAIN_SECONDS: "1"},
    )
    auth.send_signal(signal.SIGTERM)
    assert auth.wait(timeout=15) == 0

    events = health_events(auth)
    assert [(e["state"], e["reason"], e["previous_state"]) for e in events] == [("draining", "draining", "ok")]
    assert events[0]["service"] == "auth"
    messages = [r["message"] for r in auth.log_records()]
    # Logged during the drain, not at exit.
    assert messages.index(events[0]["message"]) < messages.index("stopped")
