"""The services' shared runtime pieces that need no servers: settings, tokens, log lines."""

from __future__ import annotations

import io
import json
import logging
import time
from pathlib import Path

import jwt
import pytest

from microstack_common.contract import API_PORT, Env
from microstack_common.logs import JsonFormatter, request_id_var
from microstack_common.settings import Settings, SettingsError
from microstack_common.tokens import InvalidTokenError, issue_token, verify_token


@pytest.fixture
def secret_env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "db").write_text("db-password\n")
    (tmp_path / "jwt").write_text("k" * 40)
    return {Env.DATABASE_PASSWORD_FILE: str(tmp_path / "db"), Env.JWT_SIGNING_KEY_FILE: str(tmp_path / "jwt")}


def test_settings_read_secrets_from_files_and_apply_defaults(secret_env: dict[str, str]) -> None:
    settings = Settings.from_env(service_name="api", default_port=API_PORT, environ=secret_env)
    assert settings.database_password == "db-password"
    assert settings.jwt_signing_key == "k" * 40
    assert (settings.host, settings.port, settings.database_host) == ("0.0.0.0", API_PORT, "postgres")
    assert settings.redis_password is None
    assert "db-password" not in repr(settings)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({Env.DATABASE_PASSWORD_FILE: ""}, "DATABASE_PASSWORD_FILE is not set"),
        ({Env.JWT_SIGNING_KEY_FILE: "/nonexistent/key"}, "JWT_SIGNING_KEY_FILE='/nonexistent/key' cannot be read"),
        ({Env.PORT: "http"}, "PORT='http' is not an integer"),
        ({Env.PORT: "70000"}, "port"),
        ({Env.LOG_LEVEL: "loud"}, "LOG_LEVEL='LOUD' is not a log level"),
        ({Env.SHUTDOWN_DRAIN_SECONDS: "soon"}, "SHUTDOWN_DRAIN_SECONDS='soon' is not a number"),
    ],
)
def test_bad_settings_name_the_variable_and_value(
    secret_env: dict[str, str], override: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        Settings.from_env(service_name="api", default_port=API_PORT, environ={**secret_env, **override})


def test_empty_secret_file_is_refused(secret_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(SettingsError, match="is empty"):
        Settings.from_env(
            service_name="api",
            default_port=API_PORT,
            environ={**secret_env, Env.DATABASE_PASSWORD_FILE: str(tmp_path / "empty")},
        )


def test_issued_token_verifies_and_carries_its_claims() -> None:
    token, expires = issue_token("s" * 40, subject="7", username="ann", ttl_seconds=60)
    claims = verify_token("s" * 40, token)
    assert (claims.sub, claims.username, claims.exp) == ("7", "ann", expires)
    assert 55 <= expires - time.time() <= 60


def test_tokens_with_another_algorithm_or_key_are_refused() -> None:
    now = int(time.time())
    payload = {"sub": "7", "username": "ann", "iat": now, "exp": now + 60, "iss": "microstack-auth"}
    with pytest.raises(InvalidTokenError):
        verify_token("s" * 64, jwt.encode(payload, "s" * 64, algorithm="HS512"))
    # PyJWT's annotation of `key` leaves out None, the only key alg "none" accepts.
    unsigned = jwt.encode(payload, None, algorithm="none")  # type: ignore[arg-type]
    with pytest.raises(InvalidTokenError):
        verify_token("s" * 40, unsigned)
    with pytest.raises(InvalidTokenError):
        verify_token("s" * 40, jwt.encode(payload, "t" * 40, algorithm="HS256"))
    with pytest.raises(InvalidTokenError, match="expired"):
        verify_token("s" * 40, jwt.encode({**payload, "exp": now - 1}, "s" * 40, algorithm="HS256"))


def test_log_lines_are_json_with_the_agreed_keys_and_extra_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("api", "api-3"))
    logger = logging.getLogger("test.service.runtime")
    logger.addHandler(handler)
    logger.propagate = False
    token = request_id_var.set("req-1")
    try:
        logger.warning("cache read failed", extra={"key": "item:1"})
    finally:
        request_id_var.reset(token)
        logger.removeHandler(handler)
    record = json.loads(stream.getvalue())
    assert record["message"] == "cache read failed"
    assert (record["level"], record["service"], record["instance"]) == ("WARNING", "api", "api-3")
    assert record["request_id"] == "req-1"
    assert record["key"] == "item:1"
    assert record["timestamp"].endswith("+00:00")


def test_an_app_that_fails_to_build_exits_1_with_one_json_line(
    secret_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from microstack_common import lifecycle

    for key, value in secret_env.items():
        monkeypatch.setenv(key, value)

    def broken(_settings: Settings, _lifecycle: lifecycle.Lifecycle) -> object:
        raise RuntimeError("release v3 cannot start")

    with pytest.raises(SystemExit) as exited:
        lifecycle.run_service(service_name="api", default_port=API_PORT, build_app=broken)  # type: ignore[arg-type]
    assert exited.value.code == 1
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in (captured.out + captured.err).splitlines() if line.startswith("{")]
    failure = next(line for line in lines if "cannot start" in line["message"])
    assert failure["level"] == "CRITICAL"
    assert "release v3 cannot start" in failure["exception"]
