"""Session fixtures of the system test: the engine, the images, realized stacks.

The session starts dockerd when none answers (and stops it after), builds or
reuses the images, and realizes declared stacks with `Realizer`. Every stack
is removed when its fixture ends, also after a failure, and leftovers of an
interrupted earlier session are removed first. The time each phase took is
printed in the terminal summary: the suite's budget is 15 minutes cold and 5
with the image cache warm.
"""

from __future__ import annotations

import ipaddress
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from microstack_common import contract
from tests.support.binaries import require_binary
from tests.support.program import ROOT, Program, Resource, run_program
from tests.system.engine import docker_engine
from tests.system.images import BuiltImages, build_context_image, build_test_images
from tests.system.realizer import SESSION_LABEL, Realizer, remove_labelled

# Phase name -> seconds, printed by pytest_terminal_summary.
TIMINGS: dict[str, float] = {}
_SESSION_STARTED = time.monotonic()

PROXY_READY_SECONDS = 60


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print how long the system test's phases took (only when it ran)."""
    if not TIMINGS:
        return
    terminalreporter.section("system test runtime")
    for phase, seconds in TIMINGS.items():
        terminalreporter.write_line(f"{phase}: {seconds:.1f} s")
    terminalreporter.write_line(f"total since session start: {time.monotonic() - _SESSION_STARTED:.1f} s")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free on the host's loopback right now, for TCP (default) or UDP."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    started = time.monotonic()
    with docker_engine(require_binary("dockerd")) as client:
        remove_labelled(client, SESSION_LABEL)
        TIMINGS["engine ready"] = time.monotonic() - started
        yield client


@pytest.fixture(scope="session")
def test_images(docker_client: docker.DockerClient) -> BuiltImages:
    started = time.monotonic()
    images = build_test_images(require_binary("debootstrap"))
    TIMINGS["base and stand-in images"] = time.monotonic() - started
    return images


@dataclass
class Stack:
    """A realized stack and how to reach it."""

    kind: str
    program: Program
    realizer: Realizer
    base_url: str
    config: dict[str, Any]

    def containers_with_role(self, role: str) -> list[Resource]:
        """Declared containers carrying the program's `microstack.role` label, by resource name."""
        found = [
            r
            for r in self.program.containers
            if r.name in self.realizer.specs
            and {"label": "microstack.role", "value": role} in (r.inputs.get("labels") or [])
        ]
        return sorted(found, key=lambda r: r.name)

    def container_id(self, resource: Resource) -> str:
        return self.realizer.realized.containers[resource.name]

    def container_name(self, resource: Resource) -> str:
        return self.realizer.specs[resource.name].name


def free_subnet(client: docker.DockerClient, taken: Iterable[str] = ()) -> str:
    """A /24 no network of the engine (or `taken_extra`) uses, from a range Docker's pools avoid.

    The program derives a frontend subnet from the stack name; the test picks
    one instead, so that stacks realized side by side cannot collide.
    """
    used = [ipaddress.ip_network(subnet) for subnet in taken]
    for network in client.api.networks():
        for pool in (network.get("IPAM") or {}).get("Config") or []:
            if pool.get("Subnet"):
                used.append(ipaddress.ip_network(pool["Subnet"]))
    for third in range(200, 255):
        candidate = ipaddress.ip_network(f"172.31.{third}.0/24")
        if not any(candidate.overlaps(u) for u in used if u.version == 4):
            return str(candidate)
    raise RuntimeError("no free /24 in 172.31.200.0-172.31.254.0 for a test stack's frontend network")


def stack_config(images: BuiltImages, kind: str, http_port: int, subnet: str, **overrides: Any) -> dict[str, Any]:
    """The test stack's `microstack:` config: local images, logging off, the proxy on loopback."""
    config: dict[str, Any] = {
        "network": {"frontendSubnet": subnet},
        "proxy": {"kind": kind, "bindAddress": "127.0.0.1", "httpPort": http_port},
        "images": {
            "postgres": images.postgres,
            "redis": images.redis,
            "nginx": images.nginx,
            "haproxy": images.haproxy,
            "serviceBaseImage": images.python,
        },
        "logging": {"enabled": False},
    }
    for key, value in overrides.items():
        config[key] = {**config.get(key, {}), **value}
    return config


def realize_stack(
    client: docker.DockerClient,
    config: Mapping[str, Any],
    *,
    stack_name: str,
    skip: Callable[[Resource], bool] = lambda _resource: False,
) -> Iterator[Stack]:
    """Run the program under mocks with `config`, realize it, yield it, remove it."""
    started = time.monotonic()
    program = run_program(dict(config), stack=stack_name)

    def build(resource: Resource, context: Path, dockerfile: str, args: Mapping[str, str]) -> str:
        return build_context_image(client, resource.name, context, dockerfile=dockerfile, buildargs=args)

    realizer = Realizer(
        client,
        program,
        session=f"{stack_name}-{uuid.uuid4().hex[:8]}",
        project_root=ROOT,
        build_image=build,
        skip=skip,
    )
    try:
        realizer.realize()
        proxy = config["proxy"]
        base_url = f"http://{proxy['bindAddress']}:{proxy['httpPort']}"
        wait_for_proxy(base_url)
        TIMINGS[f"realize {stack_name}"] = time.monotonic() - started
        yield Stack(
            kind=config["proxy"]["kind"], program=program, realizer=realizer, base_url=base_url, config=dict(config)
        )
    finally:
        realizer.destroy()


def wait_for_proxy(base_url: str) -> None:
    """Ready when the API answers through the proxy (HAProxy resolves its servers after start)."""
    deadline = time.monotonic() + PROXY_READY_SECONDS
    last: object = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{base_url}{contract.API_PREFIX}/items", timeout=2)
            if response.status_code == 200:
                return
            last = response.status_code
        except httpx.HTTPError as error:
            last = error
        time.sleep(0.5)
    raise AssertionError(
        f"the proxy at {base_url} did not serve the API's health within {PROXY_READY_SECONDS}s: {last}"
    )


_SUBNETS_IN_USE: set[str] = set()


def _stack(client: docker.DockerClient, images: BuiltImages, kind: str) -> Iterator[Stack]:
    subnet = free_subnet(client, _SUBNETS_IN_USE)
    _SUBNETS_IN_USE.add(subnet)
    config = stack_config(images, kind, free_port(), subnet)
    yield from realize_stack(client, config, stack_name=f"systest-{kind}")


@pytest.fixture(scope="session")
def nginx_stack(docker_client: docker.DockerClient, test_images: BuiltImages) -> Iterator[Stack]:
    yield from _stack(docker_client, test_images, "nginx")


@pytest.fixture(scope="session")
def haproxy_stack(docker_client: docker.DockerClient, test_images: BuiltImages) -> Iterator[Stack]:
    yield from _stack(docker_client, test_images, "haproxy")


@pytest.fixture(params=["nginx", "haproxy"])
def stack(request: pytest.FixtureRequest) -> Stack:
    """The same test against a stack behind each proxy kind."""
    found: Stack = request.getfixturevalue(f"{request.param}_stack")
    return found
