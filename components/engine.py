"""How the program's own dynamic resources reach the Docker engine: with the provider's connection settings.

The program's dynamic resources (the readiness gates, components/gate.py)
act on the engine during `pulumi up`, next to the Docker provider. They must
reach the engine the provider reaches, so they take the same settings
(`docker:host`, TLS material) and nothing else.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi


@dataclass(frozen=True)
class DockerConnection:
    """How to reach the Docker engine: the same settings the provider takes (`docker:host`, TLS material)."""

    host: str | None = None
    ca_material: pulumi.Input[str] | None = None
    cert_material: pulumi.Input[str] | None = None
    key_material: pulumi.Input[str] | None = None

    def inputs(self) -> dict[str, Any]:
        values: dict[str, Any] = {"host": self.host}
        for key, value in (("caMaterial", self.ca_material), ("certMaterial", self.cert_material)):
            values[key] = value
        values["keyMaterial"] = pulumi.Output.secret(self.key_material) if self.key_material is not None else None
        return values


@contextmanager
def engine_client(connection: Mapping[str, Any]) -> Iterator[Any]:
    """A Docker SDK client for the inputs `DockerConnection.inputs()` gave (DOCKER_HOST and the local socket otherwise).

    TLS material is written to a directory of its own, removed with the client.
    """
    import docker  # imported here: only the provider process and the tests need the Docker SDK

    with tempfile.TemporaryDirectory(prefix="microstack-docker-tls-") as directory:
        client = _client(docker, connection, Path(directory))
        try:
            yield client
        finally:
            client.close()


def _client(docker: Any, connection: Mapping[str, Any], directory: Path) -> Any:
    host = connection.get("host") or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if host.startswith("ssh://"):
        # The ssh binary, as the provider uses it: ~/.ssh/config and agents apply.
        return docker.DockerClient(base_url=host, use_ssh_client=True, timeout=60)
    tls: Any = False
    if connection.get("certMaterial") or connection.get("caMaterial"):
        paths = {}
        for key, file in (("caMaterial", "ca.pem"), ("certMaterial", "cert.pem"), ("keyMaterial", "key.pem")):
            if connection.get(key):
                path = directory / file
                path.write_text(str(connection[key]))
                path.chmod(0o600)
                paths[key] = str(path)
        tls = docker.tls.TLSConfig(
            client_cert=(paths["certMaterial"], paths["keyMaterial"]) if "keyMaterial" in paths else None,
            ca_cert=paths.get("caMaterial"),
            verify=bool(paths.get("caMaterial")),
        )
    return docker.DockerClient(base_url=host, tls=tls, timeout=60)
