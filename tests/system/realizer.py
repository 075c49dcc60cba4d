"""Create in a real Docker engine exactly what the program declared under mocks.

There is no Pulumi CLI or Docker provider plugin on the test machines, so
this module plays the provider's part for the resource types the program
uses: it turns each recorded resource's inputs (camelCase, as the provider
receives them) into Docker Engine API calls through the Docker SDK.

Every input field is either applied or rejected: a field this module does not
know raises `UnhandledField` naming the resource and the field, so a new
setting in the program cannot be silently dropped here and the system test
cannot pass against something other than what the program declares.

Swarm services, secrets and configs are created on the engine's swarm (the
test makes it a single-node manager, tests/system/swarm.py) as the provider's
service resource does: the same spec fields, and after create or update the
same wait for convergence when `convergeConfig` is declared.

Readiness gates (`ReadyGate`, a Pulumi dynamic resource) are realized by
running the program's own dynamic provider, as the engine would: its
serialized `__provider` is loaded and its `create` called with the real ID of
the container the gate names.

Everything created carries the label `SESSION_LABEL`, so a finalizer (and the
next session, after a crash) can remove it all.
"""

from __future__ import annotations

import base64
import io
import os
import re
import secrets as secrets_module
import tarfile
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import dill
import docker
from docker.errors import APIError, NotFound
from docker.types import (
    ConfigReference,
    DriverConfig,
    EndpointSpec,
    Healthcheck,
    LogConfig,
    Mount,
    NetworkAttachmentConfig,
    Placement,
    Resources,
    RollbackConfig,
    SecretReference,
    ServiceMode,
    TaskTemplate,
    Ulimit,
    UpdateConfig,
)

from tests.support.program import (
    CONTAINER,
    IMAGE,
    NETWORK,
    RANDOM_PASSWORD,
    READY_GATE,
    REMOTE_IMAGE,
    SECRET,
    SERVICE,
    SERVICE_CONFIG,
    VOLUME,
    Program,
    Resource,
    mock_id,
)

SESSION_LABEL = "microstack.system-test.session"
# The pid of the test process that created an object: a later session removes
# only what a process that no longer runs left behind, so two sessions on one
# engine do not tear down each other's stacks.
OWNER_LABEL = "microstack.system-test.owner"

# Types that exist only inside Pulumi: components group resources, random
# passwords are already inlined (as plain values under mocks) where used.
_PULUMI_ONLY_TYPES = (RANDOM_PASSWORD,)
_COMPONENT_PREFIX = "microstack:"

# How long a container without `waitTimeout` may take to become healthy;
# the provider's default.
_DEFAULT_WAIT_SECONDS = 60
_POLL_SECONDS = 0.5
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_MIB = 1024 * 1024

# resource_docker_service.go: the schema defaults the provider fills in for
# what a declared block leaves out.
_UPDATE_CONFIG_DEFAULTS = {
    "parallelism": 1,
    "delay": "0s",
    "failureAction": "pause",
    "monitor": "5s",
    "maxFailureRatio": "0.0",
    "order": "stop-first",
}
_CONVERGE_DEFAULTS = {"delay": "7s", "timeout": "3m"}
# resourceDockerServiceUpdate waits this long before its first look at the
# update (StateChangeConf.Delay), whatever convergeConfig.delay says.
_UPDATE_CONVERGE_DELAY_SECONDS = 7.0
# Task states in the order Swarm moves through them (numberedStates in
# resource_docker_service_funcs.go); the converge wait ranks tasks by them.
_TASK_STATES = {
    state: rank
    for rank, state in enumerate(
        (
            "new",
            "allocated",
            "pending",
            "assigned",
            "accepted",
            "preparing",
            "ready",
            "starting",
            "running",
            "complete",
            "shutdown",
            "failed",
            "rejected",
        ),
        start=1,
    )
}
# What resourceDockerServiceUpdateRefreshFunc fails an update on, in words.
_UPDATE_STATES = {
    "paused": "paused",
    "rollback_paused": "failed, and its rollback paused",
    "rollback_completed": "failed and was rolled back",
}
# How long removing a service may take to stop its tasks before the
# networks they are attached to can go.
_SERVICE_GONE_SECONDS = 60


_T = TypeVar("_T")


class RealizeError(RuntimeError):
    """The declared stack could not be created as declared."""


class UnhandledField(RealizeError):
    """The program set a field the realizer would otherwise drop."""

    def __init__(self, resource: Resource, path: str) -> None:
        super().__init__(
            f"{resource.type} {resource.name!r} sets {path!r}, which the system-test realizer does not "
            "apply; teach tests/system/realizer.py to apply it rather than test without it"
        )


def go_duration_ns(resource: Resource, key: str, text: str) -> int:
    """Nanoseconds of a Go duration string ("5s", "1m30s", "250ms"), as the provider parses it."""
    position, total = 0, 0
    for match in _DURATION.finditer(text):
        if match.start() != position:
            break
        total += int(float(match.group(1)) * _DURATION_NS[match.group(2)])
        position = match.end()
    if position != len(text) or not text:
        raise RealizeError(f"{resource.name}: {key}={text!r} is not a Go duration such as '5s' or '1m30s'")
    return total


class _Fields:
    """Reads a resource's inputs and remembers which were consumed."""

    def __init__(self, resource: Resource, values: Mapping[str, Any], prefix: str = "") -> None:
        self.resource = resource
        self.values = values
        self.prefix = prefix
        self.used: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        value = self.values.get(key)
        return default if value is None else value

    def nested(self, key: str) -> list[_Fields]:
        """Each element of a list-of-objects field (or the single object) as its own reader."""
        value = self.get(key)
        if value is None:
            return []
        if isinstance(value, list):
            return [_Fields(self.resource, item, f"{self.prefix}{key}[{i}].") for i, item in enumerate(value)]
        return [_Fields(self.resource, value, f"{self.prefix}{key}.")]

    def one(self, key: str) -> _Fields | None:
        """The reader of a field that holds a single object, or None when it is unset."""
        found = self.nested(key)
        if len(found) > 1:
            raise RealizeError(f"{self.resource.name}: {self.prefix}{key} holds {len(found)} objects, not one")
        return found[0] if found else None

    def check(self, *readers: _Fields) -> None:
        """Fail on any input no reader consumed."""
        for reader in (self, *readers):
            for key in reader.values:
                if key not in reader.used and reader.values[key] is not None:
                    raise UnhandledField(reader.resource, reader.prefix + key)


@dataclass(frozen=True)
class NetworkAttachment:
    """One `networksAdvanced` entry."""

    network: str
    aliases: list[str]
    ipv4_address: str | None = None


@dataclass
class ContainerSpec:
    """Everything needed to (re)create one declared container."""

    resource: Resource
    name: str
    image: str
    create: dict[str, Any]
    host_config: dict[str, Any]
    networks: list[NetworkAttachment]
    uploads: list[tuple[str, bytes, int]]
    wait_healthy: bool
    wait_seconds: float
    grace_seconds: int
    start: bool
    remove_volumes: bool = True
    depends_on: set[str] = field(default_factory=set)
    must_run: bool = True
    attach: bool = False

    @property
    def aliases(self) -> set[str]:
        return {alias for attachment in self.networks for alias in attachment.aliases}


@dataclass
class Realized:
    """What the realizer created, by declared resource name."""

    networks: dict[str, str] = field(default_factory=dict)
    volumes: dict[str, str] = field(default_factory=dict)
    containers: dict[str, str] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)
    gates: dict[str, GateRun] = field(default_factory=dict)
    services: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    configs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GateRun:
    """A gate its provider created: the ID and outputs its create returned."""

    id: str
    outputs: dict[str, Any]


@dataclass
class GateSpec:
    """A declared readiness gate: the container it waits on and what it depends on."""

    resource: Resource
    container: str
    depends_on: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Converge:
    """A declared `convergeConfig`: how long to wait before the first look, and in all."""

    delay_seconds: float
    timeout_seconds: float
    timeout_text: str


@dataclass
class ServiceSpec:
    """A declared Swarm service as the provider's createServiceSpec builds it."""

    resource: Resource
    name: str
    spec: dict[str, Any]
    converge: Converge | None
    stop_grace_ns: int
    depends_on: set[str] = field(default_factory=set)


ImageBuilder = Callable[[Resource, Path, str, Mapping[str, str]], str]


class Realizer:
    """Creates a recorded program's networks, volumes and containers, and removes them again.

    `build_image(resource, context, dockerfile, args)` builds a declared
    `Image` and returns a local tag. `skip(resource)` marks containers the
    test replaces with its own stand-in (the ELK containers when a GELF
    listener takes Logstash's place); whatever depends on them proceeds.
    """

    def __init__(
        self,
        client: docker.DockerClient,
        program: Program,
        *,
        session: str,
        project_root: Path,
        build_image: ImageBuilder,
        skip: Callable[[Resource], bool] = lambda _resource: False,
    ) -> None:
        self.client = client
        self.api = client.api
        self.program = program
        self.session = session
        self.project_root = project_root
        self.build_image = build_image
        self.skip = skip
        self.realized = Realized()
        self.specs: dict[str, ContainerSpec] = {}
        self.gates: dict[str, GateSpec] = {}
        self.services: dict[str, ServiceSpec] = {}
        self._image_refs: dict[str, str] = {}

    # --- the whole stack -------------------------------------------------

    def realize(self) -> Realized:
        """Create everything in dependency order; containers, gates and services of one level start together."""
        self._check_types()
        # Built first: the program looks its built images up by reference to
        # give containers their IDs.
        for resource in self.program.of_type(IMAGE):
            self._image(resource)
        for resource in self.program.of_type(REMOTE_IMAGE):
            if not self.skip(resource):
                self._remote_image(resource)
        # Every container's fields are checked before anything is created.
        for resource in self.program.of_type(CONTAINER):
            if not self.skip(resource):
                self.specs[resource.name] = self._container_spec(resource)
        # So is every service's (the IDs it names are resolved when it is created).
        for resource in self.program.of_type(SERVICE):
            if not self.skip(resource):
                self.services[resource.name] = self._service_spec(resource, resolve=False)
        # A gate of a container or service left out (skipped) is left out with it.
        for resource in self.program.of_type(READY_GATE):
            gate = self._gate_spec(resource)
            if gate.container in self.specs or gate.container in self.services:
                self.gates[resource.name] = gate
        self._add_implicit_dependencies()
        levels = self.levels()
        for resource in self.program.of_type(NETWORK):
            self._network(resource)
        for resource in self.program.of_type(VOLUME):
            self._volume(resource)
        for resource in self.program.of_type(SECRET):
            self._secret(resource)
        for resource in self.program.of_type(SERVICE_CONFIG):
            self._service_config(resource)
        for level in levels:
            with ThreadPoolExecutor(max_workers=len(level)) as pool:
                list(pool.map(self._realize_node, level))
        return self.realized

    def _realize_node(self, resource_name: str) -> None:
        if resource_name in self.gates:
            self.realized.gates[resource_name] = self.run_gate(self.gates[resource_name].resource)
        elif resource_name in self.services:
            self.create_service(self.services[resource_name].resource)
        else:
            self.realized.containers[resource_name] = self.run_container(resource_name)

    def create(self, resource: Resource) -> None:
        """Create one declared resource as the provider's Create would (a step of an update).

        Pulumi-only resources (components, random passwords) need nothing in
        the engine; other types are created as `realize` creates them.
        """
        if resource.type == IMAGE:
            self._image(resource)
        elif resource.type == REMOTE_IMAGE:
            self._remote_image(resource)
        elif resource.type == NETWORK:
            self._network(resource)
        elif resource.type == VOLUME:
            self._volume(resource)
        elif resource.type == CONTAINER:
            self.specs[resource.name] = self._container_spec(resource)
            self.realized.containers[resource.name] = self.run_container(resource.name)
        elif resource.type == READY_GATE:
            self.realized.gates[resource.name] = self.run_gate(resource)
        elif resource.type == SECRET:
            self._secret(resource)
        elif resource.type == SERVICE_CONFIG:
            self._service_config(resource)
        elif resource.type == SERVICE:
            self.create_service(resource)
        elif resource.type not in _PULUMI_ONLY_TYPES and not resource.type.startswith(_COMPONENT_PREFIX):
            raise RealizeError(f"resource {resource.name!r} has type {resource.type}, which the realizer cannot create")

    def destroy(self) -> None:
        """Remove every service, secret, config, container, network and volume of this session (images stay)."""
        remove_labelled(self.client, f"{SESSION_LABEL}={self.session}")

    def _check_types(self) -> None:
        known = {
            CONTAINER,
            NETWORK,
            VOLUME,
            IMAGE,
            REMOTE_IMAGE,
            READY_GATE,
            SERVICE,
            SECRET,
            SERVICE_CONFIG,
            *_PULUMI_ONLY_TYPES,
        }
        for resource in self.program.resources:
            if resource.type not in known and not resource.type.startswith(_COMPONENT_PREFIX):
                raise RealizeError(
                    f"resource {resource.name!r} has type {resource.type}, which the system-test realizer "
                    "cannot create; teach tests/system/realizer.py about it"
                )

    # --- images ----------------------------------------------------------

    def _remote_image(self, resource: Resource) -> None:
        """Nothing can be pulled here: the image must already be in the engine."""
        fields = _Fields(resource, resource.inputs)
        name = fields.get("name")
        # keepLocally only matters on destroy, and the realizer never removes images.
        fields.get("keepLocally")
        fields.check()
        # The program looks up the images it built by their reference; those
        # live in the engine under the realizer's content tag.
        name = self._image_refs.get(name, name)
        try:
            self.client.images.get(name)
        except docker.errors.ImageNotFound:
            raise RealizeError(
                f"{resource.name}: image {name!r} is not in the engine and nothing can be pulled here; "
                "point the test stack config's images.* at the locally built stand-ins"
            ) from None
        for ref in (name, resource.outputs.get("imageId"), resource.outputs.get("repoDigest")):
            if ref:
                self._image_refs[ref] = name
        self.realized.images[resource.name] = name

    def _image(self, resource: Resource) -> None:
        fields = _Fields(resource, resource.inputs)
        image_name = fields.get("imageName")
        # Pushing is the provider's business after a build, and buildOnPreview
        # matters only to `pulumi preview`; the realizer plays `up` on one engine.
        fields.get("skipPush")
        fields.get("registry")
        fields.get("buildOnPreview")
        build = fields.one("build")
        if build is None:
            raise RealizeError(f"{resource.name}: an Image without `build` cannot be created here")
        context = (self.project_root / build.get("context", ".")).resolve()
        dockerfile = Path(build.get("dockerfile", str(context / "Dockerfile")))
        dockerfile = dockerfile if dockerfile.is_absolute() else (self.project_root / dockerfile).resolve()
        args = {str(k): str(v) for k, v in (build.get("args") or {}).items()}
        # The classic builder runs every Dockerfile the services use; BuildKit
        # would only change caching, not the image.
        build.get("builderVersion")
        platform = build.get("platform")
        fields.check(build)
        native = f"{self.client.version()['Os']}/{self.client.version()['Arch']}"
        if platform is not None and platform != native:
            raise RealizeError(f"{resource.name}: builds for {platform}, but this engine runs {native} images")
        # Containers are pointed at the built tag directly; imageName matters
        # only for pushing, so the realizer does not add it as another tag.
        tag = self.build_image(resource, context, str(dockerfile.relative_to(context)), args)
        for ref in (image_name, resource.outputs.get("imageName"), resource.outputs.get("repoDigest")):
            if ref:
                self._image_refs[ref] = tag
        self.realized.images[resource.name] = tag

    # --- networks and volumes ---------------------------------------------

    def _labels(self, fields: _Fields) -> dict[str, str]:
        labels = {}
        for item in fields.nested("labels"):
            labels[item.get("label")] = item.get("value")
            item.check()
        labels.update(self._own_labels())
        return labels

    def _own_labels(self) -> dict[str, str]:
        return {SESSION_LABEL: self.session, OWNER_LABEL: str(os.getpid())}

    def _network(self, resource: Resource) -> None:
        fields = _Fields(resource, resource.inputs)
        name = fields.get("name", resource.name)
        pools = []
        for ipam in fields.nested("ipamConfigs"):
            pools.append(
                docker.types.IPAMPool(
                    subnet=ipam.get("subnet"),
                    gateway=ipam.get("gateway"),
                    iprange=ipam.get("ipRange"),
                    aux_addresses=ipam.get("auxAddress"),
                )
            )
            ipam.check()
        network = self.api.create_network(
            name,
            driver=fields.get("driver", "bridge"),
            ipam=docker.types.IPAMConfig(driver=fields.get("ipamDriver", "default"), pool_configs=pools)
            if pools
            else None,
            internal=bool(fields.get("internal", False)),
            attachable=fields.get("attachable"),
            options=fields.get("options"),
            enable_ipv6=bool(fields.get("ipv6", False)),
            labels=self._labels(fields),
            check_duplicate=True,
        )
        fields.check()
        self.realized.networks[resource.name] = network["Id"]

    def _volume(self, resource: Resource) -> None:
        fields = _Fields(resource, resource.inputs)
        name = fields.get("name", resource.name)
        self.api.create_volume(
            name=name,
            driver=fields.get("driver", "local"),
            driver_opts=fields.get("driverOpts"),
            labels=self._labels(fields),
        )
        fields.check()
        self.realized.volumes[resource.name] = name

    # --- containers --------------------------------------------------------

    def _container_spec(self, resource: Resource) -> ContainerSpec:
        f = _Fields(resource, resource.inputs)
        readers: list[_Fields] = []
        image_ref = f.get("image")
        image = self._image_refs.get(image_ref)
        if image is None:
            raise RealizeError(f"{resource.name}: image {image_ref!r} is not the output of a declared image")
        name = f.get("name", resource.name)

        networks: list[NetworkAttachment] = []
        for net in f.nested("networksAdvanced"):
            networks.append(NetworkAttachment(net.get("name"), list(net.get("aliases", [])), net.get("ipv4Address")))
            readers.append(net)

        ports: list[tuple[int, str]] = []
        # A None host port lets the engine pick one.
        bindings: dict[str, list[tuple[str, int | None]]] = {}
        for port in f.nested("ports"):
            internal, protocol = int(port.get("internal")), port.get("protocol", "tcp")
            ports.append((internal, protocol))
            external = port.get("external")
            bindings.setdefault(f"{internal}/{protocol}", []).append(
                (port.get("ip", "0.0.0.0"), int(external) if external is not None else None)
            )
            readers.append(port)

        binds: dict[str, dict[str, str]] = {}
        for volume in f.nested("volumes"):
            source = volume.get("volumeName") or volume.get("hostPath")
            if source is None:
                raise RealizeError(f"{resource.name}: a volume entry has neither volumeName nor hostPath")
            mode = "ro" if volume.get("readOnly", False) else "rw"
            binds[source] = {"bind": volume.get("containerPath"), "mode": mode}
            readers.append(volume)

        uploads: list[tuple[str, bytes, int]] = []
        for upload in f.nested("uploads"):
            content = upload.get("content")
            encoded = upload.get("contentBase64")
            data = content.encode() if content is not None else base64.b64decode(encoded or "")
            default_mode = "0744" if upload.get("executable", False) else "0644"
            uploads.append((upload.get("file"), data, int(str(upload.get("permissions", default_mode)), 8)))
            readers.append(upload)

        healthcheck: dict[str, object] | None = None
        check = f.one("healthcheck")
        if check is not None:
            healthcheck = {"test": list(check.get("tests"))}
            for key, docker_key in (("interval", "interval"), ("timeout", "timeout"), ("startPeriod", "start_period")):
                if check.get(key) is not None:
                    healthcheck[docker_key] = go_duration_ns(resource, f"healthcheck.{key}", check.get(key))
            if check.get("retries") is not None:
                healthcheck["retries"] = int(check.get("retries"))
            readers.append(check)

        labels = {}
        for item in f.nested("labels"):
            labels[item.get("label")] = item.get("value")
            readers.append(item)
        labels.update(self._own_labels())

        capabilities = f.nested("capabilities")
        for cap in capabilities:
            cap.get("adds")
            cap.get("drops")
            readers.append(cap)

        ulimits = []
        for limit in f.nested("ulimits"):
            ulimits.append(Ulimit(name=limit.get("name"), soft=int(limit.get("soft")), hard=int(limit.get("hard"))))
            readers.append(limit)

        extra_hosts = {}
        for host in f.nested("hosts"):
            extra_hosts[host.get("host")] = host.get("ip")
            readers.append(host)

        memory = f.get("memory")
        memory_swap = f.get("memorySwap")
        shm_size = f.get("shmSize")
        cpus = f.get("cpus")
        restart = f.get("restart", "no")
        log_driver = f.get("logDriver", "json-file")
        host_config: dict[str, Any] = {
            "binds": binds or None,
            "port_bindings": bindings or None,
            # Sent as the provider sends it, "no" included: Engines before 25
            # store an omitted policy as "", which Read would report.
            "restart_policy": {"Name": restart, "MaximumRetryCount": int(f.get("maxRetryCount", 0))},
            "mem_limit": int(memory) * _MIB if memory is not None else None,
            # The provider's -1 means unlimited swap; Docker takes -1 the same way.
            "memswap_limit": (int(memory_swap) * _MIB if int(memory_swap) > 0 else -1)
            if memory_swap is not None
            else None,
            "shm_size": int(shm_size) * _MIB if shm_size is not None else None,
            "nano_cpus": int(float(cpus) * 1e9) if cpus is not None else None,
            "cpu_shares": int(f.get("cpuShares")) if f.get("cpuShares") is not None else None,
            "cpuset_cpus": f.get("cpuSet"),
            "log_config": LogConfig(type=log_driver, config=dict(f.get("logOpts", {}))),
            "read_only": f.get("readOnly"),
            "tmpfs": f.get("tmpfs"),
            "cap_add": capabilities[0].get("adds") if capabilities else None,
            "cap_drop": capabilities[0].get("drops") if capabilities else None,
            "security_opt": f.get("securityOpts"),
            "init": f.get("init"),
            "ulimits": ulimits or None,
            "extra_hosts": extra_hosts or None,
            "group_add": f.get("groupAdds"),
            "sysctls": f.get("sysctls"),
            "privileged": bool(f.get("privileged", False)),
            "dns": f.get("dns"),
            "network_mode": f.get("networkMode", "bridge"),
        }
        stop_timeout = f.get("stopTimeout")
        create: dict[str, Any] = {
            "command": f.get("command"),
            "entrypoint": f.get("entrypoints"),
            "environment": list(f.get("envs", [])),
            "user": f.get("user"),
            "working_dir": f.get("workingDir"),
            "hostname": f.get("hostname"),
            "domainname": f.get("domainname"),
            "labels": labels,
            "stop_signal": f.get("stopSignal"),
            "stop_timeout": int(stop_timeout) if stop_timeout is not None else None,
            "healthcheck": healthcheck,
            "ports": ports or None,
        }
        wait = bool(f.get("wait", False))
        wait_seconds = float(f.get("waitTimeout", _DEFAULT_WAIT_SECONDS))
        grace = int(f.get("destroyGraceSeconds", stop_timeout or 10))
        # mustRun (default true): the realizer checks that the container runs
        # after start. Without it nothing is checked at create: a gate does that.
        must_run = bool(f.get("mustRun", True))
        start = bool(f.get("start", True))
        # attach: create waits until the container has exited, whatever its
        # exit code (resourceDockerContainerCreate); logs only fills an output.
        attach = bool(f.get("attach", False))
        f.get("logs")
        # Anonymous volumes (an image's VOLUME not mounted by name) go with the container.
        remove_volumes = bool(f.get("removeVolumes", True))
        f.check(*readers)
        if not networks:
            raise RealizeError(f"{resource.name}: declares no networksAdvanced; every container here joins a network")
        explicit = {getattr(dep, "_name", None) for dep in resource.options.get("depends_on") or []}
        return ContainerSpec(
            resource=resource,
            name=name,
            image=image,
            create=create,
            host_config=host_config,
            networks=networks,
            uploads=uploads,
            wait_healthy=wait and healthcheck is not None,
            wait_seconds=wait_seconds,
            grace_seconds=grace,
            start=start,
            remove_volumes=remove_volumes,
            depends_on={d for d in explicit if d},
            must_run=must_run,
            attach=attach,
        )

    def _gate_spec(self, resource: Resource) -> GateSpec:
        container = self._named_by_id(resource, resource.inputs.get("containerId"))
        explicit = {getattr(dep, "_name", None) for dep in resource.options.get("depends_on") or []}
        return GateSpec(resource=resource, container=container, depends_on={container, *(d for d in explicit if d)})

    def _named_by_id(self, resource: Resource, resource_id: object) -> str:
        """The declared resource whose (mock) ID `resource_id` is."""
        for other in self.program.resources:
            if mock_id(other.name) == resource_id:
                return other.name
        raise RealizeError(f"{resource.name}: {resource_id!r} is not the ID of a declared resource")

    # --- swarm: secrets, configs, services ----------------------------------------

    def _secret(self, resource: Resource) -> None:
        """resourceDockerSecretCreate: `data` is base64 (StdEncoding) of the value; the ID is the secret's."""
        fields = _Fields(resource, resource.inputs)
        name = fields.get("name") or _auto_name(resource.name)
        data = self._base64_data(fields)
        labels = self._labels(fields)
        fields.check()
        self.realized.secrets[resource.name] = self._swarm_call(
            resource, lambda: self.client.secrets.create(name=name, data=data, labels=labels).id
        )

    def _service_config(self, resource: Resource) -> None:
        """resourceDockerConfigCreate: as a secret, but the provider's config has no labels."""
        fields = _Fields(resource, resource.inputs)
        name = fields.get("name") or _auto_name(resource.name)
        data = self._base64_data(fields)
        fields.check()
        self.realized.configs[resource.name] = self._swarm_call(
            resource, lambda: self.client.configs.create(name=name, data=data, labels=self._own_labels()).id
        )

    def _swarm_object_name(self, kind: str, object_id: str) -> str:
        inspect = self.api.inspect_secret if kind == "secret" else self.api.inspect_config
        return str(inspect(object_id)["Spec"]["Name"])

    @staticmethod
    def _base64_data(fields: _Fields) -> bytes:
        encoded = fields.get("data")
        try:
            return base64.b64decode(encoded or "", validate=True)
        except ValueError:
            raise RealizeError(f"{fields.resource.name}: `data` is not base64, as the provider requires") from None

    def _swarm_call(self, resource: Resource, call: Callable[[], _T]) -> _T:
        try:
            return call()
        except APIError as error:
            raise RealizeError(
                f"Docker refused {resource.type} {resource.name!r} as declared: {error.explanation}"
            ) from error

    def _engine_id(self, resource: Resource, value: str, realized: Mapping[str, str], what: str) -> str:
        """The real ID of the declared resource whose mock ID `value` is; other values pass as they are."""
        for other in self.program.resources:
            if mock_id(other.name) == value:
                if other.name not in realized:
                    raise RealizeError(f"{resource.name}: {what} {other.name!r} it names has not been created")
                return realized[other.name]
        return value

    def _service_spec(self, resource: Resource, *, resolve: bool = True) -> ServiceSpec:
        """createServiceSpec (resource_docker_service_structures.go) as docker-py arguments.

        With `resolve` false the mock IDs of networks, secrets and configs are
        left in place: the fields are checked before anything exists.
        """
        f = _Fields(resource, resource.inputs)
        readers: list[_Fields] = [f]

        def engine_id(value: str, realized: Mapping[str, str], what: str) -> str:
            return self._engine_id(resource, value, realized, what) if resolve else value

        def nested_one(reader: _Fields, key: str) -> _Fields | None:
            found = next(iter(reader.nested(key)), None)
            if found is not None:
                readers.append(found)
            return found

        def duration(reader: _Fields, key: str, default: str = "0s") -> int:
            return go_duration_ns(resource, reader.prefix + key, str(reader.get(key, default)))

        name = f.get("name", resource.name)
        labels = self._labels(f)

        task = nested_one(f, "taskSpec")
        if task is None:
            raise RealizeError(f"{resource.name}: a service needs `taskSpec` (the provider requires it)")
        cs = nested_one(task, "containerSpec")
        if cs is None:
            raise RealizeError(f"{resource.name}: a service needs `taskSpec.containerSpec`")
        image_ref = cs.get("image")
        # Built and stand-in images are in the engine under the realizer's
        # tags; anything else is used as written (single node, nothing pulled).
        image = self._image_refs.get(image_ref, image_ref)

        container_labels = {}
        for item in cs.nested("labels"):
            container_labels[item.get("label")] = item.get("value")
            readers.append(item)

        healthcheck = None
        check = nested_one(cs, "healthcheck")
        if check is not None:
            # The provider sends every field, its schema's zero defaults included.
            healthcheck = Healthcheck(
                test=list(check.get("tests", [])),
                interval=duration(check, "interval"),
                timeout=duration(check, "timeout"),
                start_period=duration(check, "startPeriod"),
                retries=int(check.get("retries", 0)),
            )

        secrets = []
        for ref in cs.nested("secrets"):
            secret_id = engine_id(ref.get("secretId"), self.realized.secrets, "secret")
            secrets.append(
                SecretReference(
                    secret_id=secret_id,
                    # An auto-named secret's name is an output, unknown under mocks.
                    secret_name=ref.get("secretName")
                    or (self._swarm_object_name("secret", secret_id) if resolve else None),
                    filename=ref.get("fileName"),
                    uid=str(ref.get("fileUid", "0")),
                    gid=str(ref.get("fileGid", "0")),
                    mode=int(ref.get("fileMode", 0o444)),
                )
            )
            readers.append(ref)
        configs = []
        for ref in cs.nested("configs"):
            config_id = engine_id(ref.get("configId"), self.realized.configs, "config")
            configs.append(
                ConfigReference(
                    config_id=config_id,
                    config_name=ref.get("configName")
                    or (self._swarm_object_name("config", config_id) if resolve else None),
                    filename=ref.get("fileName"),
                    uid=str(ref.get("fileUid", "0")),
                    gid=str(ref.get("fileGid", "0")),
                    mode=int(ref.get("fileMode", 0o444)),
                )
            )
            readers.append(ref)

        mounts = []
        for item in cs.nested("mounts"):
            kind = item.get("type")
            if kind != "volume":
                raise RealizeError(f"{resource.name}: mount type {kind!r}: the realizer applies volume mounts only")
            mounts.append(
                Mount(
                    target=item.get("target"),
                    source=item.get("source"),
                    type="volume",
                    read_only=bool(item.get("readOnly", False)),
                )
            )
            readers.append(item)

        # An undeclared stop_grace_period reaches the provider as "", which it
        # parses (ignoring the error) to 0: Swarm then kills at once on stop.
        stop_grace_ns = duration(cs, "stopGracePeriod", "") if cs.get("stopGracePeriod") else 0
        # docker.types.ContainerSpec: the module's own ContainerSpec is a container's.
        container_spec = docker.types.ContainerSpec(
            image=image,
            command=cs.get("command"),
            args=cs.get("args"),
            hostname=cs.get("hostname"),
            # mapTypeMapValsToStringSlice: KEY=value for each entry of the map.
            env=[f"{k}={v}" for k, v in (cs.get("env") or {}).items()] or None,
            user=cs.get("user"),
            labels=container_labels or None,
            mounts=mounts or None,
            stop_grace_period=stop_grace_ns,
            stop_signal=cs.get("stopSignal"),
            healthcheck=healthcheck,
            secrets=secrets or None,
            configs=configs or None,
            sysctls=dict(cs.get("sysctl") or {}) or None,
        )

        resources = None
        limits_reader = reservation_reader = None
        res = nested_one(task, "resources")
        if res is not None:
            limits_reader = nested_one(res, "limits")
            reservation_reader = nested_one(res, "reservation")

            def amount(reader: _Fields | None, key: str) -> int | None:
                return int(reader.get(key, 0)) if reader is not None else None

            resources = Resources(
                cpu_limit=amount(limits_reader, "nanoCpus"),
                mem_limit=amount(limits_reader, "memoryBytes"),
                cpu_reservation=amount(reservation_reader, "nanoCpus"),
                mem_reservation=amount(reservation_reader, "memoryBytes"),
            )

        restart_policy = None
        restart = nested_one(task, "restartPolicy")
        if restart is not None:
            # A plain dict: docker-py's RestartPolicy turns a missing condition
            # into "none", the provider sends "" (Swarm's default, "any").
            restart_policy = {
                "Condition": restart.get("condition", ""),
                "Delay": duration(restart, "delay"),
                "MaxAttempts": int(restart.get("maxAttempts", 0)),
                "Window": duration(restart, "window"),
            }

        placement = None
        place = nested_one(task, "placement")
        if place is not None:
            placement = Placement(
                constraints=list(place.get("constraints", [])) or None,
                maxreplicas=int(place.get("maxReplicas", 0)),
            )

        networks = []
        for net in task.nested("networksAdvanceds"):
            networks.append(
                NetworkAttachmentConfig(
                    target=engine_id(net.get("name"), self.realized.networks, "network"),
                    aliases=list(net.get("aliases", [])) or None,
                )
            )
            readers.append(net)

        log_driver = None
        log = nested_one(task, "logDriver")
        if log is not None:
            log_driver = DriverConfig(log.get("name"), options=dict(log.get("options", {})) or None)

        task_template = TaskTemplate(
            container_spec=container_spec,
            resources=resources,
            restart_policy=restart_policy,
            placement=placement,
            log_driver=log_driver,
            networks=networks or None,
        )

        mode_reader = nested_one(f, "mode")
        mode = ServiceMode("replicated", replicas=1)
        if mode_reader is not None:
            replicated = nested_one(mode_reader, "replicated")
            if mode_reader.get("global", False):
                mode = ServiceMode("global")
            elif replicated is not None:
                mode = ServiceMode("replicated", replicas=int(replicated.get("replicas", 1)))

        update_config = self._update_config(nested_one(f, "updateConfig"), UpdateConfig)
        rollback_config = self._update_config(nested_one(f, "rollbackConfig"), RollbackConfig)

        converge = None
        converge_reader = nested_one(f, "convergeConfig")
        if converge_reader is not None:
            timeout_text = str(converge_reader.get("timeout", _CONVERGE_DEFAULTS["timeout"]))
            converge = Converge(
                delay_seconds=duration(converge_reader, "delay", _CONVERGE_DEFAULTS["delay"]) / 1e9,
                timeout_seconds=go_duration_ns(resource, "convergeConfig.timeout", timeout_text) / 1e9,
                timeout_text=timeout_text,
            )
            if "Global" in mode:
                # replicatedConsoleLogUpdater.update fails with "no replica
                # count" for a global service: the provider's wait cannot end.
                raise RealizeError(
                    f"{resource.name}: declares convergeConfig on a global service; the provider's converge wait "
                    "fails for global services ('no replica count'), so `up` would fail"
                )

        endpoint_spec = EndpointSpec()
        endpoint = nested_one(f, "endpointSpec")
        if endpoint is not None:
            if endpoint.get("mode"):
                endpoint_spec["Mode"] = endpoint.get("mode")
            ports = []
            for port in endpoint.nested("ports"):
                config: dict[str, Any] = {
                    "Protocol": port.get("protocol", "tcp"),
                    "TargetPort": int(port.get("targetPort")),
                    "PublishedPort": int(port.get("publishedPort", 0)),
                    "PublishMode": port.get("publishMode", "ingress"),
                }
                if port.get("name"):
                    config["Name"] = port.get("name")
                ports.append(config)
                readers.append(port)
            if ports:
                endpoint_spec["Ports"] = ports

        f.check(*readers)
        explicit = {getattr(dep, "_name", None) for dep in resource.options.get("depends_on") or []}
        return ServiceSpec(
            resource=resource,
            name=name,
            spec={
                "task_template": task_template,
                "name": name,
                "labels": labels,
                "mode": mode,
                "update_config": update_config,
                "rollback_config": rollback_config,
                "endpoint_spec": endpoint_spec,
            },
            converge=converge,
            stop_grace_ns=stop_grace_ns,
            depends_on={d for d in explicit if d},
        )

    def _update_config(self, reader: _Fields | None, kind: type[UpdateConfig]) -> UpdateConfig | None:
        """createUpdateOrRollbackConfig, with the schema's defaults for what the block leaves out."""
        if reader is None:
            return None
        resource = reader.resource

        def value(key: str) -> Any:
            return reader.get(key, _UPDATE_CONFIG_DEFAULTS[key])

        return kind(
            parallelism=int(value("parallelism")),
            delay=go_duration_ns(resource, reader.prefix + "delay", str(value("delay"))),
            failure_action=value("failureAction"),
            monitor=go_duration_ns(resource, reader.prefix + "monitor", str(value("monitor"))),
            # The provider takes the ratio as a string and parses it as a float.
            max_failure_ratio=float(value("maxFailureRatio")),
            order=value("order"),
        )

    def create_service(self, resource: Resource) -> str:
        """resourceDockerServiceCreate: create, then converge when declared (deleting the service if it cannot)."""
        spec = self._service_spec(resource)
        self.services[resource.name] = spec
        self._require_local_image(spec)
        service_id = self._swarm_call(resource, lambda: self.api.create_service(**spec.spec)["ID"])
        if spec.converge is not None:
            try:
                self._converge(spec, service_id, spec.converge.delay_seconds, update=False)
            except RealizeError:
                self._delete_service(service_id, spec)
                raise
        self.realized.services[resource.name] = service_id
        return service_id

    def update_service(self, resource: Resource) -> None:
        """resourceDockerServiceUpdate: the whole spec at the service's current version, then converge.

        Swarm rolls the tasks with the declared update_config (and rolls back
        by rollback_config when failure_action says so).
        """
        service_id = self.realized.services.get(resource.name)
        if service_id is None:
            raise RealizeError(f"{resource.name}: the service has not been created, so it cannot be updated")
        spec = self._service_spec(resource)
        self.services[resource.name] = spec
        self._require_local_image(spec)
        version = self.api.inspect_service(service_id)["Version"]["Index"]
        self._swarm_call(resource, lambda: self.api.update_service(service_id, version, **spec.spec))
        if spec.converge is not None:
            self._converge(spec, service_id, _UPDATE_CONVERGE_DELAY_SECONDS, update=True)

    def remove_service(self, resource_name: str) -> None:
        """resourceDockerServiceDelete for a service this realizer created."""
        service_id = self.realized.services.pop(resource_name, None)
        if service_id is not None:
            self._delete_service(service_id, self.services[resource_name])

    def remove_service_id(self, resource_name: str, service_id: str) -> None:
        """resourceDockerServiceDelete for one incarnation (`service_id`) of a declared service."""
        if self.realized.services.get(resource_name) == service_id:
            del self.realized.services[resource_name]
        self._delete_service(service_id, self.services[resource_name])

    def remove_secret(self, resource_name: str) -> None:
        secret_id = self.realized.secrets.pop(resource_name, None)
        if secret_id is not None:
            with suppress(NotFound):
                self.api.remove_secret(secret_id)

    def remove_config(self, resource_name: str) -> None:
        config_id = self.realized.configs.pop(resource_name, None)
        if config_id is not None:
            with suppress(NotFound):
                self.api.remove_config(config_id)

    def _require_local_image(self, spec: ServiceSpec) -> None:
        image = spec.spec["task_template"]["ContainerSpec"]["Image"]
        try:
            self.client.images.get(image)
        except docker.errors.ImageNotFound:
            raise RealizeError(
                f"{spec.resource.name}: image {image!r} is not in the engine and nothing can be pulled here"
            ) from None

    def _delete_service(self, service_id: str, spec: ServiceSpec) -> None:
        """deleteService: remove, then wait up to stop_grace_period for each task's container and remove it."""
        containers = []
        if spec.stop_grace_ns:
            for task in self.api.tasks(filters={"service": spec.name}):
                status = task.get("Status") or {}
                container_id = (status.get("ContainerStatus") or {}).get("ContainerID", "")
                if container_id.strip() and status.get("State") != "shutdown":
                    containers.append(container_id)
        with suppress(NotFound):
            self.api.remove_service(service_id)
        for container_id in containers:
            with suppress(NotFound, APIError):
                self.api.wait(container_id, timeout=spec.stop_grace_ns / 1e9, condition="removed")
            with suppress(NotFound):
                self.api.remove_container(container_id, force=True, v=True)

    def _converge(self, spec: ServiceSpec, service_id: str, delay: float, *, update: bool) -> None:
        """Wait as resourceDockerServiceCreate/Update do when converge_config is set.

        resource_docker_service_funcs.go: after `delay`, create waits until
        the tasks desired running are running in as many slots as there are
        replicas (resourceDockerServiceCreateRefreshFunc and
        replicatedConsoleLogUpdater.update). A task with a health check is
        reported running only once healthy: moby's swarm executor
        (daemon/cluster/executor/container/controller.go, Start) waits for
        "health_status: healthy" before it returns. Update
        (resourceDockerServiceUpdateRefreshFunc) is done when UpdateStatus is
        "completed", or when all slots run while Swarm still says "updating";
        it fails on "paused", "rollback_paused" and "rollback_completed" and
        when all slots run again after a rollback started. Either fails when
        `timeout` passes. The provider looks every 5-10 s; this looks every
        `_POLL_SECONDS`.
        """
        assert spec.converge is not None
        # StateChangeConf's timeout runs from before its initial delay.
        deadline = time.monotonic() + spec.converge.timeout_seconds
        time.sleep(delay)
        while True:
            service = self.api.inspect_service(service_id)
            rollback = False
            status = service.get("UpdateStatus") or {}
            state = status.get("State")
            if update and state:
                if state == "completed":
                    return
                if state in _UPDATE_STATES:
                    raise RealizeError(
                        self._service_failure(
                            spec, service_id, f"update {_UPDATE_STATES[state]}: {status.get('Message')}"
                        )
                    )
                rollback = state == "rollback_started"
            replicas = ((service["Spec"].get("Mode") or {}).get("Replicated") or {}).get("Replicas")
            if replicas is None:
                raise RealizeError(self._service_failure(spec, service_id, "has no replica count to converge to"))
            if self._running_slots(service_id) == replicas:
                if rollback:
                    raise RealizeError(
                        self._service_failure(
                            spec, service_id, f"update failed and was rolled back: {status.get('Message')}"
                        )
                    )
                return
            if time.monotonic() > deadline:
                raise RealizeError(
                    self._service_failure(spec, service_id, f"did not converge after {spec.converge.timeout_text}")
                )
            time.sleep(_POLL_SECONDS)

    def _running_slots(self, service_id: str) -> int:
        """replicatedConsoleLogUpdater: per slot the task lowest in desired, then observed, state; count the running."""
        active = {n["ID"] for n in self.api.nodes() if (n.get("Status") or {}).get("State") != "down"}
        by_slot: dict[int, dict[str, Any]] = {}
        for task in self.api.tasks(filters={"service": service_id, "desired-state": "running"}):
            desired = _TASK_STATES.get(task.get("DesiredState", ""), 0)
            observed = _TASK_STATES.get((task.get("Status") or {}).get("State", ""), 0)
            if not desired or not observed:
                continue
            slot = int(task.get("Slot", 0))
            existing = by_slot.get(slot)
            if existing is not None:
                existing_desired = _TASK_STATES[existing["DesiredState"]]
                if existing_desired < desired or (
                    existing_desired == desired and _TASK_STATES[existing["Status"]["State"]] <= observed
                ):
                    continue
            if task.get("NodeID") and task["NodeID"] not in active:
                continue
            by_slot[slot] = task
        return sum(
            1
            for task in by_slot.values()
            if _TASK_STATES[task["DesiredState"]] <= _TASK_STATES["running"] and task["Status"]["State"] == "running"
        )

    def _service_failure(self, spec: ServiceSpec, service_id: str, what: str) -> str:
        tasks = sorted(
            self.api.tasks(filters={"service": service_id}),
            key=lambda t: (t.get("Status") or {}).get("Timestamp", ""),
        )
        lines = []
        for task in tasks[-6:]:
            status = task.get("Status") or {}
            detail = status.get("Err") or status.get("Message") or ""
            lines.append(
                f"  slot {task.get('Slot')}: {status.get('State')} (desired {task.get('DesiredState')}) {detail}"
            )
        return f"service {spec.name} ({spec.resource.name}) {what}\nlast tasks:\n" + ("\n".join(lines) or "  none")

    # --- ordering -----------------------------------------------------------

    def _add_implicit_dependencies(self) -> None:
        """A container that names another's network alias (env, command, config file) depends on it.

        Pulumi orders by Output references and `depends_on`; service
        discovery by alias is invisible to it, so the program adds
        `depends_on` where it matters and this rule covers the rest. Aliases a
        container carries itself (replicas share theirs) never count.
        """
        for spec in self.specs.values():
            text = "\n".join(
                [*spec.create["environment"], *(spec.create["command"] or [])]
                + [data.decode(errors="replace") for _, data, _ in spec.uploads]
            )
            for other in self.specs.values():
                if other is spec:
                    continue
                for alias in other.aliases - spec.aliases:
                    if re.search(rf"(?<![\w.-]){re.escape(alias)}(?![\w-])", text):
                        spec.depends_on.add(other.resource.name)
        self._expand_component_dependencies()

    def _expand_component_dependencies(self) -> None:
        """`depends_on` a component means on every container inside it."""
        parents = {r.name: r.options.get("parent") for r in self.program.resources}

        def ancestors(name: str) -> Iterable[str]:
            parent = parents.get(name)
            while parent:
                yield parent
                parent = parents.get(parent)

        nodes: dict[str, ContainerSpec | GateSpec | ServiceSpec] = {**self.specs, **self.gates, **self.services}
        for spec in nodes.values():
            expanded = set()
            for dep in spec.depends_on:
                if dep in nodes:
                    expanded.add(dep)
                    continue
                expanded |= {other for other in nodes if dep in ancestors(other)}
            spec.depends_on = expanded - {spec.resource.name}

    def levels(self) -> list[list[str]]:
        """Container, gate and service resource names in start order; each inner list may start together."""
        nodes: dict[str, ContainerSpec | GateSpec | ServiceSpec] = {**self.specs, **self.gates, **self.services}
        remaining = {name: set(spec.depends_on) for name, spec in nodes.items()}
        levels: list[list[str]] = []
        while remaining:
            ready = sorted(name for name, deps in remaining.items() if not deps & remaining.keys())
            if not ready:
                raise RealizeError(f"dependency cycle among containers: {sorted(remaining)}")
            levels.append(ready)
            for name in ready:
                del remaining[name]
        return levels

    # --- one container ---------------------------------------------------------

    def run_copy(self, resource_name: str, *, name: str, aliases: list[str], env: Mapping[str, str]) -> str:
        """Start another container like a declared one, as a user scaling by hand would.

        It joins the same networks under `aliases` only (not the original's
        own instance alias) and without its fixed addresses; `env` overrides
        environment variables (its instance name).
        """
        spec = self.specs[resource_name]
        environment = [e for e in spec.create["environment"] if e.split("=", 1)[0] not in env]
        copy = replace(
            spec,
            name=name,
            create={**spec.create, "environment": environment + [f"{k}={v}" for k, v in env.items()]},
            networks=[NetworkAttachment(n.network, list(aliases)) for n in spec.networks],
        )
        return self._run(copy)

    def run_container(self, resource_name: str) -> str:
        """Create, configure and start the declared container, then wait as the provider would."""
        return self._run(self.specs[resource_name])

    def _run(self, spec: ContainerSpec) -> str:
        try:
            return self._create_and_start(spec)
        except APIError as error:
            raise RealizeError(
                f"Docker refused container {spec.name} ({spec.resource.name}) as declared: {error.explanation}"
            ) from error

    def _create_and_start(self, spec: ContainerSpec) -> str:
        container_name = spec.name
        # As resourceDockerContainerCreate does (resource_docker_container_funcs.go):
        # create in `network_mode` (default "bridge", which is what Read stores
        # and compares, ForceNew), then leave the default bridge and join each
        # `networks_advanced` network.
        created = self.api.create_container(
            spec.image,
            name=container_name,
            host_config=self.api.create_host_config(**{k: v for k, v in spec.host_config.items() if v is not None}),
            **{k: v for k, v in spec.create.items() if v is not None},
        )
        container_id: str = created["Id"]
        if spec.host_config.get("network_mode") == "bridge":
            self.api.disconnect_container_from_network(container_id, "bridge")
        for attachment in spec.networks:
            self.api.connect_container_to_network(
                container_id,
                attachment.network,
                aliases=attachment.aliases or None,
                ipv4_address=attachment.ipv4_address,
            )
        if spec.uploads:
            self.api.put_archive(container_id, "/", _upload_archive(spec.uploads))
        if spec.start:
            self.api.start(container_id)
            if spec.attach:
                self.api.wait(container_id, timeout=spec.wait_seconds)
            elif spec.must_run or spec.wait_healthy:
                self.wait_ready(container_id, spec)
        return container_id

    def run_gate(self, resource: Resource) -> GateRun:
        """Run the gate's own dynamic provider against the real container.

        As the engine does (pulumi/dynamic/__main__.py, Create): the provider
        is the dill-serialized `__provider` input, and its create receives the
        inputs, here with `containerId` the real ID of the container whose
        mock ID the program passed. Whatever it raises fails the gate, with
        its message (which names the container and the reason).
        """
        container = self._named_by_id(resource, resource.inputs.get("containerId"))
        # A container's gate, or (condition service-updated) a Swarm service's.
        container_id = self.realized.containers.get(container) or self.realized.services.get(container)
        if container_id is None:
            raise RealizeError(f"{resource.name}: container or service {container} has not been created")
        provider = load_provider(resource.inputs)
        props = {**resource.inputs, "containerId": container_id}
        if "expectedImage" in props:
            # The image the service was given: mock digests stand for the engine's local images.
            props["expectedImage"] = self._image_refs.get(props["expectedImage"], props["expectedImage"])
        try:
            result = provider.create(props)
        except Exception as error:
            raise RealizeError(f"{resource.name}: {error}") from error
        return GateRun(str(result.id), {**(result.outs or {}), "__provider": resource.inputs["__provider"]})

    def wait_ready(self, container_id: str, spec: ContainerSpec) -> None:
        """Running, and healthy when the program asked to wait for health."""
        deadline = time.monotonic() + spec.wait_seconds
        restarts_allowed = 3 if spec.host_config["restart_policy"]["Name"] != "no" else 0
        while True:
            details = self.api.inspect_container(container_id)
            state = details["State"]
            health = (state.get("Health") or {}).get("Status")
            if state["Status"] == "running" and (not spec.wait_healthy or health == "healthy"):
                return
            if state["Status"] in ("exited", "dead", "restarting") and details["RestartCount"] >= restarts_allowed:
                raise RealizeError(self._failure(container_id, spec, "exited"))
            if time.monotonic() > deadline:
                raise RealizeError(
                    self._failure(container_id, spec, f"is not ready after {spec.wait_seconds:g}s ({health})")
                )
            time.sleep(_POLL_SECONDS)

    def _failure(self, container_id: str, spec: ContainerSpec, what: str) -> str:
        details = self.api.inspect_container(container_id)
        probes = (details["State"].get("Health") or {}).get("Log") or []
        probe_text = "\n".join(f"  exit {p.get('ExitCode')}: {p.get('Output', '').strip()}" for p in probes[-3:])
        logs = self.api.logs(container_id, tail=40).decode(errors="replace")
        return (
            f"container {spec.name} ({spec.resource.name}) {what}; state "
            f"{details['State']['Status']}, exit code {details['State'].get('ExitCode')}\n"
            f"last health probes:\n{probe_text or '  none'}\nlast log lines:\n{logs}"
        )

    def remove_container(self, container_id: str, resource_name: str) -> None:
        """Stop gracefully within the declared grace period, then remove (volumes stay)."""
        spec = self.specs[resource_name]
        try:
            self.api.stop(container_id, timeout=spec.grace_seconds)
            self.api.remove_container(container_id, force=True, v=spec.remove_volumes)
        except NotFound:
            return


def _auto_name(resource_name: str) -> str:
    """pulumi-docker's auto-name for an undeclared `name`: `<resource name>-<7 hex>` (resources.go, SetAutonaming).

    Random per creation, so a replacement's new secret never collides with the old one it replaces.
    """
    return f"{resource_name}-{secrets_module.token_hex(4)[:7]}"


def load_provider(inputs: Mapping[str, Any]) -> Any:
    """The dynamic provider a dynamic resource carries in `__provider`, as the engine loads it."""
    return dill.loads(base64.b64decode(inputs["__provider"]))


def _upload_archive(uploads: list[tuple[str, bytes, int]]) -> bytes:
    """A tar of the uploads as the provider writes it: owned by root, with the declared mode."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path, data, mode in uploads:
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size = len(data)
            info.mode = mode
            info.mtime = int(time.time())
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def remove_labelled(client: docker.DockerClient, label: str) -> None:
    """Remove services, secrets, configs, containers (with anonymous volumes), networks and volumes with `label`."""
    _remove(client, {"label": label}, lambda _labels: True)


def remove_abandoned(client: docker.DockerClient) -> None:
    """Remove what earlier sessions created whose test process is gone (an interrupted run)."""
    _remove(client, {"label": SESSION_LABEL}, lambda labels: not alive(labels.get(OWNER_LABEL, "")))


def alive(pid: str) -> bool:
    """Whether the process `pid` (an OWNER_LABEL value) still runs."""
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(client: docker.DockerClient, filters: dict[str, str], wanted: Callable[[dict[str, str]], bool]) -> None:
    api = client.api
    if is_swarm_manager(client):
        _remove_swarm_objects(client, filters, wanted)
    for container in api.containers(all=True, filters=filters):
        if wanted(container.get("Labels") or {}):
            with suppress(NotFound):
                api.remove_container(container["Id"], force=True, v=True)
    for network in api.networks(filters=filters):
        if wanted(network.get("Labels") or {}):
            with suppress(NotFound):
                api.remove_network(network["Id"])
    for volume in api.volumes(filters=filters).get("Volumes") or []:
        if wanted(volume.get("Labels") or {}):
            with suppress(NotFound):
                api.remove_volume(volume["Name"], force=True)


def is_swarm_manager(client: docker.DockerClient) -> bool:
    """Whether the engine is an active manager of a swarm (and so has services, secrets and configs)."""
    swarm = client.info().get("Swarm") or {}
    return swarm.get("LocalNodeState") == "active" and bool(swarm.get("ControlAvailable"))


def _remove_swarm_objects(
    client: docker.DockerClient, filters: dict[str, str], wanted: Callable[[dict[str, str]], bool]
) -> None:
    """Services first, and wait for their tasks' containers to go: until then their networks are in use."""
    api = client.api
    removed = []
    for service in api.services(filters=filters):
        if wanted((service.get("Spec") or {}).get("Labels") or {}):
            with suppress(NotFound):
                api.remove_service(service["ID"])
            removed.append(service["ID"])
    deadline = time.monotonic() + _SERVICE_GONE_SECONDS
    for service_id in removed:
        label = {"label": f"com.docker.swarm.service.id={service_id}"}
        while api.containers(all=True, filters=label) and time.monotonic() < deadline:
            time.sleep(_POLL_SECONDS)
    for secret in api.secrets(filters=filters):
        if wanted((secret.get("Spec") or {}).get("Labels") or {}):
            with suppress(NotFound):
                api.remove_secret(secret["ID"])
    for config in api.configs(filters=filters):
        if wanted((config.get("Spec") or {}).get("Labels") or {}):
            with suppress(NotFound):
                api.remove_config(config["ID"])
