"""PostgreSQL on the internal backend network."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.common import LogDriver, labels, pulled_image
from components.config import PostgresConfig
from components.platform import Deployment, NetworkSpec, Platform
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
from components.postgres_backup import Archiving, BackupArgs, archiving
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
    backup: BackupArgs | None = None
    """With `config.backup.enabled`: where the image is built and the S3 key pair (docs/backups.md)."""
    max_connections: int = 100


class Postgres(pulumi.ComponentResource):
    """A PostgreSQL container with its data in a named volume.

    The volume is a resource of its own, so replacing the container (a new
    image, new limits) keeps the data; with `retainOnDelete` it also outlives
    `pulumi destroy`. The password reaches the official image through
    POSTGRES_PASSWORD_FILE. The health check goes over TCP: during first-start
    initialisation the image runs a temporary server on the Unix socket only, so
    the container is not reported healthy before it is really ready.

    With `backup.enabled` the server archives every WAL segment with pgBackRest
    (its image is then built with pgBackRest, components/postgres_backup.py)
    into a repository apart from the data volume; the backup sidecar
    (components/postgres_backup.py, beside this component) takes the
    scheduled base backups. With backup off the graph is what it was.
    """

    host: str
    port: int
    database: str
    user: str
    deployment: Deployment
    archiving: Archiving | None
    """With backups on: what the backup sidecar shares with Postgres (components/postgres_backup.py)."""
    data: DataVolume
    networks: tuple[docker.Network, ...]

    def __init__(self, name: str, args: PostgresArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("microstack:database:Postgres", name, None, opts)
        cfg = args.config
        self.archiving = (
            archiving(self, name, cfg, args.backup, prefix=args.prefix, base_image=args.image)
            if cfg.backup.enabled and args.backup
            else None
        )
        if self.archiving:
            image = self.archiving.image
        else:
            pulled = pulled_image(self, name, args.image)
            image = Image(local_id=pulled.image_id, pinned=pulled.repo_digest)
        data = DataVolume(f"{name}-data", f"{args.prefix}-postgres-data", cfg.retain_on_delete)
        networks: tuple[Attach, ...] = (Attach(args.network, (contract.Alias.POSTGRES,)),)
        if self.archiving and cfg.backup.repository.kind == "s3":
            # The backend network has no route off the host, and archive-push
            # runs in Postgres: with an object store it needs a way out. A
            # network of its own, joined by Postgres and the sidecar only, and
            # publishing nothing (docs/backups.md says what this opens).
            egress = args.platform.network(self, NetworkSpec(f"{name}-backup-egress", f"{args.prefix}-backup-egress"))
            networks = (*networks, Attach(egress))
        self.deployment = args.platform.run(
            self,
            Workload(
                name=name,
                docker_name=f"{args.prefix}-postgres",
                role="postgres",
                kind=Kind.STATEFUL,
                image=image,
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
                networks=networks,
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
                    *(self.archiving.command_options() if self.archiving else ()),
                ],
                secrets=(
                    SecretFile("postgres-password", contract.POSTGRES_PASSWORD_FILE, args.password),
                    *(self.archiving.secrets if self.archiving else ()),
                ),
                configs=self.archiving.configs if self.archiving else (),
                mounts=(Mount(data, DATA_DIR), *(self.archiving.mounts if self.archiving else ())),
                # A larger /dev/shm: Docker's 64 MiB default breaks parallel queries.
                shm_size_mb=128,
                # The official image's stop signal: "fast shutdown", which rolls back
                # open transactions and exits cleanly instead of waiting for clients.
                stop_signal="SIGINT",
            ),
            container_resource=f"{name}-container",
        )
        self.ready = self.deployment.ready
        self.data = data
        self.networks = tuple(attach.network for attach in networks)
        self.host = contract.Alias.POSTGRES
        self.port = contract.POSTGRES_PORT
        self.database = cfg.database
        self.user = cfg.user
        self.register_outputs({"name": self.deployment.name})
