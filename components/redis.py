"""Redis, the services' cache, on the internal backend network."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.common import LogDriver, labels, pulled_image
from components.config import RedisConfig
from components.platform import Deployment, Platform
from components.platform.workload import Attach, DataVolume, Health, Image, Kind, Mount, SecretFile, Workload
from components.redis_conf import DATA_DIR, render_redis_conf
from microstack_common import contract

CONF_PATH = "/usr/local/etc/redis/redis.conf"


@dataclass(frozen=True)
class RedisArgs:
    config: RedisConfig
    image: str
    prefix: str
    stack: str
    network: docker.Network
    password: pulumi.Output[str]
    logs: LogDriver
    platform: Platform


class Redis(pulumi.ComponentResource):
    """A Redis container: the services' cache, persisting nothing (see redis_conf.py).

    Its named volume stays mounted as Redis's working directory, so stacks that
    retain it (`redis.retainOnDelete`) see no resource change; with persistence
    off Redis writes nothing there, and an AOF left by an earlier version is
    ignored.

    The password is in redis.conf (uploaded as a secret file) because Redis has
    no *_FILE convention; the health check reads the same password from its own
    file rather than from an env var.
    """

    host: str
    port: int
    deployment: Deployment

    def __init__(self, name: str, args: RedisArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("microstack:cache:Redis", name, None, opts)
        cfg = args.config
        image = pulled_image(self, name, args.image)
        conf = args.password.apply(
            lambda password: render_redis_conf(
                password=password, memory_mb=cfg.memory_mb, maxmemory_policy=cfg.maxmemory_policy
            )
        )
        self.deployment = args.platform.run(
            self,
            Workload(
                name=name,
                docker_name=f"{args.prefix}-redis",
                role="redis",
                kind=Kind.STATEFUL,
                image=Image(local_id=image.image_id, pinned=image.repo_digest),
                memory_mb=cfg.memory_mb,
                cpus=cfg.cpus,
                health=Health(
                    [
                        "CMD-SHELL",
                        f'redis-cli --no-auth-warning -a "$(cat {contract.REDIS_PASSWORD_FILE})" ping | grep -q PONG',
                    ]
                ),
                logs=args.logs,
                labels=labels(args.stack, "redis"),
                networks=(Attach(args.network, (contract.Alias.REDIS,)),),
                command=["redis-server", CONF_PATH],
                # The password is in redis.conf: the whole file is a secret.
                secrets=(
                    SecretFile("redis-conf", CONF_PATH, pulumi.Output.secret(conf)),
                    SecretFile("redis-password", contract.REDIS_PASSWORD_FILE, args.password),
                ),
                mounts=(
                    Mount(DataVolume(f"{name}-data", f"{args.prefix}-redis-data", cfg.retain_on_delete), DATA_DIR),
                ),
            ),
            container_resource=f"{name}-container",
        )
        self.ready = self.deployment.ready
        self.host = contract.Alias.REDIS
        self.port = contract.REDIS_PORT
        self.register_outputs({"name": self.deployment.name})
