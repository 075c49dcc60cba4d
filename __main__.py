"""microstack: a reverse proxy in front of replicated services, PostgreSQL, Redis and ELK on Docker.

Reads like the architecture picture in the README, top to bottom: config,
networks, secrets, data stores, services, proxy, logging; then the outputs.
"""

import pulumi

from components.common import log_driver
from components.config import load_config
from components.network import Networks, NetworksArgs
from components.postgres import Postgres, PostgresArgs
from components.redis import Redis, RedisArgs
from components.secrets import SecretOverrides, Secrets, SecretsArgs

config, secret_config = load_config()
stack = pulumi.get_stack()
prefix = f"{pulumi.get_project()}-{stack}"
logs = log_driver(config.logging)

networks = Networks("networks", NetworksArgs(prefix=prefix, logging_enabled=config.logging.enabled))

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
        # Each replica's pool (see the services' settings) plus room for admin sessions.
        max_connections=(config.api.replicas + config.auth.replicas) * 10 + 20,
    ),
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
    ),
)

pulumi.export("networks", {"frontend": networks.frontend.name, "backend": networks.backend.name})
pulumi.export(
    "postgres",
    {
        "host": postgres.host,
        "port": postgres.port,
        "database": postgres.database,
        "user": postgres.user,
        "container": postgres.container.name,
    },
)
pulumi.export("redis", {"host": redis.host, "port": redis.port, "container": redis.container.name})
pulumi.export("postgresPassword", secrets.postgres_password)
pulumi.export("redisPassword", secrets.redis_password)
