"""How the services behave when things around them change: concurrent start-up,
PostgreSQL or Redis going away and coming back, and SIGTERM mid-request."""

from __future__ import annotations

import asyncio
import signal
import socket
import time

import asyncpg

from components.proxy.model import HealthCheck
from microstack_common import contract
from microstack_common.tokens import issue_token
from tests.support.servers import PostgresServer, RedisServer, SecretFiles, ServiceProcess, ServiceStarter
from tests.support.service_stack import bearer, query


def _token(secrets: SecretFiles, subject: str = "1") -> str:
    token, _ = issue_token(secrets.jwt_signing_key, subject=subject, username="tester", ttl_seconds=300)
    return token


def _wait_for_status(service: ServiceProcess, status: int, timeout: float) -> float:
    """Poll /health until it answers `status`; return the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if service.get(contract.HEALTH_PATH, timeout=2.0).status == status:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"/health did not answer {status} within {timeout}s")


def test_replicas_starting_together_on_an_empty_database_share_one_schema(
    start_service: ServiceStarter, postgres_server: PostgresServer, clean_redis: RedisServer, fresh_database: str
) -> None:
    replicas = [
        start_service(module, postgres_server, clean_redis, database=fresh_database, wait_ready=False)
        for module in ("microstack_api", "microstack_api", "microstack_api", "microstack_auth", "microstack_auth")
    ]
    for replica in replicas:
        replica.wait_healthy()

    versions = query(
        postgres_server, fresh_database, "SELECT service, version FROM schema_migrations ORDER BY service, version"
    )
    assert [tuple(row) for row in versions] == [("api", 1), ("auth", 1), ("auth", 2)]
    tables = query(
        postgres_server,
        fresh_database,
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
    )
    assert [row["tablename"] for row in tables] == ["items", "schema_migrations", "users"]

    def applied(process: ServiceProcess) -> int:
        return sum(1 for record in process.log_records() if record.get("message") == "applied migration")

    assert sum(applied(replica) for replica in replicas[:3]) == 1, "exactly one api replica migrated"
    assert sum(applied(replica) for replica in replicas[3:]) == 2, "auth's two migrations applied once"


def test_health_fails_within_2s_of_postgres_stopping_and_recovers(
    start_service: ServiceStarter, private_postgres: PostgresServer, clean_redis: RedisServer
) -> None:
    api = start_service("microstack_api", private_postgres, clean_redis)
    assert api.get(contract.HEALTH_PATH).json()["status"] == "ok"

    private_postgres.stop()
    took = _wait_for_status(api, 503, timeout=2.0)
    assert took < 2.0
    report = api.get(contract.HEALTH_PATH).json()
    assert report["status"] == "failing"
    assert report["checks"]["postgres"]["healthy"] is False
    assert report["checks"]["redis"]["healthy"] is True
    # A request that needs the database says so instead of failing with 500.
    assert api.get("/api/items").status == 503

    private_postgres.start()
    _wait_for_status(api, 200, timeout=10.0)
    assert api.get(contract.HEALTH_PATH).json()["status"] == "ok"
    assert api.get("/api/items").status == 200


def test_without_redis_reads_come_from_postgres_and_health_is_degraded(
    start_service: ServiceStarter,
    postgres_server: PostgresServer,
    private_redis: RedisServer,
    fresh_database: str,
    jwt_secrets: SecretFiles,
) -> None:
    api = start_service("microstack_api", postgres_server, private_redis, database=fresh_database)
    token = _token(jwt_secrets)
    created = api.request("POST", "/api/items", json_body={"name": "durable"}, headers=bearer(token)).json()
    path = f"/api/items/{created['id']}"
    assert api.get(path).header("X-Cache") == "miss"
    assert api.get(path).header("X-Cache") == "hit"

    private_redis.stop()
    started = time.monotonic()
    read = api.get(path)
    assert time.monotonic() - started < 1.0, "a dead cache must not stall reads"
    assert read.status == 200
    assert read.header("X-Cache") == "miss"
    assert read.json() == created

    health = api.get(contract.HEALTH_PATH)
    assert health.status == 200
    report = health.json()
    assert report["status"] == "degraded"
    assert report["checks"]["redis"]["healthy"] is False
    assert report["checks"]["postgres"]["healthy"] is True

    updated = api.request("PUT", path, json_body={"name": "still works"}, headers=bearer(token))
    assert updated.status == 200
    assert api.get(path).json()["name"] == "still works"

    private_redis.start()
    _wait_for_status(api, 200, timeout=5.0)
    deadline = time.monotonic() + 5.0
    while api.get(contract.HEALTH_PATH).json()["status"] != "ok":
        assert time.monotonic() < deadline, "health did not return to ok after Redis came back"
        time.sleep(0.1)
    assert api.get(path).header("X-Cache") == "miss"
    cached = api.get(path)
    assert cached.header("X-Cache") == "hit"
    assert cached.json()["name"] == "still works"


def _port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_sigterm_drains_finishes_a_slow_request_and_exits_0(
    start_service: ServiceStarter,
    postgres_server: PostgresServer,
    clean_redis: RedisServer,
    fresh_database: str,
    jwt_secrets: SecretFiles,
) -> None:
    api = start_service(
        "microstack_api",
        postgres_server,
        clean_redis,
        database=fresh_database,
        env={contract.Env.SHUTDOWN_DRAIN_SECONDS: "1"},
    )
    token = _token(jwt_secrets)
    item = api.request("POST", "/api/items", json_body={"name": "before"}, headers=bearer(token)).json()

    async def scenario() -> None:
        # The test's own transaction holds the row lock, so the API's UPDATE
        # waits on it: a request that is slow for a real reason.
        holder = await asyncpg.connect(postgres_server.dsn(fresh_database))
        try:
            transaction = holder.transaction()
            await transaction.start()
            await holder.execute("SELECT id FROM items WHERE id = $1 FOR UPDATE", item["id"])
            slow_put = asyncio.create_task(
                asyncio.to_thread(
                    api.request,
                    "PUT",
                    f"/api/items/{item['id']}",
                    json_body={"name": "after"},
                    headers=bearer(token),
                    timeout=30.0,
                )
            )
            await _until_update_waits_on_lock(holder)

            api.send_signal(signal.SIGTERM)
            draining = await asyncio.to_thread(api.get, contract.HEALTH_PATH)
            assert draining.status == 503
            assert draining.json()["status"] == "draining"
            # Reads are refused so a proxy moves them (and itself) elsewhere;
            # writes, which no proxy would retry, are still served.
            shed = await asyncio.to_thread(api.get, "/api/instance")
            assert shed.status == 503
            assert shed.headers.get("retry-after") == "1"
            created = await asyncio.to_thread(
                api.request, "POST", "/api/items", json_body={"name": "while draining"}, headers=bearer(token)
            )
            assert created.status == 201

            # After the drain period the listener closes, but the process
            # stays up for the request still in flight.
            await asyncio.sleep(2.0)
            assert not await asyncio.to_thread(_port_accepts, api.port)
            assert not slow_put.done()
            assert api.process is not None and api.process.poll() is None

            await transaction.rollback()
            reply = await asyncio.wait_for(slow_put, 15)
            assert reply.status == 200
            assert reply.json()["name"] == "after"
        finally:
            await holder.close()

    asyncio.run(scenario())
    assert api.wait(timeout=15) == 0
    stored = query(postgres_server, fresh_database, "SELECT name FROM items WHERE id = $1", item["id"])
    assert stored[0]["name"] == "after"
    messages = [record.get("message") for record in api.log_records()]
    assert "draining before shutdown" in messages
    assert messages[-1] == "stopped"


async def _until_update_waits_on_lock(connection: asyncpg.Connection) -> None:
    for _ in range(200):
        # Statistics views are snapshotted per transaction; the holder is
        # inside one, so drop the snapshot to see the present.
        await connection.execute("SELECT pg_stat_clear_snapshot()")
        waiting = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE items%' AND pid <> pg_backend_pid()"
        )
        if waiting:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the API's UPDATE never started waiting on the row lock")


def test_service_waits_for_postgres_at_start_and_starts_without_redis(
    start_service: ServiceStarter, private_postgres: PostgresServer, private_redis: RedisServer
) -> None:
    # Containers start in any order: PostgreSQL may come up after the service,
    # Redis may not be there at all.
    private_postgres.stop()
    private_redis.stop()
    api = start_service("microstack_api", private_postgres, private_redis, wait_ready=False)
    # Wait for the line rather than a fixed time: on a loaded machine the
    # interpreter alone can take seconds to import the service.
    deadline = time.monotonic() + 20.0
    while not any(record.get("message") == "postgres not reachable yet" for record in api.log_records()):
        assert time.monotonic() < deadline, "the service never said it was waiting for PostgreSQL"
        assert api.process is not None and api.process.poll() is None, "the service keeps waiting for PostgreSQL"
        time.sleep(0.1)
    time.sleep(1.0)
    assert api.process is not None and api.process.poll() is None, "the service keeps waiting for PostgreSQL"

    private_postgres.start()
    api.wait_healthy(timeout=15)
    report = api.get(contract.HEALTH_PATH).json()
    assert report["status"] == "degraded"
    assert report["checks"]["redis"]["healthy"] is False
    assert api.get("/api/items").status == 200


def test_a_hung_redis_costs_bounded_time_not_availability(
    start_service: ServiceStarter,
    postgres_server: PostgresServer,
    private_redis: RedisServer,
    fresh_database: str,
    jwt_secrets: SecretFiles,
) -> None:
    api = start_service("microstack_api", postgres_server, private_redis, database=fresh_database)
    created = api.request("POST", "/api/items", json_body={"name": "x"}, headers=bearer(_token(jwt_secrets))).json()
    assert private_redis.process is not None
    # SIGSTOP: the port still accepts connections but nothing answers, the
    # worst case for a client without timeouts.
    private_redis.process.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        read = api.get(f"/api/items/{created['id']}")
        read_seconds = time.monotonic() - started
        started = time.monotonic()
        health = api.get(contract.HEALTH_PATH)
        health_seconds = time.monotonic() - started
    finally:
        private_redis.process.send_signal(signal.SIGCONT)
    assert read.status == 200
    assert read.json()["name"] == "x"
    assert read_seconds < 1.5
    assert health.status == 200
    assert health.json()["status"] == "degraded"
    # Within HAProxy's check timeout at the shortest interval (a quarter of 1 s):
    # a hung cache must not make the proxy take the replica out.
    assert health_seconds < HealthCheck(interval_seconds=1).timeout, health_seconds
