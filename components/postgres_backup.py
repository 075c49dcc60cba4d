"""PostgreSQL backups with pgBackRest: what archiving adds to Postgres, and the backup sidecar.

`archiving` gives the Postgres component what continuous WAL archiving needs
(an image with pgBackRest, the server settings, pgbackrest.conf, the
repository and a socket directory shared with the sidecar); `BackupSidecar`
runs the loop that creates the stanza and takes the scheduled full backups.
The runtime side (config text, settings, scripts) is components/backup/;
docs/backups.md is the operator's view.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_docker as docker

from components.backup import pgbackrest
from components.built_image import built_image, source_digest
from components.common import LogDriver, labels
from components.config import BackupConfig, PostgresConfig, RegistryConfig
from components.platform import Deployment, Platform
from components.platform.workload import (
    Attach,
    ConfigFile,
    DataVolume,
    Health,
    Image,
    Kind,
    Mount,
    SecretFile,
    Workload,
)
from microstack_common import contract

# Relative to the project directory, where Pulumi runs the program (see components/service.py).
IMAGE_DIR = "images/postgres-pgbackrest"
_PROJECT_DIR = Path(__file__).resolve().parents[1]
ROLE = "postgres-backup"
# pgbackrest.conf in Postgres and in the sidecar; one Swarm secret when it carries the S3 key.
CONF_KEY = "pgbackrest-conf"
LOOP_KEY = "backup-loop"
# The sidecar's first health check waits for stanza-create and `pgbackrest check`,
# which forces a WAL switch and waits until that segment is archived.
SIDECAR_START_PERIOD_SECONDS = 60


@dataclass(frozen=True)
class BackupArgs:
    config: BackupConfig
    s3_key_id: pulumi.Input[str] | None
    s3_key_secret: pulumi.Input[str] | None
    registry: RegistryConfig | None
    registry_password: pulumi.Input[str] | None
    image_platform: str


@dataclass(frozen=True)
class Archiving:
    """What backups add to the Postgres workload, and what the sidecar shares with it."""

    plan: pgbackrest.Plan
    image: Image
    parameters: dict[str, str]
    conf: SecretFile | ConfigFile

    @property
    def conf_text(self) -> pulumi.Input[str]:
        """pgbackrest.conf's content (an Output secret when it carries the S3 key pair)."""
        return self.conf.value if isinstance(self.conf, SecretFile) else self.conf.content

    repository: DataVolume | None
    """The repository's volume (kinds volume and hostPath); None for s3."""
    socket: DataVolume
    """PostgreSQL's Unix socket directory, where the sidecar connects."""

    @property
    def secrets(self) -> tuple[SecretFile, ...]:
        """pgbackrest.conf where it is a secret (it carries the S3 key pair)."""
        return (self.conf,) if isinstance(self.conf, SecretFile) else ()

    @property
    def configs(self) -> tuple[ConfigFile, ...]:
        """pgbackrest.conf where it is not a secret."""
        return (self.conf,) if isinstance(self.conf, ConfigFile) else ()

    @property
    def mounts(self) -> tuple[Mount, ...]:
        """What both Postgres (archive-push) and the sidecar (backups) mount, besides the data."""
        repository = (Mount(self.repository, pgbackrest.REPOSITORY_PATH),) if self.repository else ()
        return (*repository, Mount(self.socket, pgbackrest.PG_SOCKET_DIR))

    def command_options(self) -> list[str]:
        """`-c name=value` for each archive setting, appended to Postgres' command line."""
        options: list[str] = []
        for name, value in self.parameters.items():
            options += ["-c", f"{name}={value}"]
        return options


def plan_for(config: PostgresConfig, prefix: str) -> pgbackrest.Plan:
    """The pgBackRest plan of a stack: its schedule, retention and repository."""
    backup = config.backup
    repo = backup.repository
    if repo.kind == "s3":
        repository = pgbackrest.Repository(
            kind="s3",
            # A prefix per stack: stacks may share a bucket.
            path=repo.path or f"/{prefix}",
            bucket=repo.bucket,
            endpoint=repo.endpoint,
            region=repo.region,
        )
    else:
        # A volume, or a host directory mounted where a volume would be.
        repository = pgbackrest.Repository(kind="volume" if repo.kind == "volume" else "host-path")
    return pgbackrest.Plan(
        stanza=pgbackrest.DEFAULT_STANZA,
        pg_data=pgbackrest.PG_DATA,
        pg_socket_dir=pgbackrest.PG_SOCKET_DIR,
        pg_port=contract.POSTGRES_PORT,
        # The official image's POSTGRES_USER is the superuser; it connects over
        # the socket, where the image trusts local connections.
        pg_user=config.user,
        repository=repository,
        retention_days=backup.retention_days,
        full_every_hours=backup.full_backup_interval_hours,
        archive_timeout_seconds=backup.archive_timeout_seconds,
    )


def image_tag(base_image: str) -> str:
    """The derived image's tag: a digest of its Dockerfile directory and the image it builds on."""
    inputs = f"{source_digest([_PROJECT_DIR / IMAGE_DIR])}\n{base_image}"
    return hashlib.sha256(inputs.encode()).hexdigest()[:16]


def archiving(
    parent: pulumi.Resource, name: str, config: PostgresConfig, args: BackupArgs, *, prefix: str, base_image: str
) -> Archiving:
    """Build the image with pgBackRest and describe the files and volumes archiving needs.

    The repository volume is retained on `pulumi destroy` by default
    (`postgres.backup.retainOnDelete`), independently of the data volume's
    `retainOnDelete`: the backups are for the day the data is gone, and a
    destroyed stack is one such day.
    """
    plan = plan_for(config, prefix)
    repo = config.backup.repository
    if repo.kind == "s3":
        # The key pair is in the file: the whole file is a secret.
        text = pulumi.Output.all(args.s3_key_id, args.s3_key_secret).apply(
            lambda pair: pgbackrest.render_config(plan, pair[0], pair[1])
        )
        conf: SecretFile | ConfigFile = SecretFile(CONF_KEY, pgbackrest.CONFIG_PATH, pulumi.Output.secret(text))
    else:
        conf = ConfigFile(CONF_KEY, pgbackrest.CONFIG_PATH, pgbackrest.render_config(plan))
    repository = None
    if repo.kind != "s3":
        repository = DataVolume(
            f"{name}-backups",
            f"{prefix}-postgres-backups",
            config.backup.retain_on_delete,
            # A local volume bound to the host directory: mounted like any
            # volume, and the directory outlives every container.
            driver_options={"type": "none", "o": "bind", "device": repo.path} if repo.path is not None else None,
        )
    image = built_image(
        parent,
        f"{name}-pgbackrest",
        repository=f"{args.registry.repository}/postgres-pgbackrest"
        if args.registry
        else f"{prefix}/postgres-pgbackrest",
        tag=image_tag(base_image),
        context=IMAGE_DIR,
        dockerfile=f"{IMAGE_DIR}/Dockerfile",
        args={"BASE_IMAGE": base_image},
        registry=args.registry,
        registry_password=args.registry_password,
        platform=args.image_platform,
    )
    return Archiving(
        plan=plan,
        image=image,
        parameters=pgbackrest.postgres_parameters(plan),
        conf=conf,
        repository=repository,
        # Nothing to keep: PostgreSQL recreates its socket at every start.
        socket=DataVolume(f"{name}-socket", f"{prefix}-postgres-socket", retain_on_delete=False),
    )


@dataclass(frozen=True)
class BackupSidecarArgs:
    archiving: Archiving
    data: DataVolume
    """Postgres' data volume: a base backup copies its files."""
    config: BackupConfig
    prefix: str
    stack: str
    networks: tuple[docker.Network, ...]
    """Postgres' networks: the sidecar talks to Postgres over the socket and
    needs a network only to reach an S3 endpoint."""
    logs: LogDriver
    platform: Platform
    postgres: pulumi.Resource
    """What the sidecar starts after: Postgres ready (its socket exists)."""


class BackupSidecar(pulumi.ComponentResource):
    """The backup sidecar: components/backup/backup-loop.sh in the pgBackRest image, beside Postgres.

    A component beside Postgres rather than inside it: what depends on
    Postgres (the services) waits for Postgres, not for the first backup check.
    It creates the stanza, checks that archiving works (then reports healthy),
    and takes a full backup whenever the newest one is older than the
    configured interval, expiring what retention allows. It runs as the
    postgres user, reads the data volume read-only and connects over the shared
    socket directory, so it needs no password and no port. On Swarm it is a
    stateful workload, so it is placed on the data node with Postgres and its
    volumes; Docker's restart policy brings it back, and on SIGTERM it stops
    pgBackRest and exits within the stop timeout. The loop script is uploaded,
    not built into the image, so that changing it replaces the sidecar only,
    never PostgreSQL.
    """

    deployment: Deployment

    def __init__(self, name: str, args: BackupSidecarArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("microstack:database:BackupSidecar", name, None, opts)
        archiving = args.archiving
        docker_name = f"{args.prefix}-postgres-backup"
        self.deployment = args.platform.run(
            self,
            Workload(
                name=name,
                docker_name=docker_name,
                role=ROLE,
                kind=Kind.STATEFUL,
                image=archiving.image,
                memory_mb=args.config.memory_mb,
                cpus=args.config.cpus,
                health=Health(list(pgbackrest.HEALTH_COMMAND), start_period_seconds=SIDECAR_START_PERIOD_SECONDS),
                logs=args.logs,
                labels=labels(args.stack, ROLE),
                # Without Postgres' alias: clients must never reach the sidecar as `postgres`.
                networks=tuple(Attach(network) for network in args.networks),
                command=["bash", pgbackrest.LOOP_SCRIPT_PATH],
                # The data directory's owner: pgBackRest reads it and writes the
                # repository as that user (mode 0600 files, see components/backup).
                user="postgres",
                env=pgbackrest.loop_env(archiving.plan, service=ROLE, instance=docker_name),
                secrets=archiving.secrets,
                configs=(
                    *archiving.configs,
                    ConfigFile(LOOP_KEY, pgbackrest.LOOP_SCRIPT_PATH, pgbackrest.BACKUP_LOOP_SCRIPT.read_text()),
                ),
                mounts=(*archiving.mounts, Mount(args.data, pgbackrest.PG_DATA, read_only=True)),
            ),
            depends_on=[args.postgres],
            container_resource=f"{name}-container",
        )
        self.ready = self.deployment.ready
        self.register_outputs({"name": self.deployment.name})
