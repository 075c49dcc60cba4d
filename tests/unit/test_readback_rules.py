"""The provider's read-back, ported in tests/support/readback.py, checked against upstream's own values.

Where upstream has a test, its values are used: the Go standard library's
time.Duration String table (time/time_test.go, durationTests), helpers_test.go
TestNanoInt64ToDecimalString, and the acceptance-test configurations of
kreuzwerker/terraform-provider-docker v3.9.0 whose plans must be empty after
apply (testdata/resources/docker_container/*.tf, docker_network/*.tf).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from tests.support.drift import Drift
from tests.support.program import CONTAINER, NETWORK, REMOTE_IMAGE, VOLUME, Program, Resource
from tests.support.readback import (
    FORCE_NEW,
    Change,
    RemovedByRead,
    UnknownField,
    declared_state,
    diff,
    go_duration_string,
    nano_cpus_string,
    parse_cpus,
    read_container,
    read_network,
    read_volume,
    replaces,
)
from tests.system.readback_check import readback_changes
from tests.system.realizer import Realized

MIB = 1024 * 1024
SECOND = 10**9
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
IMAGE_ID = "sha256:" + "ab" * 32


def container_inspect(
    *,
    config: dict[str, Any] | None = None,
    host: dict[str, Any] | None = None,
    ports: dict[str, Any] | None = None,
    running: bool = True,
) -> dict[str, Any]:
    """Inspect JSON of a container as the provider creates it (network_mode "bridge", restart "no")."""
    return {
        "Id": "c0ffee",
        "Name": "/web",
        "Image": IMAGE_ID,
        "State": {"Running": running, "ExitCode": 0 if running else 3},
        "Config": {"Image": "nginx:1.27", "Cmd": ["nginx", "-g", "daemon off;"], **(config or {})},
        "HostConfig": {
            "NetworkMode": "bridge",
            "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
            "LogConfig": {"Type": "json-file", "Config": {}},
            "Init": False,
            **(host or {}),
        },
        "NetworkSettings": {"Bridge": "", "Ports": ports or {}, "Networks": {}},
    }


def declared_container(**inputs: Any) -> dict[str, Any]:
    return {"name": "web", "image": IMAGE_ID, **inputs}


def container_changes(inputs: dict[str, Any], inspect: dict[str, Any]) -> list[Change]:
    return diff(CONTAINER, inputs, read_container(inspect, inputs))


# --- the Go formatters ---------------------------------------------------------

# Go time/time_test.go durationTests; TestDurationString also checks -d for d > 0.
GO_DURATIONS = [
    ("0s", 0),
    ("1ns", 1),
    ("1.1µs", 1100),
    ("2.2ms", 2200 * 1000),
    ("3.3s", 3300 * 10**6),
    ("4m5s", 4 * MINUTE + 5 * SECOND),
    ("4m5.001s", 4 * MINUTE + 5001 * 10**6),
    ("5h6m7.001s", 5 * HOUR + 6 * MINUTE + 7001 * 10**6),
    ("8m0.000000001s", 8 * MINUTE + 1),
    ("2562047h47m16.854775807s", 2**63 - 1),
    ("-2562047h47m16.854775808s", -(2**63)),
]


@pytest.mark.parametrize(("expected", "ns"), GO_DURATIONS)
def test_go_duration_string_matches_go_time_package(expected: str, ns: int) -> None:
    assert go_duration_string(ns) == expected
    if ns > 0:
        assert go_duration_string(-ns) == "-" + expected


def test_go_duration_outside_int64_is_rejected() -> None:
    with pytest.raises(ValueError, match="int64"):
        go_duration_string(2**63)


@pytest.mark.parametrize(
    ("nano", "expected"),
    # helpers_test.go TestNanoInt64ToDecimalString
    [(0, "0"), (1_000_000_000, "1.0"), (1_500_000_000, "1.5"), (2_000_000_000, "2.0"), (2_250_000_000, "2.25")],
)
def test_nano_cpus_string_matches_upstream_helpers_test(nano: int, expected: str) -> None:
    assert nano_cpus_string(nano) == expected


@pytest.mark.parametrize(
    ("declared", "read_back"),
    [
        ("1", "1.0"),
        ("2", "2.0"),
        ("10", "10."),  # ten '0' characters: trimmed to the dot
        ("100", "100."),
        ("0.05", "0.1"),  # nine '0' characters: one decimal, rounded half away from zero
        ("0.01", "0.0"),
        ("10.5", "10.5"),
        ("0.5", "0.5"),
        ("0.25", "0.25"),
        ("1.5", "1.5"),  # testAccDockerContainerCpus.tf
        ("1.05", "1.05"),
    ],
)
def test_cpus_read_back_spelling(declared: str, read_back: str) -> None:
    assert nano_cpus_string(parse_cpus(declared)) == read_back


@pytest.mark.parametrize(("text", "message"), [("1.0000000001", "too precise"), ("one", "rational")])
def test_parse_cpus_rejects_what_docker_cli_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_cpus(text)


# --- containers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "changes"),
    [
        ("1", [Change("cpus", "1", "1.0", replaces=True)]),
        ("2", [Change("cpus", "2", "2.0", replaces=True)]),
        ("10", [Change("cpus", "10", "10.", replaces=True)]),
        ("0.05", [Change("cpus", "0.05", "0.1", replaces=True)]),
        ("1.0", []),
        ("0.5", []),
        ("0.25", []),
        ("1.5", []),
    ],
)
def test_cpus_not_spelled_as_read_back_replaces_the_container(declared: str, changes: list[Change]) -> None:
    inspect = container_inspect(host={"NanoCpus": parse_cpus(declared)})
    assert container_changes(declared_container(cpus=declared), inspect) == changes


def test_cpus_without_a_limit_keep_the_declared_value() -> None:
    state = read_container(container_inspect(host={"NanoCpus": 0}), declared_container(cpus="1"))
    assert state["cpus"] == "1"


@pytest.mark.parametrize(
    ("declared", "inspected", "changes"),
    [
        ({"interval": "120s"}, {"Interval": 120 * SECOND}, [Change("healthcheck.interval", "120s", "2m0s", False)]),
        (
            {"startPeriod": "120s"},
            {"StartPeriod": 120 * SECOND},
            [Change("healthcheck.startPeriod", "120s", "2m0s", False)],
        ),
        ({"timeout": "1h"}, {"Timeout": HOUR}, [Change("healthcheck.timeout", "1h", "1h0m0s", False)]),
        ({"interval": "500ms"}, {"Interval": 500 * 10**6}, []),
        ({"startPeriod": "2m0s"}, {"StartPeriod": 120 * SECOND}, []),
        # testAccDockerContainerHealthcheckConfig.tf
        (
            {"interval": "30s", "timeout": "5s", "startPeriod": "15s", "retries": 10},
            {"Interval": 30 * SECOND, "Timeout": 5 * SECOND, "StartPeriod": 15 * SECOND, "Retries": 10},
            [],
        ),
    ],
)
def test_health_check_durations_read_back_as_go_duration_strings(
    declared: dict[str, Any], inspected: dict[str, Any], changes: list[Change]
) -> None:
    test = ["CMD", "/bin/true"]
    inputs = declared_container(healthcheck={"tests": test, **declared})
    inspect = container_inspect(config={"Healthcheck": {"Test": test, **inspected}})
    assert container_changes(inputs, inspect) == changes


def test_health_check_changes_are_updates_not_replacements() -> None:
    assert not replaces(CONTAINER, "healthcheck")
    assert not replaces(CONTAINER, "healthcheck.interval")
    assert not replaces(CONTAINER, "healthcheck.tests")


def test_an_image_health_check_the_program_does_not_declare_is_no_change() -> None:
    inspect = container_inspect(config={"Healthcheck": {"Test": ["CMD", "true"], "Interval": 90 * SECOND}})
    assert container_changes(declared_container(), inspect) == []


@pytest.mark.parametrize(
    ("memory_swap_bytes", "read_back"),
    [(2048 * MIB, 2048), (512 * MIB, 512), (-1, -1), (0, 0)],
)
def test_memory_swap_reads_back_in_mib_or_as_is(memory_swap_bytes: int, read_back: int) -> None:
    state = read_container(container_inspect(host={"MemorySwap": memory_swap_bytes}), declared_container())
    assert state["memorySwap"] == read_back


@pytest.mark.parametrize(
    ("declared", "memory_swap_bytes", "changes"),
    [
        # Docker's default for a memory limit without swap: twice the memory.
        (None, 512 * MIB, [Change("memorySwap", None, 512, replaces=False)]),
        # A host without swap accounting turns any positive value into -1.
        (256, -1, [Change("memorySwap", 256, -1, replaces=False)]),
        (None, -1, [Change("memorySwap", None, -1, replaces=False)]),
        (-1, -1, []),
        (None, 0, []),
        (2048, 2048 * MIB, []),  # testAccDockerContainerCustomizedConfig.tf
    ],
)
def test_memory_swap_is_not_computed_so_any_unmatched_read_back_is_a_change(
    declared: int | None, memory_swap_bytes: int, changes: list[Change]
) -> None:
    inputs = declared_container(memory=256, memorySwap=declared)
    inspect = container_inspect(host={"Memory": 256 * MIB, "MemorySwap": memory_swap_bytes})
    assert container_changes(inputs, inspect) == changes


@pytest.mark.parametrize(
    ("declared", "engine", "replaced"),
    [
        ({"max-size": "10m", "max-file": "3"}, {"max-size": "10m", "max-file": "3"}, False),
        # testAccDockerContainerCustomizedConfig.tf writes max-file as a number
        ({"max-size": "10m", "max-file": 20}, {"max-size": "10m", "max-file": "20"}, False),
        # daemon.json log-opts merged in by the engine
        ({"max-size": "10m"}, {"max-size": "10m", "compress": "true"}, True),
        ({"max-size": "10m"}, {"max-size": "20m"}, True),
    ],
)
def test_log_opts_read_back_from_the_engine_and_force_replacement(
    declared: dict[str, Any], engine: dict[str, str], replaced: bool
) -> None:
    inputs = declared_container(logDriver="json-file", logOpts=declared)
    inspect = container_inspect(host={"LogConfig": {"Type": "json-file", "Config": engine}})
    expected = [Change("logOpts", declared, engine, replaces=True)] if replaced else []
    assert container_changes(inputs, inspect) == expected


@pytest.mark.parametrize(
    ("declared", "config_image", "changes"),
    [
        (IMAGE_ID, "nginx:1.27", []),  # by ID: compared with the container's image ID
        ("nginx:1.27", "nginx:1.27", []),  # by reference: compared with Config.Image
        (
            "nginx:1.27",
            "nginx:1.27@sha256:" + "cd" * 32,
            [Change("image", "nginx:1.27", "nginx:1.27@sha256:" + "cd" * 32, True)],
        ),
        ("sha256:" + "ef" * 32, "nginx:1.27", [Change("image", "sha256:" + "ef" * 32, IMAGE_ID, True)]),
    ],
)
def test_image_is_read_back_by_id_only_when_declared_by_id(
    declared: str, config_image: str, changes: list[Change]
) -> None:
    inspect = container_inspect(config={"Image": config_image})
    assert container_changes(declared_container(image=declared), inspect) == changes


@pytest.mark.parametrize(
    ("field", "inspect_key", "declared", "engine", "changed"),
    [
        ("user", "User", None, "1000:0", False),  # "" means "the image's": suppressed
        ("user", "User", "1000:0", "1000:0", False),
        ("user", "User", "root:root", "1000:0", True),
        ("workingDir", "WorkingDir", None, "/usr/share/elasticsearch", False),
        ("workingDir", "WorkingDir", "/srv", "/data", True),
        ("stopSignal", "StopSignal", "SIGQUIT", "SIGQUIT", False),
        ("stopSignal", "StopSignal", None, "SIGQUIT", False),  # Computed
        ("stopTimeout", "StopTimeout", 30, 30, False),
        ("stopTimeout", "StopTimeout", 30.0, 10, True),
        ("command", "Cmd", None, ["redis-server"], False),  # Computed
        ("command", "Cmd", ["redis-server", "/etc/redis.conf"], ["redis-server", "/etc/redis.conf"], False),
        ("hostname", "Hostname", None, "c0ffee", False),  # Computed
        ("domainname", "Domainname", "example.org", "", True),
    ],
)
def test_config_fields_follow_computed_and_diff_suppress_rules(
    field: str, inspect_key: str, declared: Any, engine: Any, changed: bool
) -> None:
    inputs = declared_container(**{field: declared})
    changes = container_changes(inputs, container_inspect(config={inspect_key: engine}))
    assert [c.path for c in changes] == ([field] if changed else [])
    assert all(c.replaces for c in changes)


@pytest.mark.parametrize(
    ("field", "host", "declared", "change"),
    [
        ("restart", {"RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0}}, "unless-stopped", None),
        ("memory", {"Memory": 384 * MIB}, 384.0, None),
        ("shmSize", {"ShmSize": 128 * MIB}, 128, None),
        (
            "sysctls",
            {"Sysctls": {"net.ipv4.ip_unprivileged_port_start": "0"}},
            {"net.ipv4.ip_unprivileged_port_start": "0"},
            None,
        ),
        # unset: the schema Default is what the plan compares
        ("networkMode", {"NetworkMode": "default"}, None, Change("networkMode", "bridge", "default", True)),
        ("restart", {"RestartPolicy": {"Name": "", "MaximumRetryCount": 0}}, None, Change("restart", "no", "", False)),
        ("init", {"Init": None}, None, None),  # Computed; nil reads as false
    ],
)
def test_host_config_fields_read_back(field: str, host: dict[str, Any], declared: Any, change: Change | None) -> None:
    inputs = declared_container(**{field: declared})
    changes = container_changes(inputs, container_inspect(host=host))
    assert changes == ([] if change is None else [change])


def test_env_labels_uploads_and_networks_are_not_read_back() -> None:
    inputs = declared_container(
        envs=["A=1"],
        labels=[{"label": "role", "value": "api"}],
        uploads=[{"file": "/etc/app.conf", "content": "x", "permissions": "0444"}],
        networksAdvanced=[{"name": "backend", "aliases": ["api"]}],
        volumes=[{"volumeName": "data", "containerPath": "/data"}],
    )
    inspect = container_inspect(config={"Env": ["A=2", "PATH=/bin"], "Labels": {"role": "web", "extra": "1"}})
    assert container_changes(inputs, inspect) == []


@pytest.mark.parametrize(
    ("declared", "engine", "changed"),
    [
        (
            [{"internal": 8080.0, "external": 8080.0, "ip": "127.0.0.1"}],
            {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]},
            False,
        ),
        # order differs from the read-back (sorted by port): suppressed upstream
        (
            [{"internal": 443, "external": 443}, {"internal": 80, "external": 80}],
            {
                "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "80"}],
                "443/tcp": [{"HostIp": "0.0.0.0", "HostPort": "443"}],
            },
            False,
        ),
        # an engine that also binds IPv6 reports a second binding
        (
            [{"internal": 80, "external": 80}],
            {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "80"}, {"HostIp": "::", "HostPort": "80"}]},
            True,
        ),
        (
            [{"internal": 12201, "external": 12201, "protocol": "udp"}],
            {"12201/udp": [{"HostIp": "0.0.0.0", "HostPort": "12201"}]},
            False,
        ),
    ],
)
def test_published_ports_are_read_back_and_force_replacement(
    declared: list[dict[str, Any]], engine: dict[str, Any], changed: bool
) -> None:
    changes = container_changes(declared_container(ports=declared), container_inspect(ports=engine))
    assert [(c.path, c.replaces) for c in changes] == ([("ports", True)] if changed else [])


def test_an_exposed_port_without_binding_reads_back_as_nothing() -> None:
    state = read_container(container_inspect(ports={"80/tcp": None}), declared_container())
    assert state["ports"] == []


def test_a_stopped_container_that_must_run_is_removed_by_read() -> None:
    with pytest.raises(RemovedByRead, match="must_run"):
        read_container(container_inspect(running=False), declared_container())


def test_a_stopped_one_shot_container_reads_back_its_exit_code() -> None:
    state = read_container(container_inspect(running=False), declared_container(mustRun=False, attach=True))
    assert state["exitCode"] == 3


def test_a_declared_container_read_back_unchanged_is_no_change() -> None:
    test = ["CMD", "pg_isready"]
    inputs = declared_container(
        cpus="0.5",
        memory=256.0,
        memorySwap=-1,
        restart="unless-stopped",
        stopSignal="SIGINT",
        stopTimeout=30.0,
        logDriver="local",
        logOpts={"max-size": "10m", "max-file": "3", "compress": "true"},
        healthcheck={"tests": test, "interval": "5s", "timeout": "3s", "startPeriod": "30s", "retries": 5.0},
        user="1000:0",
    )
    inspect = container_inspect(
        config={
            "User": "1000:0",
            "StopSignal": "SIGINT",
            "StopTimeout": 30,
            "Healthcheck": {
                "Test": test,
                "Interval": 5 * SECOND,
                "Timeout": 3 * SECOND,
                "StartPeriod": 30 * SECOND,
                "Retries": 5,
            },
        },
        host={
            "NanoCpus": 500_000_000,
            "Memory": 256 * MIB,
            "MemorySwap": -1,
            "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0},
            "LogConfig": {"Type": "local", "Config": {"max-size": "10m", "max-file": "3", "compress": "true"}},
        },
    )
    assert container_changes(inputs, inspect) == []


# --- networks and volumes --------------------------------------------------------


def network_inspect(*, ipam: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {
        "Name": "bar",
        "Id": "n1",
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None, "Config": ipam},
        "Internal": False,
        "Attachable": False,
        "Ingress": False,
        "Options": {},
        "Labels": {},
        **fields,
    }


@pytest.mark.parametrize(
    ("declared", "engine", "changes"),
    [
        # upstream #54: no gateway declared, the engine reports one
        (
            [{"subnet": "10.0.1.0/24"}],
            [{"Subnet": "10.0.1.0/24", "Gateway": "10.0.1.1"}],
            [Change("ipamConfigs[].gateway", None, "10.0.1.1", replaces=True)],
        ),
        (
            [{"subnet": "172.30.38.0/24", "ipRange": "172.30.38.192/26"}],
            [{"Subnet": "172.30.38.0/24", "IPRange": "172.30.38.192/26", "Gateway": "172.30.38.1"}],
            [Change("ipamConfigs[].gateway", None, "172.30.38.1", replaces=True)],
        ),
        # testAccDockerNetworkConfigFull.tf: the engine reports no gateway for a declared subnet
        ([{"subnet": "10.0.1.0/24"}], [{"Subnet": "10.0.1.0/24"}], []),
        ([{"subnet": "10.0.1.0/24", "gateway": "10.0.1.1"}], [{"Subnet": "10.0.1.0/24", "Gateway": "10.0.1.1"}], []),
        # no ipam_config declared: Computed, whatever the engine picked stands
        (None, [{"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}], []),
    ],
)
def test_network_ipam_config_is_a_force_new_set_read_back_with_the_gateway(
    declared: list[dict[str, Any]] | None, engine: list[dict[str, Any]], changes: list[Change]
) -> None:
    inputs = {"name": "bar", "driver": "bridge", "ipamConfigs": declared}
    assert diff(NETWORK, inputs, read_network(network_inspect(ipam=engine), inputs)) == changes


def test_network_as_upstreams_full_acceptance_test_reads_back_unchanged() -> None:
    # testAccDockerNetworkConfigFull.tf and the inspect TestAccDockerNetwork_full asserts
    labels = {"com.docker.compose.network": "foo", "com.docker.compose.project": "test"}
    inputs = {
        "name": "bar",
        "driver": "bridge",
        "internal": True,
        "ipamConfigs": [{"subnet": "10.0.1.0/24"}],
        "labels": [{"label": k, "value": v} for k, v in labels.items()],
    }
    inspect = network_inspect(ipam=[{"Subnet": "10.0.1.0/24"}], Internal=True, Labels=labels)
    assert diff(NETWORK, inputs, read_network(inspect, inputs)) == []


def test_network_labels_added_outside_the_program_replace_it() -> None:
    inputs = {"name": "bar", "internal": True}
    inspect = network_inspect(ipam=[], Internal=True, Labels={"owner": "someone"})
    changes = diff(NETWORK, inputs, read_network(inspect, inputs))
    assert [(c.path, c.replaces) for c in changes] == [("labels", True)]


def test_network_options_the_program_sets_read_back_unchanged() -> None:
    options = {"com.docker.network.bridge.enable_ip_masquerade": "false"}
    inputs = {"name": "bar", "driver": "bridge", "options": options}
    assert diff(NETWORK, inputs, read_network(network_inspect(ipam=[], Options=options), inputs)) == []


@pytest.mark.parametrize(
    ("labels", "changed"),
    [({}, False), ({"backup": "daily"}, True)],
)
def test_volume_reads_back_name_driver_and_labels(labels: dict[str, str], changed: bool) -> None:
    inputs = {"name": "microstack-dev-redis-data"}
    inspect = {
        "Name": "microstack-dev-redis-data",
        "Driver": "local",
        "Labels": labels,
        "Options": None,
        "Mountpoint": "/var/lib/docker/volumes/microstack-dev-redis-data/_data",
        "Scope": "local",
    }
    changes = diff(VOLUME, inputs, read_volume(inspect, inputs))
    assert [(c.path, c.replaces) for c in changes] == ([("labels", True)] if changed else [])


# --- ForceNew lookup -------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_token", "path", "expected"),
    [
        (CONTAINER, "cpus", True),
        (CONTAINER, "image", True),
        (CONTAINER, "logOpts", True),
        (CONTAINER, "networksAdvanced", True),
        (CONTAINER, "networksAdvanced[].aliases", True),
        (CONTAINER, "ports[0].ip", True),
        (CONTAINER, "uploads[].content", True),
        (CONTAINER, "memory", False),
        (CONTAINER, "memorySwap", False),
        (CONTAINER, "restart", False),
        (CONTAINER, "healthcheck.startPeriod", False),
        (CONTAINER, "mounts[].target", True),  # only through the ForceNew set
        (NETWORK, "ipamConfigs[].gateway", True),
        (NETWORK, "internal", True),
        (VOLUME, "labels", True),
        (VOLUME, "cluster.availability", False),
    ],
)
def test_replaces_looks_up_force_new_including_enclosing_blocks(type_token: str, path: str, expected: bool) -> None:
    assert replaces(type_token, path) is expected


def test_force_new_lists_only_attributes_that_are_force_new_themselves() -> None:
    assert {"cpus", "logOpts", "ports.ip", "networksAdvanced.aliases"} <= FORCE_NEW[CONTAINER]
    assert not {"memorySwap", "healthcheck", "healthcheck.interval", "mounts.target"} & FORCE_NEW[CONTAINER]
    assert "ipamConfigs.gateway" in FORCE_NEW[NETWORK]


@pytest.mark.parametrize("path", ["cpu", "healthcheck.period", "ipamConfigs[].gw"])
def test_unknown_paths_are_reported(path: str) -> None:
    with pytest.raises(UnknownField):
        replaces(CONTAINER if "ipam" not in path else NETWORK, path)


def test_a_declared_field_outside_the_schema_is_reported() -> None:
    with pytest.raises(UnknownField, match="memorySwapp"):
        diff(CONTAINER, declared_container(memorySwapp=1), {})


def test_every_field_the_program_declares_is_known_and_equal_to_itself(stack_program: Program) -> None:
    for type_token in (CONTAINER, NETWORK, VOLUME):
        for resource in stack_program.of_type(type_token):
            state = declared_state(type_token, resource.inputs)
            assert diff(type_token, resource.inputs, state) == [], resource.name


# --- the system-test glue --------------------------------------------------------


class _StubDocker:
    """Answers the three inspect calls and the image lookup readback_changes makes."""

    def __init__(self, networks: dict[str, Any], volumes: dict[str, Any], containers: dict[str, Any]) -> None:
        self.api = SimpleNamespace(
            inspect_network=networks.__getitem__,
            inspect_volume=volumes.__getitem__,
            inspect_container=containers.__getitem__,
        )
        self.images = SimpleNamespace(get=lambda reference: SimpleNamespace(id=IMAGE_ID))


def test_realizer_labels_and_stand_in_image_tags_are_not_drift() -> None:
    own = {"microstack.system-test.session": "dev-x1", "microstack.system-test.owner": "4242"}
    network_inputs = {"name": "dev-backend", "driver": "bridge", "internal": True}
    container_inputs = declared_container(image="redis:7@sha256:mock", cpus="0.5")
    program = Program(
        resources=[
            Resource(NETWORK, "networks-backend", network_inputs, network_inputs),
            Resource(VOLUME, "redis-data", {"name": "dev-redis"}, {"name": "dev-redis"}),
            Resource(REMOTE_IMAGE, "redis-image", {"name": "redis:7"}, {"imageId": "redis:7@sha256:mock"}),
            Resource(CONTAINER, "redis-container", container_inputs, container_inputs),
        ],
        outputs={},
    )
    client = _StubDocker(
        networks={"n1": network_inspect(ipam=[], Name="dev-backend", Internal=True, Labels=own)},
        volumes={"dev-redis": {"Name": "dev-redis", "Driver": "local", "Labels": own, "Options": None}},
        containers={
            "c1": container_inspect(config={"Image": "microstack-test/redis:1234"}, host={"NanoCpus": 500_000_000})
        },
    )
    realized = Realized(
        networks={"networks-backend": "n1"},
        volumes={"redis-data": "dev-redis"},
        containers={"redis-container": "c1"},
        images={"redis-image": "microstack-test/redis:1234"},
    )
    assert readback_changes(program, client, realized) == []


def test_drift_is_reported_by_resource_name() -> None:
    container_inputs = declared_container(cpus="1")
    program = Program(resources=[Resource(CONTAINER, "postgres-container", container_inputs, {})], outputs={})
    client = _StubDocker({}, {}, {"c1": container_inspect(host={"NanoCpus": 10**9})})
    changes = readback_changes(program, client, Realized(containers={"postgres-container": "c1"}))
    assert changes == [Drift("postgres-container", "cpus", "1", "1.0", replaces=True)]
