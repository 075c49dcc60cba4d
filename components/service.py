"""A Python service of ours (api or auth): its image, built from services/, and N replicas."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_docker as docker

from components.built_image import built_image, source_digest
from components.common import LogDriver, labels
from components.config import RegistryConfig
from components.platform import Deployment, Platform
from components.platform.containers import pinned_address
from components.platform.workload import (
    INSTANCE,
    Attach,
    Health,
    Image,
    Kind,
    PinnedAddresses,
    SecretFile,
    Workload,
)
from microstack_common import contract

# Relative to the project directory, where Pulumi runs the program: the
# state then holds the same paths on every machine that deploys the stack.
SERVICES_DIR = "services"
_PROJECT_DIR = Path(__file__).resolve().parents[1]
# Replica i of a service gets host address FIRST_HOST[service] + i on the frontend subnet.
FIRST_HOST = {"api": 10, "auth": 100}


def replica_address(subnet: str, service: str, index: int) -> str:
    """The fixed frontend address of replica `index` (1-based) of `service`, where the platform pins addresses."""
    return pinned_address(PinnedAddresses(subnet, FIRST_HOST[service]), index)


@dataclass(frozen=True)
class Database:
    host: str
    port: int
    name: str
    user: str


@dataclass(frozen=True)
class ServiceArgs:
    service: str
    """`api` or `auth`: the directory under services/ and the network alias."""
    replicas: int
    cpus: float
    memory_mb: int
    port: int
    base_image: str
    registry: RegistryConfig | None
    registry_password: pulumi.Input[str] | None
    prefix: str
    stack: str
    frontend: docker.Network
    frontend_subnet: str | None
    """Where replicas get fixed addresses, on platforms that pin them (see ReplicatedService)."""
    backend: docker.Network
    database: Database
    database_password: pulumi.Output[str]
    redis_host: str
    redis_port: int
    redis_password: pulumi.Output[str]
    jwt_signing_key: pulumi.Output[str]
    jwt_ttl_seconds: int
    logs: LogDriver
    drain_seconds: float
    """After SIGTERM a replica keeps serving this long with /health at 503, so an
    actively checking proxy takes it out before it stops accepting connections."""
    rejoin_seconds: int
    """After a replica is healthy, how long until the proxy routes to it again;
    the next replica is not replaced before then."""
    image_platform: str
    """The platform the image is built for (the Docker host's)."""
    platform: Platform


class ReplicatedService(pulumi.ComponentResource):
    """Builds the service image and runs `replicas` replicas on the frontend and backend networks.

    The image tag is a digest of the service's own sources, so a code change
    is a new image and a rolling update; how the update rolls is the
    platform's (components/platform/):

    - containers: the replicas are replaced one at a time. Each replica
      depends on the gate of the one before it (components/gate.py), so
      replica i+1 is replaced only after replica i is healthy and back in the
      proxy's rotation; a replica that never gets healthy fails the `up` at its
      gate, on this and every later `up`, and the replicas after it keep the
      old release. Each replica keeps a fixed name and frontend address, so a
      proxy that resolved it at start (nginx) finds the replacement at the same
      address; that is also why a replica is deleted before its replacement is
      created: two containers cannot hold one address.
    - swarm: one service; Swarm starts a new task, waits until it is healthy
      and `rejoin_seconds` more, then stops an old one, and rolls the release
      back when its tasks fail; the proxy finds the tasks through DNS.

    While a replica is replaced the proxy routes around it. Limits: with one
    replica there is a gap the proxy bridges only with its stale cache and
    fallback answer.
    """

    deployment: Deployment
    image: Image

    def __init__(self, name: str, args: ServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("microstack:service:ReplicatedService", name, None, opts)
        self.image = self._image(name, args)
        self.deployment = args.platform.run(self, self._workload(name, args))
        self.ready = self.deployment.ready
        self.register_outputs({"image": self.image.pinned, "name": self.deployment.name})

    def _image(self, name: str, args: ServiceArgs) -> Image:
        tag = source_digest([_PROJECT_DIR / SERVICES_DIR / "common", _PROJECT_DIR / SERVICES_DIR / args.service])
        repository = f"{args.registry.repository}/{args.service}" if args.registry else f"{args.prefix}/{args.service}"
        return built_image(
            self,
            name,
            repository=repository,
            tag=tag,
            # services/<name>/Dockerfile.dockerignore narrows the context
            # (all of services/) to what this image copies, so an auth-only
            # edit does not rebuild api.
            context=SERVICES_DIR,
            dockerfile=f"{SERVICES_DIR}/{args.service}/Dockerfile",
            args={"BASE_IMAGE": args.base_image},
            registry=args.registry,
            registry_password=args.registry_password,
            platform=args.image_platform,
        )

    def _workload(self, name: str, args: ServiceArgs) -> Workload:
        env = contract.Env
        return Workload(
            name=name,
            docker_name=f"{args.prefix}-{args.service}",
            role=args.service,
            kind=Kind.REPLICATED,
            replicas=args.replicas,
            image=self.image,
            memory_mb=args.memory_mb,
            cpus=args.cpus,
            health=Health(["CMD", "python", "-m", "microstack_common.healthcheck", str(args.port)]),
            logs=args.logs,
            labels=labels(args.stack, args.service),
            networks=(
                Attach(
                    args.frontend,
                    (args.service,),
                    pinned=PinnedAddresses(args.frontend_subnet, FIRST_HOST[args.service])
                    if args.frontend_subnet
                    else None,
                ),
                Attach(args.backend, (args.service,)),
            ),
            instance_alias=True,
            env={
                env.SERVICE_NAME: args.service,
                env.INSTANCE_NAME: INSTANCE,
                env.HOST: "0.0.0.0",
                env.PORT: str(args.port),
                env.DATABASE_HOST: args.database.host,
                env.DATABASE_PORT: str(args.database.port),
                env.DATABASE_NAME: args.database.name,
                env.DATABASE_USER: args.database.user,
                env.DATABASE_PASSWORD_FILE: contract.POSTGRES_PASSWORD_FILE,
                env.REDIS_HOST: args.redis_host,
                env.REDIS_PORT: str(args.redis_port),
                env.REDIS_PASSWORD_FILE: contract.REDIS_PASSWORD_FILE,
                env.JWT_SIGNING_KEY_FILE: contract.JWT_SIGNING_KEY_FILE,
                env.JWT_TTL_SECONDS: str(args.jwt_ttl_seconds),
                env.SHUTDOWN_DRAIN_SECONDS: f"{args.drain_seconds:g}",
            },
            secrets=(
                SecretFile("postgres-password", contract.POSTGRES_PASSWORD_FILE, args.database_password),
                SecretFile("redis-password", contract.REDIS_PASSWORD_FILE, args.redis_password),
                SecretFile("jwt-signing-key", contract.JWT_SIGNING_KEY_FILE, args.jwt_signing_key),
            ),
            # Drain, then finish in-flight requests: well within the stop timeout.
            stop_timeout=max(contract.STOP_TIMEOUT_SECONDS, int(args.drain_seconds) + 15),
            settle_seconds=args.rejoin_seconds,
        )
