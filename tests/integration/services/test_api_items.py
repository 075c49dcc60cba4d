"""The API's items resource against real PostgreSQL and Redis, with tokens from the real auth service.

Cache behaviour is checked by reading Redis directly: a hit or an
invalidation is asserted from the key's presence and content, not from the
API's own `X-Cache` header alone.
"""

from __future__ import annotations

import http.client
import json
import socket

from microstack_common import contract
from tests.support.servers import ServiceStarter
from tests.support.service_stack import ServiceStack, bearer


def _create(stack: ServiceStack, token: str, name: str = "widget", description: str = "") -> dict[str, object]:
    reply = stack.api.request(
        "POST", "/api/items", json_body={"name": name, "description": description}, headers=bearer(token)
    )
    assert reply.status == 201, reply.body
    item: dict[str, object] = reply.json()
    return item


def test_crud_with_cache_aside_and_invalidation_observed_in_redis(stack: ServiceStack) -> None:
    token = stack.login()
    cache = stack.redis_client()
    item = _create(stack, token, "widget", "first")
    key = f"item:{item['id']}"
    assert cache.exists(key) == 0, "creating an item does not cache it"

    first = stack.api.get(f"/api/items/{item['id']}")
    assert first.status == 200
    assert first.header("X-Cache") == "miss"
    assert first.json() == item
    # redis-py annotates the sync client's replies as `Awaitable | Any`, as if
    # they could be the async client's (redis/redis-py#3497).
    assert json.loads(cache.get(key)) == item  # type: ignore[arg-type]
    assert 0 < cache.ttl(key) <= 300  # type: ignore[operator]

    second = stack.api.get(f"/api/items/{item['id']}")
    assert second.header("X-Cache") == "hit"
    assert second.json() == item

    # A hit is served from Redis: a value planted there is what comes back.
    planted = {**item, "description": "planted in redis"}
    cache.set(key, json.dumps(planted))
    assert stack.api.get(f"/api/items/{item['id']}").json()["description"] == "planted in redis"

    updated = stack.api.request(
        "PUT",
        f"/api/items/{item['id']}",
        json_body={"name": "widget", "description": "second"},
        headers=bearer(token),
    )
    assert updated.status == 200
    assert updated.json()["description"] == "second"
    assert cache.exists(key) == 0, "update invalidates the cached item"
    after_update = stack.api.get(f"/api/items/{item['id']}")
    assert after_update.header("X-Cache") == "miss"
    assert after_update.json()["description"] == "second"
    assert json.loads(cache.get(key))["description"] == "second"  # type: ignore[arg-type]  # redis-py#3497

    deleted = stack.api.request("DELETE", f"/api/items/{item['id']}", headers=bearer(token))
    assert deleted.status == 204
    assert deleted.body == b""
    assert cache.exists(key) == 0, "delete invalidates the cached item"
    assert stack.api.get(f"/api/items/{item['id']}").status == 404
    assert stack.query("SELECT count(*) AS n FROM items")[0]["n"] == 0


def test_items_are_stored_in_postgres_with_their_owner(stack: ServiceStack) -> None:
    username, password = stack.register("owner_one")
    token = stack.login(username, password)
    item = _create(stack, token, "stored", "row")
    rows = stack.query("SELECT name, description, owner FROM items WHERE id = $1", item["id"])
    verified = stack.auth.get("/auth/verify", headers=bearer(token)).json()
    assert [dict(row) for row in rows] == [{"name": "stored", "description": "row", "owner": verified["sub"]}]


def test_list_paginates_in_id_order_with_total(stack: ServiceStack) -> None:
    token = stack.login()
    ids = [_create(stack, token, f"item-{n}")["id"] for n in range(5)]
    page = stack.api.get("/api/items?limit=2&offset=1").json()
    assert page["total"] == 5
    assert (page["limit"], page["offset"]) == (2, 1)
    assert [item["id"] for item in page["items"]] == ids[1:3]
    default = stack.api.get("/api/items").json()
    assert default["limit"] == 20
    assert [item["id"] for item in default["items"]] == ids
    assert stack.api.get("/api/items?offset=5").json()["items"] == []


def test_writes_without_a_valid_token_are_401(stack: ServiceStack) -> None:
    token = stack.login()
    item = _create(stack, token)
    body = {"name": "x", "description": ""}
    for headers in ({}, {"Authorization": "Token abc"}, bearer("garbage"), bearer(token + "x")):
        assert stack.api.request("POST", "/api/items", json_body=body, headers=headers).status == 401
        assert stack.api.request("PUT", f"/api/items/{item['id']}", json_body=body, headers=headers).status == 401
        assert stack.api.request("DELETE", f"/api/items/{item['id']}", headers=headers).status == 401
    assert stack.query("SELECT count(*) AS n FROM items")[0]["n"] == 1


def test_another_users_token_is_403_on_update_and_delete(stack: ServiceStack) -> None:
    owner = stack.login()
    intruder = stack.login()
    item = _create(stack, owner, "mine", "hands off")
    body = {"name": "stolen", "description": ""}
    put = stack.api.request("PUT", f"/api/items/{item['id']}", json_body=body, headers=bearer(intruder))
    delete = stack.api.request("DELETE", f"/api/items/{item['id']}", headers=bearer(intruder))
    assert (put.status, delete.status) == (403, 403)
    assert stack.query("SELECT name FROM items WHERE id = $1", item["id"])[0]["name"] == "mine"


def test_unknown_item_is_404_for_every_method(stack: ServiceStack) -> None:
    token = stack.login()
    body = {"name": "x", "description": ""}
    assert stack.api.get("/api/items/999").status == 404
    assert stack.api.request("PUT", "/api/items/999", json_body=body, headers=bearer(token)).status == 404
    assert stack.api.request("DELETE", "/api/items/999", headers=bearer(token)).status == 404


def test_malformed_input_is_422_with_a_reason(stack: ServiceStack) -> None:
    token = stack.login()
    headers = {**bearer(token), "Content-Type": "application/json"}
    broken = stack.api.request("POST", "/api/items", body=b'{"name": ', headers=headers)
    assert broken.status == 422
    assert "json" in broken.json()["detail"].lower()
    bodies = {
        "name missing": {"description": "x"},
        "empty name": {"name": ""},
        "name too long": {"name": "x" * 201},
        "NUL in name": {"name": "a\u0000b"},
        "unknown field": {"name": "x", "price": 3},
        "wrong type": {"name": ["x"]},
    }
    for case, body in bodies.items():
        reply = stack.api.request("POST", "/api/items", json_body=body, headers=headers)
        assert reply.status == 422, case
        assert reply.json()["errors"], case
    lone_surrogate = b'{"name": "\\ud800"}'
    assert stack.api.request("POST", "/api/items", body=lone_surrogate, headers=headers).status == 422
    for path in ("/api/items/abc", "/api/items/0", f"/api/items/{2**63}", "/api/items?limit=0", "/api/items?limit=x"):
        assert stack.api.get(path).status == 422, path
    assert stack.query("SELECT count(*) AS n FROM items")[0]["n"] == 0


def test_body_over_the_limit_is_413_by_length_and_when_chunked(stack: ServiceStack) -> None:
    token = stack.login()
    oversized = json.dumps({"name": "x", "description": "y" * contract.MAX_BODY_BYTES}).encode()
    declared = stack.api.request(
        "POST", "/api/items", body=oversized, headers={**bearer(token), "Content-Type": "application/json"}
    )
    assert declared.status == 413

    # A huge declared length is refused from the headers alone, without
    # waiting for (or reading) the body.
    with socket.create_connection(("127.0.0.1", stack.api.port), timeout=10) as raw:
        raw.sendall(
            b"POST /api/items HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000000\r\n\r\n"
        )
        answer = raw.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"connection: close" in answer.lower()

    connection = http.client.HTTPConnection("127.0.0.1", stack.api.port, timeout=10)
    try:
        connection.putrequest("POST", "/api/items")
        connection.putheader("Authorization", f"Bearer {token}")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        chunk = b"y" * 65536
        try:
            for _ in range(contract.MAX_BODY_BYTES // len(chunk) + 2):
                connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            connection.send(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before the whole body is sent
        assert connection.getresponse().status == 413
    finally:
        connection.close()
    assert stack.query("SELECT count(*) AS n FROM items")[0]["n"] == 0


def test_instance_endpoint_and_headers_name_the_instance(stack: ServiceStack) -> None:
    reply = stack.api.get("/api/instance")
    assert reply.json() == {"service": "api", "instance": "api-t1"}
    assert reply.header(contract.INSTANCE_HEADER) == "api-t1"
    assert stack.auth.get(contract.HEALTH_PATH).header(contract.INSTANCE_HEADER) == "auth-t1"
    assert stack.api.get("/api/items/1").header(contract.INSTANCE_HEADER) == "api-t1"


def test_request_id_is_echoed_or_generated_and_logged(stack: ServiceStack) -> None:
    echoed = stack.api.get("/api/items", headers={contract.REQUEST_ID_HEADER: "trace-abc.123"})
    assert echoed.header(contract.REQUEST_ID_HEADER) == "trace-abc.123"
    generated = stack.api.get("/api/items")
    new_id = generated.header(contract.REQUEST_ID_HEADER)
    assert new_id and new_id != "trace-abc.123"
    hostile = stack.api.get("/api/items", headers={contract.REQUEST_ID_HEADER: "x" * 500})
    assert hostile.header(contract.REQUEST_ID_HEADER) != "x" * 500

    records = stack.api.log_records()
    assert all("raw" not in record for record in records), "every log line is JSON"
    for record in records:
        assert {"timestamp", "level", "message", "service", "instance", "request_id"} <= record.keys()
    access = [r for r in records if r.get("path") == "/api/items" and r["request_id"] == "trace-abc.123"]
    assert len(access) == 1
    assert access[0]["service"] == "api"
    assert access[0]["instance"] == "api-t1"
    assert access[0]["status"] == 200


def test_an_unexpected_error_is_a_500_that_can_be_traced(stack: ServiceStack) -> None:
    # A real fault rather than an injected one: the table vanished under the service.
    stack.query("DROP TABLE items")
    reply = stack.api.get("/api/items", headers={contract.REQUEST_ID_HEADER: "trace-500"})
    assert reply.status == 500
    assert reply.json() == {"detail": "internal error", "request_id": "trace-500"}
    assert reply.header(contract.REQUEST_ID_HEADER) == "trace-500"
    assert reply.header(contract.INSTANCE_HEADER) == "api-t1"
    records = stack.api.log_records()
    assert all("raw" not in record for record in records), "the traceback is inside a JSON line"
    errors = [r for r in records if r.get("request_id") == "trace-500" and r["level"] == "ERROR"]
    assert len(errors) == 1
    assert "UndefinedTableError" in errors[0]["exception"]
    assert stack.api.get(contract.HEALTH_PATH).status == 200


def test_a_write_on_one_replica_invalidates_the_cache_for_all(
    stack: ServiceStack, start_service: ServiceStarter
) -> None:
    other = start_service("microstack_api", stack.postgres, stack.redis, database=stack.database, instance="api-t2")
    token = stack.login()
    item = _create(stack, token, "shared", "v1")
    path = f"/api/items/{item['id']}"
    assert other.get(path).header("X-Cache") == "miss"
    assert other.get(path).header("X-Cache") == "hit"

    stack.api.request("PUT", path, json_body={"name": "shared", "description": "v2"}, headers=bearer(token))
    fresh = other.get(path)
    assert fresh.header("X-Cache") == "miss"
    assert fresh.header(contract.INSTANCE_HEADER) == "api-t2"
    assert fresh.json()["description"] == "v2"
