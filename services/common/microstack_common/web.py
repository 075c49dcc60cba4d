"""The FastAPI application both services are built on.

`create_service_app` wires what api and auth share: settings, JSON logs, the
request middleware, the PostgreSQL pool with migrations, the Redis client,
`/health`, and error handlers that keep every malformed input a 4xx. Routes
reach the pool, Redis and settings through the dependencies below, never
through module globals, so one process could host two apps in a test.

Error responses have one shape, `{"detail": ...}`; validation errors add
`errors` with the location and reason of each problem (without echoing the
offending input, which may be huge or not even text).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.asyncio import Redis

from microstack_common import contract
from microstack_common.cache import create_redis
from microstack_common.db import create_pool, migrate
from microstack_common.health import health_report
from microstack_common.lifecycle import Lifecycle
from microstack_common.middleware import RequestContextMiddleware
from microstack_common.settings import Settings
from microstack_common.tokens import Claims, InvalidTokenError, verify_token

logger = logging.getLogger(__name__)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


def get_redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


def bearer_claims(request: Request, settings: Annotated[Settings, Depends(get_settings)]) -> Claims:
    """The verified claims of the request's `Authorization: Bearer` token, else 401."""
    header = request.headers.get("authorization")
    if not header:
        raise _unauthorized("missing bearer token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("malformed Authorization header; expected 'Bearer <token>'")
    try:
        return verify_token(settings.jwt_signing_key, token.strip())
    except InvalidTokenError as error:
        raise _unauthorized(str(error)) from None


SettingsDep = Annotated[Settings, Depends(get_settings)]
PoolDep = Annotated[asyncpg.Pool, Depends(get_pool)]
RedisDep = Annotated[Redis, Depends(get_redis)]
ClaimsDep = Annotated[Claims, Depends(bearer_claims)]


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = [
        {
            "loc": [str(part) for part in problem.get("loc", ())],
            "msg": str(problem.get("msg", "")),
            "type": str(problem.get("type", "")),
        }
        for problem in error.errors()
    ]
    reason = "; ".join(f"{'.'.join(p['loc'])}: {p['msg']}" for p in problems)
    return JSONResponse({"detail": f"invalid request: {reason}", "errors": problems}, 422)


async def _database_unavailable(request: Request, error: Exception) -> JSONResponse:
    logger.warning("database unavailable", extra={"error": f"{type(error).__name__}: {error}"})
    return JSONResponse({"detail": "database unavailable, try again"}, 503, headers={"Retry-After": "1"})


def create_service_app(
    settings: Settings,
    *,
    title: str,
    version: str,
    schema_owner: str,
    migrations: Sequence[str],
    routers: Sequence[APIRouter],
    lifecycle: Lifecycle,
) -> FastAPI:
    """Build the app; the lifespan connects, migrates, and closes on shutdown.

    `schema_owner` names the migration history (`schema_migrations.service`).
    It is fixed by the code, not taken from SERVICE_NAME: renaming a
    deployment must not make it replay migrations that already ran.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(settings)
        redis = create_redis(settings)
        try:
            applied = await migrate(pool, schema_owner, migrations)
            app.state.pool = pool
            app.state.redis = redis
            logger.info(
                "started",
                extra={"port": settings.port, "migrations_applied": applied},
            )
            yield
        finally:
            await asyncio.wait_for(pool.close(), 10)
            await redis.aclose()

    app = FastAPI(title=title, version=version, lifespan=lifespan)
    app.state.settings = settings
    app.state.lifecycle = lifecycle
    app.add_middleware(
        RequestContextMiddleware,
        instance=settings.instance_name,
        max_body_bytes=contract.MAX_BODY_BYTES,
        lifecycle=lifecycle,
    )
    app.add_exception_handler(RequestValidationError, _validation_error)
    for error_type in (
        asyncpg.PostgresConnectionError,
        asyncpg.InterfaceError,
        asyncpg.CannotConnectNowError,
        asyncpg.QueryCanceledError,
        ConnectionError,
        TimeoutError,
    ):
        app.add_exception_handler(error_type, _database_unavailable)

    @app.get(contract.HEALTH_PATH, tags=["health"])
    async def health(request: Request) -> JSONResponse:
        """Introspective health: 200 ok/degraded, 503 failing/draining."""
        code, body = await health_report(
            service=settings.service_name,
            instance=settings.instance_name,
            pool=request.app.state.pool,
            redis=request.app.state.redis,
            lifecycle=lifecycle,
        )
        return JSONResponse(body, status_code=code)

    for router in routers:
        app.include_router(router)
    return app
