"""Which platform a stack deploys to (`microstack:platform`)."""

from __future__ import annotations

from components.config import StackConfig
from components.engine import DockerConnection
from components.platform.base import Platform
from components.platform.containers import ContainersPlatform
from components.platform.swarm import SwarmPlatform


def platform_for(config: StackConfig, connection: DockerConnection, stack: str) -> Platform:
    if config.platform == "swarm":
        return SwarmPlatform(connection, config.swarm, stack)
    return ContainersPlatform(connection)
