"""What every container of the stack gets: limits, health check, restart, shutdown, logs.

One place decides these so that no component can forget one; the unit tests
check the invariant across the whole resource graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_docker as docker

from components import provider_values
from components.config import LoggingConfig
from components.engine import DockerConnection
from components.gate import Condition, ReadyGate
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
# without counting failures against it. Seconds; declared in Go's duration
# spelling (provider_values.duration), the way the provider reads them back.
HEALTH_INTERVAL_SECONDS = 5
HEALTH_TIMEOUT_SECONDS = 3
HEALTH_RETRIES = 5
HEALTH_START_PERIOD_SECONDS = 30
# How long a gate waits for a container to become healthy (the provider's
# `wait_timeout` before the gates replaced it).
READY_TIMEOUT_SECONDS = 180

# Swap beyond the memory limit. The provider's Read stores HostConfig.MemorySwap
# on every read (resourceDockerContainerRead, resource_docker_container_funcs.go
# in kreuzwerker/terraform-provider-docker v3.9.0) and `memory_swap` is not a
# Computed attribute, so whatever the program does not declare is a diff on
# every `up` after a refresh. Docker writes a value that depends on the host:
# unset becomes 2 × memory, and any positive value becomes -1 on hosts without
# swap accounting (moby daemon/daemon_unix.go, adaptContainerSettings and
# verifyPlatformContainerResources). -1 ("no separate swap limit") is the one
# value every host reads back unchanged. On hosts without swap, the usual
# server setup and what Elasticsearch asks for, it changes nothing; on a host
# with swap a container may page out instead of being OOM-killed at its limit.
MEMORY_SWAP_UNLIMITED = -1

# A change of the health check must replace the container: the attribute is
# not ForceNew and resourceDockerContainerUpdate ignores it, so an in-place
# update would be reported as applied and never reach the running container.
REPLACE_ON_CHANGES = ["healthcheck"]

LABEL_STACK = "microstack.stack"
LABEL_ROLE = "microstack.role"
# On a Swarm service that publishes from an internal network (Swarm cannot bind
# 127.0.0.1): why, and how to firewall it. The policy pack, which cannot import
# this, uses the same name.
LABEL_EXPOSURE = "microstack.exposure"
# The role of a one-shot container (runs once, no health check, no restart);
# the policy pack (its own virtualenv, so it cannot import this) uses the same value.
ROLE_JOB = "job"


@dataclass(frozen=True)
class LogDriver:
    """A Docker log driver and its options."""

    driver: str
    options: dict[str, str] = field(default_factory=dict)


def log_driver(logging: LoggingConfig) -> LogDriver:
    """gelf to Logstash on the Docker host's loopback when logging is on, Docker's rotated `local` driver otherwise.

    The address is the host's loopback because the Docker daemon, not the
    container, sends the log lines; Logstash publishes its GELF port there only.

    Not json-file: the daemon merges its own `log-opts` (daemon.json) into
    every container whose driver is the daemon's default, json-file on a
    standard install (moby daemon/logs.go, mergeAndVerifyLogConfig). The
    provider reads the merged map back and `log_opts` is ForceNew, so on a host
    whose daemon.json sets, say, `compress`, every json-file container would be
    replaced on every `up`. `local` rotates by default, `docker logs` reads it,
    and every option it has is declared here, so a daemon that made it the
    default still has nothing to add.
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
        "local",
        {
            "max-size": f"{logging.json_file_max_size_mb}m",
            "max-file": str(logging.json_file_max_files),
            "compress": "true",
        },
    )


def healthcheck(
    test: list[str], *, start_period_seconds: int = HEALTH_START_PERIOD_SECONDS
) -> docker.ContainerHealthcheckArgs:
    """A container health check; `test` is Docker's form (["CMD", ...] or ["CMD-SHELL", "..."]).

    Durations in Go's spelling ("2m0s", not "120s"): the provider stores
    `Duration.String()` of what it reads back.
    """
    return docker.ContainerHealthcheckArgs(
        tests=test,
        interval=provider_values.duration(HEALTH_INTERVAL_SECONDS),
        timeout=provider_values.duration(HEALTH_TIMEOUT_SECONDS),
        retries=HEALTH_RETRIES,
        start_period=provider_values.duration(start_period_seconds),
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
            "memory": self.memory_mb,
            "memory_swap": MEMORY_SWAP_UNLIMITED,
            # ForceNew: declared as the provider reads it back ("1.0", not "1").
            "cpus": provider_values.cpus(self.cpus),
            "healthcheck": self.healthcheck,
            "restart": self.restart,
            "stop_signal": self.stop_signal,
            "stop_timeout": self.stop_timeout,
            # Pulumi's delete waits this long for a graceful stop before killing.
            "destroy_grace_seconds": self.stop_timeout,
            "log_driver": self.logs.driver,
            "log_opts": self.logs.options,
            "labels": [docker.ContainerLabelArgs(label=k, value=v) for k, v in sorted(self.labels.items())],
            # Readiness is the gate's job (components/gate.py), not the
            # provider's `wait`, whose failure a retried `up` turns into success.
            "wait": False,
            # With must_run (the default), the provider's Read stops and removes
            # a container it finds stopped, during `pulumi refresh` and even
            # `pulumi preview --refresh` (resourceDockerContainerRead). A stopped
            # container is an operator's decision (crashes are restarted by the
            # restart policy); a preview must not act on it.
            "must_run": False,
        }

    def options(self, **options: Any) -> pulumi.ResourceOptions:
        """Resource options for the container: the caller's, plus replacement on a changed health check.

        Replaced delete-before-replace: every container has a fixed name and
        Docker refuses a second container of the same name, so the engine's
        default (create the new one, then delete the old) would fail every
        replacing `up`; for Postgres and Redis it would also run two servers
        on one data volume.
        """
        options.setdefault("delete_before_replace", True)
        return pulumi.ResourceOptions(replace_on_changes=REPLACE_ON_CHANGES, **options)


def ready_gate(
    parent: pulumi.Resource,
    name: str,
    container: docker.Container,
    connection: DockerConnection,
    *,
    condition: Condition = "healthy",
    settle_seconds: int = 0,
    timeout_seconds: int = READY_TIMEOUT_SECONDS,
) -> ReadyGate:
    """The gate that what comes after `container` waits on (see components/gate.py)."""
    return ReadyGate(
        f"{name}-ready",
        container=container,
        container_name=container.name,
        condition=condition,
        timeout_seconds=timeout_seconds,
        settle_seconds=settle_seconds,
        docker_connection=connection,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[container]),
    )


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
