"""PostgreSQL on the internal backend network."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.common import LogDriver, labels, pulled_image
from components.config import PostgresConfig
from components.platform import Deployment, Platform
from components.platform.workload import (
    Attach,
    DataVolume,
    Health,
    Image,
    Kind,
    Mount,
    SecretFile,
    Workload,
)
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
    platform: Platform
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
    deployment: Deployment

    def __init__(self, name: str, args: PostgresArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("microstack:database:Postgres", name, None, opts)
        cfg = args.config
        image = pulled_image(self, name, args.image)
        self.deployment = args.platform.run(
            self,
            Workload(
                name=name,
                docker_name=f"{args.prefix}-postgres",
                role="postgres",
                kind=Kind.STATEFUL,
                image=Image(local_id=image.image_id, pinned=image.repo_digest),
                memory_mb=cfg.memory_mb,
                cpus=cfg.cpus,
                # Over TCP: see the class docstring.
                health=Health(
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
                networks=(Attach(args.network, (contract.Alias.POSTGRES,)),),
                env={
                    "POSTGRES_USER": cfg.user,
                    "POSTGRES_DB": cfg.database,
                    "POSTGRES_PASSWORD_FILE": contract.POSTGRES_PASSWORD_FILE,
                    "PGDATA": DATA_DIR,
                },
                command=[
                    "postgres",
                    "-c",
                    f"max_connections={args.max_connections}",
                    "-c",
                    f"shared_buffers={max(16, cfg.memory_mb // 4)}MB",
                ],
                secrets=(SecretFile("postgres-password", contract.POSTGRES_PASSWORD_FILE, args.password),),
                mounts=(
                    Mount(DataVolume(f"{name}-data", f"{args.prefix}-postgres-data", cfg.retain_on_delete), DATA_DIR),
                ),
                # A larger /dev/shm: Docker's 64 MiB default breaks parallel queries.
                shm_size_mb=128,
                # The official image's stop signal: "fast shutdown", which rolls back
                # open transactions and exits cleanly instead of waiting for clients.
                stop_signal="SIGINT",
            ),
            container_resource=f"{name}-container",
        )
        self.ready = self.deployment.ready
        self.host = contract.Alias.POSTGRES
        self.port = contract.POSTGRES_PORT
        self.database = cfg.database
        self.user = cfg.user
        self.register_outputs({"name": self.deployment.name})
