"""What every platform offers the components, and what it gives back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import pulumi
import pulumi_docker as docker

from components.gate import ReadyGate
from components.platform.workload import Workload


@dataclass(frozen=True)
class NetworkSpec:
    name: str
    """The Pulumi resource name."""
    docker_name: str
    internal: bool = False
    """No route off the host (or off the overlay): only peers are reachable."""
    subnet: str | None = None
    masquerade: bool = True
    """False for an edge network that only carries published ports: it is no way out either."""
    attachable: bool = False
    """Whether a one-off container may join it (Swarm overlays only; bridges always can)."""


@dataclass
class Deployment:
    """What a platform made of a workload."""

    name: pulumi.Output[str]
    """The container's or the service's name."""
    ready: pulumi.Resource
    """What comes after the workload waits on: the last gate, or the converged service."""
    containers: list[docker.Container] = field(default_factory=list)
    gates: list[ReadyGate] = field(default_factory=list)
    service: docker.Service | None = None
    addresses: list[str] = field(default_factory=list)
    """Pinned replica addresses, where the platform pins them."""
    dns_name: str | None = None
    """A name that resolves to every running replica on the workload's first network."""


class Platform(Protocol):
    name: str
    pins_addresses: bool
    """Whether replicas keep fixed addresses (so a proxy may be given addresses instead of a DNS name)."""

    def network(self, parent: pulumi.Resource, spec: NetworkSpec) -> docker.Network: ...

    def run(
        self,
        parent: pulumi.Resource,
        workload: Workload,
        *,
        depends_on: list[pulumi.Resource] | None = None,
        container_resource: str | None = None,
    ) -> Deployment: ...
