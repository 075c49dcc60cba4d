"""What Logstash will receive: the log lines of the real services and the real proxies.

Logstash cannot run here, so its pipeline is kept simple (GELF in, the line
parsed as JSON, Elasticsearch out) and these tests check its input instead:
every line a service writes to stdout or stderr is one JSON object with the
fields the index template maps, and a request followed through nginx or
HAProxy carries one request id in the proxy's access log and in the service's
lines, which is what the documented Kibana query `request_id: "<id>"` finds.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from components.elk import render
from components.proxy.model import Cache, Listen, ProxyKind, ProxyModel, Server, UpstreamGroup
from microstack_common import contract
from tests.integration.proxy.harness import ProxyProcess, private_dir, proxy_paths, worker_user
from tests.support.servers import (
    PostgresServer,
    RedisServer,
    SecretFiles,
    ServiceProcess,
    free_port,
    service_env,
)

SHARED_FIELDS = ("timestamp", "level", "message", "service", "instance", "request_id")
LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


class Services:
    """One API and one auth process on real PostgreSQL and Redis."""

    def __init__(self, postgres: PostgresServer, redis: RedisServer, secrets: SecretFiles) -> None:
        self.api = ServiceProcess(
            "microstack_api", service_env(postgres, redis, secrets, service="api", instance="api-logs-1")
        )
        self.auth = ServiceProcess(
            "microstack_auth", service_env(postgres, redis, secrets, service="auth", instance="auth-logs-1")
        )

    def raw_lines(self, service: ServiceProcess) -> list[str]:
        return [line for line in service.log_path.read_text(errors="replace").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def services() -> Iterator[Services]:
    with PostgresServer() as postgres, RedisServer() as redis:
        running = Services(postgres, redis, SecretFiles.create())
        running.api.start()
        running.auth.start()
        try:
            yield running
        finally:
            running.api.stop()
            running.auth.stop()


@pytest.fixture(scope="module", params=[ProxyKind.NGINX, ProxyKind.HAPROXY], ids=["nginx", "haproxy"])
def proxy(request: pytest.FixtureRequest, services: Services) -> Iterator[ProxyProcess]:
    root = private_dir("microstack-logs-proxy-")
    model = ProxyModel(
        upstreams=(
            UpstreamGroup("api", (Server("127.0.0.1", services.api.port),)),
            UpstreamGroup("auth", (Server("127.0.0.1", services.auth.port),)),
        ),
        listen=Listen("127.0.0.1", free_port(), free_port()),
        cache=Cache(enabled=False, directory=str(root / "cache")),
        paths=proxy_paths(root),
        user=worker_user(),
    )
    process = ProxyProcess(request.param, model, root)
    try:
        yield process.start()
    finally:
        process.stop()
        shutil.rmtree(root, ignore_errors=True)


def send(
    port: int, method: str, path: str, *, request_id: str | None = None, body: Any = None
) -> tuple[int, dict[str, str]]:
    """One request through the proxy; returns the status and the lower-cased headers."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if request_id is not None:
        headers[contract.REQUEST_ID_HEADER] = request_id
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, {k.lower(): v for k, v in reply.headers.items()}
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}


def eventually(find: Callable[[], list[dict[str, Any]]], timeout: float = 5.0) -> list[dict[str, Any]]:
    """Poll until `find` returns something: a process writes its log line after it answers."""
    deadline = time.monotonic() + timeout
    while True:
        found = find()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def service_records(service: ServiceProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in service.log_path.read_text(errors="replace").splitlines() if line.strip()]


def make_traffic(proxy: ProxyProcess) -> None:
    port = proxy.http_port
    user = f"logs_{uuid.uuid4().hex[:10]}"
    send(port, "POST", "/auth/register", body={"username": user, "password": "correct horse battery"})
    send(port, "POST", "/auth/login", body={"username": user, "password": "wrong password here"})
    send(port, "GET", "/api/items")
    send(port, "GET", "/api/items/999999")
    send(port, "POST", "/api/items", body={"name": "no token"})


# --- Every line is one JSON object with the shared fields ---------------------------


@pytest.mark.parametrize("which", ["api", "auth"])
def test_every_service_line_is_one_json_object_with_the_shared_fields(
    services: Services, proxy: ProxyProcess, which: str
) -> None:
    make_traffic(proxy)
    service: ServiceProcess = getattr(services, which)
    lines = services.raw_lines(service)
    assert len(lines) >= 5, f"too few lines to judge: {lines}"
    for line in lines:
        record = json.loads(line)
        assert isinstance(record, dict), line
        missing = [name for name in SHARED_FIELDS if name not in record]
        assert not missing, f"{which} line lacks {missing}: {line}"
        assert record["service"] == which
        assert record["instance"] == service.env[contract.Env.INSTANCE_NAME]
        assert record["level"] in LEVELS, line
        assert isinstance(record["message"], str) and record["message"], line
        assert datetime.fromisoformat(record["timestamp"]).tzinfo is not None, line


@pytest.mark.parametrize("which", ["api", "auth"])
def test_service_fields_have_the_types_the_index_template_maps(
    services: Services, proxy: ProxyProcess, which: str
) -> None:
    make_traffic(proxy)
    for record in service_records(getattr(services, which)):
        for name, mapping in render.LOG_FIELD_MAPPINGS.items():
            value = record.get(name)
            if mapping["type"] in ("keyword", "text"):
                # A number or an object under a keyword field would be indexed
                # differently from line to line, or rejected.
                assert value is None or isinstance(value, str), f"{name}={value!r} in {record}"
            elif mapping["type"] == "date":
                assert isinstance(value, str) and datetime.fromisoformat(value), f"{name}={value!r}"


def test_lines_inside_a_request_carry_its_id(services: Services, proxy: ProxyProcess) -> None:
    make_traffic(proxy)
    records = service_records(services.api) + service_records(services.auth)
    access = [r for r in records if r.get("message") == "request" and r.get("path", "").startswith(("/api", "/auth"))]
    assert access, "no access lines from the services"
    assert all(isinstance(r["request_id"], str) and r["request_id"] for r in access)


# --- One request id across the proxy and the service -------------------------------


@pytest.mark.parametrize(
    ("method", "path", "which", "body"),
    [
        ("GET", "/api/items", "api", None),
        ("POST", "/auth/login", "auth", {"username": "nobody_here", "password": "not the password"}),
    ],
    ids=["api", "auth"],
)
def test_a_given_request_id_is_in_the_proxy_access_log_and_the_service_log(
    services: Services, proxy: ProxyProcess, method: str, path: str, which: str, body: Any
) -> None:
    request_id = f"trace-{uuid.uuid4().hex}"
    status, headers = send(proxy.http_port, method, path, request_id=request_id, body=body)
    assert status < 500
    assert headers[contract.REQUEST_ID_HEADER.lower()] == request_id

    in_proxy = eventually(lambda: [r for r in proxy.access_log_records() if r.get("request_id") == request_id])
    service: ServiceProcess = getattr(services, which)
    in_service = eventually(lambda: [r for r in service_records(service) if r.get("request_id") == request_id])
    assert len(in_proxy) == 1, proxy.access_log_records()[-5:]
    assert in_service, f"{request_id} not in the {which} log"
    assert in_service[-1]["path"] == path
    assert in_service[-1]["instance"] == service.env[contract.Env.INSTANCE_NAME]


def test_a_request_id_the_proxy_makes_up_reaches_the_service_log(services: Services, proxy: ProxyProcess) -> None:
    status, headers = send(proxy.http_port, "GET", "/api/items")
    assert status == 200
    request_id = headers[contract.REQUEST_ID_HEADER.lower()]
    assert request_id

    in_proxy = eventually(lambda: [r for r in proxy.access_log_records() if r.get("request_id") == request_id])
    in_service = eventually(lambda: [r for r in service_records(services.api) if r.get("request_id") == request_id])
    assert len(in_proxy) == 1
    assert in_service


def test_proxy_access_lines_are_json_objects_with_a_request_id(proxy: ProxyProcess) -> None:
    send(proxy.http_port, "GET", "/api/items", request_id=f"trace-{uuid.uuid4().hex}")
    path: Path = proxy.log_path
    lines = eventually(lambda: [{"line": line} for line in path.read_text().splitlines() if line.startswith("{")])
    assert lines
    for entry in lines:
        record = json.loads(entry["line"])
        assert isinstance(record.get("request_id"), str) and record["request_id"], entry["line"]
        assert isinstance(record.get("status"), int), entry["line"]
