"""Workloads as plain containers on one Docker host (`microstack:platform: containers`).

Rolling updates are built from the resource graph: replica i+1 depends on the
readiness gate of replica i (components/gate.py), every container is
replaced delete-before-replace (fixed names; one server per data volume), and
replicas keep fixed addresses on the frontend network so that nginx, which
resolves names only at start, finds a replacement where the old one was.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import pulumi
import pulumi_docker as docker

from components import provider_values
from components.common import (
    MEMORY_SWAP_UNLIMITED,
    READY_TIMEOUT_SECONDS,
    Runtime,
    config_file,
    healthcheck,
    ready_gate,
    secret_file,
)
from components.engine import DockerConnection
from components.network import dynamic_range, gateway
from components.platform.base import Deployment, NetworkSpec
from components.platform.workload import INSTANCE, Attach, DataVolume, Kind, PinnedAddresses, Workload


def pinned_address(pinned: PinnedAddresses, index: int) -> str:
    """The fixed address of replica `index` (1-based)."""
    return str(ipaddress.ip_network(pinned.subnet).network_address + pinned.first_host + index)


class ContainersPlatform:
    """Turns workloads into `docker.Container`s with readiness gates, on the host `docker:host` names."""

    name = "containers"
    pins_addresses = True

    def __init__(self, connection: DockerConnection) -> None:
        self._connection = connection
        # By resource name: workloads that mount one volume (Postgres and its
        # backup sidecar) share one resource, created by the first of them.
        self._volumes: dict[str, docker.Volume] = {}

    def network(self, parent: pulumi.Resource, spec: NetworkSpec) -> docker.Network:
        """A bridge network; see components/network.py for why the gateway is declared."""
        return docker.Network(
            spec.name,
            name=spec.docker_name,
            driver="bridge",
            internal=spec.internal or None,
            ipam_configs=[
                docker.NetworkIpamConfigArgs(
                    subnet=spec.subnet, gateway=gateway(spec.subnet), ip_range=dynamic_range(spec.subnet)
                )
            ]
            if spec.subnet
            else None,
            # The edge network for published ports of internal-only
            # workloads: no masquerading, so it is no way out either.
            options=None if spec.masquerade else {"com.docker.network.bridge.enable_ip_masquerade": "false"},
            # Docker refuses two networks of one name: replaced delete-before-replace.
            opts=pulumi.ResourceOptions(parent=parent, delete_before_replace=True),
        )

    def volume(self, parent: pulumi.Resource, volume: DataVolume) -> docker.Volume:
        """A named volume, a resource of its own so replacing the container keeps the data.

        `driver_options` are read back as the engine's `Options` of the volume,
        which for the local driver are exactly the options it was created with
        (resource_docker_volume.go, resourceDockerVolumeRead: `driver_opts` =
        `volume.Options`), so declared options survive a refresh unchanged.
        """
        if volume.name not in self._volumes:
            self._volumes[volume.name] = docker.Volume(
                volume.name,
                name=volume.docker_name,
                driver_opts=dict(volume.driver_options) if volume.driver_options else None,
                opts=pulumi.ResourceOptions(parent=parent, retain_on_delete=volume.retain_on_delete),
            )
        return self._volumes[volume.name]

    def run(
        self,
        parent: pulumi.Resource,
        workload: Workload,
        *,
        depends_on: list[pulumi.Resource] | None = None,
        container_resource: str | None = None,
    ) -> Deployment:
        """Containers for `workload`, each followed by its gate; replicas chained one after the other.

        `container_resource` names the container resource of a single-instance
        workload (default: the workload's name); replicas are `<name>-<n>`.
        """
        volumes = {m.volume.name: self.volume(parent, m.volume) for m in workload.mounts}
        if workload.kind is Kind.JOB:
            container = self._job(parent, workload, volumes, depends_on, container_resource or workload.name)
            gate = ready_gate(
                parent,
                workload.name,
                container,
                self._connection,
                condition="exited-zero",
                timeout_seconds=workload.ready_timeout_seconds or READY_TIMEOUT_SECONDS,
            )
            return Deployment(name=container.name, ready=gate, containers=[container], gates=[gate])

        containers: list[docker.Container] = []
        gates = []
        addresses: list[str] = []
        previous = depends_on
        replicated = workload.kind is Kind.REPLICATED
        for index in range(1, workload.replicas + 1):
            resource = f"{workload.name}-{index}" if replicated else container_resource or workload.name
            instance = f"{workload.role}-{index}" if replicated else None
            container = self._container(parent, workload, resource, instance, index, volumes, previous)
            gate = ready_gate(
                parent,
                resource if replicated else workload.name,
                container,
                self._connection,
                settle_seconds=workload.settle_seconds,
                timeout_seconds=workload.ready_timeout_seconds or READY_TIMEOUT_SECONDS,
            )
            containers.append(container)
            gates.append(gate)
            previous = [gate]
            pinned = next((a.pinned for a in workload.networks if a.pinned), None)
            if pinned:
                addresses.append(pinned_address(pinned, index))
        aliases = next((a.aliases for a in workload.networks if a.aliases), ())
        return Deployment(
            name=containers[0].name,
            ready=gates[-1],
            containers=containers,
            gates=gates,
            addresses=addresses,
            dns_name=aliases[0] if aliases else None,
        )

    def _runtime(self, workload: Workload) -> Runtime:
        assert workload.health is not None, f"{workload.name}: a long-running workload needs a health check"
        return Runtime(
            memory_mb=workload.memory_mb,
            cpus=workload.cpus,
            healthcheck=healthcheck(workload.health.test, start_period_seconds=workload.health.start_period_seconds),
            logs=workload.logs,
            labels=dict(workload.labels),
            stop_signal=workload.stop_signal,
            stop_timeout=workload.stop_timeout,
        )

    def _common(self, workload: Workload, volumes: dict[str, docker.Volume], env: dict[str, str]) -> dict[str, Any]:
        args: dict[str, Any] = {
            "name": None,
            "image": workload.image.local_id,
            "uploads": [config_file(c.path, c.content) for c in workload.configs]
            + [secret_file(s.path, s.value) for s in workload.secrets],
        }
        if env:
            args["envs"] = [f"{key}={value}" for key, value in env.items()]
        if workload.command is not None:
            args["command"] = workload.command
        if workload.user is not None:
            args["user"] = workload.user
        if workload.mounts:
            # `read_only` only where set: the provider never reads a container's
            # `volumes` back (resourceDockerContainerRead leaves them as declared,
            # resource_docker_container_funcs.go, "// volumes"), so either spelling is stable.
            args["volumes"] = [
                docker.ContainerVolumeArgs(
                    volume_name=volumes[m.volume.name].name, container_path=m.path, read_only=m.read_only or None
                )
                for m in workload.mounts
            ]
        if workload.ports:
            args["ports"] = [
                docker.ContainerPortArgs(
                    internal=p.target,
                    external=p.published,
                    ip=p.host_ip,
                    # Left out for TCP, as before platforms existed: the provider's default.
                    protocol=p.protocol,
                )
                for p in workload.ports
            ]
        if workload.sysctls:
            args["sysctls"] = dict(workload.sysctls)
        if workload.shm_size_mb is not None:
            args["shm_size"] = workload.shm_size_mb
        return args

    def _networks(self, workload: Workload, instance: str | None, index: int) -> list[Any]:
        def one(attach: Attach) -> docker.ContainerNetworksAdvancedArgs:
            aliases = list(attach.aliases) + ([instance] if instance and workload.instance_alias else [])
            return docker.ContainerNetworksAdvancedArgs(
                name=attach.network.name,
                aliases=aliases or None,
                ipv4_address=pinned_address(attach.pinned, index) if attach.pinned else None,
            )

        return [one(a) for a in workload.networks]

    def _container(
        self,
        parent: pulumi.Resource,
        workload: Workload,
        resource: str,
        instance: str | None,
        index: int,
        volumes: dict[str, docker.Volume],
        depends_on: list[pulumi.Resource] | None,
    ) -> docker.Container:
        runtime = self._runtime(workload)
        env = {
            key: instance if instance is not None and value == INSTANCE else value
            for key, value in workload.env.items()
        }
        args = self._common(workload, volumes, env)
        args["name"] = f"{workload.docker_name}-{index}" if instance else workload.docker_name
        return docker.Container(
            resource,
            networks_advanced=self._networks(workload, instance, index),
            **args,
            **runtime.container_args(),
            # Delete-before-replace comes with Runtime.options (a fixed name and address).
            opts=runtime.options(parent=parent, depends_on=depends_on),
        )

    def _job(
        self,
        parent: pulumi.Resource,
        workload: Workload,
        volumes: dict[str, docker.Volume],
        depends_on: list[pulumi.Resource] | None,
        resource: str,
    ) -> docker.Container:
        """A one-shot container: `attach` makes creation wait until it has finished; its gate checks the exit code.

        The container stays after it exits, for `docker logs`; a change of its
        inputs replaces it and so runs it again.
        """
        args = self._common(workload, volumes, dict(workload.env))
        args["name"] = workload.docker_name
        return docker.Container(
            resource,
            networks_advanced=self._networks(workload, None, 1),
            memory=workload.memory_mb,
            memory_swap=MEMORY_SWAP_UNLIMITED,
            cpus=provider_values.cpus(workload.cpus),
            restart="no",
            stop_timeout=workload.stop_timeout,
            must_run=False,
            wait=False,
            attach=True,
            logs=True,
            log_driver=workload.logs.driver,
            log_opts=workload.logs.options,
            labels=[docker.ContainerLabelArgs(label=k, value=v) for k, v in sorted(workload.labels.items())],
            **args,
            # A fixed name: see Runtime.options.
            opts=pulumi.ResourceOptions(parent=parent, depends_on=depends_on, delete_before_replace=True),
        )
