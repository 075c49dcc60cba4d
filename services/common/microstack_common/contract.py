"""Names shared by the Pulumi program, the services and the tests.

Everything that two of those three must agree on lives here and nowhere else:
ports, paths of endpoints, environment variable names, where secret files are
mounted inside containers, and the network aliases containers find each other
by. This module must stay free of third-party imports: the Pulumi program
imports it without the services' dependencies installed.
"""

from __future__ import annotations

from typing import Final

# --- Ports inside containers (the proxy maps its own ports from config) ---
API_PORT: Final = 8000
AUTH_PORT: Final = 8001
POSTGRES_PORT: Final = 5432
REDIS_PORT: Final = 6379
ELASTICSEARCH_PORT: Final = 9200
KIBANA_PORT: Final = 5601
GELF_PORT: Final = 12201  # UDP, Logstash's GELF input

# --- HTTP paths ---
HEALTH_PATH: Final = "/health"
API_PREFIX: Final = "/api"
AUTH_PREFIX: Final = "/auth"
REQUEST_ID_HEADER: Final = "X-Request-ID"
INSTANCE_HEADER: Final = "X-Instance"

# Largest request body a service or the proxy accepts.
MAX_BODY_BYTES: Final = 1024 * 1024

# Seconds Docker waits after SIGTERM before SIGKILL; the services finish
# in-flight requests and exit well within it.
STOP_TIMEOUT_SECONDS: Final = 30
# Connections one service replica's pool holds at most; Postgres must accept
# this many per replica (microstack:postgres.maxConnections is checked against it).
DATABASE_POOL_SIZE: Final = 10

# --- Secret files inside containers (mounted read-only by upload) ---
SECRETS_DIR: Final = "/run/secrets"
POSTGRES_PASSWORD_FILE: Final = f"{SECRETS_DIR}/postgres_password"
REDIS_PASSWORD_FILE: Final = f"{SECRETS_DIR}/redis_password"
JWT_SIGNING_KEY_FILE: Final = f"{SECRETS_DIR}/jwt_signing_key"
# The Elasticsearch passwords, read by the ELK containers and their setup job.
ELASTIC_PASSWORD_FILE: Final = f"{SECRETS_DIR}/elastic_password"
KIBANA_SYSTEM_PASSWORD_FILE: Final = f"{SECRETS_DIR}/kibana_system_password"

# Unprivileged uid the api and auth images run as (their Dockerfiles' default
# SERVICE_UID build arg); uploaded secret files must be readable by it.
SERVICE_UID: Final = 10001


class Env:
    """Environment variable names the services read (settings.py)."""

    SERVICE_NAME: Final = "SERVICE_NAME"
    INSTANCE_NAME: Final = "INSTANCE_NAME"
    PORT: Final = "PORT"
    # Listen address; containers use the default 0.0.0.0, tests bind 127.0.0.1.
    HOST: Final = "HOST"
    LOG_LEVEL: Final = "LOG_LEVEL"
    DATABASE_HOST: Final = "DATABASE_HOST"
    DATABASE_PORT: Final = "DATABASE_PORT"
    DATABASE_NAME: Final = "DATABASE_NAME"
    DATABASE_USER: Final = "DATABASE_USER"
    DATABASE_PASSWORD_FILE: Final = "DATABASE_PASSWORD_FILE"
    REDIS_HOST: Final = "REDIS_HOST"
    REDIS_PORT: Final = "REDIS_PORT"
    REDIS_PASSWORD_FILE: Final = "REDIS_PASSWORD_FILE"
    JWT_SIGNING_KEY_FILE: Final = "JWT_SIGNING_KEY_FILE"
    JWT_TTL_SECONDS: Final = "JWT_TTL_SECONDS"
    # Seconds a service keeps serving (with /health at 503) after SIGTERM.
    SHUTDOWN_DRAIN_SECONDS: Final = "SHUTDOWN_DRAIN_SECONDS"


class Alias:
    """DNS names containers use to reach each other on Docker networks."""

    POSTGRES: Final = "postgres"
    REDIS: Final = "redis"
    API: Final = "api"
    AUTH: Final = "auth"
    PROXY: Final = "proxy"
    LOGSTASH: Final = "logstash"
    ELASTICSEARCH: Final = "elasticsearch"
    KIBANA: Final = "kibana"
