"""What the Docker provider stores after reading a resource back, and what Pulumi then shows as a change.

pulumi-docker 4.11.x bridges kreuzwerker/terraform-provider-docker v3.9.0. After
every create, and on each refresh, the provider's Read inspects the object in
the engine and overwrites its state with what it found; `pulumi up` then diffs
the program's inputs against that state with the Terraform plugin SDK v2 rules.
A value the engine (or the provider's own formatting) reports differently from
the declaration is a change on every `up`; for a ForceNew attribute it is a
replacement. This module ports that round trip for the three types the program
declares, so tests can predict it from inspect JSON instead of finding it in
production:

- `read_container`, `read_network`, `read_volume`: Engine API inspect JSON (as
  the Docker SDK's `client.api.inspect_*` returns it) plus the declared inputs
  (camelCase, as tests/support/program.py records them) → the provider's state
  after Read, same shape. What Read does not set keeps the declared value (or
  the schema default), as it does in the provider after Create.
- `declared_state`: the state Create leaves before Read (declared + defaults).
- `diff`: SDK v2 plan semantics for declared vs state → `Change`s.
- `replaces` / `FORCE_NEW`: which attributes force a replacement.
- `go_duration_string`, `nano_cpus_string`: the two Go formatters Read uses.

Upstream files are cited relative to internal/provider/ of
kreuzwerker/terraform-provider-docker v3.9.0; line numbers are of that tag.

Facts this port rests on. Files: C = resource_docker_container.go (schema in
resourceDockerContainer), CF = resource_docker_container_funcs.go, H =
helpers.go, N = resource_docker_network.go (schema in resourceDockerNetwork),
NF = resource_docker_network_funcs.go, NS = resource_docker_network_structures.go
(flattenIpamConfigSpec).
Functions: Read = resourceDockerContainerRead, Update =
resourceDockerContainerUpdate, NRead = resourceDockerNetworkReadRefreshFunc.

| point | at v3.9.0 | upstream: file function lines |
|---|---|---|
| (1) `cpus` read back; ForceNew | yes | C 975-980; CF Read 839-841; H nanoInt64ToDecimalString 154-170 |
| (3) `memory_swap` not Computed, always set by Read | yes | C 695-700; CF Read 833-837 |
| (4) health check as Duration.String(); no ForceNew; Update ignores it | yes | CF Read 851-862; C 862-913; CF 931-981 |
| (5) network IPAM gateway read back; all network fields ForceNew | yes | NF NRead 197; NS 22-24; N 13-152 |
| (6) `log_opts` ForceNew, read from HostConfig.LogConfig.Config | yes | C 733-738; CF Read 845 |
| (11) Read with `must_run=true` deletes a stopped container | yes | CF Read 725-732 (and 707-717); C 110-115 |

(1) `cpus` is TypeString Optional ForceNew, not Computed. Create parses it with
docker/cli opts.ParseCPUs (CF 335-341); Read stores nanoInt64ToDecimalString
of HostConfig.NanoCPUs, only when it is > 0. (3) `memory_swap` is Optional with
validateIntegerGeqThan(-1), neither Computed nor ForceNew; Read stores MiB when
> 0, else the raw 0 or -1. (4) `healthcheck` is a TypeList, MaxItems 1,
Optional + Computed, with no ForceNew on the block or its fields, durations
defaulting to "0s"; Read stores each duration as Go's Duration.String();
Update (its attribute list at CF 932-934) acts only on restart, max_retry_count,
cpu_shares, memory, memory_reservation, cpu_set and memory_swap. (5)
`ipam_config` is a TypeSet, Optional + Computed + ForceNew, `gateway` ForceNew
(N 107-145, 130-135); Read stores whatever gateway the engine reports; the
network resource has no UpdateContext (N 17-19), so every user field is
ForceNew. (6) `log_opts` is a TypeMap, Optional + ForceNew, not Computed; Read
stores the engine's merged options. (11) When the container is not running and
`must_run` (Default true) holds, Read calls resourceDockerContainerDelete and
fails with "container failed to be in running state"; a container this run did
not create fails the refresh function (CF 881-929) with
errContainerFailedToBeCreated, which also ends in the delete (CF 709-711).

Diff scope. Every attribute of the three schemas is described (`_CONTAINER`,
`_NETWORK`, `_VOLUME`), so any field the program sets is diffed; a declared
field outside them raises `UnknownField`. Sets are compared as sets (element
identity is the SDK's hash of the element's user-settable fields, with
defaults filled in), lists by position. One simplification: the SDK marks a
change inside a set element as a replacement only when that nested attribute
is ForceNew itself; here any ForceNew ancestor also counts (the conservative
reading). The attributes our program uses are ForceNew at every
level where this matters (networks' `ipam_config`, containers' `ports`,
`upload`, `networks_advanced`, `volumes`), so the two agree for it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"

_MIB = 1024 * 1024


class UnknownField(KeyError):
    """A declared field or a queried path that the provider's schema does not have."""


class RemovedByRead(RuntimeError):
    """Read finds the container stopped while `must_run` is true: it deletes it and fails."""


class ReadPending(RuntimeError):
    """Read would keep polling until its timeout and then fail."""


@dataclass(frozen=True)
class Change:
    """One attribute the plan shows as changed: declared (None when unset) vs the state after Read."""

    path: str
    declared: Any
    state: Any
    replaces: bool


# --- the two Go formatters -----------------------------------------------------

_NANOSECOND = 1
_MICROSECOND = 1000 * _NANOSECOND
_MILLISECOND = 1000 * _MICROSECOND
_SECOND = 1000 * _MILLISECOND
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def go_duration_string(ns: int) -> str:
    """Go's `time.Duration(ns).String()`: "0s", "1.1µs", "2m0s", "5h6m7.001s".

    Port of Duration.String / Duration.format / fmtFrac / fmtInt in the Go
    standard library's time/time.go. The provider stores health check
    durations this way (resourceDockerContainerRead).
    """
    if not _INT64_MIN <= ns <= _INT64_MAX:
        raise ValueError(f"{ns} ns is outside Go's Duration (int64) range")
    neg = ns < 0
    # Go negates as uint64, so the most negative value keeps its magnitude.
    u = -ns if neg else ns
    if u < _SECOND:
        # Below a second Go switches to a smaller unit so the leading digit is non-zero.
        if u == 0:
            return "0s"
        if u < _MICROSECOND:
            prec, unit = 0, "ns"
        elif u < _MILLISECOND:
            prec, unit = 3, "µs"
        else:
            prec, unit = 6, "ms"
        frac, u = _fmt_frac(u, prec)
        text = f"{u}{frac}{unit}"
    else:
        frac, u = _fmt_frac(u, 9)
        text = f"{u % 60}{frac}s"
        u //= 60
        if u > 0:
            text = f"{u % 60}m{text}"
            u //= 60
            # Go stops at hours: days differ in length.
            if u > 0:
                text = f"{u}h{text}"
    return f"-{text}" if neg else text


def _fmt_frac(v: int, prec: int) -> tuple[str, int]:
    """Go's time.fmtFrac: the fraction of v/10**prec without trailing zeros (no '.' when it is 0)."""
    digits: list[str] = []
    printing = False
    for _ in range(prec):
        digit = v % 10
        printing = printing or digit != 0
        if printing:
            digits.append(str(digit))
        v //= 10
    frac = "." + "".join(reversed(digits)) if printing else ""
    return frac, v


def nano_cpus_string(nano: int) -> str:
    """`nanoInt64ToDecimalString(NanoCPUs)`: 1e9 → "1.0", 1.5e9 → "1.5", 1e10 → "10.", 5e7 → "0.1".

    Port of helpers.go: nanoInt64ToDecimalString (lines 154-170). It formats
    nine decimals with big.Rat.FloatString; when that text holds exactly nine
    '0' characters (counted over the whole string, integer part included) it
    re-formats with one decimal, rounding half away from zero; otherwise it
    trims trailing zeros. Hence the quirks: 10 cpus → "10." (ten zeros, so
    trimmed to the dot), 0.05 → "0.1" and 0.01 → "0.0" (nine zeros, so one
    rounded decimal).
    """
    if nano == 0:
        return "0"
    value = Fraction(nano, 10**9)
    text = _rat_float_string(value, 9)
    if text.count("0") == 9:
        return _rat_float_string(value, 1)
    return text.rstrip("0")


def _rat_float_string(x: Fraction, prec: int) -> str:
    """Go's math/big Rat.FloatString (ratconv.go): `prec` decimals, the last rounded half away from zero."""
    if x.denominator == 1:
        whole = str(x.numerator)
        return f"{whole}.{'0' * prec}" if prec > 0 else whole
    b = x.denominator
    q, r = divmod(abs(x.numerator), b)
    p = 10**prec if prec > 0 else 1
    r, r2 = divmod(r * p, b)
    if b <= r2 + r2:
        r += 1
        if r >= p:
            q += 1
            r -= p
    text = ("-" if x.numerator < 0 else "") + str(q)
    if prec > 0:
        text += "." + str(r).rjust(prec, "0")
    return text


def parse_cpus(value: str) -> int:
    """docker/cli `opts.ParseCPUs`, which Create uses for `cpus`: a rational number × 1e9, exact."""
    try:
        cpu = Fraction(value)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"failed to parse {value} as a rational number") from None
    nano = cpu * 10**9
    if nano.denominator != 1:
        raise ValueError("value is too precise")
    return nano.numerator


# --- the schemas -------------------------------------------------------------

_STRING, _INT, _BOOL = "string", "int", "bool"
_LIST, _SET, _MAP = "list", "set", "map"  # of strings
_BLOCK_LIST, _BLOCK_SET = "block_list", "block_set"
# MaxItems 1 blocks, which Pulumi flattens into a single object (healthcheck, capabilities).
_BLOCK = "block"


Suppress = Callable[[Any, Any], bool]


@dataclass(frozen=True)
class _Attr:
    """One schema attribute, in the terms of helper/schema.Schema that matter for a plan."""

    kind: str
    optional: bool = True
    computed: bool = False
    force_new: bool = False
    default: Any = None
    block: Mapping[str, _Attr] = field(default_factory=dict)
    # DiffSuppressFunc as (state, declared) -> hide the change.
    suppress: Suppress | None = None

    @property
    def computed_only(self) -> bool:
        return self.computed and not self.optional


def _empty_means_unchanged(state: Any, declared: Any) -> bool:
    # resource_docker_container.go `user` (175-181) and `working_dir` (236-242):
    # a new value of "" is Docker's default and is treated as the old value.
    new = declared if declared not in (None, "") else state
    return _str(state) == _str(new)


def _suppress_ports(state: Any, declared: Any) -> bool:
    """resource_docker_container.go: suppressIfPortsDidNotChangeForMigrationV0ToV1 (1009-1064).

    Registered on `ports` and so asked about every key under it: the whole
    list is unchanged when each old port has a new one with the same internal
    port, protocol, external port and ip, whatever the order.
    """
    old = [_port_with_defaults(p) for p in state or []]
    new = [_port_with_defaults(p) for p in declared or []]
    if len(old) != len(new):
        return False
    for port_old in old:
        found = False
        for port_new in new:
            if port_new["internal"] != port_old["internal"]:
                continue
            if port_new["protocol"] != port_old["protocol"]:
                if any(p["internal"] == port_old["internal"] and p["protocol"] == port_old["protocol"] for p in new):
                    continue
                return False
            if port_new["external"] != port_old["external"] or port_new["ip"] != port_old["ip"]:
                return False
            found = True
            break
        if not found:
            return False
    return True


def _port_with_defaults(port: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "internal": _int(port.get("internal")),
        "external": _int(port.get("external")),
        "ip": port.get("ip") or "0.0.0.0",
        "protocol": port.get("protocol") or "tcp",
    }


def _fn(kind: str, **kwargs: Any) -> _Attr:
    return _Attr(kind, force_new=True, **kwargs)


# helpers.go: newLabelSchema(true) (labelSchema): both fields Required and ForceNew.
_LABEL = {"label": _fn(_STRING, optional=False), "value": _fn(_STRING, optional=False)}

# resource_docker_container.go: resourceDockerContainer (37-1005), Pulumi names.
_CONTAINER: dict[str, _Attr] = {
    "name": _fn(_STRING, optional=False),
    "rm": _Attr(_BOOL, default=False),
    "readOnly": _fn(_BOOL, default=False),
    "start": _Attr(_BOOL, default=True),
    "wait": _Attr(_BOOL, default=False),
    "waitTimeout": _Attr(_INT, default=60),
    "attach": _Attr(_BOOL, default=False),
    "logs": _Attr(_BOOL, default=False),
    "mustRun": _Attr(_BOOL, default=True),
    "exitCode": _Attr(_INT, optional=False, computed=True),
    "containerLogs": _Attr(_STRING, optional=False, computed=True),
    "image": _fn(_STRING, optional=False),
    "hostname": _fn(_STRING, computed=True),
    "domainname": _fn(_STRING),
    "command": _fn(_LIST, computed=True),
    "entrypoints": _fn(_LIST, computed=True),
    "user": _fn(_STRING, suppress=_empty_means_unchanged),
    "dns": _fn(_SET),
    "dnsOpts": _fn(_SET),
    "dnsSearches": _fn(_SET),
    "publishAllPorts": _fn(_BOOL),
    "restart": _Attr(_STRING, default="no"),
    "maxRetryCount": _Attr(_INT),
    "workingDir": _fn(_STRING, suppress=_empty_means_unchanged),
    "removeVolumes": _Attr(_BOOL, default=True),
    "capabilities": _fn(_BLOCK, block={"adds": _fn(_SET), "drops": _fn(_SET)}),
    "securityOpts": _fn(_SET, computed=True),
    "runtime": _fn(_STRING, computed=True),
    "stopSignal": _fn(_STRING, computed=True),
    "stopTimeout": _fn(_INT, computed=True),
    "mounts": _fn(
        _BLOCK_SET,
        block={
            "target": _Attr(_STRING, optional=False),
            "source": _Attr(_STRING),
            "type": _Attr(_STRING, optional=False),
            "readOnly": _Attr(_BOOL),
            "bindOptions": _Attr(_BLOCK, block={"propagation": _Attr(_STRING)}),
            "volumeOptions": _Attr(
                _BLOCK,
                block={
                    "noCopy": _Attr(_BOOL),
                    "labels": _Attr(_BLOCK_SET, block=_LABEL),
                    "driverName": _Attr(_STRING),
                    "driverOptions": _Attr(_MAP),
                    "subpath": _fn(_STRING),
                },
            ),
            "tmpfsOptions": _fn(_BLOCK, block={"sizeBytes": _Attr(_INT), "mode": _Attr(_INT)}),
        },
    ),
    "volumes": _fn(
        _BLOCK_SET,
        block={
            "fromContainer": _fn(_STRING),
            "containerPath": _fn(_STRING),
            "hostPath": _fn(_STRING),
            "volumeName": _fn(_STRING),
            "readOnly": _fn(_BOOL),
        },
    ),
    "tmpfs": _Attr(_MAP),
    "ports": _fn(
        _BLOCK_LIST,
        suppress=_suppress_ports,
        block={
            "internal": _fn(_INT, optional=False),
            "external": _fn(_INT, computed=True),
            "ip": _fn(_STRING, default="0.0.0.0"),
            "protocol": _fn(_STRING, default="tcp"),
        },
    ),
    "hosts": _fn(_BLOCK_SET, block={"ip": _fn(_STRING, optional=False), "host": _fn(_STRING, optional=False)}),
    "ulimits": _fn(
        _BLOCK_SET,
        block={
            "name": _fn(_STRING, optional=False),
            "soft": _fn(_INT, optional=False),
            "hard": _fn(_INT, optional=False),
        },
    ),
    "envs": _fn(_SET, computed=True),
    "bridge": _Attr(_STRING, optional=False, computed=True),
    "networkDatas": _Attr(_BLOCK_LIST, optional=False, computed=True),
    "privileged": _fn(_BOOL),
    "devices": _fn(
        _BLOCK_SET,
        block={
            "hostPath": _fn(_STRING, optional=False),
            "containerPath": _fn(_STRING),
            "permissions": _fn(_STRING),
        },
    ),
    "destroyGraceSeconds": _Attr(_INT),
    "labels": _fn(_BLOCK_SET, computed=True, block=_LABEL),
    "memory": _Attr(_INT),
    "memoryReservation": _Attr(_INT, default=0),
    "memorySwap": _Attr(_INT),
    "shmSize": _fn(_INT, computed=True),
    "cpuShares": _Attr(_INT),
    "cpuSet": _Attr(_STRING),
    "logDriver": _fn(_STRING, computed=True),
    "logOpts": _fn(_MAP),
    "networkMode": _fn(_STRING, default="bridge"),
    "networksAdvanced": _fn(
        _BLOCK_SET,
        block={
            "name": _fn(_STRING, optional=False),
            "aliases": _fn(_SET),
            "ipv4Address": _fn(_STRING),
            "ipv6Address": _fn(_STRING),
            "macAddress": _fn(_STRING),
        },
    ),
    "pidMode": _fn(_STRING),
    "usernsMode": _fn(_STRING),
    "uploads": _fn(
        _BLOCK_SET,
        block={
            "content": _fn(_STRING),
            "contentBase64": _fn(_STRING),
            "file": _fn(_STRING, optional=False),
            "executable": _fn(_BOOL, default=False),
            "permissions": _fn(_STRING),
            "source": _fn(_STRING),
            "sourceHash": _fn(_STRING),
        },
    ),
    "healthcheck": _Attr(
        _BLOCK,
        computed=True,
        block={
            "tests": _Attr(_LIST, optional=False),
            "interval": _Attr(_STRING, default="0s"),
            "timeout": _Attr(_STRING, default="0s"),
            "startPeriod": _Attr(_STRING, default="0s"),
            "startInterval": _Attr(_STRING, default="0s"),
            "retries": _Attr(_INT, default=0),
        },
    ),
    # containerReadRefreshTimeoutMillisecondsDefault (resource_docker_container_funcs.go, 32).
    "containerReadRefreshTimeoutMilliseconds": _Attr(_INT, default=15000),
    "sysctls": _fn(_MAP),
    "ipcMode": _fn(_STRING, computed=True),
    "groupAdds": _fn(_SET),
    "init": _Attr(_BOOL, computed=True),
    "tty": _fn(_BOOL, default=False),
    "stdinOpen": _fn(_BOOL, default=False),
    "storageOpts": _fn(_MAP),
    "gpus": _fn(_STRING),
    "cpus": _fn(_STRING),
    "cpuPeriod": _Attr(_INT),
    "cpuQuota": _Attr(_INT),
    "cgroupnsMode": _fn(_STRING),
    "cgroupParent": _fn(_STRING),
}

# resource_docker_network.go: resourceDockerNetwork (24-152). No UpdateContext:
# every user field is ForceNew.
_NETWORK: dict[str, _Attr] = {
    "name": _fn(_STRING, optional=False),
    "labels": _fn(_BLOCK_SET, block=_LABEL),
    "checkDuplicate": _fn(_BOOL),
    "driver": _fn(_STRING, computed=True),
    "options": _fn(_MAP, computed=True),
    "internal": _fn(_BOOL, computed=True),
    "attachable": _fn(_BOOL),
    "ingress": _fn(_BOOL),
    "ipv6": _fn(_BOOL),
    "ipamDriver": _fn(_STRING, default="default"),
    "ipamOptions": _fn(_MAP),
    "ipamConfigs": _fn(
        _BLOCK_SET,
        computed=True,
        block={
            "subnet": _fn(_STRING),
            "ipRange": _fn(_STRING),
            "gateway": _fn(_STRING),
            "auxAddress": _fn(_MAP),
        },
    ),
    "scope": _Attr(_STRING, optional=False, computed=True),
}

# resource_docker_volume.go: resourceDockerVolume (40-152).
_VOLUME: dict[str, _Attr] = {
    "name": _fn(_STRING, computed=True),
    "labels": _fn(_BLOCK_SET, block=_LABEL),
    "driver": _fn(_STRING, computed=True),
    "driverOpts": _fn(_MAP),
    "mountpoint": _Attr(_STRING, optional=False, computed=True),
    "cluster": _Attr(
        _BLOCK,
        block={
            "id": _Attr(_STRING, optional=False, computed=True),
            "scope": _fn(_STRING, default="single"),
            "sharing": _fn(_STRING, default="none"),
            "type": _fn(_STRING, default="block"),
            "topologyPreferred": _fn(_STRING, default=""),
            "topologyRequired": _fn(_STRING, default=""),
            "requiredBytes": _fn(_STRING),
            "limitBytes": _fn(_STRING),
            "group": _fn(_STRING, default=""),
            "availability": _Attr(_STRING, default="active"),
        },
    ),
}

_SCHEMAS: dict[str, dict[str, _Attr]] = {CONTAINER: _CONTAINER, NETWORK: _NETWORK, VOLUME: _VOLUME}


def _force_new_paths(schema: Mapping[str, _Attr], prefix: str = "") -> set[str]:
    paths: set[str] = set()
    for name, attr in schema.items():
        if attr.force_new:
            paths.add(prefix + name)
        paths |= _force_new_paths(attr.block, f"{prefix}{name}.")
    return paths


# The attributes (dotted camelCase paths, nested ones under their block) that
# are ForceNew themselves. `replaces` also counts a ForceNew ancestor.
FORCE_NEW: dict[str, frozenset[str]] = {token: frozenset(_force_new_paths(s)) for token, s in _SCHEMAS.items()}

_INDEX = re.compile(r"\[[^\]]*\]")


def replaces(type_token: str, path: str) -> bool:
    """Whether a change at `path` ("cpus", "healthcheck.interval", "ipamConfigs[].gateway") replaces the resource."""
    schema: Mapping[str, _Attr] = _schema(type_token)
    force_new = False
    for part in _INDEX.sub("", path).split("."):
        attr = schema.get(part)
        if attr is None:
            raise UnknownField(f"{type_token} has no attribute {path!r}")
        force_new = force_new or attr.force_new
        schema = attr.block
    return force_new


def _schema(type_token: str) -> dict[str, _Attr]:
    try:
        return _SCHEMAS[type_token]
    except KeyError:
        raise UnknownField(f"no read-back port for {type_token}; known: {sorted(_SCHEMAS)}") from None


# --- Read ----------------------------------------------------------------------


def declared_state(type_token: str, declared: Mapping[str, Any]) -> dict[str, Any]:
    """The state before Read: the declared inputs with schema defaults filled in, as Create stores them."""
    return _with_defaults(_schema(type_token), declared)


def _with_defaults(schema: Mapping[str, _Attr], values: Mapping[str, Any]) -> dict[str, Any]:
    filled = {k: v for k, v in values.items() if v is not None}
    for name, attr in schema.items():
        value = filled.get(name, attr.default)
        if value is None:
            continue
        if attr.kind == _BLOCK:
            value = _with_defaults(attr.block, value)
        elif attr.kind in (_BLOCK_LIST, _BLOCK_SET) and attr.block:
            value = [_with_defaults(attr.block, element) for element in value]
        filled[name] = value
    return filled


def _go_div(a: int, b: int) -> int:
    """Go's integer division, which truncates toward zero."""
    q = abs(a) // b
    return -q if a < 0 else q


def _strings(value: Any) -> list[str]:
    """A Go []string as `d.Set` stores it: nil becomes an empty list."""
    return [str(v) for v in value or []]


def _string_map(value: Any) -> dict[str, str]:
    return {str(k): _str(v) for k, v in (value or {}).items()}


def read_container(inspect: Mapping[str, Any], declared: Mapping[str, Any]) -> dict[str, Any]:
    """The container's state after resourceDockerContainerRead (resource_docker_container_funcs.go, 675-879).

    Raises `RemovedByRead` when the container is not running and `mustRun` is
    true (the default): Read deletes it and fails (725-732).
    """
    state = declared_state(CONTAINER, declared)
    config = inspect.get("Config") or {}
    host = inspect.get("HostConfig") or {}
    running = bool((inspect.get("State") or {}).get("Running"))

    # 725-732 (and 707-717 through resourceDockerContainerReadRefreshFunc, 881-929).
    if not running and state["mustRun"]:
        raise RemovedByRead(
            f"container {inspect.get('Name', '').lstrip('/')} is not running and must_run is true: "
            "resourceDockerContainerRead deletes it and fails with 'container failed to be in running state'"
        )
    # 734-736
    if not running:
        state["exitCode"] = int((inspect.get("State") or {}).get("ExitCode") or 0)

    # 738-747: only when NetworkSettings is present.
    settings = inspect.get("NetworkSettings")
    if settings is not None:
        state["bridge"] = settings.get("Bridge") or ""
        state["ports"] = _flatten_container_ports(settings.get("Ports"))
        state["networkDatas"] = _flatten_container_networks(settings.get("Networks"))

    # 751: the API prefixes names with '/'; strings.TrimLeft drops every leading '/'.
    state["name"] = str(inspect.get("Name") or "").lstrip("/")
    state["rm"] = bool(host.get("AutoRemove"))  # 752
    state["readOnly"] = bool(host.get("ReadonlyRootfs"))  # 753

    # 760-768: an image declared by ID ("sha256:…") is compared with the
    # container's image ID; anything else with the reference it was created from.
    if str(state.get("image", "")).startswith("sha256:"):
        state["image"] = inspect.get("Image") or ""
    else:
        state["image"] = config.get("Image") or ""

    state["hostname"] = config.get("Hostname") or ""  # 770
    state["domainname"] = config.get("Domainname") or ""  # 771
    state["command"] = _strings(config.get("Cmd"))  # 772
    state["entrypoints"] = _strings(config.get("Entrypoint"))  # 773
    state["user"] = config.get("User") or ""  # 774
    state["dns"] = _strings(host.get("Dns"))  # 775
    state["dnsOpts"] = _strings(host.get("DnsOptions"))  # 776
    state["securityOpts"] = _strings(host.get("SecurityOpt"))  # 777
    state["dnsSearches"] = _strings(host.get("DnsSearch"))  # 778
    state["publishAllPorts"] = bool(host.get("PublishAllPorts"))  # 779
    restart = host.get("RestartPolicy") or {}
    state["restart"] = restart.get("Name") or ""  # 780
    state["maxRetryCount"] = int(restart.get("MaximumRetryCount") or 0)  # 781
    # 787-791: a nil Init (the daemon's default) is stored as false.
    state["init"] = bool(host.get("Init")) if host.get("Init") is not None else False
    state["workingDir"] = config.get("WorkingDir") or ""  # 792
    # 793-801: only set when there is something to add or drop.
    if host.get("CapAdd") or host.get("CapDrop"):
        state["capabilities"] = {"adds": _strings(host.get("CapAdd")), "drops": _strings(host.get("CapDrop"))}
    state["runtime"] = host.get("Runtime") or ""  # 802
    mounts = host.get("Mounts") or []
    # 803. With volume labels upstream writes a "volume" key the label schema
    # lacks; d.Set fails, the error is ignored and the stored value stays.
    if not any((m.get("VolumeOptions") or {}).get("Labels") for m in mounts):
        state["mounts"] = _container_mounts(mounts)
    state["tmpfs"] = _string_map(host.get("Tmpfs"))  # 805
    state["hosts"] = _flatten_extra_hosts(host.get("ExtraHosts"))  # 806-808
    state["ulimits"] = [  # 809-811, flattenUlimits
        {"name": u.get("Name"), "soft": int(u.get("Soft") or 0), "hard": int(u.get("Hard") or 0)}
        for u in host.get("Ulimits") or []
    ]
    # 813-818: env and labels are deliberately not read back (upstream #242, #269).
    state["privileged"] = bool(host.get("Privileged"))  # 820
    state["devices"] = [  # 821-823, flattenDevices
        {
            "hostPath": d.get("PathOnHost") or "",
            "containerPath": d.get("PathInContainer") or "",
            "permissions": d.get("CgroupPermissions") or "",
        }
        for d in host.get("Devices") or []
    ]
    # 825-838: bytes → MiB with Go's truncating division; memory_reservation and
    # memory_swap keep 0 and -1 ("unlimited") as they are.
    state["memory"] = _go_div(int(host.get("Memory") or 0), _MIB)
    reservation = int(host.get("MemoryReservation") or 0)
    state["memoryReservation"] = _go_div(reservation, _MIB) if reservation > 0 else reservation
    swap = int(host.get("MemorySwap") or 0)
    state["memorySwap"] = _go_div(swap, _MIB) if swap > 0 else swap
    state["shmSize"] = _go_div(int(host.get("ShmSize") or 0), _MIB)
    # 839-841: only when limited; otherwise the stored value stays as declared.
    nano_cpus = int(host.get("NanoCpus") or 0)
    if nano_cpus > 0:
        state["cpus"] = nano_cpus_string(nano_cpus)
    state["cpuShares"] = int(host.get("CpuShares") or 0)  # 842
    state["cpuSet"] = host.get("CpusetCpus") or ""  # 843
    log_config = host.get("LogConfig") or {}
    state["logDriver"] = log_config.get("Type") or ""  # 844
    # 845: the engine's merged options, daemon defaults included.
    state["logOpts"] = _string_map(log_config.get("Config"))
    state["storageOpts"] = _string_map(host.get("StorageOpt"))  # 846
    state["networkMode"] = host.get("NetworkMode") or ""  # 847
    state["pidMode"] = host.get("PidMode") or ""  # 848
    state["usernsMode"] = host.get("UsernsMode") or ""  # 849
    # 851-862: only when the container has a health check (its own or the image's).
    check = config.get("Healthcheck")
    if check is not None:
        state["healthcheck"] = {
            "tests": _strings(check.get("Test")),
            "interval": go_duration_string(int(check.get("Interval") or 0)),
            "timeout": go_duration_string(int(check.get("Timeout") or 0)),
            "startPeriod": go_duration_string(int(check.get("StartPeriod") or 0)),
            "startInterval": go_duration_string(int(check.get("StartInterval") or 0)),
            "retries": int(check.get("Retries") or 0),
        }
    state["sysctls"] = _string_map(host.get("Sysctls"))  # 863
    state["ipcMode"] = host.get("IpcMode") or ""  # 864
    state["groupAdds"] = _strings(host.get("GroupAdd"))  # 865
    state["tty"] = bool(config.get("Tty"))  # 866
    state["stdinOpen"] = bool(config.get("OpenStdin"))  # 867
    state["stopSignal"] = config.get("StopSignal") or ""  # 868
    # 869: a nil *int is stored as null.
    stop_timeout = config.get("StopTimeout")
    state["stopTimeout"] = int(stop_timeout) if stop_timeout is not None else None
    # 871-876: the original `gpus` string is not recovered.
    if host.get("DeviceRequests"):
        state["gpus"] = "all"
    return state


def _flatten_container_ports(ports: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """resource_docker_container_structures.go: flattenContainerPorts (33-57).

    Sorted by port number only (Go's unstable sort over a map: "80/tcp" and
    "80/udp" come in no fixed order); an exposed port without a binding adds
    nothing; a HostPort that is not a number reads as 0.
    """
    out: list[dict[str, Any]] = []
    for key in sorted(ports or {}, key=lambda k: _atoi(k.split("/")[0])):
        number, _, protocol = key.partition("/")
        for binding in (ports or {})[key] or []:
            out.append(
                {
                    "internal": _atoi(number),
                    "external": _atoi(binding.get("HostPort") or ""),
                    "ip": binding.get("HostIp") or "",
                    "protocol": protocol,
                }
            )
    return out


def _atoi(text: str) -> int:
    # strconv.Atoi's error is ignored upstream, leaving 0.
    try:
        return int(text)
    except ValueError:
        return 0


def _flatten_container_networks(networks: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """resource_docker_container_structures.go: flattenContainerNetworks (59-79)."""
    return [
        {
            "networkName": name,
            "ipAddress": data.get("IPAddress") or "",
            "ipPrefixLength": int(data.get("IPPrefixLen") or 0),
            "gateway": data.get("Gateway") or "",
            "globalIpv6Address": data.get("GlobalIPv6Address") or "",
            "globalIpv6PrefixLength": int(data.get("GlobalIPv6PrefixLen") or 0),
            "ipv6Gateway": data.get("IPv6Gateway") or "",
            "macAddress": data.get("MacAddress") or "",
        }
        for name, data in (networks or {}).items()
    ]


def _flatten_extra_hosts(hosts: list[str] | None) -> list[dict[str, str]]:
    """resource_docker_container_structures.go: flattenExtraHosts (315-326): split on every ':', keep [0] and [1]."""
    out = []
    for entry in hosts or []:
        parts = entry.split(":")
        if len(parts) < 2:
            # Go would index out of range (a panic in the provider).
            raise ValueError(f"extra host {entry!r} has no ':'; the provider's Read cannot read it")
        out.append({"host": parts[0], "ip": parts[1]})
    return out


def _container_mounts(mounts: list[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """resource_docker_container_structures.go: getDockerContainerMounts (262-313): HostConfig.Mounts, not Binds."""
    out = []
    for mount in mounts or []:
        item: dict[str, Any] = {
            "target": mount.get("Target") or "",
            "source": mount.get("Source") or "",
            "type": mount.get("Type") or "",
            "readOnly": bool(mount.get("ReadOnly")),
        }
        if mount.get("BindOptions") is not None:
            item["bindOptions"] = {"propagation": mount["BindOptions"].get("Propagation") or ""}
        volume_options = mount.get("VolumeOptions")
        if volume_options is not None:
            # Labels are empty here (read_container does not store mounts with labels).
            options: dict[str, Any] = {"noCopy": bool(volume_options.get("NoCopy")), "labels": []}
            driver = volume_options.get("DriverConfig")
            if driver is not None:
                options["driverName"] = driver.get("Name") or ""
                options["driverOptions"] = _string_map(driver.get("Options"))
            if volume_options.get("Subpath"):
                options["subpath"] = volume_options["Subpath"]
            item["volumeOptions"] = options
        tmpfs = mount.get("TmpfsOptions")
        if tmpfs is not None:
            item["tmpfsOptions"] = {"sizeBytes": int(tmpfs.get("SizeBytes") or 0), "mode": int(tmpfs.get("Mode") or 0)}
        out.append(item)
    return out


def _label_set(labels: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """helpers.go: mapToLabelSet (48-57)."""
    return [{"label": str(k), "value": str(v)} for k, v in (labels or {}).items()]


def read_network(inspect: Mapping[str, Any], declared: Mapping[str, Any]) -> dict[str, Any]:
    """The network's state after resourceDockerNetworkReadRefreshFunc (resource_docker_network_funcs.go, 161-204)."""
    state = declared_state(NETWORK, declared)
    ipam = inspect.get("IPAM") or {}
    state["name"] = inspect.get("Name") or ""  # 176
    state["labels"] = _label_set(inspect.get("Labels"))  # 177
    state["driver"] = inspect.get("Driver") or ""  # 178
    state["internal"] = bool(inspect.get("Internal"))  # 179
    state["attachable"] = bool(inspect.get("Attachable"))  # 180
    state["ingress"] = bool(inspect.get("Ingress"))  # 181
    state["ipv6"] = bool(inspect.get("EnableIPv6"))  # 182
    state["ipamDriver"] = ipam.get("Driver") or ""  # 183
    state["ipamOptions"] = _string_map(ipam.get("Options"))  # 184
    state["scope"] = inspect.get("Scope") or ""  # 185
    # 186-195: an "overlay" scope without options keeps Read polling until it
    # times out. (The engine reports scopes local/global/swarm, so in practice
    # this branch is not taken.)
    if state["scope"] == "overlay" and not inspect.get("Options"):
        raise ReadPending("network options not exposed yet: Read polls until its 30 s timeout and fails")
    state["options"] = _string_map(inspect.get("Options"))
    state["ipamConfigs"] = [_flatten_ipam_config(c) for c in ipam.get("Config") or []]  # 197-199
    return state


def _flatten_ipam_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """resource_docker_network_structures.go: flattenIpamConfigSpec (11-38): only the non-empty fields.

    Whatever gateway the engine reports is stored, so a declaration without
    one differs from a state with one (upstream #54).
    """
    item: dict[str, Any] = {}
    if config.get("Subnet"):
        item["subnet"] = config["Subnet"]
    if config.get("IPRange"):
        item["ipRange"] = config["IPRange"]
    if config.get("Gateway"):
        item["gateway"] = config["Gateway"]
    if config.get("AuxiliaryAddresses"):
        item["auxAddress"] = _string_map(config["AuxiliaryAddresses"])
    return item


def read_volume(inspect: Mapping[str, Any], declared: Mapping[str, Any]) -> dict[str, Any]:
    """The volume's state after resourceDockerVolumeRead (resource_docker_volume.go, 288-360)."""
    state = declared_state(VOLUME, declared)
    state["name"] = inspect.get("Name") or ""  # 308
    state["labels"] = _label_set(inspect.get("Labels"))  # 309
    state["driver"] = inspect.get("Driver") or ""  # 310
    state["driverOpts"] = _string_map(inspect.get("Options"))  # 311
    state["mountpoint"] = inspect.get("Mountpoint") or ""  # 312
    cluster = inspect.get("ClusterVolume")
    if cluster is not None:  # 315-358
        spec = cluster.get("Spec") or {}
        access = spec.get("AccessMode") or {}
        requirements = spec.get("AccessibilityRequirements") or {}
        capacity = spec.get("CapacityRange") or {}
        state["cluster"] = {
            "id": cluster.get("ID") or "",
            "scope": access.get("Scope") or "",
            "sharing": access.get("Sharing") or "",
            "group": spec.get("Group") or "",
            "availability": spec.get("Availability") or "",
            "type": "mount" if access.get("MountVolume") is not None else "block",
            "requiredBytes": _mem_bytes_string(int(capacity.get("RequiredBytes") or 0)),
            "limitBytes": _mem_bytes_string(int(capacity.get("LimitBytes") or 0)),
            # Go ranges over the segment maps, in no fixed order.
            "topologyPreferred": _segments(requirements.get("Preferred")),
            "topologyRequired": _segments(requirements.get("Requisite")),
        }
    return state


def _segments(topologies: list[Mapping[str, Any]] | None) -> str:
    return ",".join(f"{k}={v}" for t in topologies or [] for k, v in (t.get("Segments") or {}).items())


def _mem_bytes_string(size: int) -> str:
    """docker/cli opts.MemBytes.String → go-units BytesSize: "%.4g" of the size in binary units."""
    value = float(size)
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"]
    index = 0
    while value >= 1024 and index < len(units) - 1:
        value /= 1024
        index += 1
    return f"{value:.4g}{units[index]}"


# --- the plan ------------------------------------------------------------------


def diff(type_token: str, declared: Mapping[str, Any], state: Mapping[str, Any]) -> list[Change]:
    """The changes `pulumi up` shows for `declared` against the provider's `state` (SDK v2 plan rules).

    - an unset attribute takes its schema Default;
    - unset and Computed: the state value stands, no change;
    - unset, not Computed: a state value other than the type's zero value
      (e.g. `memorySwap` -1 or 512) is a change;
    - DiffSuppressFuncs (`user`, `workingDir`, `ports`) hide what upstream hides;
    - TypeSet attributes compare as sets (`ipamConfigs`, `labels`, `dns`, ...),
      TypeList ones by position;
    - `Change.replaces` when the attribute or a block containing it is ForceNew.
    """
    schema = _schema(type_token)
    unknown = sorted(k for k, v in declared.items() if v is not None and k not in schema)
    if unknown:
        raise UnknownField(f"{type_token} declares {unknown}, which the provider's schema does not have")
    changes: list[Change] = []
    for name, attr in schema.items():
        if attr.computed_only:
            continue
        _diff_attr(name, attr, declared.get(name), state.get(name), False, changes)
    return changes


def compared_fields(type_token: str, declared: Mapping[str, Any]) -> list[str]:
    """The top-level attributes a plan compares for `declared`: those it declares, and those not Computed.

    An undeclared Computed attribute keeps whatever Read stored, and an
    undeclared `user` or `working_dir` is the image's, which their
    DiffSuppressFunc always hides; so only these can ever show up as a change.
    """
    schema = _schema(type_token)
    return [
        name
        for name, attr in schema.items()
        if not attr.computed_only
        and (declared.get(name) is not None or not (attr.computed or attr.suppress is _empty_means_unchanged))
    ]


def canonical(type_token: str, path: str, value: Any) -> Any:
    """A top-level attribute's value as the plan compares it: defaults filled, sets unordered, Pulumi floats ints."""
    attr = _schema(type_token)[path]
    return _canonical(attr, attr.default if value is None else value)


def _diff_attr(path: str, attr: _Attr, declared: Any, state: Any, inherited: bool, out: list[Change]) -> None:
    force_new = inherited or attr.force_new
    if declared is None and attr.default is not None:
        declared = attr.default
    if declared is None and attr.computed:
        # Optional + Computed: an unset value keeps whatever the state holds.
        return
    if attr.kind in (_STRING, _INT, _BOOL):
        old, new = _primitive(attr.kind, state), _primitive(attr.kind, declared)
        if old == new:
            return
        if attr.suppress is not None and attr.suppress(state, declared):
            return
        out.append(Change(path, declared, state, force_new))
    elif attr.kind == _LIST:
        if _strings(state) != _strings(declared):
            out.append(Change(path, declared, state, force_new))
    elif attr.kind == _SET:
        if set(_strings(state)) != set(_strings(declared)):
            out.append(Change(path, declared, state, force_new))
    elif attr.kind == _MAP:
        if _string_map(state) != _string_map(declared):
            out.append(Change(path, declared, state, force_new))
    elif attr.kind == _BLOCK:
        if declared is None and state is None:
            return
        for name, sub in attr.block.items():
            if sub.computed_only:
                continue
            _diff_attr(f"{path}.{name}", sub, (declared or {}).get(name), (state or {}).get(name), force_new, out)
    elif attr.kind == _BLOCK_LIST:
        _diff_block_list(path, attr, declared or [], state or [], force_new, out)
    elif attr.kind == _BLOCK_SET:
        _diff_block_set(path, attr, declared or [], state or [], force_new, out)
    else:
        raise AssertionError(f"unknown schema kind {attr.kind}")


def _diff_block_list(
    path: str, attr: _Attr, declared: list[Any], state: list[Any], force_new: bool, out: list[Change]
) -> None:
    if attr.suppress is not None and attr.suppress(state, declared):
        return
    if len(declared) != len(state):
        out.append(Change(path, declared, state, force_new))
        return
    for index, (new, old) in enumerate(zip(declared, state, strict=True)):
        for name, sub in attr.block.items():
            if not sub.computed_only:
                _diff_attr(f"{path}[{index}].{name}", sub, new.get(name), old.get(name), force_new, out)


def _diff_block_set(
    path: str, attr: _Attr, declared: list[Any], state: list[Any], force_new: bool, out: list[Change]
) -> None:
    # Elements with the same hash are one element, as in a schema.Set.
    new = {_element_key(attr.block, e): e for e in declared}
    old = {_element_key(attr.block, e): e for e in state}
    if new.keys() == old.keys():
        return
    only_new = [e for k, e in new.items() if k not in old]
    only_old = [e for k, e in old.items() if k not in new]
    if len(only_new) == 1 and len(only_old) == 1:
        # One element replaced by another: name the fields that differ.
        for name, sub in attr.block.items():
            if not sub.computed_only:
                _diff_attr(f"{path}[].{name}", sub, only_new[0].get(name), only_old[0].get(name), force_new, out)
        return
    out.append(Change(path, declared, state, force_new))


def _element_key(block: Mapping[str, _Attr], element: Mapping[str, Any]) -> Any:
    """A set element's identity, as helper/schema.HashResource sees it.

    Only user-settable fields count; an unset field takes its Default or its
    type's zero value, as the SDK's readers fill them in before hashing.
    """
    key = []
    for name in sorted(block):
        sub = block[name]
        if sub.computed_only:
            continue
        value = element.get(name)
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
        return tuple(sorted(_strings(value)))
    if attr.kind == _MAP:
        return tuple(sorted(_string_map(value).items()))
    if attr.kind == _BLOCK:
        return _element_key(attr.block, value or {})
    return tuple(sorted(_element_key(attr.block, e) for e in value or []))


def _primitive(kind: str, value: Any) -> Any:
    """A primitive as the SDK compares it: unset is the type's zero value; Pulumi's floats are ints."""
    if kind == _INT:
        return _int(value)
    if kind == _BOOL:
        return bool(value)
    return _str(value)


def _int(value: Any) -> int:
    return 0 if value is None else int(value)


def _str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
