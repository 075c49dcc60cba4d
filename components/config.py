"""The typed stack configuration: every `microstack:*` key, its default and its limits.

The model is parsed once, in `load_config`, and everything downstream receives
typed objects. Field names are the YAML keys (camelCase) through aliases, so an
error can name the key exactly as the user wrote it.

Why strict types: stack files are YAML, and a quoted `replicas: "3"` or
`enabled: "no"` is far more often a mistake than an intent, so numbers and
booleans are not coerced from strings.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from components.engine import DockerConnection
from components.provider_values import cpus as cpus_read_back
from components.provider_values import cpus_survive_read_back
from microstack_common import contract

PROJECT = "microstack"

Port = Annotated[int, Field(ge=1, le=65535)]
MemoryMb = Annotated[int, Field(le=1024 * 1024, description="Memory limit in MiB")]


def _cpus_read_back(value: float) -> float:
    # The provider reads `cpus` back in its own decimal spelling and the field
    # is ForceNew: a value that spelling changes (0.05 reads back as "0.1")
    # would replace the container on every `up` (components/provider_values.py).
    if not cpus_survive_read_back(value):
        raise ValueError(
            f"must be a CPU count the Docker provider reads back unchanged; {value:g} reads back as "
            f"{cpus_read_back(value)!r}: use 0.1 steps below 1 (0.1, 0.25, 0.5, ...) or halves and wholes above"
        )
    return value


Cpus = Annotated[
    float,
    Field(gt=0, le=256, description="CPU limit in cores (0.5 = half a core)"),
    AfterValidator(_cpus_read_back),
]

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# A reference is pinned when it carries a digest, or a tag other than "latest".
_PINNED_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/:-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})$")


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        strict=True,
        frozen=True,
    )


def _pinned_image(value: str) -> str:
    if not _PINNED_IMAGE.match(value) or value.endswith(":latest"):
        raise ValueError(
            "must be an image reference pinned by tag or digest, "
            "e.g. 'postgres:15.8-bookworm' or 'name@sha256:<64 hex>', not 'latest' or untagged"
        )
    return value


class ApiConfig(_Model):
    """The API service: replicas behind the proxy."""

    replicas: int = Field(2, ge=1, le=50, description="Number of API containers")
    cpus: Cpus = Field(0.5, description="CPU limit per replica, in cores")
    memory_mb: MemoryMb = Field(256, ge=64, description="Memory limit per replica, in MiB")
    port: Port = Field(contract.API_PORT, description="Port the API listens on inside its container")


class AuthConfig(_Model):
    """The auth service that issues and verifies JWTs."""

    replicas: int = Field(1, ge=1, le=20, description="Number of auth containers")
    cpus: Cpus = Field(0.5, description="CPU limit per replica, in cores")
    memory_mb: MemoryMb = Field(256, ge=64, description="Memory limit per replica, in MiB")
    token_ttl_seconds: int = Field(3600, ge=60, le=7 * 24 * 3600, description="Lifetime of an issued JWT")


class TlsConfig(_Model):
    """TLS at the proxy.

    `provided` takes the certificate and key from the secret config keys
    `microstack:tlsCertificate` and `microstack:tlsPrivateKey` (PEM).
    """

    mode: Literal["off", "self-signed", "provided"] = Field("off", description="off, self-signed or provided")


class RateLimitConfig(_Model):
    """Per-client-address request rate limit at the proxy."""

    requests_per_second: int = Field(50, ge=1, le=100_000, description="Sustained requests per second per client")
    burst: int = Field(100, ge=0, le=100_000, description="Requests above the rate accepted in a burst")
    status: Literal[429, 503] = Field(429, description="Status answered when the limit is exceeded")


class CacheConfig(_Model):
    """Response cache for GET reads (nginx), also served stale while backends fail."""

    enabled: bool = Field(True, description="Cache GET responses of the API at the proxy")
    ttl_seconds: int = Field(10, ge=1, le=86_400, description="Seconds a cached response is fresh")


class HealthCheckConfig(_Model):
    """Active health checks of the replicas (HAProxy; nginx only checks passively)."""

    interval_seconds: int = Field(2, ge=1, le=300, description="Seconds between checks")
    fall: int = Field(3, ge=1, le=20, description="Failed checks before a replica leaves the pool")
    rise: int = Field(2, ge=1, le=20, description="Passed checks before a replica rejoins the pool")


class ProxyConfig(_Model):
    """The reverse proxy in front of the services."""

    kind: Literal["nginx", "haproxy"] = Field("nginx", description="nginx or haproxy")
    bind_address: str = Field("127.0.0.1", description="Host address the proxy publishes on (0.0.0.0 for all)")
    http_port: Port = Field(8080, description="Host port for HTTP")
    https_port: Port = Field(8443, description="Host port for HTTPS (used when tls.mode is not off)")
    tls: TlsConfig = Field(default_factory=TlsConfig)
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    health_check: HealthCheckConfig = Field(default_factory=HealthCheckConfig)
    slow_start_seconds: int = Field(10, ge=0, le=3600, description="Seconds a recovered replica ramps up (HAProxy)")
    discovery_slots: int = Field(
        16, ge=1, le=256, description="Most API replicas HAProxy discovers through Docker DNS without a config change"
    )
    cpus: Cpus = Field(0.5, description="CPU limit, in cores")
    memory_mb: MemoryMb = Field(128, ge=32, description="Memory limit, in MiB")

    @field_validator("bind_address")
    @classmethod
    def _ip_address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError("must be an IP address such as 127.0.0.1 or 0.0.0.0") from None
        return value

    @model_validator(mode="after")
    def _distinct_ports(self) -> ProxyConfig:
        if self.tls.mode != "off" and self.http_port == self.https_port:
            raise ValueError("httpPort and httpsPort must differ when TLS is on")
        return self


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_HOST = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$")


class BackupRepositoryConfig(_Model):
    """Where pgBackRest keeps base backups and archived WAL (docs/backups.md).

    `volume`: a named volume of its own on the Docker host (the data node on
    Swarm), not the data volume. `hostPath`: a directory of that host (`path`),
    e.g. a mounted NAS. `s3`: an S3-compatible bucket; the access key comes from
    the secret config keys `microstack:backupS3KeyId` and
    `microstack:backupS3KeySecret`.
    """

    kind: Literal["volume", "hostPath", "s3"] = Field("volume", description="volume, hostPath or s3")
    path: str | None = Field(
        None,
        description="hostPath: absolute directory on the Docker host; s3: key prefix (default /microstack-<stack>)",
    )
    bucket: str | None = Field(None, description="s3: bucket name")
    endpoint: str | None = Field(None, description="s3: endpoint host, e.g. s3.eu-central-1.amazonaws.com")
    region: str | None = Field(None, description="s3: region, e.g. eu-central-1")

    @model_validator(mode="after")
    def _fields_of_kind(self) -> BackupRepositoryConfig:
        wanted = {"volume": set(), "hostPath": {"path"}, "s3": {"bucket", "endpoint", "region"}}[self.kind]
        allowed = wanted | ({"path"} if self.kind == "s3" else set())
        given = {key for key in ("path", "bucket", "endpoint", "region") if getattr(self, key) is not None}
        missing = sorted(wanted - given)
        if missing:
            raise ValueError(f"kind {self.kind!r} needs {', '.join(missing)}")
        extra = sorted(given - allowed)
        if extra:
            raise ValueError(f"{', '.join(extra)} does not apply to kind {self.kind!r}: remove it")
        if self.path is not None and (not self.path.startswith("/") or self.path.rstrip("/") == ""):
            raise ValueError(f"path ({self.path!r}) must be an absolute directory other than /")
        if self.path is not None and not re.fullmatch(r"[A-Za-z0-9._/-]+", self.path):
            raise ValueError(f"path ({self.path!r}) may hold only letters, digits, '.', '_', '-' and '/'")
        if self.bucket is not None and not _BUCKET.match(self.bucket):
            raise ValueError(f"bucket ({self.bucket!r}) must be an S3 bucket name: 3-63 of a-z, 0-9, '.', '-'")
        if self.endpoint is not None and not _HOST.match(self.endpoint):
            raise ValueError(f"endpoint ({self.endpoint!r}) must be a host name with an optional :port, no scheme")
        if self.region is not None and not re.fullmatch(r"[a-z0-9-]{2,32}", self.region):
            raise ValueError(f"region ({self.region!r}) must look like eu-central-1")
        return self


class BackupConfig(_Model):
    """Continuous WAL archiving and scheduled base backups with pgBackRest (docs/backups.md)."""

    enabled: bool = Field(False, description="Archive WAL and take base backups (a change restarts Postgres)")
    full_backup_interval_hours: int = Field(
        24, ge=1, le=24 * 31, description="Hours between two full base backups taken by the backup sidecar"
    )
    retention_days: int = Field(7, ge=1, le=3650, description="Days of backups kept: the point-in-time recovery window")
    archive_timeout_seconds: int = Field(
        60,
        ge=10,
        le=3600,
        description="Postgres switches to a new WAL segment at least this often: the most data a lost host loses",
    )
    repository: BackupRepositoryConfig = Field(default_factory=BackupRepositoryConfig)
    retain_on_delete: bool = Field(True, description="Keep the repository volume on `pulumi destroy` (kind volume)")
    cpus: Cpus = Field(0.5, description="CPU limit of the backup sidecar, in cores")
    memory_mb: MemoryMb = Field(256, ge=64, description="Memory limit of the backup sidecar, in MiB")


class PostgresConfig(_Model):
    """PostgreSQL on the internal backend network."""

    memory_mb: MemoryMb = Field(512, ge=128, description="Memory limit, in MiB")
    cpus: Cpus = Field(1.0, description="CPU limit, in cores")
    max_connections: int = Field(
        200,
        ge=20,
        le=10_000,
        description="Connections Postgres accepts: each API and auth replica pools up to "
        f"{contract.DATABASE_POOL_SIZE}, plus 20 for admin sessions (a change restarts Postgres)",
    )
    database: str = Field("microstack", description="Database the services use")
    user: str = Field("microstack", description="Role the services connect as")
    retain_on_delete: bool = Field(
        False, description="Keep the data volume on `pulumi destroy` (the volume then outlives the stack)"
    )
    backup: BackupConfig = Field(default_factory=BackupConfig)

    @field_validator("database", "user")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError("must be a lower-case SQL identifier: a-z, 0-9 and _, not starting with a digit, ≤ 63")
        return value


class RedisConfig(_Model):
    """Redis, the services' cache, on the internal backend network."""

    memory_mb: MemoryMb = Field(256, ge=64, description="Container memory limit, in MiB (maxmemory is 75 % of it)")
    cpus: Cpus = Field(0.5, description="CPU limit, in cores")
    maxmemory_policy: Literal[
        "noeviction",
        "allkeys-lru",
        "allkeys-lfu",
        "allkeys-random",
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
        "volatile-ttl",
    ] = Field("allkeys-lru", description="What Redis evicts at maxmemory")
    retain_on_delete: bool = Field(False, description="Keep the data volume on `pulumi destroy`")


class LoggingConfig(_Model):
    """The ELK stack and how every container ships its logs."""

    enabled: bool = Field(False, description="Run ELK and ship every container's logs to it (gelf)")
    elasticsearch_heap_mb: int = Field(512, ge=256, le=31 * 1024, description="Elasticsearch JVM heap, in MiB")
    elasticsearch_memory_mb: MemoryMb = Field(
        1536, ge=768, description="Elasticsearch container limit (≥ heap + 512 MiB)"
    )
    logstash_memory_mb: MemoryMb = Field(1024, ge=512, description="Logstash container limit, in MiB")
    kibana_memory_mb: MemoryMb = Field(1024, ge=512, description="Kibana container limit, in MiB")
    retention_days: int = Field(7, ge=1, le=3650, description="Days an index is kept before deletion")
    kibana_port: Port = Field(contract.KIBANA_PORT, description="Host port for Kibana, on 127.0.0.1 only")
    gelf_port: Port = Field(contract.GELF_PORT, description="Host UDP port for Logstash's GELF input, on 127.0.0.1")
    retain_on_delete: bool = Field(False, description="Keep the Elasticsearch data volume on `pulumi destroy`")
    # The key names predate the switch to Docker's `local` driver (see
    # components/common.py log_driver); renaming them would break stack files.
    json_file_max_size_mb: int = Field(
        10, ge=1, le=1024, description="Rotation size of the local log files (Docker's `local` driver) when off"
    )
    json_file_max_files: int = Field(3, ge=1, le=100, description="Rotated local log files kept when off")

    @model_validator(mode="after")
    def _heap_fits(self) -> LoggingConfig:
        if self.elasticsearch_memory_mb < self.elasticsearch_heap_mb + 512:
            raise ValueError(
                f"elasticsearchMemoryMb ({self.elasticsearch_memory_mb}) must be at least "
                f"elasticsearchHeapMb + 512 ({self.elasticsearch_heap_mb + 512}): the JVM needs room beside its heap"
            )
        return self


class RegistryConfig(_Model):
    """A registry to push the service images to, instead of building on the Docker host.

    Its password comes from the secret config key `microstack:registryPassword`.
    """

    server: str = Field(..., min_length=1, description="Registry host, e.g. ghcr.io")
    username: str = Field(..., min_length=1, description="Registry user")
    repository: str = Field(..., min_length=1, description="Repository prefix, e.g. ghcr.io/acme/microstack")


class ImagesConfig(_Model):
    """Pinned image references, for private registries and air-gapped hosts."""

    postgres: str = Field("postgres:15.8-bookworm", description="PostgreSQL image")
    redis: str = Field("redis:7.2.5-bookworm", description="Redis image")
    nginx: str = Field("nginx:1.27.2-bookworm", description="nginx image")
    haproxy: str = Field("haproxy:2.8.11-bookworm", description="HAProxy image")
    elasticsearch: str = Field("docker.elastic.co/elasticsearch/elasticsearch:8.15.3", description="Elasticsearch")
    logstash: str = Field("docker.elastic.co/logstash/logstash:8.15.3", description="Logstash image")
    kibana: str = Field("docker.elastic.co/kibana/kibana:8.15.3", description="Kibana image")
    service_base_image: str = Field("python:3.12-slim-bookworm", description="Base image the services build on")
    platform: Literal["linux/amd64", "linux/arm64"] = Field(
        "linux/amd64",
        description="Platform the service images are built for: the Docker host's, not the deploying machine's",
    )
    registry: RegistryConfig | None = Field(None, description="Push service images here (optional)")

    @field_validator(
        "postgres", "redis", "nginx", "haproxy", "elasticsearch", "logstash", "kibana", "service_base_image"
    )
    @classmethod
    def _pinned(cls, value: str) -> str:
        return _pinned_image(value)


class NetworkConfig(_Model):
    """Docker networks of the stack."""

    frontend_subnet: str | None = Field(
        None,
        description="Frontend subnet (/24 or larger); default: 172.30.X.0/24 derived from the stack name",
    )

    @field_validator("frontend_subnet")
    @classmethod
    def _subnet(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            network = ipaddress.ip_network(value)
        except ValueError:
            raise ValueError("must be an IPv4 subnet in CIDR form, e.g. 172.30.5.0/24") from None
        if network.version != 4 or network.prefixlen > 24:
            raise ValueError("must be an IPv4 subnet of at least 256 addresses (prefix /24 or shorter)")
        return value


class SwarmConfig(_Model):
    """The Swarm a `platform: swarm` stack deploys to (docs/swarm.md)."""

    nodes: int = Field(1, ge=1, le=1000, description="How many nodes the swarm has (more than 1 needs images.registry)")
    data_label: str = Field(
        "microstack.data",
        pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$",
        description="Node label (value `true`) of the node that holds Postgres', Redis' and Elasticsearch's volumes",
    )
    edge_label: str = Field(
        "microstack.edge",
        pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$",
        description="Node label (value `true`) of the node that runs the proxy and publishes its ports",
    )


Platform = Literal["containers", "swarm"]


def is_remote_docker_host(host: str | None) -> bool:
    """Whether `docker:host` names another machine (tcp://, ssh://) rather than this one's socket."""
    if not host:
        return False
    return not host.startswith(("unix://", "npipe://")) and not host.startswith(("tcp://127.", "tcp://localhost"))


class StackConfig(_Model):
    """Everything under `microstack:` in a stack file."""

    platform: Platform = Field(
        "containers",
        description="containers: one Docker host; swarm: services on the Docker Swarm `docker:host` manages",
    )
    swarm: SwarmConfig = Field(default_factory=SwarmConfig)

    api: ApiConfig = Field(default_factory=ApiConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    proxy: ProxyConfig = Field(default_factory=ProxyConfig)
    postgres: PostgresConfig = Field(default_factory=PostgresConfig)
    redis: RedisConfig = Field(default_factory=RedisConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    images: ImagesConfig = Field(default_factory=ImagesConfig)
    network: NetworkConfig = Field(default_factory=NetworkConfig)

    @model_validator(mode="after")
    def _cross_checks(self) -> StackConfig:
        # A fixed setting rather than one derived from the replica counts:
        # `max_connections` is on Postgres' command line, so deriving it
        # would restart Postgres whenever the API is scaled.
        needed = (self.api.replicas + self.auth.replicas) * contract.DATABASE_POOL_SIZE + 20
        if self.postgres.max_connections < needed:
            raise ValueError(
                f"postgres.maxConnections ({self.postgres.max_connections}) must be at least {needed} for "
                f"api.replicas + auth.replicas = {self.api.replicas + self.auth.replicas} "
                f"({contract.DATABASE_POOL_SIZE} pooled connections each, plus 20): raise it (Postgres restarts) "
                "or run fewer replicas"
            )
        if self.platform == "swarm" and self.network.frontend_subnet is not None:
            raise ValueError(
                "network.frontendSubnet: fixed replica addresses exist only with platform 'containers'; "
                "on 'swarm' the proxy finds replicas through Docker's DNS (tasks.<service>): remove the key"
            )
        if self.platform == "swarm" and self.proxy.bind_address != "0.0.0.0":
            raise ValueError(
                f"proxy.bindAddress ({self.proxy.bind_address}): must be 0.0.0.0 on platform 'swarm': a service "
                "publishes in host mode on every interface of its node (firewall the node to limit who reaches it)"
            )
        if self.proxy.kind == "haproxy" and self.proxy.discovery_slots < self.api.replicas:
            raise ValueError(
                f"proxy.discoverySlots ({self.proxy.discovery_slots}) must be at least api.replicas "
                f"({self.api.replicas}): HAProxy only routes to that many discovered replicas"
            )
        return self


# Secret config keys, set with `pulumi config set --secret microstack:<key> ...`.
SECRET_KEYS: tuple[str, ...] = (
    "postgresPassword",
    "redisPassword",
    "jwtSigningKey",
    "elasticPassword",
    "kibanaSystemPassword",
    "tlsCertificate",
    "tlsPrivateKey",
    "registryPassword",
    "backupS3KeyId",
    "backupS3KeySecret",
)


class ConfigError(Exception):
    """The stack configuration is invalid; the message lists every problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid stack configuration:\n" + "\n".join(f"  - {problem}" for problem in problems))


def _key_path(top: str, loc: Iterable[int | str]) -> str:
    parts = [str(part) for part in loc]
    if not top:
        return PROJECT
    return f"{PROJECT}:{top}" + "".join(f".{part}" if not part.isdigit() else f"[{part}]" for part in parts)


def _allowed(error: Mapping[str, Any]) -> str:
    ctx = error.get("ctx") or {}
    if error["type"] == "literal_error":
        return f"allowed: {ctx.get('expected')}"
    if error["type"] == "extra_forbidden":
        return "not a known key (check its spelling; see the config reference in the README)"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


# Top-level keys whose value is one setting rather than an object of settings.
_SCALAR_KEYS = frozenset({"platform"})


def parse_config(
    values: Mapping[str, Any], secret_keys_present: Iterable[str] = (), docker_host: str | None = None
) -> StackConfig:
    """Validate the raw `microstack:*` values (top-level key -> parsed YAML) into a StackConfig.

    Every problem is collected before raising, so a user fixes a stack file in one pass.
    """
    problems: list[str] = []
    known = set(StackConfig.model_fields) | set(SECRET_KEYS)
    for key in sorted(values):
        if key not in known:
            problems.append(
                f"{PROJECT}:{key}: not a known key (known: {', '.join(sorted(StackConfig.model_fields))}; "
                f"secrets: {', '.join(SECRET_KEYS)})"
            )
    sections: dict[str, Any] = {}
    for name in StackConfig.model_fields:
        if name not in values:
            continue
        value = values[name]
        if name in _SCALAR_KEYS:
            sections[name] = value
            continue
        if not isinstance(value, dict):
            problems.append(f"{PROJECT}:{name}: must be an object of settings (got {value!r})")
            continue
        sections[name] = value
    try:
        config = StackConfig.model_validate(sections)
    except ValidationError as exc:
        for error in exc.errors():
            loc = list(error["loc"])
            top, rest = (str(loc[0]), loc[1:]) if loc else ("", [])
            if error["type"] == "missing":
                problems.append(f"{_key_path(top, rest)}: is required")
            else:
                problems.append(f"{_key_path(top, rest)}: {_allowed(error)} (got {error['input']!r})")
        config = None
    if config is not None:
        present = set(secret_keys_present)
        if config.proxy.tls.mode == "provided":
            for key in ("tlsCertificate", "tlsPrivateKey"):
                if key not in present:
                    problems.append(
                        f"{PROJECT}:proxy.tls.mode: 'provided' needs the secret {PROJECT}:{key} "
                        f"(pulumi config set --secret {PROJECT}:{key} < file.pem)"
                    )
        if config.platform != "swarm" and "swarm" in values:
            problems.append(
                f"{PROJECT}:swarm: applies only with {PROJECT}:platform: swarm (platform is {config.platform!r})"
            )
        remote = is_remote_docker_host(docker_host)
        if config.platform == "swarm" and config.images.registry is None and (config.swarm.nodes > 1 or remote):
            where = (
                f"swarm.nodes is {config.swarm.nodes}" if config.swarm.nodes > 1 else f"docker:host is {docker_host}"
            )
            problems.append(
                f"{PROJECT}:images.registry: is required on platform 'swarm' when {where}: every node pulls the "
                "service images, by digest, from a registry (images built on the manager exist on the manager only)"
            )
        repository = config.postgres.backup.repository
        if config.postgres.backup.enabled and repository.kind == "s3":
            for key in ("backupS3KeyId", "backupS3KeySecret"):
                if key not in present:
                    problems.append(
                        f"{PROJECT}:postgres.backup.repository.kind: 's3' needs the secret {PROJECT}:{key} "
                        f"(pulumi config set --secret {PROJECT}:{key} ...)"
                    )
        if config.images.registry is not None and "registryPassword" not in present:
            problems.append(
                f"{PROJECT}:images.registry: needs the secret {PROJECT}:registryPassword "
                f"(pulumi config set --secret {PROJECT}:registryPassword ...)"
            )
    if problems:
        raise ConfigError(problems)
    assert config is not None
    return config


def _raw_values() -> tuple[dict[str, Any], set[str]]:
    """Every `microstack:*` key of the stack, parsed, and the names of those present."""
    import json

    import pulumi
    from pulumi.runtime.config import CONFIG

    values: dict[str, Any] = {}
    # The language host sets the config either in the runtime's map or, in
    # older engines, only in the PULUMI_CONFIG environment variable.
    everything = {**pulumi.runtime.get_config_env(), **CONFIG.get()}
    for full_key, raw in everything.items():
        project, _, key = full_key.partition(":")
        if project != PROJECT:
            continue
        try:
            values[key] = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            values[key] = raw
    return values, set(values)


def load_config() -> tuple[StackConfig, dict[str, Any]]:
    """Read and validate the stack's config; returns the model and the secret values set.

    Fails the Pulumi program (no stack trace) with every problem listed.
    """
    import pulumi

    values, present = _raw_values()
    try:
        config = parse_config(values, present, pulumi.Config("docker").get("host"))
    except ConfigError as exc:
        raise pulumi.RunError(str(exc)) from None
    secrets = pulumi.Config(PROJECT)
    return config, {key: secrets.get_secret(key) for key in SECRET_KEYS if key in present}


def load_docker_connection() -> DockerConnection:
    """The provider's own connection settings (`docker:host`, TLS material), for the readiness gates."""
    import pulumi

    docker_config = pulumi.Config("docker")
    return DockerConnection(
        host=docker_config.get("host"),
        ca_material=docker_config.get("caMaterial"),
        cert_material=docker_config.get("certMaterial"),
        key_material=docker_config.get_secret("keyMaterial"),
    )


def reference_markdown() -> str:
    """The README's configuration reference, generated from the model so the two cannot drift."""
    rows = ["| key | type | default | description |", "| --- | --- | --- | --- |"]

    def row(key: str, field: Any, nested: type[BaseModel] | None) -> str:
        annotation = field.annotation
        kind = getattr(annotation, "__name__", str(annotation)).replace("typing.", "").replace(" | ", " or ")
        if nested is not None:
            kind = "object (" + ", ".join(f.alias or n for n, f in nested.model_fields.items()) + ")"
        if getattr(annotation, "__origin__", None) is Literal:
            kind = " \\| ".join(repr(a) for a in annotation.__args__)
        symbols = {"Ge": "≥", "Gt": ">", "Le": "≤", "Lt": "<"}
        limits = [
            f"{symbols[type(m).__name__]} {getattr(m, type(m).__name__.lower())}"
            for m in field.metadata
            if type(m).__name__ in symbols
        ]
        if limits:
            kind += " (" + ", ".join(limits) + ")"
        default = "—" if field.is_required() else f"`{field.get_default(call_default_factory=True)!r}`"
        return f"| `{key}` | {kind} | {default} | {field.description or ''} |"

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            key = f"{prefix}.{field.alias or name}"
            annotation = field.annotation
            nested = next(
                (
                    a
                    for a in (annotation, *getattr(annotation, "__args__", ()))
                    if isinstance(a, type) and issubclass(a, BaseModel)
                ),
                None,
            )
            if nested is not None and field.default_factory is not None:
                walk(nested, key)
                continue
            rows.append(row(key, field, nested))

    for name, field in StackConfig.model_fields.items():
        section = field.annotation
        if name in _SCALAR_KEYS:
            rows.append(row(f"{PROJECT}:{name}", field, None))
            continue
        assert isinstance(section, type) and issubclass(section, BaseModel)
        walk(section, f"{PROJECT}:{name}")
    return "\n".join(rows)


README_BEGIN = "<!-- config-reference:begin -->"
README_END = "<!-- config-reference:end -->"


def update_readme(path: str) -> None:
    """Rewrite the reference between the README's markers."""
    from pathlib import Path

    readme = Path(path)
    text = readme.read_text()
    head, _, rest = text.partition(README_BEGIN)
    _, _, tail = rest.partition(README_END)
    readme.write_text(f"{head}{README_BEGIN}\n{reference_markdown()}\n{README_END}{tail}")


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--readme"]:
        update_readme(sys.argv[2] if len(sys.argv) > 2 else "README.md")
    else:
        print(reference_markdown())
