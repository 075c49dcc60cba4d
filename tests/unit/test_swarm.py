"""The swarm platform under mocks: the same invariants as containers, and the provider's read-back facts.

The read-back facts are those of kreuzwerker/terraform-provider-docker v3.9.0
(resource_docker_service_structures.go): durations in shortDur's spelling,
max_failure_ratio with one decimal, networks by ID, images by digest, secret
file modes as numbers. A value the provider spells differently would be a
change on every `pulumi up` (a replacement where the field is ForceNew).
"""

from __future__ import annotations

import base64
import re

import pulumi
import pytest

from components import provider_values
from components.common import HEALTH_INTERVAL_SECONDS, HEALTH_RETRIES
from components.config import HealthCheckConfig, parse_config
from components.platform.swarm import FILE_MODE, health_window_seconds
from microstack_common import contract
from tests.support.program import (
    CONTAINER,
    NETWORK,
    READY_GATE,
    SECRET,
    SERVICE,
    SERVICE_CONFIG,
    VOLUME,
    Program,
    Resource,
    run_program,
    run_stack_file,
    stack_file_config,
)
from tests.support.readback_service import parse_go_duration
from tests.support.workloads import by_role, of_role, workloads
from tests.unit.conftest import STACKS, SWARM_SECRETS, evaluate_stack

_GO_DURATION = re.compile(r"^(\d+h)?(\d+m)?(\d+s)?$")


def swarm_stack(**overrides: object) -> Program:
    if not overrides:
        return evaluate_stack("swarm")
    return run_stack_file("swarm", secrets=SWARM_SECRETS, overrides=overrides)


@pytest.fixture(scope="module")
def swarm() -> Program:
    return swarm_stack()


@pytest.fixture(scope="module", params=[*STACKS, "swarm"])
def any_stack(request: pytest.FixtureRequest) -> Program:
    """Every stack file, containers and swarm."""
    return swarm_stack() if request.param == "swarm" else evaluate_stack(request.param)


def services(program: Program) -> dict[str, Resource]:
    return {s.inputs["name"].rsplit("-", 1)[-1]: s for s in program.of_type(SERVICE)}


def service_of(program: Program, role: str) -> Resource:
    return by_role(program, role).resource


# --- the invariants both platforms share -----------------------------------------------------------


def test_every_workload_has_health_limits_restart_and_graceful_stop(any_stack: Program) -> None:
    views = workloads(any_stack)
    assert views
    for view in views:
        name = view.resource.name
        assert view.memory_mb > 0, f"{name} has no memory limit"
        assert view.cpus > 0, f"{name} has no CPU limit"
        assert view.stop_seconds > 0, f"{name} has no graceful stop"
        if view.is_job:
            continue
        assert view.health_test and view.health_test[0] in {"CMD", "CMD-SHELL"}, f"{name} has no health check"
        assert view.restart in {"unless-stopped", "always", "on-failure", "any"}, f"{name} restart={view.restart}"


def test_backend_is_internal_and_nothing_only_on_internal_networks_publishes_to_the_network(any_stack: Program) -> None:
    internal = {n.name for n in any_stack.of_type(NETWORK) if n.inputs.get("internal")}
    assert "networks-backend" in internal
    for view in workloads(any_stack):
        if view.networks and view.networks <= internal:
            for port in view.ports:
                assert port.host_ip == "127.0.0.1", f"{view.resource.name} publishes {port}"


def test_data_stores_are_only_on_the_backend_and_publish_nothing(any_stack: Program) -> None:
    for role in ("postgres", "redis"):
        view = by_role(any_stack, role)
        assert view.networks == {"networks-backend"}, role
        assert not view.ports, role


def test_no_env_holds_a_secret_and_every_secret_is_a_file(any_stack: Program) -> None:
    secrets = any_stack.secret_values()
    assert secrets
    for view in workloads(any_stack):
        for key, value in view.env.items():
            assert not any(s in value for s in secrets), f"{view.resource.name} has a secret in env {key}"
    assert contract.POSTGRES_PASSWORD_FILE in by_role(any_stack, "postgres").secret_files
    for role in ("api", "auth"):
        for view in of_role(any_stack, role):
            assert {
                contract.POSTGRES_PASSWORD_FILE,
                contract.REDIS_PASSWORD_FILE,
                contract.JWT_SIGNING_KEY_FILE,
            } <= view.secret_files, view.resource.name


@pytest.mark.parametrize("stack", [*STACKS, "swarm"])
def test_replicas_follow_the_config(stack: str) -> None:
    program = swarm_stack() if stack == "swarm" else evaluate_stack(stack)
    project, _ = stack_file_config(stack)
    values = {key.removeprefix("microstack:"): value for key, value in project.items()}
    config = parse_config(values, secret_keys_present=["registryPassword", "tlsCertificate", "tlsPrivateKey"])
    for role, configured in (("api", config.api.replicas), ("auth", config.auth.replicas)):
        # One container per replica, or one service with that many replicas.
        assert sum(view.replicas for view in of_role(program, role)) == configured, (stack, role)


# --- swarm: what each platform makes of a workload -------------------------------------------------


def test_swarm_declares_services_not_containers_except_the_one_off_jobs(swarm: Program) -> None:
    assert {c.name for c in swarm.of_type(CONTAINER)} == {"logging-setup", "logging-kibana-setup"}
    # The jobs' exit codes, and after every service that Swarm runs what was declared (components/gate.py).
    gates = {g.name: g.inputs["condition"] for g in swarm.of_type(READY_GATE)}
    assert gates.pop("logging-setup-ready") == "exited-zero"
    assert gates.pop("logging-kibana-setup-ready") == "exited-zero"
    assert set(gates.values()) == {"service-updated"} and len(gates) == len(swarm.of_type(SERVICE))
    roles = {w.role for w in workloads(swarm) if w.resource.type == SERVICE}
    assert roles == {
        "api",
        "auth",
        "postgres",
        "postgres-backup",
        "redis",
        "proxy",
        "elasticsearch",
        "logstash",
        "kibana",
    }
    # Swarm creates a task's named volume on its node; a Volume resource would exist on the manager only.
    assert not swarm.of_type(VOLUME)


def test_the_kibana_setup_job_reaches_the_kibana_service_after_it_converged(swarm: Program) -> None:
    job = swarm.container("logging-kibana-setup")
    # Created after the gate that waits until Swarm runs Kibana (healthy).
    assert [getattr(d, "_name", None) for d in job.options["depends_on"]] == ["logging-kibana-ready"]
    assert swarm.named("logging-kibana-ready").inputs["condition"] == "service-updated"
    # It joins the attachable logging overlay, where the Kibana task answers to its alias.
    logging_id = swarm.named("networks-logging").outputs.get("id") or "networks-logging-id"
    assert [n["name"] for n in job.inputs["networksAdvanced"]] == [swarm.named("networks-logging").inputs["name"]]
    kibana = service_of(swarm, "kibana")
    on_logging = [n for n in kibana.inputs["taskSpec"]["networksAdvanceds"] if n["name"] == logging_id]
    assert on_logging and on_logging[0]["aliases"] == [contract.Alias.KIBANA]


def test_containers_stacks_declare_no_swarm_resources(stack_program: Program) -> None:
    for kind in (SERVICE, SECRET, SERVICE_CONFIG):
        assert not stack_program.of_type(kind)


def test_networks_are_overlays_without_fixed_addresses(swarm: Program) -> None:
    networks = {n.name: n.inputs for n in swarm.of_type(NETWORK)}
    assert {n["driver"] for n in networks.values()} == {"overlay"}
    assert networks["networks-backend"]["internal"] is True
    assert networks["networks-logging"]["internal"] is True
    # Attachable only where one-off containers join: the ELK setup jobs.
    assert [name for name, n in networks.items() if n.get("attachable")] == ["networks-logging"]
    assert not any(n.get("ipamConfigs") for n in networks.values())


def test_services_name_networks_by_id(swarm: Program) -> None:
    """By name the provider replaces the service on every `up` (upstream issue #648)."""
    ids = {n.outputs.get("id") or f"{n.name}-id" for n in swarm.of_type(NETWORK)}
    names = {n.inputs["name"] for n in swarm.of_type(NETWORK)}
    for service in swarm.of_type(SERVICE):
        for attachment in service.inputs["taskSpec"]["networksAdvanceds"]:
            assert attachment["name"] in ids and attachment["name"] not in names, service.name


def test_service_images_are_pinned_by_digest(swarm: Program) -> None:
    for service in swarm.of_type(SERVICE):
        image = service.inputs["taskSpec"]["containerSpec"]["image"]
        assert re.search(r"@sha256:[0-9a-f]{64}$", image), f"{service.name}: {image}"


def _durations(value: object, path: str = "") -> list[tuple[str, str]]:
    keys = {"delay", "monitor", "timeout", "interval", "startPeriod", "stopGracePeriod", "window"}
    found: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key in keys and isinstance(item, str):
                found.append((f"{path}.{key}", item))
            else:
                found.extend(_durations(item, f"{path}.{key}"))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_durations(item, f"{path}[{index}]"))
    return found


def test_every_duration_is_spelled_as_the_provider_reads_it_back(swarm: Program) -> None:
    checked = 0
    for service in swarm.of_type(SERVICE):
        for path, text in _durations(service.inputs):
            assert text and _GO_DURATION.match(text), f"{service.name}{path}: {text!r}"
            assert provider_values.short_duration(_to_seconds(text)) == text, f"{service.name}{path}: {text!r}"
            checked += 1
    assert checked > 50


def test_failure_ratios_have_one_decimal(swarm: Program) -> None:
    for service in swarm.of_type(SERVICE):
        for block in ("updateConfig", "rollbackConfig"):
            assert re.fullmatch(r"\d\.\d", service.inputs[block]["maxFailureRatio"]), service.name


def test_restart_policy_declares_all_four_fields(swarm: Program) -> None:
    """An omitted delay or window reads back as "0s" against "" (createServiceRestartPolicy)."""
    for service in swarm.of_type(SERVICE):
        policy = service.inputs["taskSpec"]["restartPolicy"]
        assert set(policy) == {"condition", "delay", "maxAttempts", "window"}, service.name


def test_api_and_auth_roll_one_at_a_time_start_first_and_roll_back(swarm: Program) -> None:
    for role, replicas in (("api", 4), ("auth", 2)):
        inputs = service_of(swarm, role).inputs
        assert inputs["mode"] == {"replicated": {"replicas": replicas}}
        update = inputs["updateConfig"]
        assert update["parallelism"] == 1
        assert update["order"] == "start-first"
        assert update["failureAction"] == "rollback"
        health = inputs["taskSpec"]["containerSpec"]["healthcheck"]
        window = health_window_seconds(30)
        assert health["startPeriod"] == "30s"
        assert _to_seconds(update["monitor"]) >= window >= HEALTH_INTERVAL_SECONDS * HEALTH_RETRIES
        # Converge: `pulumi up` waits for the whole rollout and fails on rollback.
        assert _to_seconds(inputs["convergeConfig"]["timeout"]) >= replicas * window
        assert inputs["rollbackConfig"]["order"] == "start-first"
        assert inputs["endpointSpec"] == {"mode": "dnsrr"}
        # Drain before the stop: the grace period is above the drain time.
        drain = float(inputs["taskSpec"]["containerSpec"]["env"][contract.Env.SHUTDOWN_DRAIN_SECONDS])
        assert _to_seconds(inputs["taskSpec"]["containerSpec"]["stopGracePeriod"]) > drain
        reservation = inputs["taskSpec"]["resources"]["reservation"]
        assert 0 < reservation["memoryBytes"] <= inputs["taskSpec"]["resources"]["limits"]["memoryBytes"]


def test_each_replica_gets_its_own_instance_name_from_the_task_slot(swarm: Program) -> None:
    env = service_of(swarm, "api").inputs["taskSpec"]["containerSpec"]["env"]
    assert env[contract.Env.INSTANCE_NAME] == "api-{{.Task.Slot}}"


@pytest.mark.parametrize(("role", "path"), [("postgres", "/var/lib/postgresql/data"), ("redis", "/data")])
def test_data_stores_stop_first_on_the_labelled_node_with_named_volumes(swarm: Program, role: str, path: str) -> None:
    inputs = service_of(swarm, role).inputs
    assert inputs["mode"] == {"replicated": {"replicas": 1}}
    assert inputs["updateConfig"]["order"] == "stop-first"
    assert inputs["rollbackConfig"]["order"] == "stop-first"
    assert inputs["taskSpec"]["placement"]["constraints"] == ["node.labels.microstack.data == true"]
    # Postgres also mounts its backup repository and socket directory (test_backup.py).
    [mount] = [m for m in inputs["taskSpec"]["containerSpec"]["mounts"] if m["target"] == path]
    assert mount == {"type": "volume", "source": f"microstack-swarm-{role}-data", "target": path, "readOnly": False}


def test_the_proxy_publishes_in_host_mode_on_the_edge_node(swarm: Program) -> None:
    inputs = service_of(swarm, "proxy").inputs
    ports = inputs["endpointSpec"]["ports"]
    assert {p["publishedPort"] for p in ports} == {80, 443}
    assert {(p["publishMode"], p["protocol"]) for p in ports} == {("host", "tcp")}
    placement = inputs["taskSpec"]["placement"]
    assert placement == {"constraints": ["node.labels.microstack.edge == true"], "maxReplicas": 1}
    assert inputs["updateConfig"]["order"] == "stop-first"


def test_logstash_runs_on_every_node_for_each_daemons_gelf_driver(swarm: Program) -> None:
    inputs = service_of(swarm, "logstash").inputs
    assert inputs["mode"] == {"global": True}
    assert "convergeConfig" not in inputs  # the provider's schema: ConflictsWith mode.global
    [port] = inputs["endpointSpec"]["ports"]
    assert (port["publishMode"], port["protocol"], port["targetPort"]) == ("host", "udp", contract.GELF_PORT)
    api_logs = service_of(swarm, "api").inputs["taskSpec"]["logDriver"]
    assert api_logs == {
        "name": "gelf",
        "options": {"gelf-address": f"udp://127.0.0.1:{int(port['publishedPort'])}", "tag": "{{.Name}}"},
    }


def test_secrets_are_swarm_secrets_shared_by_key_and_never_named(swarm: Program) -> None:
    secrets = {s.name: s for s in swarm.of_type(SECRET)}
    password = swarm.named("secrets-postgres-password").outputs["result"]
    shared = secrets["secret-postgres-password"]
    assert base64.b64decode(shared.inputs["data"]).decode() == password
    # Auto-named: a changed value is a new secret beside the old one (create-before-delete).
    assert all("name" not in s.inputs for s in secrets.values())
    users = []
    for service in swarm.of_type(SERVICE):
        for ref in service.inputs["taskSpec"]["containerSpec"].get("secrets", []):
            assert ref["fileMode"] == FILE_MODE == 292
            assert (ref["fileUid"], ref["fileGid"]) == ("0", "0")
            if ref["secretId"] == "secret-postgres-password-id":
                users.append(service.inputs["name"].removeprefix("microstack-swarm-"))
    assert sorted(users) == ["api", "auth", "postgres"]


def test_a_changed_secret_value_changes_the_secret_the_services_mount() -> None:
    before = swarm_stack()
    after = run_stack_file("swarm", secrets={**SWARM_SECRETS, "postgresPassword": "a-new-password"})
    old = before.named("secret-postgres-password").inputs["data"]
    new = after.named("secret-postgres-password").inputs["data"]
    assert old != new and base64.b64decode(new) == b"a-new-password"


def test_rendered_configs_are_service_configs_in_canonical_base64(swarm: Program) -> None:
    configs = swarm.of_type(SERVICE_CONFIG)
    assert "proxy-proxy-conf" in {c.name for c in configs}
    for config in configs:
        data = config.inputs["data"]
        assert base64.b64encode(base64.b64decode(data)).decode() == data


def test_the_proxy_finds_replicas_through_swarm_dns(swarm: Program) -> None:
    [config] = [c for c in swarm.of_type(SERVICE_CONFIG) if c.name == "proxy-proxy-conf"]
    text = base64.b64decode(config.inputs["data"]).decode()
    assert "tasks.microstack-swarm-api" in text and "tasks.microstack-swarm-auth" in text


def test_platform_placement_ignores_what_swarm_fills_from_the_registry(swarm: Program) -> None:
    for service in swarm.of_type(SERVICE):
        assert "taskSpec.placement.platforms" in service.options["ignore_changes"], service.name
        assert service.options["delete_before_replace"], service.name


def _to_seconds(text: str) -> int:
    return parse_go_duration(text) // 10**9


# --- validation --------------------------------------------------------------------------------------


INVALID = [
    (
        {"platform": "swarm", "network": {"frontendSubnet": "172.31.0.0/24"}},
        "network.frontendSubnet",
        "fixed replica addresses exist only with platform 'containers'",
    ),
    ({"platform": "swarm", "proxy": {"bindAddress": "127.0.0.1"}}, "proxy.bindAddress", "must be 0.0.0.0"),
    (
        {"platform": "swarm", "proxy": {"bindAddress": "0.0.0.0"}, "swarm": {"nodes": 3}},
        "microstack:images.registry",
        "required on platform 'swarm' when swarm.nodes is 3",
    ),
    ({"swarm": {"nodes": 2}}, "microstack:swarm", "applies only with microstack:platform: swarm"),
    ({"platform": "kubernetes"}, "microstack:platform", "'containers' or 'swarm'"),
    ({"platform": "swarm", "swarm": {"dataLabel": "Data Node"}}, "microstack:swarm.dataLabel", "pattern"),
]


@pytest.mark.parametrize(("config", "key", "allowed"), INVALID, ids=[c[1] for c in INVALID])
def test_invalid_swarm_config_names_the_key(config: dict, key: str, allowed: str) -> None:
    with pytest.raises(pulumi.RunError) as failure:
        run_program(config)
    assert key in str(failure.value) and allowed in str(failure.value)


def test_a_remote_manager_needs_a_registry() -> None:
    with pytest.raises(pulumi.RunError) as failure:
        run_program(
            {"platform": "swarm", "proxy": {"bindAddress": "0.0.0.0"}},
            provider_config={"docker:host": "ssh://deploy@manager-1"},
        )
    assert "microstack:images.registry" in str(failure.value)
    assert "docker:host is ssh://deploy@manager-1" in str(failure.value)


def test_a_single_local_node_needs_no_registry() -> None:
    program = run_program({"platform": "swarm", "proxy": {"bindAddress": "0.0.0.0"}})
    image = by_role(program, "api").resource.inputs["taskSpec"]["containerSpec"]["image"]
    # No registry, so no digest: the tag, a digest of the source, is the pin.
    assert re.fullmatch(r"microstack-dev/api:[0-9a-f]{16}", image)


def test_a_service_gate_waits_again_exactly_when_its_service_changes(swarm: Program) -> None:
    def digests(program: Program) -> dict[str, str]:
        return {g.name: g.inputs["specDigest"] for g in program.of_type(READY_GATE) if "specDigest" in g.inputs}

    before, scaled = digests(swarm), digests(swarm_stack(api={"replicas": 2}))
    assert before["api-ready"] != scaled.pop("api-ready")
    before.pop("api-ready")
    assert before == scaled


def test_the_cache_probe_answers_within_the_proxys_shortest_check_timeout() -> None:
    """A hung Redis must not make HAProxy's check time out (services/common/microstack_common/health.py)."""
    from components.proxy.model import HealthCheck
    from microstack_common.health import CACHE_CHECK_TIMEOUT_SECONDS

    minimum = next(m.ge for m in HealthCheckConfig.model_fields["interval_seconds"].metadata if hasattr(m, "ge"))
    assert HealthCheck(interval_seconds=minimum).timeout > CACHE_CHECK_TIMEOUT_SECONDS
