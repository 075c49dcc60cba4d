"""A typed description of a workload, independent of how it runs.

Components (Postgres, Redis, the services, the proxy, ELK) describe what they
run here: image, command, environment, secret and config files, health,
limits, networks, volumes, published ports, replicas and how an update may
proceed. A `Platform` (components/platform/) turns the description into
containers on one Docker host or into services on a Swarm; no component knows
which.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import pulumi
import pulumi_docker as docker

from components.common import HEALTH_START_PERIOD_SECONDS, LogDriver
from microstack_common import contract

# An env value that each replica gets as its own name (`api-1`, ...).
INSTANCE = "<instance>"


class Kind(StrEnum):
    """How a workload is run and updated."""

    REPLICATED = "replicated"
    """Equivalent replicas behind the proxy; updated one at a time, the new one started before the old stops."""
    STATEFUL = "stateful"
    """One instance owning a data volume; the old one stops before the new one starts, never two at once."""
    PER_NODE = "per-node"
    """One instance on every node (Logstash, which each node's Docker daemon sends logs to); one on a single host."""
    EDGE = "edge"
    """The one workload that publishes ports for clients (the proxy)."""
    JOB = "job"
    """Runs once to completion; the rollout fails when it exits non-zero."""


@dataclass(frozen=True)
class Image:
    """An image in the two spellings the platforms need."""

    local_id: pulumi.Input[str]
    """The image ID on the Docker host (containers read their image back as this)."""
    pinned: pulumi.Input[str]
    """A reference every node can pull the same bytes by: `repo@sha256:…` where there is a registry."""


@dataclass(frozen=True)
class Health:
    """A health check in Docker's form (["CMD", ...] or ["CMD-SHELL", "..."])."""

    test: list[str]
    start_period_seconds: int = HEALTH_START_PERIOD_SECONDS


@dataclass(frozen=True)
class SecretFile:
    """A secret the workload reads from a file (never from its environment)."""

    key: str
    """Stack-wide identity, e.g. `postgres-password`: workloads that share a key share one secret."""
    path: str
    value: pulumi.Input[str]


@dataclass(frozen=True)
class ConfigFile:
    """A rendered, non-secret file the workload reads."""

    key: str
    """Identity within the workload, e.g. `nginx-conf`."""
    path: str
    content: pulumi.Input[str]


@dataclass(frozen=True)
class DataVolume:
    """A named volume for a data store's files; it outlives the workload's replacement."""

    name: str
    """The Pulumi resource name."""
    docker_name: str
    retain_on_delete: bool
    driver_options: Mapping[str, str] | None = None
    """Options of Docker's `local` driver, e.g. a bind of a host directory (None: a plain volume)."""


@dataclass(frozen=True)
class Mount:
    """A volume mounted into the workload; workloads that mount one DataVolume share it."""

    volume: DataVolume
    path: str
    read_only: bool = False


@dataclass(frozen=True)
class PinnedAddresses:
    """Replica i gets `subnet`'s network address + first_host + i, where a platform pins addresses."""

    subnet: str
    first_host: int


@dataclass(frozen=True)
class Attach:
    """A network the workload joins, under these DNS aliases."""

    network: docker.Network
    aliases: tuple[str, ...] = ()
    pinned: PinnedAddresses | None = None
    """Fixed replica addresses, for a proxy that resolves names only at start (nginx on containers)."""


@dataclass(frozen=True)
class Publish:
    """A port published on the Docker host (on each edge node, for services)."""

    target: int
    published: int
    host_ip: str
    protocol: str | None = None
    """None: TCP, the provider's default."""


@dataclass(frozen=True)
class Workload:
    """What to run, independent of how."""

    name: str
    """The Pulumi resource name (e.g. `postgres-container`, `api`)."""
    docker_name: str
    """The container's name, or the service's; replicas add `-<n>` on platforms that need it."""
    role: str
    kind: Kind
    image: Image
    memory_mb: int
    cpus: float
    health: Health | None
    logs: LogDriver
    labels: Mapping[str, str]
    networks: tuple[Attach, ...]
    command: list[str] | None = None
    user: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    instance_alias: bool = False
    """Whether each replica also answers to its own name on its networks."""
    secrets: tuple[SecretFile, ...] = ()
    configs: tuple[ConfigFile, ...] = ()
    mounts: tuple[Mount, ...] = ()
    ports: tuple[Publish, ...] = ()
    exposure: str | None = None
    """Why the ports may be published on every interface where a platform cannot bind one address
    (Swarm), and how to limit who reaches them; the policy pack reports it as advisory."""
    sysctls: Mapping[str, str] = field(default_factory=dict)
    shm_size_mb: int | None = None
    replicas: int = 1
    stop_signal: str = "SIGTERM"
    stop_timeout: int = contract.STOP_TIMEOUT_SECONDS
    settle_seconds: int = 0
    """After an updated replica is healthy, how long until the proxy routes to it again."""
    ready_timeout_seconds: int | None = None
    """How long one instance may take to become ready (None: the platform's default)."""
