"""The Docker networks that separate the tiers."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.platform.base import NetworkSpec, Platform


def default_frontend_subnet(prefix: str) -> str:
    """172.30.X.0/24 with X derived from the stack's prefix, so stacks on one host rarely collide."""
    return f"172.30.{hashlib.sha256(prefix.encode()).digest()[0]}.0/24"


def gateway(subnet: str) -> str:
    """The bridge's own address: the subnet's first host, which Docker would pick itself.

    Declared because the provider reads the gateway back into `ipam_config`
    and every network field is ForceNew: left out, the daemon's choice shows up
    in the read-back (after a daemon restart at the latest, upstream issue
    #54) and would replace the network. The DiffSuppressFunc that hides it
    applies to IPv6 networks only (kreuzwerker/terraform-provider-docker
    v3.9.0, resource_docker_network.go, suppressIfIPAMConfigWithIpv6Changes).
    """
    return str(ipaddress.ip_network(subnet).network_address + 1)


def dynamic_range(subnet: str) -> str:
    """The addresses Docker hands out itself: the top 64 of the subnet's first /24.

    Replicas hold fixed addresses below it (see components/service.py), so a
    container that joins the network later can never take a replica's address.
    """
    first = ipaddress.ip_network(subnet).network_address
    return f"{first + 192}/26"


@dataclass(frozen=True)
class NetworksArgs:
    prefix: str
    """Prefix of the Docker network names, e.g. `microstack-dev`, so stacks can share a host."""
    logging_enabled: bool
    frontend_subnet: str | None
    """Fixed where replicas keep their addresses across replacement (containers; see ReplicatedService)."""
    platform: Platform


class Networks(pulumi.ComponentResource):
    """frontend (proxy and services), backend (internal: services, Postgres, Redis), logging (internal: ELK).

    `internal: true` gives a network no route off the host: a container only on
    the backend network cannot reach anything but its peers.

    A changed network is replaced delete-before-replace: Docker refuses a
    second network with the same name, so create-before-delete would fail.
    Pulumi then first replaces the containers attached to it (their
    `networks_advanced` name is unknown until the new network exists, a
    ForceNew change; pulumi/pulumi pkg/resource/deploy/step_generator.go,
    calculateDependentReplacements): a network change is an outage of what is
    on it, by design rarer than any other change.
    """

    frontend: docker.Network
    backend: docker.Network
    logging: docker.Network | None

    def __init__(self, name: str, args: NetworksArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("microstack:network:Networks", name, None, opts)
        platform = args.platform
        self.frontend = platform.network(
            self, NetworkSpec(f"{name}-frontend", f"{args.prefix}-frontend", subnet=args.frontend_subnet)
        )
        self.backend = platform.network(self, NetworkSpec(f"{name}-backend", f"{args.prefix}-backend", internal=True))
        # Attachable: the one-off ELK setup job is a container that joins it (components/platform/swarm.py).
        self.logging = (
            platform.network(
                self, NetworkSpec(f"{name}-logging", f"{args.prefix}-logging", internal=True, attachable=True)
            )
            if args.logging_enabled
            else None
        )
        self.register_outputs(
            {
                "frontend": self.frontend.name,
                "backend": self.backend.name,
                "logging": self.logging.name if self.logging else None,
            }
        )
