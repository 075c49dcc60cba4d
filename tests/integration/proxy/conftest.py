"""Fixtures for the proxy tests: models pointed at private temp dirs and loopback."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from components.proxy.model import (
    Cache,
    Listen,
    ProxyModel,
    Server,
    UpstreamGroup,
)
from tests.integration.proxy.harness import private_dir, proxy_paths, worker_user
from tests.support.servers import free_port

ModelFactory = Callable[..., ProxyModel]


@pytest.fixture
def proxy_root() -> Iterator[Path]:
    """A directory for one proxy's config, logs, cache and sockets."""
    root = private_dir("microstack-proxy-")
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def make_model(proxy_root: Path) -> ModelFactory:
    """Build a ProxyModel for `proxy_root` with loopback listeners and servers.

    `api_ports`/`auth_ports` list the replicas' ports; other keyword
    arguments override ProxyModel fields.
    """

    def build(
        api_ports: list[int] | None = None,
        auth_ports: list[int] | None = None,
        **overrides: object,
    ) -> ProxyModel:
        api = api_ports if api_ports is not None else [free_port()]
        auth = auth_ports if auth_ports is not None else [free_port()]
        fields: dict[str, object] = {
            "upstreams": (
                UpstreamGroup("api", tuple(Server("127.0.0.1", port) for port in api)),
                UpstreamGroup("auth", tuple(Server("127.0.0.1", port) for port in auth)),
            ),
            "listen": Listen("127.0.0.1", free_port(), free_port()),
            "cache": Cache(directory=str(proxy_root / "cache")),
            "paths": proxy_paths(proxy_root),
            "user": worker_user(),
        }
        fields.update(overrides)
        return ProxyModel(**fields)  # type: ignore[arg-type]

    return build
