"""What every container of the stack gets: limits, health check, restart, shutdown, logs.

One place decides these so that no component can forget one; the unit tests
check the invariant across the whole resource graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_docker as docker

from components.config import LoggingConfig
from microstack_common import contract

RESTART_POLICY = "unless-stopped"

# Docker's copy API writes uploaded files as root, and every image we run
# (postgres, redis, our services) drops to its own non-root user before it
# reads them, so the owner-only mode 0400 would make them unreadable. Files are
# world-readable inside the container's private filesystem only; what matters
# for secrets is that they are not in the environment, which `docker inspect`
# shows to anyone with access to the Docker API.
SECRET_FILE_MODE = "0444"
CONFIG_FILE_MODE = "0444"

# Docker's minimum health check interval is 1 ms; these suit services that
# start in seconds. start_period gives a first start (initdb, migrations) time
# without counting failures against it.
HEALTH_INTERVAL = "5s"
HEALTH_TIMEOUT = "3s"
HEALTH_RETRIES = 5
HEALTH_START_PERIOD = "30s"

LABEL_STACK = "microstack.stack"
LABEL_ROLE = "microstack.role"
# The role of a one-shot container (runs once, no health check, no restart);
# the policy pack (its own virtualenv, so it cannot import this) uses the same value.
ROLE_JOB = "job"


@dataclass(frozen=True)
class LogDriver:
    """A Docker log driver and its options."""

    driver: str
    options: dict[str, str] = field(default_factory=dict)


def log_driver(logging: LoggingConfig) -> LogDriver:
    """gelf to Logstash on the Docker host's loopback when logging is on, rotated json-file otherwise.

    The address is the host's loopback because the Docker daemon, not the
    container, sends the log lines; Logstash publishes its GELF port there only.
    """
    if logging.enabled:
        return LogDriver(
            "gelf",
            {
                "gelf-address": f"udp://127.0.0.1:{logging.gelf_port}",
                "tag": "{{.Name}}",
            },
        )
    return LogDriver(
        "json-file",
        {"max-size": f"{logging.json_file_max_size_mb}m", "max-file": str(logging.json_file_max_files)},
    )


def healthcheck(test: list[str], *, start_period: str = HEALTH_START_PERIOD) -> docker.ContainerHealthcheckArgs:
    """A container health check; `test` is Docker's form (["CMD", ...] or ["CMD-SHELL", "..."])."""
    return docker.ContainerHealthcheckArgs(
        tests=test,
        interval=HEALTH_INTERVAL,
        timeout=HEALTH_TIMEOUT,
        retries=HEALTH_RETRIES,
        start_period=start_period,
    )


def secret_file(path: str, content: pulumi.Input[str]) -> docker.ContainerUploadArgs:
    """Upload a secret into the container as a file (see SECRET_FILE_MODE)."""
    return docker.ContainerUploadArgs(file=path, content=content, permissions=SECRET_FILE_MODE)


def config_file(path: str, content: pulumi.Input[str]) -> docker.ContainerUploadArgs:
    """Upload a rendered, non-secret configuration file into the container."""
    return docker.ContainerUploadArgs(file=path, content=content, permissions=CONFIG_FILE_MODE)


@dataclass(frozen=True)
class Runtime:
    """The operational settings of one container: resources, health, restart, shutdown, logs."""

    memory_mb: int
    cpus: float
    healthcheck: docker.ContainerHealthcheckArgs
    logs: LogDriver
    labels: dict[str, str]
    stop_signal: str = "SIGTERM"
    stop_timeout: int = contract.STOP_TIMEOUT_SECONDS
    restart: str = RESTART_POLICY

    def container_args(self) -> dict[str, Any]:
        """Keyword arguments for `docker.Container` carrying these settings."""
        return {
            # memory_swap is left to Docker: pinning it to `memory` (no swap)
            # reads back as -1 on hosts without swap accounting, which would
            # show as a change, and replace every container, on each preview.
            "memory": self.memory_mb,
            "cpus": f"{self.cpus:g}",
            "healthcheck": self.healthcheck,
            "restart": self.restart,
            "stop_signal": self.stop_signal,
            "stop_timeout": self.stop_timeout,
            # Pulumi's delete waits this long for a graceful stop before killing.
            "destroy_grace_seconds": self.stop_timeout,
            "log_driver": self.logs.driver,
            "log_opts": self.logs.options,
            "labels": [docker.ContainerLabelArgs(label=k, value=v) for k, v in sorted(self.labels.items())],
            # Creation completes only when the health check passes, so whatever
            # depends on this container starts after it is ready.
            "wait": True,
            "wait_timeout": 180,
        }


def labels(stack: str, role: str) -> dict[str, str]:
    """Labels that let a user (and the tests) find every container of a stack."""
    return {LABEL_STACK: stack, LABEL_ROLE: role}


def pulled_image(parent: pulumi.Resource, name: str, reference: pulumi.Input[str]) -> docker.RemoteImage:
    """An image pulled by reference; kept on the host when the stack no longer uses it (other stacks may)."""
    return docker.RemoteImage(
        f"{name}-image", name=reference, keep_locally=True, opts=pulumi.ResourceOptions(parent=parent)
    )


def data_volume(parent: pulumi.Resource, name: str, docker_name: str, retain_on_delete: bool) -> docker.Volume:
    """A named volume for a data store's files.

    A resource of its own, so replacing the container keeps the data; with
    `retain_on_delete` Pulumi also leaves it in place on `pulumi destroy`.
    """
    return docker.Volume(
        f"{name}-data",
        name=docker_name,
        opts=pulumi.ResourceOptions(parent=parent, retain_on_delete=retain_on_delete),
    )
