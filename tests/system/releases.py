"""Releases of the API service for the day-2 tests: copies of services/ with one change each.

The program tags the service image with a digest of services/common and
services/<service> under `components.service._PROJECT_DIR`, and the realizer
builds from `<project root>/services`. A test points both at a temporary
project root holding a copy of services/ and deploys a release by rewriting
that copy from the repository's own services/ (never modified) plus the
release's edits: deploying a release again gives the same bytes, so the same
image tag, as redeploying an earlier commit would.

Each edit appends to a module of microstack_api, rebinding names the rest of
the service looks up when it runs, so the releases do not depend on the
exact text of the code they extend.
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.support.program import ROOT

SERVICES = "services"
RELEASE_HEADER = "X-Release"
# The repository's release answers without the header.
FIRST_RELEASE = "v1"
COLUMN = "priority"

Edit = Callable[[Path], None]


@dataclass(frozen=True)
class Release:
    """A version of the services' source: the repository's, plus `edits` applied to services/."""

    name: str
    edits: tuple[Edit, ...] = ()


def _append(relative: str, code: str) -> Edit:
    def edit(services: Path) -> None:
        path = services / relative
        path.write_text(path.read_text() + "\n\n" + textwrap.dedent(code).strip() + "\n")

    return edit


def release_header(name: str) -> Edit:
    """Every API answer says which release answered (`X-Release`)."""
    return _append(
        "api/microstack_api/app.py",
        f'''
        _create_app_of_the_release_before = create_app


        def create_app(settings: Settings, lifecycle: Lifecycle) -> FastAPI:
            app = _create_app_of_the_release_before(settings, lifecycle)

            @app.middleware("http")
            async def release_header(request, call_next):  # type: ignore[no-untyped-def]
                response = await call_next(request)
                response.headers["{RELEASE_HEADER}"] = "{name}"
                return response

            return app
        ''',
    )


def fails_at_start(name: str) -> Edit:
    """The service exits at start (a crash loop under the restart policy): its health check never passes."""
    return _append(
        "api/microstack_api/app.py",
        f"""
        def create_app(settings: Settings, lifecycle: Lifecycle) -> FastAPI:
            raise RuntimeError("release {name} cannot start: broken on purpose by the day-2 test")
        """,
    )


def adds_a_column(column: str = COLUMN) -> Edit:
    """Expand: a migration adds `column` with a default, and the code reads and writes it.

    Old replicas keep working against the new schema (they name their
    columns, and inserts without the column get the default); the new code
    accepts items without it, such as an old replica cached in Redis.
    """
    edits = (
        _append(
            "api/microstack_api/schema.py",
            f"""
            MIGRATIONS = (*MIGRATIONS, "ALTER TABLE items ADD COLUMN {column} integer NOT NULL DEFAULT 0")
            """,
        ),
        _append(
            "api/microstack_api/models.py",
            f"""
            class ItemIn(ItemIn):  # type: ignore[no-redef]
                {column}: int = 0


            class Item(Item):  # type: ignore[no-redef]
                {column}: int = 0


            class ItemPage(ItemPage):  # type: ignore[no-redef]
                items: list[Item]
            """,
        ),
        _append(
            "api/microstack_api/repository.py",
            f"""
            _COLUMNS = _COLUMNS + ", {column}"


            async def create_item(pool: asyncpg.Pool, item: ItemIn, owner: str) -> Item:
                row = await pool.fetchrow(
                    f"INSERT INTO items (name, description, owner, {column}) VALUES ($1, $2, $3, $4) "
                    f"RETURNING {{_COLUMNS}}",
                    item.name,
                    item.description,
                    owner,
                    item.{column},
                )
                return Item(**dict(row))


            async def update_item(pool: asyncpg.Pool, item_id: int, item: ItemIn) -> Item | None:
                row = await pool.fetchrow(
                    f"UPDATE items SET name = $2, description = $3, {column} = $4, updated_at = now() "
                    f"WHERE id = $1 RETURNING {{_COLUMNS}}",
                    item_id,
                    item.name,
                    item.description,
                    item.{column},
                )
                return Item(**dict(row)) if row else None
            """,
        ),
    )

    def edit(services: Path) -> None:
        for each in edits:
            each(services)

    return edit


class SourceTree:
    """A project root of its own whose services/ the test rewrites for each release."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.release = Release(FIRST_RELEASE)
        self.deploy(self.release)

    @property
    def services(self) -> Path:
        return self.root / SERVICES

    def deploy(self, release: Release) -> None:
        """services/ becomes the repository's plus the release's edits."""
        shutil.rmtree(self.services, ignore_errors=True)
        shutil.copytree(
            ROOT / SERVICES,
            self.services,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build"),
        )
        for edit in release.edits:
            edit(self.services)
        self.release = release
