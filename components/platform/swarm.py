"""Workloads as services on a Docker Swarm (`microstack:platform: swarm`).

Swarm does what the containers platform builds from the resource graph:
rolling updates (one task at a time, the new one healthy before the old one
stops), rollback of an update whose tasks fail, and rescheduling of a failed
node's tasks. The program's part is to declare every value the way the
provider reads it back, so that a second `pulumi up` changes nothing, and to
make `pulumi up` wait for Swarm and fail when Swarm rolls back.

Every choice below that the provider decides cites its source:
kreuzwerker/terraform-provider-docker v3.9.0 (bridged by pulumi-docker 4.11),
internal/provider/resource_docker_service*.go, resource_docker_secret.go,
resource_docker_config.go. docs/swarm.md explains the consequences for users.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import TypedDict

import pulumi
import pulumi_docker as docker

from components import provider_values
from components.common import HEALTH_INTERVAL_SECONDS, HEALTH_RETRIES, HEALTH_TIMEOUT_SECONDS, LABEL_EXPOSURE
from components.config import SwarmConfig
from components.engine import DockerConnection
from components.gate import ReadyGate
from components.platform.base import Deployment, NetworkSpec
from components.platform.containers import ContainersPlatform
from components.platform.workload import INSTANCE, Kind, Workload

_MIB = 1024 * 1024
_NANO = 10**9
# Secret and config files: readable by the image's own non-root user (see
# components/common.py, SECRET_FILE_MODE); the provider reads the mode back
# as a plain number (flattenServiceSecrets: `int(v.File.Mode)`), 0o444 = 292.
FILE_MODE = 0o444
FILE_OWNER = "0"
# Swarm's template for a task's slot number: replica `api-3` is task slot 3.
TASK_SLOT = "{{.Task.Slot}}"
# What Swarm waits between two checks that an updated service converged; the
# provider's own default (resourceDockerService schema, converge_config.delay).
CONVERGE_DELAY_SECONDS = 7
# Margin on top of the computed rollout time before `pulumi up` gives up.
CONVERGE_MARGIN_SECONDS = 60
RESTART_DELAY_SECONDS = 5
# Swarm fills `placement.platforms` from the registry's manifest when the
# service is created (the docker client's resolveContainerSpecImage, called
# because resourceDockerServiceCreate sets QueryRegistry); no declared value
# can match every image's manifest list, so it is left to Swarm.
IGNORE_CHANGES = ["taskSpec.placement.platforms"]


def health_window_seconds(start_period_seconds: int, interval_seconds: int = HEALTH_INTERVAL_SECONDS) -> int:
    """The longest a new task may take to be reported healthy (start period, then every retry failing)."""
    return start_period_seconds + interval_seconds * HEALTH_RETRIES + HEALTH_TIMEOUT_SECONDS


def converge_timeout_seconds(workload: Workload) -> int:
    """How long `pulumi up` waits for Swarm to finish rolling out `workload`.

    Every replica is replaced one after the other, each taking at most the
    health window plus the delay the proxy needs to route to it again.
    """
    start = workload.health.start_period_seconds if workload.health else 0
    per_task = health_window_seconds(start) + workload.settle_seconds + CONVERGE_DELAY_SECONDS
    return workload.replicas * per_task + CONVERGE_MARGIN_SECONDS


def _digest(values: object) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def b64(text: str) -> str:
    """Secret and config data as the provider wants it: standard, padded base64.

    docker_config's Read stores `base64.StdEncoding` of the data (resourceDockerConfigRead),
    so any other spelling would replace the config on every `up`.
    """
    return base64.b64encode(text.encode()).decode()


class UpdatePolicy(TypedDict):
    """The fields update_config and rollback_config share."""

    parallelism: int
    delay: str
    failure_action: str
    monitor: str
    max_failure_ratio: str
    order: str


class SwarmPlatform:
    """Turns workloads into `docker.Service`s, `docker.Secret`s and `docker.ServiceConfig`s on the manager."""

    name = "swarm"
    pins_addresses = False

    def __init__(self, connection: DockerConnection, swarm: SwarmConfig, stack: str) -> None:
        self._swarm = swarm
        self._stack = stack
        self._connection = connection
        # One-off work runs as a container on the manager (see run()).
        self._containers = ContainersPlatform(connection)
        self._secrets: dict[str, docker.Secret] = {}

    def network(self, parent: pulumi.Resource, spec: NetworkSpec) -> docker.Network:
        """An overlay network spanning the swarm's nodes.

        No subnet: replicas have no fixed addresses here (the proxy resolves
        `tasks.<service>`). `masquerade` has no overlay equivalent: a
        non-internal overlay reaches out through each node's docker_gwbridge.
        """
        return docker.Network(
            spec.name,
            name=spec.docker_name,
            driver="overlay",
            internal=spec.internal or None,
            attachable=spec.attachable or None,
            # Docker refuses two networks of one name: replaced delete-before-replace.
            opts=pulumi.ResourceOptions(parent=parent, delete_before_replace=True),
        )

    def run(
        self,
        parent: pulumi.Resource,
        workload: Workload,
        *,
        depends_on: list[pulumi.Resource] | None = None,
        container_resource: str | None = None,
    ) -> Deployment:
        if workload.kind is Kind.JOB:
            # The provider has no Swarm job mode (kreuzwerker #967), and a
            # replicated service restarts a finished task forever. A job is a
            # container on the manager, joining attachable overlays, with the
            # same exited-zero gate as on the containers platform: it runs once
            # per change of its inputs and a failure fails the `up`.
            return self._containers.run(parent, workload, depends_on=depends_on, container_resource=container_resource)
        per_node = workload.kind is Kind.PER_NODE
        labels = dict(workload.labels)
        if workload.ports and any(p.host_ip != "0.0.0.0" for p in workload.ports):
            # Meant for one address (loopback), but a Swarm port binds every
            # interface of its node (moby #26696): say why and how to limit it.
            if not workload.exposure:
                raise ValueError(
                    f"{workload.name}: publishes on {sorted({p.host_ip for p in workload.ports})} only, which a "
                    "Swarm service cannot; give the workload an `exposure` saying why and how to firewall it"
                )
            labels[LABEL_EXPOSURE] = workload.exposure
        service = docker.Service(
            f"{workload.name}-service",
            name=workload.docker_name,
            labels=[docker.ServiceLabelArgs(label=k, value=v) for k, v in sorted(labels.items())],
            mode=docker.ServiceModeArgs(global_=True)
            if per_node
            else docker.ServiceModeArgs(replicated=docker.ServiceModeReplicatedArgs(replicas=workload.replicas)),
            task_spec=self._task_spec(parent, workload),
            update_config=docker.ServiceUpdateConfigArgs(**self._update_policy(workload, rollback=False)),
            rollback_config=docker.ServiceRollbackConfigArgs(**self._update_policy(workload, rollback=True)),
            # Without it the provider returns as soon as Swarm accepted the
            # spec. With it, create waits until `replicas` tasks run (a task
            # with a health check runs once healthy) and deletes the service
            # when they do not; update waits for UpdateStatus "completed" and
            # fails on "paused", "rollback_completed" and "rollback_paused"
            # (resource_docker_service_funcs.go, resourceDockerServiceCreate,
            # resourceDockerServiceUpdate, resourceDockerServiceUpdateRefreshFunc).
            # Global services cannot converge (the schema's ConflictsWith).
            converge_config=None
            if per_node
            else docker.ServiceConvergeConfigArgs(
                delay=provider_values.short_duration(CONVERGE_DELAY_SECONDS),
                timeout=provider_values.short_duration(converge_timeout_seconds(workload)),
            ),
            endpoint_spec=docker.ServiceEndpointSpecArgs(
                # DNS round robin: the proxy resolves `tasks.<service>` and
                # checks every replica itself. VIP would hide the replicas
                # behind one IPVS address (and needs IPVS on every node).
                mode="dnsrr",
                ports=[
                    docker.ServiceEndpointSpecPortArgs(
                        target_port=p.target,
                        published_port=p.published,
                        # Host mode: the routing mesh hides client addresses
                        # (moby #25526) and needs IPVS; the read-back stores
                        # name, protocol and publish mode of every port
                        # (flattenServicePorts), so all are declared.
                        publish_mode="host",
                        protocol=p.protocol or "tcp",
                    )
                    for p in workload.ports
                ]
                or None,
            ),
            opts=pulumi.ResourceOptions(
                parent=parent,
                depends_on=depends_on,
                # A fixed name (the proxy resolves `tasks.<name>`), and `name`
                # is ForceNew: a replacement must remove the old service first.
                delete_before_replace=True,
                ignore_changes=IGNORE_CHANGES,
            ),
        )
        gate = ReadyGate(
            f"{workload.name}-ready",
            container=service,
            container_name=service.name,
            condition="service-updated",
            timeout_seconds=converge_timeout_seconds(workload),
            settle_seconds=0,
            docker_connection=self._connection,
            # Replaced, and so waited on again, whenever the declared service changes.
            spec_digest=pulumi.Output.all(service.task_spec, service.mode).apply(_digest),
            expected_image=workload.image.pinned,
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[service]),
        )
        return Deployment(
            name=service.name,
            ready=gate,
            service=service,
            gates=[gate],
            dns_name=f"tasks.{workload.docker_name}",
        )

    def _update_policy(self, workload: Workload, *, rollback: bool) -> UpdatePolicy:
        """Replicas: one at a time, the new task started first; one-instance workloads: stopped first.

        A stateful workload must never run twice on its volume, and the edge
        publishes host ports that two tasks on one node cannot share.
        """
        start = workload.health.start_period_seconds if workload.health else 0
        replicated = workload.kind is Kind.REPLICATED
        return {
            "parallelism": 1,
            # After each replaced task: until the proxy routes to it again.
            "delay": provider_values.short_duration(0 if rollback else workload.settle_seconds),
            # A rollback that fails too leaves the service paused for an operator.
            "failure_action": "pause" if rollback else "rollback",
            # A task that fails within this window after it started counts
            # as a failed update: at least the whole health window.
            "monitor": provider_values.short_duration(health_window_seconds(start)),
            "max_failure_ratio": provider_values.failure_ratio(0.0),
            "order": "start-first" if replicated else "stop-first",
        }

    def _task_spec(self, parent: pulumi.Resource, workload: Workload) -> docker.ServiceTaskSpecArgs:
        health = workload.health
        assert health is not None, f"{workload.name}: a long-running workload needs a health check"
        placement = self._placement(workload)
        return docker.ServiceTaskSpecArgs(
            container_spec=docker.ServiceTaskSpecContainerSpecArgs(
                image=workload.image.pinned,
                # `command` of a container is the image's CMD, which a task calls `args`.
                args=workload.command,
                env=self._env(workload),
                user=workload.user,
                stop_signal=workload.stop_signal,
                stop_grace_period=provider_values.short_duration(workload.stop_timeout),
                healthcheck=docker.ServiceTaskSpecContainerSpecHealthcheckArgs(
                    tests=health.test,
                    interval=provider_values.short_duration(HEALTH_INTERVAL_SECONDS),
                    timeout=provider_values.short_duration(HEALTH_TIMEOUT_SECONDS),
                    retries=HEALTH_RETRIES,
                    start_period=provider_values.short_duration(health.start_period_seconds),
                ),
                secrets=[
                    docker.ServiceTaskSpecContainerSpecSecretArgs(
                        secret_id=secret.id,
                        secret_name=secret.name,
                        file_name=item.path,
                        file_uid=FILE_OWNER,
                        file_gid=FILE_OWNER,
                        file_mode=FILE_MODE,
                    )
                    for item, secret in ((s, self._secret(parent, s.key, s.value)) for s in workload.secrets)
                ]
                or None,
                configs=[
                    docker.ServiceTaskSpecContainerSpecConfigArgs(
                        config_id=config.id,
                        config_name=config.name,
                        file_name=item.path,
                        file_uid=FILE_OWNER,
                        file_gid=FILE_OWNER,
                        file_mode=FILE_MODE,
                    )
                    for item, config in (
                        (c, self._config(parent, workload, c.key, c.content)) for c in workload.configs
                    )
                ]
                or None,
                # Named volumes are local to a node: the placement constraint
                # keeps the task on the node that has its volume. Swarm creates
                # the volume at the task's first start and never removes it.
                mounts=[
                    docker.ServiceTaskSpecContainerSpecMountArgs(
                        type="volume",
                        source=m.volume.docker_name,
                        target=m.path,
                        read_only=m.read_only,
                        # A volume bound to a host directory: created by Swarm
                        # with these local-driver options. The read-back stores
                        # no_copy, labels, driver_name and driver_options of a
                        # mount's VolumeOptions (flattenServiceMounts): each is
                        # declared as the engine returns it (no labels: an empty set).
                        volume_options=docker.ServiceTaskSpecContainerSpecMountVolumeOptionsArgs(
                            no_copy=False, driver_name="local", driver_options=dict(m.volume.driver_options)
                        )
                        if m.volume.driver_options
                        else None,
                    )
                    for m in workload.mounts
                ]
                or None,
                sysctl=dict(workload.sysctls) or None,
            ),
            resources=docker.ServiceTaskSpecResourcesArgs(
                limits=docker.ServiceTaskSpecResourcesLimitsArgs(
                    nano_cpus=round(workload.cpus * _NANO), memory_bytes=workload.memory_mb * _MIB
                ),
                # Swarm schedules a task only where this much is free: the
                # memory limit in full (no node is overcommitted into the OOM
                # killer), a quarter of the CPU limit.
                reservation=docker.ServiceTaskSpecResourcesReservationArgs(
                    nano_cpus=round(workload.cpus * _NANO / 4), memory_bytes=workload.memory_mb * _MIB
                ),
            ),
            # All four fields: an omitted delay or window reads back as "0s"
            # against "" in the program (createServiceRestartPolicy, flattenTaskRestartPolicy).
            restart_policy=docker.ServiceTaskSpecRestartPolicyArgs(
                condition="any",
                delay=provider_values.short_duration(RESTART_DELAY_SECONDS),
                max_attempts=0,
                window=provider_values.short_duration(0),
            ),
            placement=placement,
            # By ID: Swarm stores the network's ID whatever the spec said, and
            # `name` is ForceNew, so a name would replace the service on every
            # `up` (flattenTaskNetworksAdvanced; upstream issue #648).
            networks_advanceds=[
                docker.ServiceTaskSpecNetworksAdvancedArgs(name=a.network.id, aliases=list(a.aliases) or None)
                for a in workload.networks
            ],
            log_driver=docker.ServiceTaskSpecLogDriverArgs(
                name=workload.logs.driver, options=dict(workload.logs.options) or None
            ),
        )

    def _placement(self, workload: Workload) -> docker.ServiceTaskSpecPlacementArgs:
        """Stateful workloads on the data node, the proxy on the edge node, replicas anywhere.

        `max_replicas` is read back as 0 when unset (flattenTaskPlacement), so it is always declared.
        """
        if workload.kind is Kind.STATEFUL:
            return docker.ServiceTaskSpecPlacementArgs(
                constraints=[f"node.labels.{self._swarm.data_label} == true"], max_replicas=0
            )
        if workload.kind is Kind.EDGE:
            # One per node: its host-mode ports cannot be shared.
            return docker.ServiceTaskSpecPlacementArgs(
                constraints=[f"node.labels.{self._swarm.edge_label} == true"], max_replicas=1
            )
        return docker.ServiceTaskSpecPlacementArgs(max_replicas=0)

    def _env(self, workload: Workload) -> Mapping[str, str] | None:
        if not workload.env:
            return None
        # Swarm expands templates in env: each task gets its own `api-<slot>`.
        return {
            key: f"{workload.role}-{TASK_SLOT}" if value == INSTANCE else value for key, value in workload.env.items()
        }

    def _secret(self, parent: pulumi.Resource, key: str, value: pulumi.Input[str]) -> docker.Secret:
        """One Swarm secret per stack secret, shared by every service that mounts it.

        No fixed name: Pulumi names it `<resource>-<7 hex>` (pulumi-docker
        provider/resources.go, SetAutonaming). Its data is ForceNew, so a new
        value creates a new secret beside the old one (create-before-delete,
        which a fixed name would make collide), the services roll to it, and
        then the old one is deleted, the pattern upstream's docs recommend
        (docs/resources/secret.md; moby #35803: a secret in use cannot be
        changed). The provider never reads `data` back (resourceDockerSecretRead),
        so nothing about it can drift.
        """
        if key not in self._secrets:
            self._secrets[key] = docker.Secret(
                f"secret-{key}",
                data=pulumi.Output.secret(value).apply(b64),
                labels=[docker.SecretLabelArgs(label="microstack.stack", value=self._stack)],
                opts=pulumi.ResourceOptions(parent=parent),
            )
        return self._secrets[key]

    def _config(
        self, parent: pulumi.Resource, workload: Workload, key: str, content: pulumi.Input[str]
    ) -> docker.ServiceConfig:
        """A rendered config file as a Swarm config: auto-named and replaced like a secret."""
        return docker.ServiceConfig(
            f"{workload.name}-{key}",
            data=pulumi.Output.from_input(content).apply(b64),
            opts=pulumi.ResourceOptions(parent=parent),
        )
