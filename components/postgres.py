"""PostgreSQL on the internal backend network."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.common import (
    LogDriver,
    Runtime,
    data_volume,
    healthcheck,
    labels,
    pulled_image,
    ready_gate,
    secret_file,
)
from components.config import PostgresConfig
from components.gate import DockerConnection
from microstack_common import contract

DATA_DIR = "/var/lib/postgresql/data"


@dataclass(frozen=True)
class PostgresArgs:
    config: PostgresConfig
    image: str
    prefix: str
    stack: str
    network: docker.Network
    password: pulumi.Output[str]
    logs: LogDriver
    docker: DockerConnection
    """How the readiness gate reaches the Docker engine."""
    max_connections: int = 100


class Postgres(pulumi.ComponentResource):
    """A PostgreSQL container with its data in a named volume.

    The volume is a resource of its own, so replacing the container (a new
    image, new limits) keeps the data; with `retainOnDelete` it also outlives
    `pulumi destroy`. The password reaches the official image through
    POSTGRES_PASSWORD_FILE. The health check goes over TCP: during first-start
    initialisation the image runs a temporary server on the Unix socket only, so
    the container is not reported healthy before it is really ready.
    """

    host: str
    port: int
    database: str
    user: str
    container: docker.Container
    volume: docker.Volume

    def __init__(self, name: str, args: PostgresArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("microstack:database:Postgres", name, None, opts)
        cfg = args.config
        image = pulled_image(self, name, args.image)
        self.volume = data_volume(self, name, f"{args.prefix}-postgres-data", cfg.retain_on_delete)
        runtime = Runtime(
            memory_mb=cfg.memory_mb,
            cpus=cfg.cpus,
            healthcheck=healthcheck(
                [
                    "CMD",
                    "pg_isready",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(contract.POSTGRES_PORT),
                    "-U",
                    cfg.user,
                    "-d",
                    cfg.database,
                ]
            ),
            logs=args.logs,
            labels=labels(args.stack, "postgres"),
            # The official image's stop signal: "fast shutdown", which rolls back
            # open transactions and exits cleanly instead of waiting for clients.
            stop_signal="SIGINT",
        )
        self.container = docker.Container(
            f"{name}-container",
            name=f"{args.prefix}-postgres",
            image=image.image_id,
            envs=[
                f"POSTGRES_USER={cfg.user}",
                f"POSTGRES_DB={cfg.database}",
                f"POSTGRES_PASSWORD_FILE={contract.POSTGRES_PASSWORD_FILE}",
                f"PGDATA={DATA_DIR}",
            ],
            command=[
                "postgres",
                "-c",
                f"max_connections={args.max_connections}",
                "-c",
                f"shared_buffers={max(16, cfg.memory_mb // 4)}MB",
            ],
            uploads=[secret_file(contract.POSTGRES_PASSWORD_FILE, args.password)],
            volumes=[docker.ContainerVolumeArgs(volume_name=self.volume.name, container_path=DATA_DIR)],
            networks_advanced=[
                docker.ContainerNetworksAdvancedArgs(name=args.network.name, aliases=[contract.Alias.POSTGRES])
            ],
            # A larger /dev/shm: Docker's 64 MiB default breaks parallel queries.
            shm_size=128,
            **runtime.container_args(),
            opts=runtime.options(parent=self),
        )
        self.ready = ready_gate(self, name, self.container, args.docker)
        self.host = contract.Alias.POSTGRES
        self.port = contract.POSTGRES_PORT
        self.database = cfg.database
        self.user = cfg.user
        self.register_outputs({"container": self.container.name, "volume": self.volume.name})
