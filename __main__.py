"""microstack: a reverse proxy in front of replicated services, PostgreSQL, Redis and ELK on Docker.

Reads like the architecture picture in the README, top to bottom: config,
networks, secrets, logging (first, so every container's logs have a
destination), data stores, services, proxy; then the outputs.
"""

import pulumi

from components.common import log_driver
from components.config import load_config, load_docker_connection
from components.elk import Elk, ElkArgs
from components.network import Networks, NetworksArgs, default_frontend_subnet
from components.platform.choose import platform_for
from components.postgres import Postgres, PostgresArgs
from components.postgres_backup import BackupArgs, BackupSidecar, BackupSidecarArgs
from components.proxy.component import Proxy, ProxyArgs, Upstream, rejoin_seconds
from components.redis import Redis, RedisArgs
from components.secrets import SecretOverrides, Secrets, SecretsArgs
from components.service import Database, ReplicatedService, ServiceArgs
from microstack_common import contract

config, secret_config = load_config()
# The provider's own connection settings, for the readiness gates (components/gate.py).
docker_connection = load_docker_connection()
stack = pulumi.get_stack()
prefix = f"{pulumi.get_project()}-{stack}"
logs = log_driver(config.logging)
# Containers on one Docker host, or services on a Swarm: the one place that decides.
platform = platform_for(config, docker_connection, stack)

# Replicas keep fixed frontend addresses where the platform pins them (for nginx; see ReplicatedService).
frontend_subnet = (
    (config.network.frontend_subnet or default_frontend_subnet(prefix)) if platform.pins_addresses else None
)
networks = Networks(
    "networks",
    NetworksArgs(
        prefix=prefix, logging_enabled=config.logging.enabled, frontend_subnet=frontend_subnet, platform=platform
    ),
)

secrets = Secrets(
    "secrets",
    SecretsArgs(
        overrides=SecretOverrides(
            postgres_password=secret_config.get("postgresPassword"),
            redis_password=secret_config.get("redisPassword"),
            jwt_signing_key=secret_config.get("jwtSigningKey"),
            elastic_password=secret_config.get("elasticPassword"),
            kibana_system_password=secret_config.get("kibanaSystemPassword"),
        ),
        logging_enabled=config.logging.enabled,
    ),
)

# Logging first, so that the other containers' first log lines have somewhere to go.
elk = (
    Elk(
        "logging",
        ElkArgs(
            config=config.logging,
            images=config.images,
            prefix=prefix,
            stack=stack,
            network=networks.logging,
            elastic_password=secrets.elastic_password,
            kibana_system_password=secrets.kibana_system_password,
            platform=platform,
        ),
    )
    if config.logging.enabled and networks.logging and secrets.elastic_password and secrets.kibana_system_password
    else None
)
after_logging = pulumi.ResourceOptions(depends_on=[elk] if elk else None)

postgres = Postgres(
    "postgres",
    PostgresArgs(
        config=config.postgres,
        image=config.images.postgres,
        prefix=prefix,
        stack=stack,
        network=networks.backend,
        password=secrets.postgres_password,
        logs=logs,
        platform=platform,
        # WAL archiving and the backup sidecar, with postgres.backup.enabled (docs/backups.md).
        backup=BackupArgs(
            config=config.postgres.backup,
            s3_key_id=secret_config.get("backupS3KeyId"),
            s3_key_secret=secret_config.get("backupS3KeySecret"),
            registry=config.images.registry,
            registry_password=secret_config.get("registryPassword"),
            image_platform=config.images.platform,
        ),
        # Fixed in config, checked against the replicas' pools there: not derived
        # from the replica counts, which would restart Postgres on every scaling.
        max_connections=config.postgres.max_connections,
    ),
    after_logging,
)

# Beside Postgres: the services wait for Postgres, not for the backup sidecar.
backups = (
    BackupSidecar(
        "postgres-backup",
        BackupSidecarArgs(
            archiving=postgres.archiving,
            data=postgres.data,
            config=config.postgres.backup,
            prefix=prefix,
            stack=stack,
            networks=postgres.networks,
            logs=logs,
            platform=platform,
            postgres=postgres.ready,
        ),
        after_logging,
    )
    if postgres.archiving
    else None
)

redis = Redis(
    "redis",
    RedisArgs(
        config=config.redis,
        image=config.images.redis,
        prefix=prefix,
        stack=stack,
        network=networks.backend,
        password=secrets.redis_password,
        logs=logs,
        platform=platform,
    ),
    after_logging,
)


def service(name: str, replicas: int, cpus: float, memory_mb: int, port: int, ttl: int) -> ReplicatedService:
    """One of our Python services; api and auth differ only in these values."""
    return ReplicatedService(
        name,
        ServiceArgs(
            service=name,
            replicas=replicas,
            cpus=cpus,
            memory_mb=memory_mb,
            port=port,
            base_image=config.images.service_base_image,
            registry=config.images.registry,
            registry_password=secret_config.get("registryPassword"),
            prefix=prefix,
            stack=stack,
            frontend=networks.frontend,
            frontend_subnet=frontend_subnet,
            backend=networks.backend,
            database=Database(postgres.host, postgres.port, postgres.database, postgres.user),
            database_password=secrets.postgres_password,
            redis_host=redis.host,
            redis_port=redis.port,
            redis_password=secrets.redis_password,
            jwt_signing_key=secrets.jwt_signing_key,
            jwt_ttl_seconds=ttl,
            logs=logs,
            # Long enough for HAProxy's checks to mark a stopping replica down.
            drain_seconds=config.proxy.health_check.interval_seconds * config.proxy.health_check.fall + 1,
            rejoin_seconds=rejoin_seconds(config.proxy),
            image_platform=config.images.platform,
            platform=platform,
        ),
        # Replicas start once the data stores are healthy.
        pulumi.ResourceOptions(depends_on=[postgres, redis]),
    )


api = service(
    "api", config.api.replicas, config.api.cpus, config.api.memory_mb, config.api.port, config.auth.token_ttl_seconds
)
auth = service(
    "auth",
    config.auth.replicas,
    config.auth.cpus,
    config.auth.memory_mb,
    contract.AUTH_PORT,
    config.auth.token_ttl_seconds,
)


def upstream(alias: str, port: int, service: ReplicatedService) -> Upstream:
    deployment = service.deployment
    return Upstream(alias, port, deployment.addresses, config.proxy.discovery_slots, deployment.dns_name)


proxy = Proxy(
    "proxy",
    ProxyArgs(
        config=config.proxy,
        image=config.images.haproxy if config.proxy.kind == "haproxy" else config.images.nginx,
        prefix=prefix,
        stack=stack,
        network=networks.frontend,
        api=upstream(contract.Alias.API, config.api.port, api),
        auth=upstream(contract.Alias.AUTH, contract.AUTH_PORT, auth),
        logs=logs,
        platform=platform,
        tls_certificate=secret_config.get("tlsCertificate"),
        tls_private_key=secret_config.get("tlsPrivateKey"),
    ),
    # Every replica ready and in rotation first.
    pulumi.ResourceOptions(depends_on=[api, auth]),
)

pulumi.export("url", proxy.url)
pulumi.export("networks", {"frontend": networks.frontend.name, "backend": networks.backend.name})
pulumi.export(
    "postgres",
    {
        "host": postgres.host,
        "port": postgres.port,
        "database": postgres.database,
        "user": postgres.user,
        "container": postgres.deployment.name,
    },
)
if postgres.archiving is not None:
    # For a restore (docs/backups.md): the image with pgBackRest, and its config
    # (a secret: with an S3 repository it carries the key pair).
    pulumi.export(
        "postgresBackup", {"image": postgres.archiving.image.pinned, "stanza": postgres.archiving.plan.stanza}
    )
    pulumi.export("pgbackrestConf", pulumi.Output.secret(postgres.archiving.conf_text))
pulumi.export("redis", {"host": redis.host, "port": redis.port, "container": redis.deployment.name})
pulumi.export("postgresPassword", secrets.postgres_password)
pulumi.export("redisPassword", secrets.redis_password)
if elk is not None:
    pulumi.export("kibanaUrl", elk.kibana_url)
    pulumi.export("elasticPassword", secrets.elastic_password)
