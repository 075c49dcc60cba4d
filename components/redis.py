"""Redis, the services' cache, on the internal backend network."""

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
from components.config import RedisConfig
from components.gate import DockerConnection
from components.redis_conf import render_redis_conf
from microstack_common import contract

CONF_PATH = "/usr/local/etc/redis/redis.conf"
DATA_DIR = "/data"


@dataclass(frozen=True)
class RedisArgs:
    config: RedisConfig
    image: str
    prefix: str
    stack: str
    network: docker.Network
    password: pulumi.Output[str]
    logs: LogDriver
    docker: DockerConnection
    """How the readiness gate reaches the Docker engine."""


class Redis(pulumi.ComponentResource):
    """A Redis container with AOF persistence in a named volume.

    The password is in redis.conf (uploaded as a secret file) because Redis has
    no *_FILE convention; the health check reads the same password from its own
    file rather than from an env var.
    """

    host: str
    port: int
    container: docker.Container
    volume: docker.Volume

    def __init__(self, name: str, args: RedisArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("microstack:cache:Redis", name, None, opts)
        cfg = args.config
        image = pulled_image(self, name, args.image)
        self.volume = data_volume(self, name, f"{args.prefix}-redis-data", cfg.retain_on_delete)
        conf = args.password.apply(
            lambda password: render_redis_conf(
                password=password, memory_mb=cfg.memory_mb, maxmemory_policy=cfg.maxmemory_policy
            )
        )
        runtime = Runtime(
            memory_mb=cfg.memory_mb,
            cpus=cfg.cpus,
            healthcheck=healthcheck(
                [
                    "CMD-SHELL",
                    f'redis-cli --no-auth-warning -a "$(cat {contract.REDIS_PASSWORD_FILE})" ping | grep -q PONG',
                ]
            ),
            logs=args.logs,
            labels=labels(args.stack, "redis"),
        )
        self.container = docker.Container(
            f"{name}-container",
            name=f"{args.prefix}-redis",
            image=image.image_id,
            command=["redis-server", CONF_PATH],
            uploads=[
                secret_file(CONF_PATH, pulumi.Output.secret(conf)),
                secret_file(contract.REDIS_PASSWORD_FILE, args.password),
            ],
            volumes=[docker.ContainerVolumeArgs(volume_name=self.volume.name, container_path=DATA_DIR)],
            networks_advanced=[
                docker.ContainerNetworksAdvancedArgs(name=args.network.name, aliases=[contract.Alias.REDIS])
            ],
            **runtime.container_args(),
            opts=runtime.options(parent=self),
        )
        self.ready = ready_gate(self, name, self.container, args.docker)
        self.host = contract.Alias.REDIS
        self.port = contract.REDIS_PORT
        self.register_outputs({"container": self.container.name, "volume": self.volume.name})
