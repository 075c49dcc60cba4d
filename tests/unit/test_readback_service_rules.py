"""The provider's Swarm read-back, ported in tests/support/readback_service.py, checked against upstream's values.

Where upstream has values they are used: the acceptance test
TestAccDockerService_FullSpec of kreuzwerker/terraform-provider-docker v3.9.0
(resource_docker_service_test.go, its configuration
testdata/resources/docker_service/testAccDockerServiceFullSpec.tf and the
state it asserts after apply, whose follow-up plan must be empty). The rest
are synthetic inspect JSONs, and the program's own swarm stack: every
docker.Service it declares, stored the way Swarm stores it and read back,
must show no change.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from components.platform.swarm import IGNORE_CHANGES
from tests.support.program import SERVICE, run_stack_file
from tests.support.readback import Change, ReadPending, UnknownField
from tests.support.readback_service import (
    diff_secret,
    diff_service,
    diff_service_config,
    failure_ratio_string,
    familiar_with_default_tag,
    parse_go_duration,
    read_secret,
    read_service,
    read_service_config,
    short_dur,
    stored_service,
)

SECOND = 10**9
DIGEST = "sha256:" + "ab" * 32
NETWORK_ID = "3b4f1e0d5c6a" * 5 + "abcd"


def minimal(**top: Any) -> dict[str, Any]:
    """A service as the program declares one, trimmed to what a test needs."""
    return {"name": "web", "taskSpec": {"containerSpec": {"image": f"nginx:1.27@{DIGEST}"}}, **top}


def with_task(declared: dict[str, Any], **task: Any) -> dict[str, Any]:
    return {**declared, "taskSpec": {**declared["taskSpec"], **task}}


def with_container(declared: dict[str, Any], **container: Any) -> dict[str, Any]:
    spec = declared["taskSpec"]
    return with_task(declared, containerSpec={**spec["containerSpec"], **container})


def round_trip(declared: dict[str, Any], **stored: Any) -> list[Change]:
    """Create as the provider would, read back, plan."""
    return diff_service(declared, read_service(stored_service(declared, **stored), declared))


# --- the Go formatters ------------------------------------------------------------


@pytest.mark.parametrize(
    ("ns", "expected"),
    [
        # testAccDockerServiceFullSpec.tf values, asserted back unchanged
        (5 * 10**6, "5ms"),
        (10 * 3600 * SECOND, "10h"),
        (10 * SECOND, "10s"),
        (3 * SECOND, "3s"),
        # shortDur's trimming
        (60 * SECOND, "1m"),
        (90 * SECOND, "1m30s"),
        (3600 * SECOND, "1h"),
        (5400 * SECOND, "1h30m"),
        (3601 * SECOND, "1h0m1s"),
        (0, "0s"),
    ],
)
def test_durations_read_back_through_short_dur(ns: int, expected: str) -> None:
    assert short_dur(ns) == expected
    assert parse_go_duration(expected) == ns


@pytest.mark.parametrize(("text", "ns"), [("", 0), ("bogus", 0), ("1.5s", 1_500_000_000), ("1h30m", 5400 * SECOND)])
def test_parse_go_duration_ignores_errors_as_create_does(text: str, ns: int) -> None:
    assert parse_go_duration(text) == ns


@pytest.mark.parametrize(
    ("declared", "read_back"),
    # FullSpec: 0.1 and 0.9; PartialReplicationConfig: 0.5; the rest one decimal of a float32
    [("0.1", "0.1"), ("0.9", "0.9"), ("0.5", "0.5"), ("0.0", "0.0"), ("0.25", "0.2"), ("0.15", "0.2"), ("1", "1.0")],
)
def test_failure_ratio_reads_back_with_one_decimal(declared: str, read_back: str) -> None:
    assert failure_ratio_string(float(declared)) == read_back


@pytest.mark.parametrize(
    ("image", "stored"),
    [
        ("nginx", "nginx:latest"),
        ("docker.io/library/redis:7", "redis:7"),
        ("index.docker.io/me/app@" + DIGEST, "me/app@" + DIGEST),
        ("registry.example.com/microstack/api:1@" + DIGEST, "registry.example.com/microstack/api:1@" + DIGEST),
        ("localhost:5000/a", "localhost:5000/a:latest"),
    ],
)
def test_the_docker_client_stores_images_in_familiar_form_with_a_tag(image: str, stored: str) -> None:
    assert familiar_with_default_tag(image) == stored


# --- upstream's full spec -----------------------------------------------------------

FULL_SPEC: dict[str, Any] = {
    "name": "tftest-service-basic",
    "labels": [{"label": "servicelabel", "value": "true"}],
    "taskSpec": {
        "containerSpec": {
            "image": "127.0.0.1:15000/tftest-service:v1@" + DIGEST,
            "labels": [{"label": "foo", "value": "bar"}],
            "commands": ["ls"],
            "args": ["-las"],
            "hostname": "my-fancy-service",
            "env": {"MYFOO": "BAR", "URI": "/api-call?param1=value1"},
            "dir": "/root",
            "user": "root",
            "groups": ["docker", "foogroup"],
            "readOnly": True,
            "mounts": [
                {
                    "target": "/mount/test",
                    "source": "tftest-volume",
                    "type": "volume",
                    "readOnly": True,
                    "volumeOptions": {
                        "noCopy": True,
                        "labels": [{"label": "foo", "value": "bar"}],
                        "driverName": "random-driver",
                        "driverOptions": {"op1": "val1"},
                    },
                }
            ],
            "stopSignal": "SIGTERM",
            "stopGracePeriod": "10s",
            "healthcheck": {
                "tests": ["CMD", "curl", "-f", "localhost:8080/health"],
                "interval": "5s",
                "timeout": "2s",
                "retries": 4,
            },
            "hosts": [{"host": "testhost", "ip": "10.0.1.0"}],
            "dnsConfig": {"nameservers": ["8.8.8.8"], "searches": ["example.org"], "options": ["timeout:3"]},
            "secrets": [
                {
                    "secretId": "secret-id",
                    "secretName": "tftest-mysecret",
                    "fileName": "/secrets.json",
                    "fileMode": 0o777,
                }
            ],
            "configs": [{"configId": "config-id", "configName": "tftest-myconfig", "fileName": "/configs.json"}],
        },
        "resources": {"limits": {"nanoCpus": 1000000, "memoryBytes": 536870912}},
        "restartPolicy": {"condition": "on-failure", "delay": "3s", "maxAttempts": 4, "window": "10s"},
        "placement": {"constraints": ["node.role==manager"], "prefs": ["spread=node.role.manager"], "maxReplicas": 2},
        "forceUpdate": 0,
        "runtime": "container",
        "networksAdvanceds": [{"name": NETWORK_ID}],
        "logDriver": {"name": "json-file", "options": {"max-size": "10m", "max-file": "3"}},
    },
    "mode": {"replicated": {"replicas": 2}},
    "updateConfig": {
        "parallelism": 2,
        "delay": "10s",
        "failureAction": "pause",
        "monitor": "5s",
        "maxFailureRatio": "0.1",
        "order": "start-first",
    },
    "rollbackConfig": {
        "parallelism": 2,
        "delay": "5ms",
        "failureAction": "pause",
        "monitor": "10h",
        "maxFailureRatio": "0.9",
        "order": "stop-first",
    },
    "endpointSpec": {
        "mode": "vip",
        "ports": [
            {"name": "random", "protocol": "tcp", "targetPort": 8080, "publishedPort": 8080, "publishMode": "ingress"}
        ],
    },
}


def test_upstream_full_spec_reads_back_unchanged() -> None:
    assert round_trip(FULL_SPEC) == []


def test_upstream_full_spec_state_matches_what_the_acceptance_test_asserts() -> None:
    state = read_service(stored_service(FULL_SPEC), FULL_SPEC)
    task = state["taskSpec"]
    container = task["containerSpec"]
    assert container["env"]["URI"] == "/api-call?param1=value1"
    assert container["stopGracePeriod"] == "10s"
    assert container["healthcheck"] == {
        "tests": ["CMD", "curl", "-f", "localhost:8080/health"],
        "interval": "5s",
        "timeout": "2s",
        "startPeriod": "0s",
        "retries": 4,
    }
    assert container["hosts"] == [{"host": "testhost", "ip": "10.0.1.0"}]
    assert task["restartPolicy"] == {"condition": "on-failure", "delay": "3s", "maxAttempts": 4, "window": "10s"}
    assert task["placement"]["maxReplicas"] == 2
    assert task["forceUpdate"] == 0
    assert state["updateConfig"]["maxFailureRatio"] == "0.1"
    assert state["rollbackConfig"] == {
        "parallelism": 2,
        "delay": "5ms",
        "failureAction": "pause",
        "monitor": "10h",
        "maxFailureRatio": "0.9",
        "order": "stop-first",
    }
    assert state["endpointSpec"]["ports"] == FULL_SPEC["endpointSpec"]["ports"]
    # Defaults the plan compares: file_uid/gid "0", mode 0o444 as a plain number.
    (config,) = container["configs"]
    assert (config["fileUid"], config["fileGid"], config["fileMode"]) == ("0", "0", 292)


# --- synthetic inspect JSONs ------------------------------------------------------------


def test_a_network_declared_by_name_reads_back_as_its_id_and_replaces() -> None:
    declared = with_task(minimal(), networksAdvanceds=[{"name": "backend", "aliases": ["api"]}])
    inspect = stored_service(declared)
    inspect["Spec"]["TaskTemplate"]["Networks"][0]["Target"] = NETWORK_ID
    (change,) = diff_service(declared, read_service(inspect, declared))
    assert change.path == "taskSpec.networksAdvanceds"
    assert change.replaces
    assert change.state[0]["name"] == NETWORK_ID


def test_a_network_declared_by_id_reads_back_unchanged() -> None:
    declared = with_task(minimal(), networksAdvanceds=[{"name": NETWORK_ID, "aliases": ["api"]}])
    assert round_trip(declared) == []


@pytest.mark.parametrize(
    ("declared", "path", "read_back"),
    [
        (with_container(minimal(), stopGracePeriod="60s"), "taskSpec.containerSpec.stopGracePeriod", "1m"),
        (minimal(updateConfig={"monitor": "60s"}), "updateConfig.monitor", "1m"),
        (minimal(rollbackConfig={"delay": "90s"}), "rollbackConfig.delay", "1m30s"),
        (
            with_container(minimal(), healthcheck={"tests": ["CMD", "true"], "startPeriod": "120s"}),
            "taskSpec.containerSpec.healthcheck.startPeriod",
            "2m",
        ),
        (minimal(updateConfig={"maxFailureRatio": "0.25"}), "updateConfig.maxFailureRatio", "0.2"),
    ],
)
def test_a_value_not_spelled_as_read_back_is_an_update(declared: dict[str, Any], path: str, read_back: str) -> None:
    changes = round_trip(declared)
    assert [(c.path, c.state, c.replaces) for c in changes] == [(path, read_back, False)]


def test_a_tag_reads_back_pinned_to_the_registry_digest() -> None:
    declared = with_container(minimal(), image="nginx:1.27")
    changes = round_trip(declared, registry_digest=DIGEST)
    assert changes == [Change("taskSpec.containerSpec.image", "nginx:1.27", f"nginx:1.27@{DIGEST}", replaces=False)]


def test_a_tag_reads_back_unchanged_when_the_registry_cannot_be_asked() -> None:
    assert round_trip(with_container(minimal(), image="nginx:1.27")) == []


def test_an_omitted_restart_delay_reads_back_as_zero() -> None:
    declared = with_task(minimal(), restartPolicy={"condition": "any", "maxAttempts": 0, "window": "0s"})
    assert round_trip(declared) == [Change("taskSpec.restartPolicy.delay", None, "0s", replaces=False)]


def test_an_undeclared_restart_policy_is_no_change() -> None:
    state = read_service(stored_service(minimal()), minimal())
    assert state["taskSpec"]["restartPolicy"] == {"condition": "any", "maxAttempts": 0}
    assert diff_service(minimal(), state) == []


def test_platforms_filled_at_create_are_a_change_unless_ignored() -> None:
    declared = with_task(minimal(), placement={"maxReplicas": 0})
    state = read_service(stored_service(declared, registry_digest=DIGEST, platforms=[("amd64", "linux")]), declared)
    (change,) = diff_service(declared, state)
    assert (change.path, change.replaces) == ("taskSpec.placement.platforms", False)
    assert diff_service(declared, state, ignore_changes=IGNORE_CHANGES) == []


def test_an_ignore_changes_path_the_schema_lacks_is_rejected() -> None:
    with pytest.raises(UnknownField, match="no attribute 'platform'"):
        diff_service(minimal(), read_service(stored_service(minimal()), minimal()), ["taskSpec.placement.platform"])


def test_a_declared_field_the_port_does_not_know_is_rejected() -> None:
    declared = with_container(minimal(), startInterval="1s")
    with pytest.raises(UnknownField, match="startInterval"):
        diff_service(declared, {})


def test_env_values_keep_everything_after_the_first_equals_sign() -> None:
    env = {"URI": "/api-call?param1=value1", "EMPTY": "", "INSTANCE_NAME": "api-{{.Task.Slot}}"}
    declared = with_container(minimal(), env=env)
    state = read_service(stored_service(declared), declared)
    assert state["taskSpec"]["containerSpec"]["env"] == env
    assert diff_service(declared, state) == []


def test_sets_compare_regardless_of_order() -> None:
    secrets = [
        {"secretId": "a", "secretName": "a", "fileName": "/run/secrets/a", "fileMode": 292},
        {"secretId": "b", "secretName": "b", "fileName": "/run/secrets/b"},
    ]
    declared = with_task(
        with_container(minimal(), secrets=secrets), placement={"constraints": ["node.role==worker", "node.labels.x==1"]}
    )
    inspect = stored_service(declared)
    template = inspect["Spec"]["TaskTemplate"]
    template["ContainerSpec"]["Secrets"].reverse()
    template["Placement"]["Constraints"].reverse()
    assert diff_service(declared, read_service(inspect, declared)) == []


@pytest.mark.parametrize("mode", [0o400, 0o444])
def test_file_mode_reads_back_as_a_plain_number_and_a_change_is_an_update(mode: int) -> None:
    declared = with_container(minimal(), configs=[{"configId": "c", "fileName": "/etc/app.conf", "fileMode": mode}])
    inspect = stored_service(declared)
    assert inspect["Spec"]["TaskTemplate"]["ContainerSpec"]["Configs"][0]["File"]["Mode"] == mode
    assert round_trip(declared) == []
    inspect["Spec"]["TaskTemplate"]["ContainerSpec"]["Configs"][0]["File"]["Mode"] = 0o440
    (change,) = diff_service(declared, read_service(inspect, declared))
    assert (change.path, change.replaces) == ("taskSpec.containerSpec.configs", False)


@pytest.mark.parametrize(
    ("field", "value", "engine", "replaces"),
    [
        ("labels", [{"label": "a", "value": "1"}], {"Labels": {"a": "2"}}, True),
        ("sysctl", {"net.core.somaxconn": "1024"}, {"Sysctls": {"net.core.somaxconn": "512"}}, True),
        ("hosts", [{"host": "db", "ip": "10.0.0.2"}], {"Hosts": ["10.0.0.3 db"]}, True),
        ("args", ["serve"], {"Args": ["run"]}, False),
        ("user", "1000:0", {"User": "0:0"}, False),
    ],
)
def test_force_new_container_fields_replace_the_service(
    field: str, value: Any, engine: dict[str, Any], replaces: bool
) -> None:
    declared = with_container(minimal(), **{field: value})
    inspect = stored_service(declared)
    inspect["Spec"]["TaskTemplate"]["ContainerSpec"].update(engine)
    (change,) = diff_service(declared, read_service(inspect, declared))
    assert (change.path, change.replaces) == (f"taskSpec.containerSpec.{field}", replaces)


def test_service_labels_are_read_whole_and_updated_in_place() -> None:
    declared = minimal(labels=[{"label": "microstack.role", "value": "api"}])
    inspect = stored_service(declared)
    inspect["Spec"]["Labels"]["added.by.hand"] = "1"
    (change,) = diff_service(declared, read_service(inspect, declared))
    assert (change.path, change.replaces) == ("labels", False)
    # Undeclared labels are Computed: whatever Swarm has stands.
    assert diff_service(minimal(), read_service(inspect, minimal())) == []


@pytest.mark.parametrize(
    ("declared_mode", "engine_mode", "path"),
    [
        ({"replicated": {"replicas": 2}}, {"Replicated": {"Replicas": 3}}, "mode.replicated.replicas"),
        ({"global": True}, {"Replicated": {"Replicas": 1}}, "mode.global"),
    ],
)
def test_mode_changes_inside_the_block_are_updates(
    declared_mode: dict[str, Any], engine_mode: dict[str, Any], path: str
) -> None:
    declared = minimal(mode=declared_mode)
    inspect = stored_service(declared)
    inspect["Spec"]["Mode"] = engine_mode
    changes = diff_service(declared, read_service(inspect, declared))
    assert [(c.path, c.replaces) for c in changes] == [(path, False)]


def test_a_global_service_reads_back_without_replicas() -> None:
    declared = minimal(mode={"global": True})
    state = read_service(stored_service(declared), declared)
    assert state["mode"] == {"global": True}
    assert diff_service(declared, state) == []


def test_ports_are_read_from_the_runtime_endpoint() -> None:
    port = {"targetPort": 8080, "publishMode": "ingress"}
    declared = minimal(endpointSpec={"ports": [port]})
    state = read_service(stored_service(declared), declared)
    assert state["endpointSpec"] == {
        "mode": "vip",
        "ports": [
            {"name": "", "protocol": "tcp", "targetPort": 8080, "publishedPort": 30000, "publishMode": "ingress"}
        ],
    }
    # published_port is Optional + Computed: Swarm's choice stands.
    assert diff_service(declared, state) == []
    pinned = minimal(endpointSpec={"ports": [{**port, "publishedPort": 8080}]})
    (change,) = diff_service(pinned, state)
    assert (change.path, change.state, change.replaces) == ("endpointSpec.ports[0].publishedPort", 30000, False)


def test_read_waits_while_no_endpoint_mode_is_visible() -> None:
    inspect = stored_service(minimal())
    inspect["Endpoint"] = {}
    inspect["Spec"]["EndpointSpec"] = {}
    with pytest.raises(ReadPending):
        read_service(inspect, minimal())


def test_converge_config_is_never_read_and_keeps_the_declared_value() -> None:
    declared = minimal(convergeConfig={"delay": "7s", "timeout": "5m44s"})
    state = read_service(stored_service(declared), declared)
    assert state["convergeConfig"] == {"delay": "7s", "timeout": "5m44s"}
    assert diff_service(declared, state) == []


# --- secrets and configs ------------------------------------------------------------


def test_a_secret_reads_back_its_name_only() -> None:
    declared = {"data": base64.b64encode(b"hunter2").decode(), "labels": [{"label": "microstack.stack", "value": "x"}]}
    inspect = {"ID": "s1", "Spec": {"Name": "secret-db-1a2b3c4", "Labels": {}}}
    state = read_secret(inspect, declared)
    assert state["name"] == "secret-db-1a2b3c4"
    assert diff_secret(declared, state) == []
    (change,) = diff_secret({**declared, "name": "secret-db"}, state)
    assert (change.path, change.replaces) == ("name", True)


@pytest.mark.parametrize(
    ("declared_data", "changed"),
    [(base64.b64encode(b"port 6379\n").decode(), False), (base64.b64encode(b"port 6379\n").decode().rstrip("="), True)],
)
def test_config_data_reads_back_as_padded_standard_base64(declared_data: str, changed: bool) -> None:
    inspect = {"ID": "c1", "Spec": {"Name": "redis-conf-1a2b3c4", "Data": base64.b64encode(b"port 6379\n").decode()}}
    declared = {"data": declared_data}
    changes = diff_service_config(declared, read_service_config(inspect, declared))
    assert [(c.path, c.replaces) for c in changes] == ([("data", True)] if changed else [])


# --- the program --------------------------------------------------------------------


def test_every_service_of_the_swarm_stack_reads_back_unchanged() -> None:
    program = run_stack_file("swarm", secrets={"registryPassword": "x"})
    services = program.of_type(SERVICE)
    assert services
    for service in services:
        ignored = service.options.get("ignore_changes") or []
        # As on a real create: the registry answers and fills the platforms.
        inspect = stored_service(service.inputs, registry_digest=DIGEST, platforms=[("amd64", "linux")])
        state = read_service(inspect, service.inputs)
        assert diff_service(service.inputs, state, ignored) == [], service.name
