"""What the Docker provider stores after reading a Swarm service, secret or config back.

The Swarm counterpart of tests/support/readback.py (containers, networks,
volumes): pulumi-docker 4.11 bridges kreuzwerker/terraform-provider-docker
v3.9.0, whose Read overwrites the state with what the engine reports; the next
`pulumi up` diffs the program's inputs against that state with the Terraform
plugin SDK v2 rules. A field the engine or the provider's formatting spells
differently from the declaration is a change on every `up`, and for a ForceNew
field a replacement.

- `read_service`: Engine API service inspect JSON (docker-py
  `client.api.inspect_service(id)`) → the provider's state after
  resourceDockerServiceReadRefreshFunc, in Pulumi's camelCase input shape
  (MaxItems-1 blocks as objects, sets as lists). `convergeConfig` and `auth`
  are never read: they keep the declared value.
- `read_secret`, `read_service_config`: resourceDockerSecretRead (name only)
  and resourceDockerConfigRead (name, and data re-encoded as padded base64).
- `diff_service`, `diff_secret`, `diff_service_config`: declared inputs vs
  that state → `Change`s, honouring the resource's `ignore_changes` paths.
- `stored_service`: the inspect JSON Swarm holds for a service the provider
  created from declared inputs (createServiceSpec, the Docker client's
  ServiceCreate, the daemon's conversion), for tests without an engine.
- `short_dur`, `failure_ratio_string`, `parse_go_duration`: the Go formatters
  and parser the round trip goes through.

Upstream files, relative to internal/provider/ at v3.9.0: S =
resource_docker_service.go (schema in resourceDockerService), F =
resource_docker_service_funcs.go, T = resource_docker_service_structures.go,
H = helpers.go. /tmp/swarm/provider-notes.md (research notes) cites lines.

Diff scope: the attributes of the service schema that the program can set in
the blocks it uses, and the ones Read fills next to them. A declared field
outside that raises `UnknownField` (with its path), so a new setting in the
program cannot be compared silently against nothing. Replacement follows the
SDK: a changed attribute replaces when it is ForceNew itself (`name`,
container `labels`, `hosts`, `sysctl`, every `networksAdvanceds` field);
a MaxItems-1 block or set that is added or removed replaces when the block is
ForceNew (`mode`, `auth`), or when a ForceNew field of the added or removed
element has a value. Nested fields do not inherit a parent's ForceNew: so a
`mode.replicated.replicas` change is an update, and so is a switch between
replicated and global, which Swarm then refuses ("service mode change is not
allowed").

Not ported (raises `NotPorted` if met): tmpfs mount options (Read sets a Go
method value, `Mode.Perm` without a call, so the whole task_spec write fails
and the old state stays), a credential spec `config` (no attribute for it).
"""

from __future__ import annotations

import base64
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from tests.support.readback import Change, ReadPending, UnknownField, go_duration_string

SERVICE = "docker:index/service:Service"
SECRET = "docker:index/secret:Secret"
SERVICE_CONFIG = "docker:index/serviceConfig:ServiceConfig"


class NotPorted(NotImplementedError):
    """Inspect JSON or inputs this port does not model (see the module docstring)."""


# --- the Go formatters and parser ------------------------------------------------


def short_dur(ns: int) -> str:
    """T shortDur (1306-1315): Go's Duration.String(), then a trailing "m0s" → "m" and "h0m" → "h".

    60 s → "1m", 90 s → "1m30s", 1 h → "1h", 1 h 30 m → "1h30m", 500 ms → "500ms", 0 → "0s".
    """
    text = go_duration_string(ns)
    if text.endswith("m0s"):
        text = text[:-2]
    if text.endswith("h0m"):
        text = text[:-2]
    return text


def failure_ratio_string(ratio: float) -> str:
    """T flattenServiceUpdateOrRollbackConfig (87): `FormatFloat(float64(in.MaxFailureRatio), 'f', 1, 64)`.

    The spec holds a float32 (createUpdateOrRollbackConfig narrows the parsed
    string), printed with one decimal, correctly rounded: "0.25" → "0.2" (a
    tie, to even), "0.15" → "0.2" and "0.05" → "0.1" (their float32 is just
    above), "0.9" → "0.9".
    """
    (narrowed,) = struct.unpack("f", struct.pack("f", ratio))
    return f"{narrowed:.1f}"


_UNIT_NS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_NUMBER_UNIT = r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)"
_DURATION = re.compile(f"(?:{_NUMBER_UNIT})+")


def parse_go_duration(text: str) -> int:
    """Go's time.ParseDuration as createServiceSpec calls it: the error is ignored, so bad text is 0.

    An omitted string field of a declared block reaches the provider as "",
    which is 0 ns ("0s" once read back).
    """
    sign = -1 if text.startswith("-") else 1
    body = text[1:] if text.startswith(("-", "+")) else text
    if body == "0" or not _DURATION.fullmatch(body):
        return 0
    total = sum((Fraction(number) * _UNIT_NS[unit] for number, unit in re.findall(_NUMBER_UNIT, body)), Fraction(0))
    # Go accumulates the fraction per unit and truncates toward zero.
    return sign * int(total)


# --- the schema ------------------------------------------------------------------

_STRING, _INT, _BOOL, _FLOAT = "string", "int", "bool", "float"
_LIST, _SET, _MAP = "list", "set", "map"  # of strings
_BLOCK, _BLOCK_LIST, _BLOCK_SET = "block", "block_list", "block_set"


@dataclass(frozen=True)
class _Attr:
    """One schema attribute, with what matters for a plan (helper/schema.Schema)."""

    kind: str
    computed: bool = False
    force_new: bool = False
    default: Any = None
    block: Mapping[str, _Attr] = field(default_factory=dict)


def _fn(kind: str, **kwargs: Any) -> _Attr:
    return _Attr(kind, force_new=True, **kwargs)


# H newLabelSchema(true) / labelSchemaUpdatable: {label, value}, ForceNew or not.
_LABEL_FORCE_NEW = {"label": _fn(_STRING), "value": _fn(_STRING)}
_LABEL = {"label": _Attr(_STRING), "value": _Attr(_STRING)}

_FILE_REFERENCE = {
    "fileName": _Attr(_STRING),
    "fileUid": _Attr(_STRING, default="0"),
    "fileGid": _Attr(_STRING, default="0"),
    "fileMode": _Attr(_INT, default=0o444),
}

# S resourceDockerService (9-983), Pulumi names (pulumi_docker 4.11 _inputs.py).
_CONTAINER_SPEC: dict[str, _Attr] = {
    "image": _Attr(_STRING),
    "labels": _Attr(_BLOCK_SET, block=_LABEL_FORCE_NEW),
    "commands": _Attr(_LIST),
    "args": _Attr(_LIST),
    "hostname": _Attr(_STRING),
    "env": _Attr(_MAP),
    "dir": _Attr(_STRING),
    "user": _Attr(_STRING),
    "groups": _Attr(_LIST),
    "privileges": _Attr(
        _BLOCK,
        block={
            "credentialSpec": _Attr(_BLOCK, block={"file": _Attr(_STRING), "registry": _Attr(_STRING)}),
            "seLinuxContext": _Attr(
                _BLOCK,
                block={
                    "disable": _Attr(_BOOL),
                    "user": _Attr(_STRING),
                    "role": _Attr(_STRING),
                    "type": _Attr(_STRING),
                    "level": _Attr(_STRING),
                },
            ),
        },
    ),
    "readOnly": _Attr(_BOOL),
    "mounts": _Attr(
        _BLOCK_SET,
        block={
            "target": _Attr(_STRING),
            "source": _Attr(_STRING),
            "type": _Attr(_STRING),
            "readOnly": _Attr(_BOOL),
            "bindOptions": _Attr(_BLOCK, block={"propagation": _Attr(_STRING, default="rprivate")}),
            "volumeOptions": _Attr(
                _BLOCK,
                block={
                    "noCopy": _Attr(_BOOL),
                    "labels": _Attr(_BLOCK_SET, block=_LABEL_FORCE_NEW),
                    "driverName": _Attr(_STRING),
                    "driverOptions": _Attr(_MAP),
                },
            ),
        },
    ),
    "stopSignal": _Attr(_STRING),
    "stopGracePeriod": _Attr(_STRING, computed=True),
    "healthcheck": _Attr(
        _BLOCK,
        computed=True,
        block={
            "tests": _Attr(_LIST),
            "interval": _Attr(_STRING, default="0s"),
            "timeout": _Attr(_STRING, default="0s"),
            "startPeriod": _Attr(_STRING, default="0s"),
            "retries": _Attr(_INT, default=0),
        },
    ),
    "hosts": _fn(_BLOCK_SET, block={"host": _fn(_STRING), "ip": _fn(_STRING)}),
    "dnsConfig": _Attr(
        _BLOCK,
        computed=True,
        block={"nameservers": _Attr(_LIST), "searches": _Attr(_LIST), "options": _Attr(_LIST)},
    ),
    "secrets": _Attr(_BLOCK_SET, block={"secretId": _Attr(_STRING), "secretName": _Attr(_STRING), **_FILE_REFERENCE}),
    "configs": _Attr(_BLOCK_SET, block={"configId": _Attr(_STRING), "configName": _Attr(_STRING), **_FILE_REFERENCE}),
    "isolation": _Attr(_STRING, default="default"),
    "sysctl": _fn(_MAP),
    "capAdds": _Attr(_LIST),
    "capDrops": _Attr(_LIST),
}

_UPDATE_OR_ROLLBACK = {
    "parallelism": _Attr(_INT, default=1),
    "delay": _Attr(_STRING, default="0s"),
    "failureAction": _Attr(_STRING, default="pause"),
    "monitor": _Attr(_STRING, default="5s"),
    "maxFailureRatio": _Attr(_STRING, default="0.0"),
    "order": _Attr(_STRING, default="stop-first"),
}

_SERVICE: dict[str, _Attr] = {
    "auth": _fn(
        _BLOCK,
        block={"serverAddress": _fn(_STRING), "username": _fn(_STRING), "password": _fn(_STRING)},
    ),
    "name": _fn(_STRING),
    "labels": _Attr(_BLOCK_SET, computed=True, block=_LABEL),
    "taskSpec": _Attr(
        _BLOCK,
        block={
            "containerSpec": _Attr(_BLOCK, block=_CONTAINER_SPEC),
            "resources": _Attr(
                _BLOCK,
                computed=True,
                block={
                    "limits": _Attr(_BLOCK, block={"nanoCpus": _Attr(_INT), "memoryBytes": _Attr(_INT)}),
                    "reservation": _Attr(
                        _BLOCK,
                        block={
                            "nanoCpus": _Attr(_INT),
                            "memoryBytes": _Attr(_INT),
                            "genericResources": _Attr(
                                _BLOCK,
                                block={"namedResourcesSpecs": _Attr(_SET), "discreteResourcesSpecs": _Attr(_SET)},
                            ),
                        },
                    ),
                },
            ),
            "restartPolicy": _Attr(
                _BLOCK,
                computed=True,
                block={
                    "condition": _Attr(_STRING),
                    "delay": _Attr(_STRING),
                    "maxAttempts": _Attr(_INT),
                    "window": _Attr(_STRING),
                },
            ),
            "placement": _Attr(
                _BLOCK,
                computed=True,
                block={
                    "constraints": _Attr(_SET),
                    "prefs": _Attr(_SET),
                    "maxReplicas": _Attr(_INT),
                    "platforms": _Attr(_BLOCK_SET, block={"architecture": _Attr(_STRING), "os": _Attr(_STRING)}),
                },
            ),
            "forceUpdate": _Attr(_INT, computed=True),
            "runtime": _Attr(_STRING, computed=True),
            "networksAdvanceds": _Attr(
                _BLOCK_SET,
                block={"name": _fn(_STRING), "aliases": _fn(_SET), "driverOpts": _fn(_SET)},
            ),
            "logDriver": _Attr(_BLOCK, block={"name": _Attr(_STRING), "options": _Attr(_MAP)}),
        },
    ),
    # ForceNew, but only for adding or removing the block (see the module docstring).
    "mode": _fn(
        _BLOCK,
        computed=True,
        block={
            "replicated": _Attr(_BLOCK, computed=True, block={"replicas": _Attr(_INT, default=1)}),
            "global": _Attr(_BOOL, default=False),
        },
    ),
    "updateConfig": _Attr(_BLOCK, block=_UPDATE_OR_ROLLBACK),
    "rollbackConfig": _Attr(_BLOCK, block=_UPDATE_OR_ROLLBACK),
    "endpointSpec": _Attr(
        _BLOCK,
        computed=True,
        block={
            "mode": _Attr(_STRING, computed=True),
            "ports": _Attr(
                _BLOCK_LIST,
                block={
                    "name": _Attr(_STRING),
                    "protocol": _Attr(_STRING, default="tcp"),
                    "targetPort": _Attr(_INT),
                    "publishedPort": _Attr(_INT, computed=True),
                    "publishMode": _Attr(_STRING, default="ingress"),
                },
            ),
        },
    ),
    "convergeConfig": _Attr(
        _BLOCK, block={"delay": _Attr(_STRING, default="7s"), "timeout": _Attr(_STRING, default="3m")}
    ),
}

# resource_docker_secret.go resourceDockerSecret (14-58): no Update, every field ForceNew.
_SECRET: dict[str, _Attr] = {
    "name": _fn(_STRING, computed=True),
    "data": _fn(_STRING),
    "labels": _fn(_BLOCK_SET, block=_LABEL_FORCE_NEW),
}
# resource_docker_config.go resourceDockerConfig (15-43).
_CONFIG: dict[str, _Attr] = {"name": _fn(_STRING, computed=True), "data": _fn(_STRING)}
# `name` is Required upstream; the bridge auto-names it (pulumi-docker
# resources.go SetAutonaming), so an undeclared name is the provider's choice:
# modelled as Computed.


# --- Read ------------------------------------------------------------------------


def read_service(inspect: Mapping[str, Any], declared: Mapping[str, Any]) -> dict[str, Any]:
    """The service's state after F resourceDockerServiceReadRefreshFunc (109-167).

    Raises `ReadPending` while neither the endpoint nor the spec has an
    endpoint mode: Read polls for 30 s and then fails (F 91-98, 131-134).
    """
    spec = inspect.get("Spec") or {}
    endpoint = inspect.get("Endpoint") or {}
    endpoint_mode = (endpoint.get("Spec") or {}).get("Mode") or ""
    spec_endpoint = spec.get("EndpointSpec") or {}
    if not endpoint_mode and not spec_endpoint.get("Mode"):
        raise ReadPending(f"service {spec.get('Name')!r} does not expose an endpoint mode yet: Read polls for 30 s")
    state: dict[str, Any] = {
        "name": spec.get("Name") or "",  # 137
        "labels": _label_set(spec.get("Labels")),  # 138
        "taskSpec": _flatten_task_spec(spec.get("TaskTemplate") or {}),  # 140
        "mode": _flatten_service_mode(spec.get("Mode") or {}),  # 143
        "updateConfig": _flatten_update_or_rollback(spec.get("UpdateConfig")),  # 146
        "rollbackConfig": _flatten_update_or_rollback(spec.get("RollbackConfig")),  # 149
    }
    # 153-163: the runtime endpoint (allocated ports) when it has a mode, else the spec's.
    source = endpoint if endpoint_mode else spec_endpoint
    mode = endpoint_mode or spec_endpoint.get("Mode")
    state["endpointSpec"] = {"mode": mode, "ports": _flatten_ports(source.get("Ports"))}
    # Never read, so they keep the declared value (with schema defaults).
    for kept in ("convergeConfig", "auth"):
        if declared.get(kept) is not None:
            state[kept] = _with_defaults(_SERVICE[kept].block, declared[kept])
    return state


def _flatten_task_spec(task: Mapping[str, Any]) -> dict[str, Any]:
    """T flattenTaskSpec (21-46)."""
    out: dict[str, Any] = {}
    if task.get("ContainerSpec") is not None:
        out["containerSpec"] = _flatten_container_spec(task["ContainerSpec"])
    if task.get("Resources") is not None:
        out["resources"] = _flatten_resources(task["Resources"])
    if task.get("RestartPolicy") is not None:
        out["restartPolicy"] = _flatten_restart_policy(task["RestartPolicy"])
    if task.get("Placement") is not None:
        out["placement"] = _flatten_placement(task["Placement"])
    out["forceUpdate"] = int(task.get("ForceUpdate") or 0)
    if task.get("Runtime"):
        out["runtime"] = task["Runtime"]
    if task.get("Networks"):
        out["networksAdvanceds"] = [_flatten_network(n) for n in task["Networks"]]
    if task.get("LogDriver") is not None:
        log = task["LogDriver"]
        out["logDriver"] = {"name": log.get("Name") or ""}  # T flattenTaskLogDriver (539-552)
        if log.get("Options"):
            out["logDriver"]["options"] = dict(log["Options"])
    return out


def _flatten_container_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """T flattenContainerSpec (114-188): most fields only when non-empty."""
    out: dict[str, Any] = {}
    simple = {
        "Image": "image",
        "Command": "commands",
        "Args": "args",
        "Hostname": "hostname",
        "User": "user",
        "Dir": "dir",
        "Groups": "groups",
        "StopSignal": "stopSignal",
        "Isolation": "isolation",
        "Sysctls": "sysctl",
        "CapabilityAdd": "capAdds",
        "CapabilityDrop": "capDrops",
    }
    for key, name in simple.items():
        if spec.get(key):
            out[name] = spec[key]
    if spec.get("Labels"):
        out["labels"] = _label_set(spec["Labels"])
    if spec.get("Env"):
        out["env"] = _env_map(spec["Env"])
    if spec.get("Privileges") is not None:
        out["privileges"] = _flatten_privileges(spec["Privileges"])
    if spec.get("ReadOnly"):
        out["readOnly"] = True
    if spec.get("Mounts"):
        out["mounts"] = [_flatten_mount(m) for m in spec["Mounts"]]
    if spec.get("StopGracePeriod") is not None:
        out["stopGracePeriod"] = short_dur(int(spec["StopGracePeriod"]))
    check = spec.get("Healthcheck")
    if check is not None:
        # T flattenServiceHealthcheck (278-294); StartInterval is not in the schema.
        out["healthcheck"] = {
            "interval": short_dur(int(check.get("Interval") or 0)),
            "timeout": short_dur(int(check.get("Timeout") or 0)),
            "startPeriod": short_dur(int(check.get("StartPeriod") or 0)),
            "retries": int(check.get("Retries") or 0),
        }
        if check.get("Test"):
            out["healthcheck"]["tests"] = list(check["Test"])
    if spec.get("Hosts"):
        # T flattenServiceHosts (296-311): "IP host" split on spaces.
        out["hosts"] = [{"ip": h.split(" ")[0], "host": h.split(" ")[1]} for h in spec["Hosts"]]
    dns = spec.get("DNSConfig")
    if dns is not None:
        # T flattenServiceDNSConfig (313-331).
        out["dnsConfig"] = {
            name: list(dns[key])
            for key, name in (("Nameservers", "nameservers"), ("Search", "searches"), ("Options", "options"))
            if dns.get(key)
        }
    if spec.get("Secrets"):
        out["secrets"] = [_flatten_file_reference(s, "Secret", "secret") for s in spec["Secrets"]]
    if spec.get("Configs"):
        out["configs"] = [_flatten_file_reference(c, "Config", "config") for c in spec["Configs"]]
    return out


def _env_map(env: Iterable[str]) -> dict[str, str]:
    """T mapStringSliceToMap (1323-1339): split on the first '=' ("URI=/a?b=c" keeps "/a?b=c")."""
    out = {}
    for entry in env:
        if entry:
            key, _, value = entry.partition("=")
            out[key] = value
    return out


def _flatten_privileges(privileges: Mapping[str, Any]) -> dict[str, Any]:
    """T flattenPrivileges (190-219)."""
    out: dict[str, Any] = {}
    credential = privileges.get("CredentialSpec")
    if credential is not None:
        if credential.get("Config"):
            raise NotPorted("privileges.credentialSpec.config has no attribute in the provider's schema")
        out["credentialSpec"] = {"file": credential.get("File") or "", "registry": credential.get("Registry") or ""}
    selinux = privileges.get("SELinuxContext")
    if selinux is not None:
        out["seLinuxContext"] = {
            "disable": bool(selinux.get("Disable")),
            **{k.lower(): selinux.get(k) or "" for k in ("User", "Role", "Type", "Level")},
        }
    return out


def _flatten_mount(mount: Mapping[str, Any]) -> dict[str, Any]:
    """T flattenServiceMounts (221-276)."""
    out: dict[str, Any] = {
        "target": mount.get("Target") or "",
        "source": mount.get("Source") or "",
        "type": mount.get("Type") or "",
        "readOnly": bool(mount.get("ReadOnly")),
    }
    bind = mount.get("BindOptions")
    if bind is not None:
        out["bindOptions"] = {"propagation": bind["Propagation"]} if bind.get("Propagation") else {}
    volume = mount.get("VolumeOptions")
    if volume is not None:
        options: dict[str, Any] = {"noCopy": bool(volume.get("NoCopy")), "labels": _label_set(volume.get("Labels"))}
        driver = volume.get("DriverConfig")
        if driver is not None:
            if driver.get("Name"):
                options["driverName"] = driver["Name"]
            options["driverOptions"] = dict(driver.get("Options") or {})
        out["volumeOptions"] = options
    if mount.get("TmpfsOptions") is not None:
        raise NotPorted("tmpfs mount options: Read stores a Go method value there and the task_spec write fails")
    return out


def _flatten_file_reference(ref: Mapping[str, Any], kind: str, prefix: str) -> dict[str, Any]:
    """T flattenServiceSecrets (333-358) / flattenServiceConfigs (360-385)."""
    out: dict[str, Any] = {f"{prefix}Id": ref.get(f"{kind}ID") or ""}
    if ref.get(f"{kind}Name"):
        out[f"{prefix}Name"] = ref[f"{kind}Name"]
    target = ref.get("File")
    if target is not None:
        out["fileName"] = target.get("Name") or ""
        if target.get("UID"):
            out["fileUid"] = target["UID"]
        if target.get("GID"):
            out["fileGid"] = target["GID"]
        # `int(v.File.Mode)`: a plain number, 0o444 is 292.
        out["fileMode"] = int(target.get("Mode") or 0)
    return out


def _flatten_resources(resources: Mapping[str, Any]) -> dict[str, Any]:
    """T flattenTaskResources (387-397), flattenResourceLimits (399-410), flattenResourceReservations (412-443)."""
    out: dict[str, Any] = {}
    limits = resources.get("Limits")
    if limits is not None:
        # Pids is not mapped.
        out["limits"] = {
            "nanoCpus": int(limits.get("NanoCPUs") or 0),
            "memoryBytes": int(limits.get("MemoryBytes") or 0),
        }
    reservations = resources.get("Reservations")
    if reservations is not None:
        out["reservation"] = {
            "nanoCpus": int(reservations.get("NanoCPUs") or 0),
            "memoryBytes": int(reservations.get("MemoryBytes") or 0),
        }
        generic = reservations.get("GenericResources") or []
        if generic:
            named = [
                f"{g['NamedResourceSpec']['Kind']}={g['NamedResourceSpec']['Value']}"
                for g in generic
                if g.get("NamedResourceSpec")
            ]
            discrete = [
                f"{g['DiscreteResourceSpec']['Kind']}={int(g['DiscreteResourceSpec']['Value'])}"
                for g in generic
                if g.get("DiscreteResourceSpec")
            ]
            out["reservation"]["genericResources"] = {
                "namedResourcesSpecs": named,
                "discreteResourcesSpecs": discrete,
            }
    return out


def _flatten_restart_policy(policy: Mapping[str, Any]) -> dict[str, Any]:
    """T flattenTaskRestartPolicy (445-466): each field only when the engine reports it."""
    out: dict[str, Any] = {}
    if policy.get("Condition"):
        out["condition"] = policy["Condition"]
    if policy.get("Delay") is not None:
        out["delay"] = short_dur(int(policy["Delay"]))
    if policy.get("MaxAttempts") is not None:
        out["maxAttempts"] = int(policy["MaxAttempts"])
    if policy.get("Window") is not None:
        out["window"] = short_dur(int(policy["Window"]))
    return out


def _flatten_placement(placement: Mapping[str, Any]) -> dict[str, Any]:
    """T flattenTaskPlacement (468-486): max_replicas always, 0 when unset."""
    out: dict[str, Any] = {}
    if placement.get("Constraints"):
        out["constraints"] = list(placement["Constraints"])
    if placement.get("Preferences"):
        out["prefs"] = [p["Spread"]["SpreadDescriptor"] for p in placement["Preferences"]]
    if placement.get("Platforms"):
        out["platforms"] = [
            {"architecture": p.get("Architecture") or "", "os": p.get("OS") or ""} for p in placement["Platforms"]
        ]
    out["maxReplicas"] = int(placement.get("MaxReplicas") or 0)
    return out


def _flatten_network(network: Mapping[str, Any]) -> dict[str, Any]:
    """T flattenTaskNetworksAdvanced (514-529): `name` is the Target Swarm stored, a network ID."""
    out: dict[str, Any] = {
        "name": network.get("Target") or "",
        "driverOpts": [f"{k}={v}" for k, v in (network.get("DriverOpts") or {}).items() if k],
    }
    if network.get("Aliases"):
        out["aliases"] = list(network["Aliases"])
    return out


def _flatten_service_mode(mode: Mapping[str, Any]) -> dict[str, Any]:
    """T flattenServiceMode (48-61), flattenReplicated (63-74)."""
    out: dict[str, Any] = {"global": mode.get("Global") is not None}
    replicated = mode.get("Replicated")
    if replicated is not None:
        out["replicated"] = {} if replicated.get("Replicas") is None else {"replicas": int(replicated["Replicas"])}
    return out


def _flatten_update_or_rollback(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """T flattenServiceUpdateOrRollbackConfig (76-91): nothing when Swarm has no config."""
    if config is None:
        return None
    return {
        "parallelism": int(config.get("Parallelism") or 0),
        "delay": short_dur(int(config.get("Delay") or 0)),
        "failureAction": config.get("FailureAction") or "",
        "monitor": short_dur(int(config.get("Monitor") or 0)),
        "maxFailureRatio": failure_ratio_string(float(config.get("MaxFailureRatio") or 0)),
        "order": config.get("Order") or "",
    }


def _flatten_ports(ports: Iterable[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """T flattenServicePorts (556-568): every field, in the engine's order."""
    return [
        {
            "name": p.get("Name") or "",
            "protocol": p.get("Protocol") or "",
            "targetPort": int(p.get("TargetPort") or 0),
            "publishedPort": int(p.get("PublishedPort") or 0),
            "publishMode": p.get("PublishMode") or "",
        }
        for p in ports or []
    ]


def _label_set(labels: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """H mapToLabelSet (48-57)."""
    return [{"label": str(k), "value": str(v)} for k, v in (labels or {}).items()]


def read_secret(inspect: Mapping[str, Any], declared: Mapping[str, Any]) -> dict[str, Any]:
    """resourceDockerSecretRead (resource_docker_secret.go 120-141): only the name; data and labels stay as declared.

    The API does not return a secret's data, so nothing but a rename can drift.
    """
    return {**declared, "name": (inspect.get("Spec") or {}).get("Name") or ""}


def read_service_config(inspect: Mapping[str, Any], declared: Mapping[str, Any]) -> dict[str, Any]:
    """resourceDockerConfigRead (resource_docker_config.go 68-87): name, and data as padded StdEncoding base64.

    The inspect JSON carries Spec.Data as Go marshals a []byte (StdEncoding);
    it is decoded and encoded again so the state is canonical whatever the source.
    """
    spec = inspect.get("Spec") or {}
    data = base64.b64decode(spec.get("Data") or "")
    return {**declared, "name": spec.get("Name") or "", "data": base64.b64encode(data).decode()}


# --- the plan --------------------------------------------------------------------


def diff_service(
    declared: Mapping[str, Any], read_back: Mapping[str, Any], ignore_changes: Iterable[str] = ()
) -> list[Change]:
    """The changes `pulumi up` shows for a docker.Service declared as `declared` whose state is `read_back`.

    SDK v2 plan rules: an unset attribute takes its Default; unset and
    Computed keeps the state (no change); unset and not Computed compares with
    the type's zero value; sets compare as sets, lists by position.
    `ignore_changes` takes Pulumi property paths ("taskSpec.placement.platforms");
    the declared value there is replaced by the state's, as the bridge drops
    the diff under that path.
    """
    return _diff(SERVICE, _SERVICE, declared, read_back, ignore_changes)


def diff_secret(
    declared: Mapping[str, Any], read_back: Mapping[str, Any], ignore_changes: Iterable[str] = ()
) -> list[Change]:
    """As `diff_service`, for a docker.Secret (every change replaces it)."""
    return _diff(SECRET, _SECRET, declared, read_back, ignore_changes)


def diff_service_config(
    declared: Mapping[str, Any], read_back: Mapping[str, Any], ignore_changes: Iterable[str] = ()
) -> list[Change]:
    """As `diff_service`, for a docker.ServiceConfig (every change replaces it)."""
    return _diff(SERVICE_CONFIG, _CONFIG, declared, read_back, ignore_changes)


def _diff(
    token: str,
    schema: Mapping[str, _Attr],
    declared: Mapping[str, Any],
    state: Mapping[str, Any],
    ignore_changes: Iterable[str],
) -> list[Change]:
    _check_known(token, schema, declared, "")
    inputs = _ignoring(token, schema, declared, state, ignore_changes)
    changes: list[Change] = []
    for name, attr in schema.items():
        _diff_attr(name, attr, inputs.get(name), state.get(name), changes)
    return changes


def _check_known(token: str, schema: Mapping[str, _Attr], values: Mapping[str, Any], prefix: str) -> None:
    for key, value in values.items():
        if value is None:
            continue
        attr = schema.get(key)
        if attr is None:
            raise UnknownField(f"{token}: the read-back port does not know the declared field {prefix}{key!r}")
        if attr.kind == _BLOCK:
            _check_known(token, attr.block, value, f"{prefix}{key}.")
        elif attr.kind in (_BLOCK_LIST, _BLOCK_SET):
            for index, element in enumerate(value):
                _check_known(token, attr.block, element, f"{prefix}{key}[{index}].")


def _ignoring(
    token: str,
    schema: Mapping[str, _Attr],
    declared: Mapping[str, Any],
    state: Mapping[str, Any],
    paths: Iterable[str],
) -> dict[str, Any]:
    """`declared` with the state's value at each ignored path (dotted paths through MaxItems-1 blocks)."""
    inputs = _deep_copy(declared)
    for path in paths:
        *parents, leaf = path.split(".")
        attrs: Mapping[str, _Attr] = schema
        for part in parents:
            attr = attrs.get(part)
            if attr is None or attr.kind != _BLOCK:
                raise UnknownField(f"{token}: ignore_changes path {path!r}: {part!r} is not a block this port knows")
            attrs = attr.block
        if leaf not in attrs:
            raise UnknownField(f"{token}: ignore_changes path {path!r}: no attribute {leaf!r}")
        target: Any = inputs
        source: Any = state
        for part in parents:
            target, source = (target or {}).get(part), (source or {}).get(part)
        # Where the program does not declare the enclosing block there is nothing to ignore.
        if isinstance(target, dict):
            target[leaf] = _deep_copy((source or {}).get(leaf))
    return inputs


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_deep_copy(v) for v in value]
    return value


def _diff_attr(path: str, attr: _Attr, declared: Any, state: Any, out: list[Change]) -> None:
    if declared is None and attr.default is not None:
        declared = attr.default
    if declared is None and attr.computed:
        return
    if attr.kind in (_STRING, _INT, _BOOL):
        if _primitive(attr.kind, declared) != _primitive(attr.kind, state):
            out.append(Change(path, declared, state, attr.force_new))
    elif attr.kind == _LIST:
        if _strings(declared) != _strings(state):
            out.append(Change(path, declared, state, attr.force_new))
    elif attr.kind == _SET:
        if set(_strings(declared)) != set(_strings(state)):
            out.append(Change(path, declared, state, attr.force_new))
    elif attr.kind == _MAP:
        if _string_map(declared) != _string_map(state):
            out.append(Change(path, declared, state, attr.force_new))
    elif attr.kind == _BLOCK:
        _diff_block(path, attr, declared, state, out)
    elif attr.kind == _BLOCK_LIST:
        declared_list, state_list = list(declared or []), list(state or [])
        if len(declared_list) != len(state_list):
            out.append(Change(path, declared, state, attr.force_new))
            return
        for index, (new, old) in enumerate(zip(declared_list, state_list, strict=True)):
            for name, sub in attr.block.items():
                _diff_attr(f"{path}[{index}].{name}", sub, new.get(name), old.get(name), out)
    elif attr.kind == _BLOCK_SET:
        _diff_block_set(path, attr, list(declared or []), list(state or []), out)
    else:
        raise AssertionError(f"unknown schema kind {attr.kind}")


def _diff_block(path: str, attr: _Attr, declared: Any, state: Any, out: list[Change]) -> None:
    """A MaxItems-1 block: added or removed as a whole, else field by field."""
    if declared is None and state is None:
        return
    if declared is None or state is None:
        present = declared if declared is not None else state
        replaces = attr.force_new or _has_force_new_value(attr.block, present)
        out.append(Change(path, declared, state, replaces))
        return
    for name, sub in attr.block.items():
        _diff_attr(f"{path}.{name}", sub, declared.get(name), state.get(name), out)


def _diff_block_set(
    path: str, attr: _Attr, declared: list[Mapping[str, Any]], state: list[Mapping[str, Any]], out: list[Change]
) -> None:
    """A set of blocks: elements are equal when every field is (defaults filled in), as HashResource sees them."""
    new = {_element_key(attr.block, e): e for e in declared}
    old = {_element_key(attr.block, e): e for e in state}
    if new.keys() == old.keys():
        return
    differing = [e for k, e in new.items() if k not in old] + [e for k, e in old.items() if k not in new]
    replaces = attr.force_new or any(_has_force_new_value(attr.block, e) for e in differing)
    out.append(Change(path, declared, state, replaces))


def _has_force_new_value(block: Mapping[str, _Attr], element: Mapping[str, Any]) -> bool:
    """Whether adding or removing `element` touches a ForceNew field (a field's own diff then replaces)."""
    for name, sub in block.items():
        value: Any = element.get(name)
        if not value:
            continue
        if sub.force_new:
            return True
        if sub.kind == _BLOCK and _has_force_new_value(sub.block, value):
            return True
        if sub.kind in (_BLOCK_LIST, _BLOCK_SET) and any(_has_force_new_value(sub.block, e) for e in value):
            return True
    return False


def _element_key(block: Mapping[str, _Attr], element: Mapping[str, Any] | None) -> Any:
    key = []
    for name in sorted(block):
        sub = block[name]
        value = (element or {}).get(name)
        if value is None:
            value = sub.default
        key.append((name, _canonical(sub, value)))
    return tuple(key)


def _canonical(attr: _Attr, value: Any) -> Any:
    if attr.kind in (_STRING, _INT, _BOOL):
        return _primitive(attr.kind, value)
    if attr.kind == _LIST:
        return tuple(_strings(value))
    if attr.kind == _SET:
        return tuple(sorted(set(_strings(value))))
    if attr.kind == _MAP:
        return tuple(sorted(_string_map(value).items()))
    if attr.kind == _BLOCK:
        return None if value is None else _element_key(attr.block, value)
    return tuple(sorted({_element_key(attr.block, e) for e in value or []}))


def _primitive(kind: str, value: Any) -> Any:
    """A primitive as the SDK compares it: unset is the type's zero value; Pulumi's numbers may be floats."""
    if kind == _INT:
        return 0 if value is None else int(value)
    if kind == _BOOL:
        return bool(value)
    return _str(value)


def _str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _strings(value: Any) -> list[str]:
    return [_str(v) for v in value or []]


def _string_map(value: Any) -> dict[str, str]:
    return {str(k): _str(v) for k, v in (value or {}).items()}


def _with_defaults(block: Mapping[str, _Attr], values: Mapping[str, Any]) -> dict[str, Any]:
    filled = {k: v for k, v in values.items() if v is not None}
    for name, attr in block.items():
        if filled.get(name) is None and attr.default is not None:
            filled[name] = attr.default
    return filled


# --- what Swarm stores for a service the provider created --------------------------

# Swarm allocates ingress ports from here (swarmkit's dynamic port range).
_FIRST_DYNAMIC_PORT = 30000


def stored_service(
    declared: Mapping[str, Any],
    *,
    service_id: str = "service-id",
    registry_digest: str | None = None,
    platforms: Iterable[tuple[str, str]] = (),
) -> dict[str, Any]:
    """The inspect JSON of a service created by resourceDockerServiceCreate from `declared` (Pulumi inputs).

    Three steps, each as upstream does it:
    - T createServiceSpec (577-621) with the SDK's view of the inputs: every
      field of a declared block is present, defaults filled in, omitted
      strings "" (so an omitted duration parses to 0); the health check,
      DNS config, resources, restart policy, placement and endpoint spec are
      always sent, possibly empty.
    - The Docker client's ServiceCreate (QueryRegistry is set, F 45): the image
      gets `:latest` when it has neither tag nor digest and is written in its
      familiar form; with `registry_digest` (the registry answered) a
      reference without digest is pinned to it and `platforms` become the
      placement's platforms.
    - The daemon's conversion to and from swarmkit: an empty restart
      condition is "any", max_attempts always reported, isolation "default",
      runtime "container", endpoint mode "" is "vip", an undeclared mode is
      one replica; the runtime Endpoint repeats the spec's ports, with
      ingress ports that have no published port allocated from 30000.
    """
    v = _sdk_view(_SERVICE, declared)
    task = v["taskSpec"]
    container = _container_spec_json(task["containerSpec"], registry_digest)
    placement = _placement_json(task.get("placement"))
    if registry_digest is not None:
        placement["Platforms"] = [{"Architecture": arch, "OS": os} for arch, os in platforms] or None
    template: dict[str, Any] = {
        "ContainerSpec": container,
        "Resources": _resources_json(task.get("resources")),
        "RestartPolicy": _restart_policy_json(task.get("restartPolicy")),
        "Placement": _drop_none(placement),
        "ForceUpdate": int(task.get("forceUpdate") or 0),
        "Runtime": task.get("runtime") or "container",
    }
    networks = [
        _drop_none(
            {
                "Target": n["name"],
                "Aliases": list(n.get("aliases") or []) or None,
                "DriverOpts": dict(o.split("=", 1) for o in n.get("driverOpts") or [] if "=" in o) or None,
            }
        )
        for n in task.get("networksAdvanceds") or []
    ]
    if networks:
        template["Networks"] = networks
    log = task.get("logDriver")
    if log is not None:
        template["LogDriver"] = _drop_none({"Name": log["name"], "Options": dict(log.get("options") or {}) or None})

    spec: dict[str, Any] = {
        "Name": v.get("name") or "",
        "Labels": {item["label"]: item["value"] for item in v.get("labels") or []},
        "TaskTemplate": template,
        "Mode": _mode_json(v.get("mode")),
        "EndpointSpec": _endpoint_spec_json(v.get("endpointSpec")),
    }
    for key, name in (("updateConfig", "UpdateConfig"), ("rollbackConfig", "RollbackConfig")):
        if v.get(key) is not None:
            spec[name] = _update_config_json(v[key])
    endpoint_ports = []
    next_port = _FIRST_DYNAMIC_PORT
    for port in spec["EndpointSpec"].get("Ports") or []:
        port = dict(port)
        if port["PublishMode"] == "ingress" and not port["PublishedPort"]:
            port["PublishedPort"], next_port = next_port, next_port + 1
        endpoint_ports.append(port)
    endpoint: dict[str, Any] = {"Spec": dict(spec["EndpointSpec"])}
    if endpoint_ports:
        endpoint["Ports"] = endpoint_ports
    return {"ID": service_id, "Version": {"Index": 1}, "Spec": spec, "Endpoint": endpoint}


def _sdk_view(block: Mapping[str, _Attr], values: Mapping[str, Any] | None) -> dict[str, Any]:
    """A declared block as d.Get returns it: defaults filled, nested blocks and elements likewise."""
    out: dict[str, Any] = {}
    for name, attr in block.items():
        value = (values or {}).get(name)
        if value is None:
            value = attr.default
        if value is not None and attr.kind == _BLOCK:
            value = _sdk_view(attr.block, value)
        elif value is not None and attr.kind in (_BLOCK_LIST, _BLOCK_SET):
            value = [_sdk_view(attr.block, e) for e in value]
        out[name] = value
    return out


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    """Go's `omitempty`: the engine leaves out nil and empty fields."""
    return {k: v for k, v in values.items() if v is not None}


def _container_spec_json(cs: Mapping[str, Any], registry_digest: str | None) -> dict[str, Any]:
    """T createContainerSpec (655-976), then the client's image handling."""
    image = familiar_with_default_tag(cs["image"] or "")
    if registry_digest is not None and "@" not in image:
        image = f"{image}@{registry_digest}"
    check = cs.get("healthcheck") or {}
    dns = cs.get("dnsConfig") or {}
    if cs.get("privileges") is not None:
        raise NotPorted("stored_service does not build privileges")
    mounts = []
    for m in cs.get("mounts") or []:
        mount: dict[str, Any] = {
            "Type": m["type"],
            "Source": m.get("source") or "",
            "Target": m["target"],
            "ReadOnly": bool(m.get("readOnly")),
        }
        if m.get("bindOptions") is not None:
            mount["BindOptions"] = _drop_none({"Propagation": m["bindOptions"].get("propagation") or None})
        options = m.get("volumeOptions")
        if options is not None:
            volume: dict[str, Any] = {"NoCopy": bool(options.get("noCopy"))}
            if options.get("labels"):
                volume["Labels"] = {x["label"]: x["value"] for x in options["labels"]}
            if options.get("driverName") or options.get("driverOptions"):
                volume["DriverConfig"] = _drop_none(
                    {
                        "Name": options.get("driverName") or "",
                        "Options": dict(options.get("driverOptions") or {}) or None,
                    }
                )
            mount["VolumeOptions"] = volume
        mounts.append(mount)
    out = {
        "Image": image,
        "Labels": {x["label"]: x["value"] for x in cs.get("labels") or []} or None,
        "Command": list(cs.get("commands") or []) or None,
        "Args": list(cs.get("args") or []) or None,
        "Hostname": cs.get("hostname") or None,
        # mapTypeMapValsToStringSlice: "K=V" per entry.
        "Env": [f"{k}={v}" for k, v in (cs.get("env") or {}).items() if k] or None,
        "Dir": cs.get("dir") or None,
        "User": cs.get("user") or None,
        "Groups": list(cs.get("groups") or []) or None,
        "ReadOnly": bool(cs.get("readOnly")) or None,
        "Mounts": mounts or None,
        "StopSignal": cs.get("stopSignal") or None,
        # Always sent: "" parses to 0 (T 858-861).
        "StopGracePeriod": parse_go_duration(cs.get("stopGracePeriod") or ""),
        # Always sent, empty when undeclared (T 862-863).
        "Healthcheck": _drop_none(
            {
                "Test": list(check.get("tests") or []) or None,
                "Interval": parse_go_duration(check.get("interval") or "") or None,
                "Timeout": parse_go_duration(check.get("timeout") or "") or None,
                "StartPeriod": parse_go_duration(check.get("startPeriod") or "") or None,
                "Retries": int(check.get("retries") or 0) or None,
            }
        ),
        "Hosts": [f"{h['ip']} {h['host']}" for h in cs.get("hosts") or []] or None,
        # Always sent (T 888-906).
        "DNSConfig": _drop_none(
            {
                "Nameservers": list(dns.get("nameservers") or []) or None,
                "Search": list(dns.get("searches") or []) or None,
                "Options": list(dns.get("options") or []) or None,
            }
        ),
        "Secrets": [_file_reference_json(s, "Secret", "secret") for s in cs.get("secrets") or []] or None,
        "Configs": [_file_reference_json(c, "Config", "config") for c in cs.get("configs") or []] or None,
        # The daemon reports the enum's zero value as "default" too.
        "Isolation": cs.get("isolation") or "default",
        "Sysctls": dict(cs.get("sysctl") or {}) or None,
        "CapabilityAdd": list(cs.get("capAdds") or []) or None,
        "CapabilityDrop": list(cs.get("capDrops") or []) or None,
    }
    return _drop_none(out)


def _file_reference_json(ref: Mapping[str, Any], kind: str, prefix: str) -> dict[str, Any]:
    """T createContainerSpec secrets/configs (907-950): UID, GID and mode always, from the schema defaults."""
    return _drop_none(
        {
            "File": {
                "Name": ref.get("fileName") or "",
                "UID": _str(ref.get("fileUid")),
                "GID": _str(ref.get("fileGid")),
                "Mode": int(ref.get("fileMode") or 0),
            },
            f"{kind}ID": ref.get(f"{prefix}Id") or "",
            f"{kind}Name": ref.get(f"{prefix}Name") or None,
        }
    )


def _resources_json(resources: Mapping[str, Any] | None) -> dict[str, Any]:
    """T createResources (977-1016): always a (possibly empty) requirement."""
    out: dict[str, Any] = {}
    limits = (resources or {}).get("limits")
    if limits is not None:
        out["Limits"] = _drop_none(
            {
                "NanoCPUs": int(limits.get("nanoCpus") or 0) or None,
                "MemoryBytes": int(limits.get("memoryBytes") or 0) or None,
            }
        )
    reservation = (resources or {}).get("reservation")
    if reservation is not None:
        if reservation.get("genericResources") is not None:
            raise NotPorted("stored_service does not build generic resources")
        out["Reservations"] = _drop_none(
            {
                "NanoCPUs": int(reservation.get("nanoCpus") or 0) or None,
                "MemoryBytes": int(reservation.get("memoryBytes") or 0) or None,
            }
        )
    return out


def _restart_policy_json(policy: Mapping[str, Any] | None) -> dict[str, Any]:
    """T createRestartPolicy (1056-1081) through the daemon: "" is "any"; a declared block sends every field."""
    if policy is None:
        return {"Condition": "any", "MaxAttempts": 0}
    return {
        "Condition": policy.get("condition") or "any",
        "Delay": parse_go_duration(policy.get("delay") or ""),
        "MaxAttempts": int(policy.get("maxAttempts") or 0),
        "Window": parse_go_duration(policy.get("window") or ""),
    }


def _placement_json(placement: Mapping[str, Any] | None) -> dict[str, Any]:
    """T createPlacement (1084-1107): always sent."""
    placement = placement or {}
    return {
        "Constraints": list(placement.get("constraints") or []) or None,
        "Preferences": [{"Spread": {"SpreadDescriptor": p}} for p in placement.get("prefs") or []] or None,
        "MaxReplicas": int(placement.get("maxReplicas") or 0) or None,
        "Platforms": [{"Architecture": p["architecture"], "OS": p["os"]} for p in placement.get("platforms") or []]
        or None,
    }


def _mode_json(mode: Mapping[str, Any] | None) -> dict[str, Any]:
    """T createServiceMode (1152-1185); the daemon makes an empty mode one replica."""
    if mode is not None and mode.get("global"):
        return {"Global": {}}
    replicas = ((mode or {}).get("replicated") or {}).get("replicas")
    return {"Replicated": {"Replicas": 1 if replicas is None else int(replicas)}}


def _update_config_json(config: Mapping[str, Any]) -> dict[str, Any]:
    """T createUpdateOrRollbackConfig (1262-1289): durations parsed, the ratio narrowed to float32."""
    (ratio,) = struct.unpack("f", struct.pack("f", float(config.get("maxFailureRatio") or 0)))
    return _drop_none(
        {
            "Parallelism": int(config.get("parallelism") or 0),
            "Delay": parse_go_duration(config.get("delay") or "") or None,
            "FailureAction": config.get("failureAction") or None,
            "Monitor": parse_go_duration(config.get("monitor") or "") or None,
            "MaxFailureRatio": ratio or None,
            "Order": config.get("order") or None,
        }
    )


def _endpoint_spec_json(endpoint: Mapping[str, Any] | None) -> dict[str, Any]:
    """T createServiceEndpointSpec (1205-1224), portSetToServicePorts (1227-1258); "" is "vip"."""
    endpoint = endpoint or {}
    ports = [
        _drop_none(
            {
                "Name": p.get("name") or None,
                "Protocol": p.get("protocol") or "tcp",
                "TargetPort": int(p.get("targetPort") or 0),
                "PublishedPort": int(p.get("publishedPort") or 0),
                "PublishMode": p.get("publishMode") or "ingress",
            }
        )
        for p in endpoint.get("ports") or []
    ]
    return _drop_none({"Mode": endpoint.get("mode") or "vip", "Ports": ports or None})


def familiar_with_default_tag(image: str) -> str:
    """The Docker client's imageWithTagString: `FamiliarString(TagNameOnly(ParseNormalizedNamed(image)))`.

    "nginx" → "nginx:latest", "docker.io/library/redis:7" → "redis:7",
    "index.docker.io/me/app@sha256:…" → "me/app@sha256:…"; other registries
    are kept as written.
    """
    name, _, digest = image.partition("@")
    slash, colon = name.rfind("/"), name.rfind(":")
    repo, tag = (name[:colon], name[colon + 1 :]) if colon > slash else (name, "")
    first, sep, rest = repo.partition("/")
    # distribution/reference splitDockerDomain.
    if sep and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        domain, path = first, rest
    else:
        domain, path = "docker.io", repo
    if domain == "index.docker.io":
        domain = "docker.io"
    if domain == "docker.io":
        if "/" not in path:
            path = f"library/{path}"
        familiar = path.removeprefix("library/") if path.count("/") == 1 and path.startswith("library/") else path
    else:
        familiar = f"{domain}/{path}"
    if not tag and not digest:
        tag = "latest"
    return familiar + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
