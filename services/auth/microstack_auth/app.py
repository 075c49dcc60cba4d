"""The auth application: the shared service app plus the auth routes and schema."""

from __future__ import annotations

from fastapi import FastAPI

from microstack_auth.routes import router
from microstack_auth.schema import MIGRATIONS
from microstack_common.lifecycle import Lifecycle
from microstack_common.settings import Settings
from microstack_common.web import create_service_app


def create_app(settings: Settings, lifecycle: Lifecycle) -> FastAPI:
    return create_service_app(
        settings,
        title="microstack auth",
        version="0.1.0",
        schema_owner="auth",
        migrations=MIGRATIONS,
        routers=[router],
        lifecycle=lifecycle,
    )
