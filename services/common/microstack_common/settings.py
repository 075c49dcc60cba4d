"""Service settings read once from the environment, secrets from `*_FILE` paths.

Secrets never arrive as environment values (`docker inspect` would show
them): the environment names a file and the value is read from it. Every
error names the variable, the value given and what is expected, because the
reader is an operator looking at a container that will not start.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from microstack_common.contract import Env


class SettingsError(ValueError):
    """The environment does not describe a runnable service."""


class Settings(BaseModel):
    """Everything a microstack service needs to run, already validated."""

    model_config = ConfigDict(frozen=True)

    service_name: str
    instance_name: str
    host: str = "0.0.0.0"
    port: int = Field(ge=1, le=65535)
    log_level: str = "INFO"
    database_host: str = "postgres"
    database_port: int = Field(default=5432, ge=1, le=65535)
    database_name: str = "microstack"
    database_user: str = "microstack"
    database_password: str = Field(repr=False)
    redis_host: str = "redis"
    redis_port: int = Field(default=6379, ge=1, le=65535)
    redis_password: str | None = Field(default=None, repr=False)
    jwt_signing_key: str = Field(repr=False)
    jwt_ttl_seconds: int = Field(default=900, ge=1)
    # Seconds between SIGTERM and closing the listener, during which /health
    # answers 503 so proxies take the instance out before it stops accepting.
    shutdown_drain_seconds: float = Field(default=3.0, ge=0)

    @classmethod
    def from_env(
        cls,
        *,
        service_name: str,
        default_port: int,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """Build settings from `environ` (the process environment by default)."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {
            "service_name": env.get(Env.SERVICE_NAME, service_name),
            "instance_name": env.get(Env.INSTANCE_NAME) or socket.gethostname(),
            "host": env.get(Env.HOST, "0.0.0.0"),
            "port": _int(env, Env.PORT, default_port),
            "log_level": env.get(Env.LOG_LEVEL, "INFO").upper(),
            "database_host": env.get(Env.DATABASE_HOST, "postgres"),
            "database_port": _int(env, Env.DATABASE_PORT, 5432),
            "database_name": env.get(Env.DATABASE_NAME, "microstack"),
            "database_user": env.get(Env.DATABASE_USER, "microstack"),
            "database_password": _secret(env, Env.DATABASE_PASSWORD_FILE, required=True),
            "redis_host": env.get(Env.REDIS_HOST, "redis"),
            "redis_port": _int(env, Env.REDIS_PORT, 6379),
            "redis_password": _secret(env, Env.REDIS_PASSWORD_FILE, required=False),
            "jwt_signing_key": _secret(env, Env.JWT_SIGNING_KEY_FILE, required=True),
            "jwt_ttl_seconds": _int(env, Env.JWT_TTL_SECONDS, 900),
            "shutdown_drain_seconds": _float(env, Env.SHUTDOWN_DRAIN_SECONDS, 3.0),
        }
        if values["log_level"] not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise SettingsError(
                f"{Env.LOG_LEVEL}={values['log_level']!r} is not a log level; "
                "use DEBUG, INFO, WARNING, ERROR or CRITICAL"
            )
        try:
            return cls.model_validate(values)
        except ValueError as error:
            raise SettingsError(f"invalid service settings: {error}") from error


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None


def _secret(env: Mapping[str, str], name: str, *, required: bool) -> str | None:
    path = env.get(name)
    if not path:
        if required:
            raise SettingsError(
                f"{name} is not set; it must name a file holding the secret "
                "(secrets are never passed as environment values)"
            )
        return None
    try:
        value = Path(path).read_text().strip()
    except OSError as error:
        raise SettingsError(f"{name}={path!r} cannot be read: {error.strerror}") from None
    if not value:
        raise SettingsError(f"{name}={path!r} is empty")
    return value
