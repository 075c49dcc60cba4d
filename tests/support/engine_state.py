"""What a Docker engine reports for what the provider created: inspect JSON without an engine.

The read-back port (tests/support/readback.py, readback_service.py) turns
inspect JSON into the provider's state. To judge a declaration without a
Docker engine, the unit tests need the inspect JSON that the engine would
return for it. This module builds it in two steps, each ported from source:

1. What the provider sends. `resourceDockerContainerCreate` and
   `resourceDockerNetworkCreate` (kreuzwerker/terraform-provider-docker
   v3.9.0, internal/provider/resource_docker_container_funcs.go 35-500,
   resource_docker_network_funcs.go 27-86) turn the inputs into Engine API
   structures: `d.GetOk` leaves zero values out, memory goes in MiB × 2^20,
   `cpus` through docker/cli `opts.ParseCPUs`, health-check durations through
   Go's `time.ParseDuration` with the error ignored, the restart policy and
   `network_mode` (schema default "bridge") always.
2. What the engine makes of it. Docker Engine 20.10 (Debian bookworm's
   docker.io; moby v20.10.24): `adaptContainerSettings` (daemon/daemon_unix.go
   343-360: an unset MemorySwap becomes 2 × Memory, ShmSize and IpcMode take
   the daemon's defaults), `verifyPlatformContainerResources` (427-445: no
   swap accounting turns a swap limit into -1), `mergeAndVerifyLogConfig`
   (daemon/logs.go 177-197: the daemon's log-opts join every container whose
   driver is the daemon's default driver, its `cache-*` opts every container),
   and the IPAM gateway of a network with a declared subnet, which the engine
   reports once it has restarted (upstream issue #54).

The system test holds this model against the real engine: for every
container, network and volume it realizes, the state read back from the
model must equal the state read back from the engine
(tests/system/readback_check.py, `model_differences`). So the unit tests that
judge the mock graph with it (tests/unit/test_readback_stacks.py) rest on
something measured, not assumed.

Swarm services come from readback_service.stored_service (the same idea,
for createServiceSpec and swarmkit); secrets and configs are built here.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.support.readback import CONTAINER, NETWORK, VOLUME, declared_state, parse_cpus
from tests.support.readback_service import parse_go_duration

_MIB = 1024 * 1024

# Default log options such as many hosts set in daemon.json. The engine merges
# them into every container whose log driver is the daemon's default
# (json-file), and the provider reads the merged map back into the ForceNew
# `log_opts`. The system test starts its dockerd with them, and the unit
# read-back test models a daemon with them: no container the program declares
# may pick them up.
DAEMON_LOG_OPTS = {"labels": "microstack.stack", "compress": "true", "max-file": "2", "max-size": "20m"}

# moby daemon/logger/loggerutils/cache: log-opts with this prefix (dual
# logging's cache) are merged into every container, whatever its driver.
_CACHE_LOG_OPT_PREFIX = "cache-"


@dataclass(frozen=True)
class Daemon:
    """The settings of one Docker daemon that shape what it stores for a container.

    Defaults are a standard Debian install with the log-opts above in daemon.json.
    """

    log_driver: str = "json-file"
    log_opts: Mapping[str, str] = field(default_factory=lambda: dict(DAEMON_LOG_OPTS))
    # cgroup swap accounting (sysinfo.SwapLimit); off on many kernels.
    swap_limit: bool = True
    # daemon/config: DefaultShmSize (64 MiB) and DefaultIpcMode ("private").
    shm_size: int = 64 * _MIB
    ipc_mode: str = "private"
    default_runtime: str = "runc"
    # Whether it restarted since the networks were created (a host reboot):
    # then a declared subnet's gateway shows up in the network's IPAM config.
    restarted: bool = False


def stored(type_token: str, declared: Mapping[str, Any], daemon: Daemon) -> dict[str, Any]:
    """The inspect JSON of a container, network or volume the provider created from `declared`."""
    if type_token == CONTAINER:
        return stored_container(declared, daemon)
    if type_token == NETWORK:
        return stored_network(declared, daemon)
    if type_token == VOLUME:
        return stored_volume(declared)
    raise KeyError(f"no engine model for {type_token}")


def _object_id(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


# --- containers ------------------------------------------------------------------


def stored_container(declared: Mapping[str, Any], daemon: Daemon = Daemon()) -> dict[str, Any]:
    """The inspect JSON of a container created by resourceDockerContainerCreate from `declared` (Pulumi inputs).

    What the image would contribute when the program leaves a field to it
    (Cmd, Entrypoint, User, WorkingDir, StopSignal, Healthcheck) is left
    empty: the provider's schema makes each of those Computed or suppresses
    an empty declaration, so the image's values never reach a plan.
    """
    v = declared_state(CONTAINER, declared)
    name = str(v.get("name") or "")
    container_id = _object_id(f"container/{name}")
    config, exposed, bindings = _container_config(v, container_id)
    host = _host_config(v, bindings, daemon)
    one_shot = bool(v.get("attach"))
    return {
        "Id": container_id,
        "Name": f"/{name}",
        "Image": v["image"] if str(v.get("image", "")).startswith("sha256:") else f"sha256:{_object_id(v['image'])}",
        # A job (`attach`) has run to completion by the time Create returns.
        "State": {"Running": not one_shot, "Status": "exited" if one_shot else "running", "ExitCode": 0},
        "Config": config,
        "HostConfig": host,
        "NetworkSettings": {
            "Bridge": "",
            # Every exposed port is a key; only bound ones have bindings (daemon/network.go).
            "Ports": {port: bindings.get(port) for port in exposed} if not one_shot else {},
            "Networks": {
                net["name"]: {"Aliases": list(net.get("aliases") or []), "IPAddress": net.get("ipv4Address") or ""}
                for net in v.get("networksAdvanced") or []
            },
        },
    }


def _container_config(
    v: Mapping[str, Any], container_id: str
) -> tuple[dict[str, Any], list[str], dict[str, list[dict[str, str]]]]:
    """container.Config as Create builds it (resource_docker_container_funcs.go 60-147), with the engine's hostname."""
    exposed: list[str] = []
    bindings: dict[str, list[dict[str, str]]] = {}
    # portSetToDockerPorts (resource_docker_container_structures.go 138-168): the
    # SDK fills `ip` ("0.0.0.0") and `protocol` ("tcp") defaults, and an unset
    # `external` reads as 0, which asks the engine for a free port.
    for port in v.get("ports") or []:
        key = f"{int(port['internal'])}/{port.get('protocol') or 'tcp'}"
        if key not in exposed:
            exposed.append(key)
        bindings.setdefault(key, []).append(
            {"HostIp": port.get("ip") or "0.0.0.0", "HostPort": str(int(port.get("external") or 0))}
        )
    config: dict[str, Any] = {
        "Image": v["image"],
        # The engine names the host after the container when none is given.
        "Hostname": v.get("hostname") or container_id[:12],
        "Domainname": v.get("domainname") or "",
        "Tty": bool(v.get("tty")),
        "OpenStdin": bool(v.get("stdinOpen")),
        "StopSignal": v.get("stopSignal") or "",
        "StopTimeout": int(v["stopTimeout"]) if v.get("stopTimeout") else None,
        "Env": list(v.get("envs") or []) or None,
        "Cmd": list(v.get("command") or []) or None,
        "Entrypoint": list(v.get("entrypoints") or []) or None,
        "User": v.get("user") or "",
        "ExposedPorts": {port: {} for port in exposed} or None,
        "WorkingDir": v.get("workingDir") or "",
        "Labels": {item["label"]: item["value"] for item in v.get("labels") or []},
        "Healthcheck": _health_config(v.get("healthcheck")),
    }
    return config, exposed, bindings


def _health_config(check: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """container.HealthConfig: each duration through time.ParseDuration, whose error Create ignores (0)."""
    if not check:
        return None
    return {
        "Test": list(check.get("tests") or []),
        "Interval": parse_go_duration(str(check.get("interval") or "")),
        "Timeout": parse_go_duration(str(check.get("timeout") or "")),
        "StartPeriod": parse_go_duration(str(check.get("startPeriod") or "")),
        "StartInterval": parse_go_duration(str(check.get("startInterval") or "")),
        "Retries": int(check.get("retries") or 0),
    }


def _host_config(v: Mapping[str, Any], bindings: Mapping[str, list[dict[str, str]]], daemon: Daemon) -> dict[str, Any]:
    """container.HostConfig as Create builds it (resource_docker_container_funcs.go 229-430), then engine defaults."""
    memory = int(v.get("memory") or 0) * _MIB
    swap = int(v.get("memorySwap") or 0)
    swap = swap * _MIB if swap > 0 else swap
    capabilities = v.get("capabilities") or {}
    host: dict[str, Any] = {
        "Privileged": bool(v.get("privileged")),
        "PublishAllPorts": bool(v.get("publishAllPorts")),
        "RestartPolicy": {"Name": v.get("restart") or "", "MaximumRetryCount": int(v.get("maxRetryCount") or 0)},
        "Runtime": v.get("runtime") or daemon.default_runtime,
        "Mounts": [_mount(m) for m in v.get("mounts") or []] or None,
        "AutoRemove": bool(v.get("rm")),
        "ReadonlyRootfs": bool(v.get("readOnly")),
        "LogConfig": _log_config(v.get("logDriver") or "", v.get("logOpts"), daemon),
        "Tmpfs": dict(v.get("tmpfs") or {}) or None,
        "PortBindings": dict(bindings) or None,
        "ExtraHosts": [f"{h['host']}:{h['ip']}" for h in v.get("hosts") or []] or None,
        "Binds": [_bind(volume) for volume in v.get("volumes") or [] if not volume.get("fromContainer")] or None,
        "Ulimits": [{"Name": u["name"], "Soft": int(u["soft"]), "Hard": int(u["hard"])} for u in v.get("ulimits") or []]
        or None,
        "CapAdd": list(capabilities.get("adds") or []) or None,
        "CapDrop": list(capabilities.get("drops") or []) or None,
        "Devices": [
            {
                "PathOnHost": d["hostPath"],
                "PathInContainer": d.get("containerPath") or d["hostPath"],
                "CgroupPermissions": d.get("permissions") or "rwm",
            }
            for d in v.get("devices") or []
        ]
        or None,
        "Dns": list(v.get("dns") or []) or None,
        "DnsOptions": list(v.get("dnsOpts") or []) or None,
        "DnsSearch": list(v.get("dnsSearches") or []) or None,
        "SecurityOpt": list(v.get("securityOpts") or []) or None,
        "Memory": memory,
        "MemoryReservation": int(v.get("memoryReservation") or 0) * _MIB,
        "MemorySwap": swap,
        "ShmSize": int(v.get("shmSize") or 0) * _MIB,
        "NanoCpus": parse_cpus(str(v["cpus"])) if v.get("cpus") else 0,
        "CpuShares": int(v.get("cpuShares") or 0),
        "CpusetCpus": v.get("cpuSet") or "",
        "NetworkMode": v.get("networkMode") or "",
        "UsernsMode": v.get("usernsMode") or "",
        "PidMode": v.get("pidMode") or "",
        "Sysctls": dict(v.get("sysctls") or {}) or None,
        "IpcMode": v.get("ipcMode") or "",
        "GroupAdd": list(v.get("groupAdds") or []) or None,
        "Init": bool(v["init"]) if v.get("init") is not None else None,
        "StorageOpt": dict(v.get("storageOpts") or {}) or None,
    }
    # adaptContainerSettings (daemon/daemon_unix.go 343-360).
    if host["Memory"] > 0 and host["MemorySwap"] == 0:
        host["MemorySwap"] = host["Memory"] * 2
    if host["ShmSize"] == 0:
        host["ShmSize"] = daemon.shm_size
    if not host["IpcMode"]:
        host["IpcMode"] = daemon.ipc_mode
    # verifyPlatformContainerResources (427-445).
    if host["Memory"] > 0 and host["MemorySwap"] != -1 and not daemon.swap_limit:
        host["MemorySwap"] = -1
    return host


def _log_config(driver: str, options: Mapping[str, Any] | None, daemon: Daemon) -> dict[str, Any]:
    """mergeAndVerifyLogConfig (daemon/logs.go 177-197) and cache.MergeDefaultLogConfig."""
    merged = {str(k): str(v) for k, v in (options or {}).items()}
    driver = driver or daemon.log_driver
    for key, value in daemon.log_opts.items():
        if (driver == daemon.log_driver or key.startswith(_CACHE_LOG_OPT_PREFIX)) and key not in merged:
            merged[key] = value
    return {"Type": driver, "Config": merged}


def _mount(mount: Mapping[str, Any]) -> dict[str, Any]:
    """mount.Mount as Create builds it (resource_docker_container_funcs.go 149-227): options only for their type."""
    kind = mount.get("type") or ""
    out: dict[str, Any] = {"Type": kind, "Target": mount["target"], "Source": mount.get("source") or ""}
    if mount.get("readOnly"):
        out["ReadOnly"] = True
    if kind == "bind" and mount.get("bindOptions"):
        out["BindOptions"] = {"Propagation": mount["bindOptions"].get("propagation") or ""}
    elif kind == "volume" and mount.get("volumeOptions"):
        options = mount["volumeOptions"]
        volume: dict[str, Any] = {"NoCopy": bool(options.get("noCopy"))}
        labels = {item["label"]: item["value"] for item in options.get("labels") or []}
        if labels:
            volume["Labels"] = labels
        if options.get("driverName") or options.get("driverOptions"):
            volume["DriverConfig"] = {
                "Name": options.get("driverName") or "",
                "Options": dict(options.get("driverOptions") or {}),
            }
        if options.get("subpath"):
            volume["Subpath"] = options["subpath"]
        out["VolumeOptions"] = volume
    elif kind == "tmpfs" and mount.get("tmpfsOptions"):
        options = mount["tmpfsOptions"]
        out["TmpfsOptions"] = {"SizeBytes": int(options.get("sizeBytes") or 0), "Mode": int(options.get("mode") or 0)}
    return out


def _bind(volume: Mapping[str, Any]) -> str:
    """volumeSetToDockerVolumes (resource_docker_container_structures.go): `source:target[:ro]`."""
    source = volume.get("volumeName") or volume.get("hostPath") or ""
    bind = f"{source}:{volume.get('containerPath') or ''}"
    return f"{bind}:ro" if volume.get("readOnly") else bind


# --- networks and volumes ---------------------------------------------------------


def stored_network(declared: Mapping[str, Any], daemon: Daemon = Daemon()) -> dict[str, Any]:
    """The inspect JSON of a network created by resourceDockerNetworkCreate from `declared`.

    A declared pool is reported as declared; an undeclared one as the engine
    allocated it, gateway included (daemon/network.go buildIPAMResources). A
    declared subnet without a gateway shows the gateway the engine took (its
    first host) once the daemon has restarted, as the system test's engine
    does (tests/system/test_readback.py).
    """
    v = declared_state(NETWORK, declared)
    driver = v.get("driver") or "bridge"
    name = str(v.get("name") or "")
    pools = []
    for ipam in v.get("ipamConfigs") or []:
        pool = {
            "Subnet": ipam.get("subnet") or "",
            "IPRange": ipam.get("ipRange") or "",
            "Gateway": ipam.get("gateway") or "",
        }
        if not pool["Gateway"] and daemon.restarted and pool["Subnet"]:
            pool["Gateway"] = str(ipaddress.ip_network(pool["Subnet"]).network_address + 1)
        if ipam.get("auxAddress"):
            pool["AuxiliaryAddresses"] = dict(ipam["auxAddress"])
        pools.append({k: value for k, value in pool.items() if value})
    if not pools:
        # The engine's choice: any pool of its default address pools.
        base = "10.0.9.0/24" if driver == "overlay" else "172.18.0.0/16"
        pools = [{"Subnet": base, "Gateway": str(ipaddress.ip_network(base).network_address + 1)}]
    return {
        "Name": name,
        "Id": _object_id(f"network/{name}"),
        "Scope": "swarm" if driver == "overlay" else "local",
        "Driver": driver,
        "EnableIPv6": bool(v.get("ipv6")),
        "IPAM": {
            "Driver": v.get("ipamDriver") or "default",
            "Options": dict(v.get("ipamOptions") or {}) or None,
            "Config": pools,
        },
        "Internal": bool(v.get("internal")),
        "Attachable": bool(v.get("attachable")),
        "Ingress": bool(v.get("ingress")),
        "Options": {str(k): str(value) for k, value in (v.get("options") or {}).items()},
        "Labels": {item["label"]: item["value"] for item in v.get("labels") or []},
    }


def stored_volume(declared: Mapping[str, Any]) -> dict[str, Any]:
    """The inspect JSON of a volume created by resourceDockerVolumeCreate from `declared` (local driver)."""
    name = str(declared.get("name") or "")
    return {
        "Name": name,
        "Driver": declared.get("driver") or "local",
        "Mountpoint": f"/var/lib/docker/volumes/{name}/_data",
        "Labels": {item["label"]: item["value"] for item in declared.get("labels") or []} or None,
        "Options": dict(declared.get("driverOpts") or {}) or None,
        "Scope": "local",
    }


# --- Swarm secrets and configs ------------------------------------------------------


def stored_secret(declared: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A secret as Swarm reports it: the spec without its data, which the API never returns."""
    labels = {item["label"]: item["value"] for item in declared.get("labels") or []}
    return {"ID": _object_id(f"secret/{name}"), "Spec": {"Name": name, "Labels": labels}}


def stored_config(declared: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A config as Swarm reports it: Spec.Data as Go marshals the decoded []byte (padded StdEncoding)."""
    data = _go_std_decode(str(declared.get("data") or ""))
    return {"ID": _object_id(f"config/{name}"), "Spec": {"Name": name, "Data": base64.b64encode(data).decode()}}


def _go_std_decode(text: str) -> bytes:
    """`base64.StdEncoding.DecodeString` with its error ignored, as resourceDockerConfigCreate calls it.

    Go decodes whole quanta and stops at the first bad one, keeping what came
    before: unpadded input loses its last partial quantum.
    """
    out = b""
    for start in range(0, len(text) - len(text) % 4, 4):
        try:
            out += base64.b64decode(text[start : start + 4], validate=True)
        except ValueError:
            break
    return out
