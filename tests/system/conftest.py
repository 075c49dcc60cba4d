"""Session fixtures of the system test: the engine, the images, realized stacks.

The session starts dockerd when none answers (and stops it after), builds or
reuses the images, and realizes declared stacks (stack.py). Every stack is
removed when its fixture ends, also after a failure, and leftovers of an
interrupted earlier session are removed first. The time each phase took is
printed in the terminal summary (docs/system-test.md gives the figures: a few
minutes for the stacks, about 20 more for the day-2 rollouts).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.support.binaries import binaries_required, require_binary
from tests.system.engine import docker_engine
from tests.system.gelf import GelfListener
from tests.system.images import BuiltImages, build_test_images
from tests.system.realizer import remove_abandoned
from tests.system.stack import (
    SESSION_STARTED,
    TABLES,
    TIMINGS,
    Stack,
    free_port,
    free_subnet,
    gelf_logging,
    is_elk,
    realize_stack,
    stack_config,
    unique_stack_name,
)
from tests.system.swarm import ForeignSwarm, swarm
from tests.system.timing import no_settle

_SYSTEM_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this directory `engine`: `make test` deselects them by that mark (-m "not engine")."""
    for item in items:
        if _SYSTEM_DIR in item.path.parents:
            item.add_marker(pytest.mark.engine)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the tables tests filled in, and how long the system test's phases took (only when it ran)."""
    for title, rows in TABLES.items():
        terminalreporter.section(title)
        columns = list(rows[0]) if rows else []
        widths = {c: max(len(c), *(len(row.get(c, "")) for row in rows)) for c in columns}
        terminalreporter.write_line("  ".join(c.ljust(widths[c]) for c in columns))
        for row in rows:
            terminalreporter.write_line("  ".join(row.get(c, "").ljust(widths[c]) for c in columns))
    if not TIMINGS:
        return
    terminalreporter.section("system test runtime")
    for phase, seconds in TIMINGS.items():
        terminalreporter.write_line(f"{phase}: {seconds:.1f} s")
    terminalreporter.write_line(f"total since session start: {time.monotonic() - SESSION_STARTED:.1f} s")


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    started = time.monotonic()
    with docker_engine(require_binary("dockerd")) as client:
        remove_abandoned(client)
        TIMINGS["engine ready"] = time.monotonic() - started
        yield client


@pytest.fixture(scope="session")
def test_images(docker_client: docker.DockerClient) -> BuiltImages:
    started = time.monotonic()
    images = build_test_images(require_binary("debootstrap"))
    TIMINGS["base and stand-in images"] = time.monotonic() - started
    return images


@pytest.fixture(scope="session")
def gelf() -> Iterator[GelfListener]:
    """A GELF listener on the host's loopback in Logstash's place, for the session's stacks."""
    with GelfListener(free_port(socket.SOCK_DGRAM)) as listener:
        yield listener


def _stack(client: docker.DockerClient, images: BuiltImages, gelf: GelfListener, kind: str) -> Iterator[Stack]:
    """A stack behind `kind` with logging on, every container's gelf driver sending to the listener.

    One per proxy kind for the session, shared by test_stack.py and
    test_stack_logging.py; both run after test_readback.py, whose daemon
    restart would otherwise restart these stacks too. ELK itself is left out:
    its images cannot be built here.
    """
    config = stack_config(images, kind, free_port(), free_subnet(client), logging=gelf_logging(gelf.port))
    yield from realize_stack(
        client, config, stack_name=unique_stack_name(kind), skip=is_elk, transformations=[no_settle]
    )


@pytest.fixture(scope="session")
def nginx_stack(docker_client: docker.DockerClient, test_images: BuiltImages, gelf: GelfListener) -> Iterator[Stack]:
    yield from _stack(docker_client, test_images, gelf, "nginx")


@pytest.fixture(scope="session")
def haproxy_stack(docker_client: docker.DockerClient, test_images: BuiltImages, gelf: GelfListener) -> Iterator[Stack]:
    yield from _stack(docker_client, test_images, gelf, "haproxy")


@pytest.fixture(params=["nginx", "haproxy"])
def stack(request: pytest.FixtureRequest) -> Stack:
    """The same test against a stack behind each proxy kind."""
    found: Stack = request.getfixturevalue(f"{request.param}_stack")
    return found


@pytest.fixture(scope="module")
def swarm_node(docker_client: docker.DockerClient) -> Iterator[str]:
    """The session's engine as a single-node swarm manager for one test module; it leaves the swarm after."""
    try:
        with swarm(docker_client) as node_id:
            yield node_id
    except ForeignSwarm as error:
        if binaries_required():
            pytest.fail(f"{error} (CI runs every test)")
        pytest.skip(str(error))
