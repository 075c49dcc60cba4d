"""A Python service of ours (api or auth): its image, built from services/, and N replicas."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_docker as docker

from components.common import LogDriver, Runtime, healthcheck, labels, pulled_image, ready_gate, secret_file
from components.config import RegistryConfig
from components.gate import DockerConnection, ReadyGate
from microstack_common import contract

# Relative to the project directory, where Pulumi runs the program: the
# state then holds the same paths on every machine that deploys the stack.
SERVICES_DIR = "services"
_PROJECT_DIR = Path(__file__).resolve().parents[1]
# Replica i of a service gets host address FIRST_HOST[service] + i on the frontend subnet.
FIRST_HOST = {"api": 10, "auth": 100}


def source_digest(roots: Iterable[Path]) -> str:
    """A short digest of every source file under `roots`: the image tag changes exactly when the code does."""
    digest = hashlib.sha256()
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            if "__pycache__" in path.parts or path.suffix in {".pyc", ".pyo"} or ".egg-info" in str(path):
                continue
            digest.update(str(path.relative_to(root.parent)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def replica_address(subnet: str, service: str, index: int) -> str:
    """The fixed frontend address of replica `index` (1-based) of `service`."""
    network = ipaddress.ip_network(subnet)
    return str(network.network_address + FIRST_HOST[service] + index)


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
    frontend_subnet: str
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
    platform: str
    """The platform the image is built for (the Docker host's)."""
    docker: DockerConnection


class ReplicatedService(pulumi.ComponentResource):
    """Builds the service image and runs `replicas` containers on the frontend and backend networks.

    Rolling updates: a new image (its tag is a digest of the source) or new
    settings replace the replicas one at a time. Each replica depends on the
    gate of the one before it (components/gate.py), so the engine replaces
    replica i+1 only after replica i is healthy and back in the proxy's
    rotation; a replica that never gets healthy fails the `up` at its gate, on
    this and every later `up`, and the replicas after it keep the old release. Each replica keeps a fixed
    name and frontend address, so a proxy that resolved it at start (nginx
    resolves upstreams once) finds the replacement at the same address; that
    is also why a replica is deleted before its replacement is created
    (`delete_before_replace`): two containers cannot hold one address. While
    one replica is down the proxy routes around it (see the proxy component).
    Limits: a change that replaces all replicas takes replicas × (stop + start
    + health) seconds; with one replica there is a gap the proxy bridges only
    with its stale cache and fallback answer.
    """

    containers: list[docker.Container]
    gates: list[ReadyGate]
    image_ref: pulumi.Output[str]
    addresses: list[str]

    def __init__(self, name: str, args: ServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("microstack:service:ReplicatedService", name, None, opts)
        self.image_ref = self._image(name, args)
        self.containers = []
        self.gates = []
        self.addresses = []
        previous: ReadyGate | None = None
        for index in range(1, args.replicas + 1):
            container = self._replica(name, args, index, previous)
            previous = ready_gate(self, f"{name}-{index}", container, args.docker, settle_seconds=args.rejoin_seconds)
            self.containers.append(container)
            self.gates.append(previous)
            self.addresses.append(replica_address(args.frontend_subnet, args.service, index))
        self.register_outputs(
            {"image": self.image_ref, "containers": [c.name for c in self.containers], "addresses": self.addresses}
        )

    def _image(self, name: str, args: ServiceArgs) -> pulumi.Output[str]:
        tag = source_digest([_PROJECT_DIR / SERVICES_DIR / "common", _PROJECT_DIR / SERVICES_DIR / args.service])
        repository = f"{args.registry.repository}/{args.service}" if args.registry else f"{args.prefix}/{args.service}"
        image = docker.Image(
            f"{name}-image",
            image_name=f"{repository}:{tag}",
            # The provider diffs a digest of the build context, which is all of
            # services/; services/<name>/Dockerfile.dockerignore narrows it to
            # what this image copies, so an auth-only edit does not rebuild api
            # (pulumi-docker v4.11 provider/provider.go, hashContext and
            # getIgnorePatterns: <Dockerfile>.dockerignore is preferred). The
            # platform is pinned: left out, it is the deploying machine's
            # architecture, and deploying from an arm64 laptop and an amd64 CI
            # runner in turn would rebuild, and replace, every time.
            build=docker.DockerBuildArgs(
                context=SERVICES_DIR,
                dockerfile=f"{SERVICES_DIR}/{args.service}/Dockerfile",
                args={"BASE_IMAGE": args.base_image},
                platform=args.platform,
            ),
            # Without a registry the image is built on the Docker host the
            # provider talks to, which is where the containers run.
            skip_push=args.registry is None,
            registry=docker.RegistryArgs(
                server=args.registry.server, username=args.registry.username, password=args.registry_password
            )
            if args.registry
            else None,
            opts=pulumi.ResourceOptions(parent=self),
        )
        # Containers name their image by ID: the provider reads a container's
        # image back as the engine's image ID, so a tag there would show as a
        # change on every preview and replace every replica. Looking the built
        # image up (pulled by digest when pushed, so every host runs the same
        # bytes) gives that ID, and a new ID exactly when the source changes.
        reference = image.repo_digest if args.registry else image.image_name
        return pulled_image(self, f"{name}-built", reference).image_id

    def _replica(self, name: str, args: ServiceArgs, index: int, previous: ReadyGate | None) -> docker.Container:
        instance = f"{args.service}-{index}"
        runtime = Runtime(
            memory_mb=args.memory_mb,
            cpus=args.cpus,
            healthcheck=healthcheck(["CMD", "python", "-m", "microstack_common.healthcheck", str(args.port)]),
            logs=args.logs,
            labels=labels(args.stack, args.service),
            # Drain, then finish in-flight requests: well within the stop timeout.
            stop_timeout=max(contract.STOP_TIMEOUT_SECONDS, int(args.drain_seconds) + 15),
        )
        env = contract.Env
        return docker.Container(
            f"{name}-{index}",
            name=f"{args.prefix}-{instance}",
            image=self.image_ref,
            envs=[
                f"{env.SERVICE_NAME}={args.service}",
                f"{env.INSTANCE_NAME}={instance}",
                f"{env.HOST}=0.0.0.0",
                f"{env.PORT}={args.port}",
                f"{env.DATABASE_HOST}={args.database.host}",
                f"{env.DATABASE_PORT}={args.database.port}",
                f"{env.DATABASE_NAME}={args.database.name}",
                f"{env.DATABASE_USER}={args.database.user}",
                f"{env.DATABASE_PASSWORD_FILE}={contract.POSTGRES_PASSWORD_FILE}",
                f"{env.REDIS_HOST}={args.redis_host}",
                f"{env.REDIS_PORT}={args.redis_port}",
                f"{env.REDIS_PASSWORD_FILE}={contract.REDIS_PASSWORD_FILE}",
                f"{env.JWT_SIGNING_KEY_FILE}={contract.JWT_SIGNING_KEY_FILE}",
                f"{env.JWT_TTL_SECONDS}={args.jwt_ttl_seconds}",
                f"{env.SHUTDOWN_DRAIN_SECONDS}={args.drain_seconds:g}",
            ],
            uploads=[
                secret_file(contract.POSTGRES_PASSWORD_FILE, args.database_password),
                secret_file(contract.REDIS_PASSWORD_FILE, args.redis_password),
                secret_file(contract.JWT_SIGNING_KEY_FILE, args.jwt_signing_key),
            ],
            networks_advanced=[
                docker.ContainerNetworksAdvancedArgs(
                    name=args.frontend.name,
                    aliases=[args.service, instance],
                    ipv4_address=replica_address(args.frontend_subnet, args.service, index),
                ),
                docker.ContainerNetworksAdvancedArgs(name=args.backend.name, aliases=[args.service, instance]),
            ],
            **runtime.container_args(),
            # Delete-before-replace comes with Runtime.options (a fixed name and address).
            opts=runtime.options(parent=self, depends_on=[previous] if previous is not None else None),
        )
