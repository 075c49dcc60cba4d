"""Realizing a test stack: its config, the realized result, and how to reach it.

Shared by the fixtures in conftest.py and by test modules that realize a
stack of their own (logging on, with a GELF listener in Logstash's place).
"""

from __future__ import annotations

import ipaddress
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import httpx
import pulumi

from components.common import LABEL_ROLE
from components.config import ImagesConfig
from microstack_common import contract
from tests.support.program import ROOT, Program, Resource, run_program
from tests.system.images import BuiltImages, build_context_image
from tests.system.realizer import ImageBuilder, Realizer

# Phase name -> seconds, printed in the terminal summary (conftest.py).
TIMINGS: dict[str, float] = {}
# Table title -> rows (column -> value), printed in the terminal summary.
TABLES: dict[str, list[dict[str, str]]] = {}
SESSION_STARTED = time.monotonic()

PROXY_READY_SECONDS = 60

# Subnets handed out in this session, in case a stack is configured before
# the previous one's networks exist in the engine.
_SUBNETS_HANDED_OUT: set[str] = set()


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free on the host's loopback right now, for TCP (default) or UDP."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Stack:
    """A realized stack and how to reach it."""

    program: Program
    realizer: Realizer
    base_url: str

    def containers_with_role(self, role: str) -> list[Resource]:
        """Declared containers carrying the program's `microstack.role` label, by resource name."""
        found = [
            r
            for r in self.program.containers
            if r.name in self.realizer.specs and {"label": LABEL_ROLE, "value": role} in (r.inputs.get("labels") or [])
        ]
        return sorted(found, key=lambda r: r.name)

    def container_id(self, resource: Resource) -> str:
        return self.realizer.realized.containers[resource.name]

    def container_name(self, resource: Resource) -> str:
        return self.realizer.specs[resource.name].name


def free_subnet(client: docker.DockerClient) -> str:
    """A /24 no network of the engine (or `taken_extra`) uses, from a range Docker's pools avoid.

    The program derives a frontend subnet from the stack name; the test picks
    one instead, so that stacks realized side by side cannot collide.
    """
    used = [ipaddress.ip_network(subnet) for subnet in _SUBNETS_HANDED_OUT]
    for network in client.api.networks():
        for pool in (network.get("IPAM") or {}).get("Config") or []:
            if pool.get("Subnet"):
                used.append(ipaddress.ip_network(pool["Subnet"]))
    for third in range(200, 255):
        candidate = ipaddress.ip_network(f"172.31.{third}.0/24")
        if not any(candidate.overlaps(u) for u in used if u.version == 4):
            _SUBNETS_HANDED_OUT.add(str(candidate))
            return str(candidate)
    raise RuntimeError("no free /24 in 172.31.200.0-172.31.254.0 for a test stack's frontend network")


# The default images of ELK: whatever the program runs from them is left out
# of a realized stack (their images cannot be built here).
_ELK_IMAGES = {getattr(ImagesConfig(), key) for key in ("elasticsearch", "logstash", "kibana")}


def is_elk(resource: Resource) -> bool:
    """Whether the program runs `resource` from an Elastic image (a `skip` for realize_stack)."""
    reference = str(resource.inputs.get("image") or resource.inputs.get("name") or "")
    return reference.split("@")[0] in _ELK_IMAGES


def gelf_logging(port: int) -> dict[str, Any]:
    """The `logging` section of a stack whose containers log to a GELF listener on the host's `port`."""
    return {"enabled": True, "gelfPort": port}


def unique_stack_name(role: str) -> str:
    """A stack name of its own per session: container and network names derive from it."""
    return f"systest-{role}-{uuid.uuid4().hex[:6]}"


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
    project_root: Path = ROOT,
    image_prefix: str = "",
    transformations: Sequence[pulumi.ResourceTransformation] = (),
    build_image: ImageBuilder | None = None,
    provider_config: Mapping[str, Any] | None = None,
    proxy_host: str | None = None,
) -> Iterator[Stack]:
    """Run the program under mocks with `config`, realize it, yield it, remove it.

    `project_root` is where the service images are built from (a test's copy
    of services/ with a release of its own); their local tags start with
    `image_prefix`, so that such builds do not untag the repository's.
    `build_image` replaces that build (for an engine that cannot build, such
    as a node without a route to the mirrors); `provider_config` sets
    `docker:*` keys (the readiness gates connect to `docker:host`);
    `proxy_host` is where the proxy's published port is reached.
    """
    started = time.monotonic()
    program = run_program(
        dict(config), stack=stack_name, transformations=transformations, provider_config=provider_config
    )

    def build(resource: Resource, context: Path, dockerfile: str, args: Mapping[str, str]) -> str:
        return build_context_image(
            client, f"{image_prefix}{resource.name}", context, dockerfile=dockerfile, buildargs=args
        )

    realizer = Realizer(
        client,
        program,
        session=stack_name,
        project_root=project_root,
        build_image=build_image or build,
        skip=skip,
    )
    try:
        realizer.realize()
        proxy = config["proxy"]
        # A proxy bound to every interface (Swarm's host mode) is reached on loopback.
        host = proxy_host or ("127.0.0.1" if proxy["bindAddress"] == "0.0.0.0" else proxy["bindAddress"])
        base_url = f"http://{host}:{proxy['httpPort']}"
        wait_for_proxy(base_url)
        TIMINGS[f"realize {stack_name.rsplit('-', 1)[0]}"] = time.monotonic() - started
        yield Stack(program=program, realizer=realizer, base_url=base_url)
    finally:
        realizer.destroy()


def wait_for_proxy(base_url: str) -> None:
    """Ready when a replica behind every route answers through the proxy.

    HAProxy under Swarm resolves each route's servers on its own schedule
    after start: the API's can be up while the auth route still answers from
    the fallback. So both are asked, each with a request that only a replica
    answers as given (the fallback's 503 is never 200 or 401).
    """
    probes = {f"{contract.API_PREFIX}/items": 200, f"{contract.AUTH_PREFIX}/verify": 401}
    deadline = time.monotonic() + PROXY_READY_SECONDS
    last: dict[str, object] = {}
    while time.monotonic() < deadline:
        for path in probes:
            try:
                response = httpx.get(f"{base_url}{path}", timeout=2)
                last[path] = response.status_code
            except httpx.HTTPError as error:
                last[path] = error
        if all(last.get(path) == expected for path, expected in probes.items()):
            return
        time.sleep(0.5)
    raise AssertionError(f"the proxy at {base_url} did not serve every route within {PROXY_READY_SECONDS}s: {last}")
