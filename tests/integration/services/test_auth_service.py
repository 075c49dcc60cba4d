"""The auth service end to end against real PostgreSQL: register, login, verify."""

from __future__ import annotations

import time

import jwt

from tests.support.servers import PostgresServer, RedisServer, SecretFiles, ServiceStarter
from tests.support.service_stack import AuthStack, bearer


def test_register_login_verify_flow(auth_stack: AuthStack) -> None:
    credentials = {"username": "alice", "password": "s3cret-pass"}
    registered = auth_stack.auth.request("POST", "/auth/register", json_body=credentials)
    assert registered.status == 201
    body = registered.json()
    assert body["username"] == "alice"
    assert isinstance(body["id"], int)

    login = auth_stack.auth.request("POST", "/auth/login", json_body=credentials)
    assert login.status == 200
    token = login.json()
    assert token["token_type"] == "bearer"
    assert token["expires_in"] == 900

    verified = auth_stack.auth.get("/auth/verify", headers=bearer(token["access_token"]))
    assert verified.status == 200
    claims = verified.json()
    assert claims["sub"] == str(body["id"])
    assert claims["username"] == "alice"
    assert 0 < claims["exp"] - time.time() <= 900


def test_passwords_are_stored_as_argon2id_hashes(auth_stack: AuthStack) -> None:
    auth_stack.register("bob", "plain-text-never")
    rows = auth_stack.query("SELECT password_hash FROM users WHERE username = 'bob'")
    stored = rows[0]["password_hash"]
    assert stored.startswith("$argon2id$")
    assert "plain-text-never" not in stored


def test_duplicate_username_is_409_regardless_of_case(auth_stack: AuthStack) -> None:
    auth_stack.register("carol")
    for name in ("carol", "CAROL"):
        reply = auth_stack.auth.request(
            "POST", "/auth/register", json_body={"username": name, "password": "another-pass"}
        )
        assert reply.status == 409, name
        assert "already taken" in reply.json()["detail"]


INVALID_REGISTRATIONS = {
    "username too short": {"username": "ab", "password": "long-enough"},
    "space in username": {"username": "has space", "password": "long-enough"},
    "password too short": {"username": "dave", "password": "short"},
    "password missing": {"username": "dave"},
    "unknown field": {"username": "dave", "password": "long-enough", "admin": True},
    "NUL in password": {"username": "dave", "password": "nul\u0000inside"},
    "username not a string": {"username": 42, "password": "long-enough"},
    "body not an object": [],
}


def test_invalid_registrations_are_422_with_a_reason(auth_stack: AuthStack) -> None:
    for name, body in INVALID_REGISTRATIONS.items():
        reply = auth_stack.auth.request("POST", "/auth/register", json_body=body)
        assert reply.status == 422, name
        assert reply.json()["detail"].startswith("invalid request:"), name
    assert auth_stack.query("SELECT count(*) AS n FROM users")[0]["n"] == 0


def test_registration_with_broken_json_is_422(auth_stack: AuthStack) -> None:
    reply = auth_stack.auth.request(
        "POST", "/auth/register", body=b'{"username": "x",', headers={"Content-Type": "application/json"}
    )
    assert reply.status == 422
    assert "json" in reply.json()["detail"].lower()


def test_wrong_password_and_unknown_user_are_the_same_401(auth_stack: AuthStack) -> None:
    auth_stack.register("erin", "right-password")
    wrong = auth_stack.auth.request("POST", "/auth/login", json_body={"username": "erin", "password": "wrong-password"})
    unknown = auth_stack.auth.request("POST", "/auth/login", json_body={"username": "nobody", "password": "whatever1"})
    assert wrong.status == unknown.status == 401
    assert wrong.json() == unknown.json()


def test_login_is_case_insensitive_on_username(auth_stack: AuthStack) -> None:
    auth_stack.register("Frank", "frank-password")
    reply = auth_stack.auth.request(
        "POST", "/auth/login", json_body={"username": "frank", "password": "frank-password"}
    )
    assert reply.status == 200


def _token(key: str, **overrides: object) -> str:
    now = int(time.time())
    claims = {"sub": "1", "username": "alice", "iat": now, "exp": now + 60, "iss": "microstack-auth", **overrides}
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key, algorithm="HS256")


def test_verify_rejects_missing_malformed_and_forged_tokens(auth_stack: AuthStack, jwt_secrets: SecretFiles) -> None:
    key = jwt_secrets.jwt_signing_key
    # PyJWT's annotation of `key` leaves out None, the only key alg "none" accepts.
    unsigned = jwt.encode(
        {"sub": "1", "username": "a", "exp": int(time.time()) + 60},
        None,  # type: ignore[arg-type]
        algorithm="none",
    )
    cases = {
        "missing": {},
        "not bearer": {"Authorization": f"Basic {_token(key)}"},
        "empty bearer": {"Authorization": "Bearer "},
        "garbage": bearer("not.a.jwt"),
        "other key": bearer(_token("another-signing-key-of-sufficient-length-0123456789")),
        "alg none": bearer(unsigned),
        "expired": bearer(_token(key, iat=int(time.time()) - 120, exp=int(time.time()) - 60)),
        "no exp": bearer(_token(key, exp=None)),
        "wrong issuer": bearer(_token(key, iss="someone-else")),
    }
    for name, headers in cases.items():
        reply = auth_stack.auth.get("/auth/verify", headers=headers)
        assert reply.status == 401, name
        assert reply.header("WWW-Authenticate") == "Bearer", name
    assert auth_stack.auth.get("/auth/verify", headers=bearer(_token(key))).status == 200


def test_expired_token_from_login_is_rejected(
    start_service: ServiceStarter, postgres_server: PostgresServer, clean_redis: RedisServer, fresh_database: str
) -> None:
    auth = start_service(
        "microstack_auth", postgres_server, clean_redis, database=fresh_database, env={"JWT_TTL_SECONDS": "1"}
    )
    auth.request("POST", "/auth/register", json_body={"username": "gina", "password": "gina-password"})
    token = auth.request("POST", "/auth/login", json_body={"username": "gina", "password": "gina-password"}).json()
    assert token["expires_in"] == 1
    assert auth.get("/auth/verify", headers=bearer(token["access_token"])).status == 200
    time.sleep(2.1)
    expired = auth.get("/auth/verify", headers=bearer(token["access_token"]))
    assert expired.status == 401
    assert "expired" in expired.json()["detail"]
