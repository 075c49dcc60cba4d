"""The Elk component under Pulumi mocks: what it declares, looked up by type and name.

The component is built on its own (a logging network and two passwords as its
inputs), so these tests hold whatever the rest of the program does; the
stack-wide invariants (every container's limits, secrets never in env) are
checked over the whole program in test_invariants.py.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pulumi
import pulumi_docker as docker
import pytest
import yaml
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import run_pulumi_func

from components.common import LABEL_ROLE, RESTART_POLICY, ROLE_JOB, SECRET_FILE_MODE
from components.config import ImagesConfig, LoggingConfig, StackConfig
from components.elk import Elk, ElkArgs, render
from components.elk.component import ES_DATA_DIR, KIBANA_CONFIG_FILE, LOGSTASH_PIPELINE_FILE
from components.engine import DockerConnection
from components.platform.containers import ContainersPlatform
from microstack_common import contract
from tests.support.program import NETWORK, REMOTE_IMAGE, VOLUME, Program, RecordingMocks, Resource

ELASTIC_PASSWORD = "mockElasticPassw0rd"
KIBANA_PASSWORD = "mockKibanaSystemPassw0rd"
LOGGING_NETWORK = "microstack-test-logging"
PREFIX = "microstack-test"

JOBS = ("logging-setup", "logging-kibana-setup")
ELK_CONTAINERS = ("logging-elasticsearch", "logging-logstash", "logging-kibana", *JOBS)
LONG_RUNNING = ("logging-elasticsearch", "logging-logstash", "logging-kibana")


def evaluate(**logging: Any) -> tuple[Program, dict[str, dict[str, Any]]]:
    """Build Elk under mocks with LoggingConfig(enabled=True, **logging); return resources and their options."""
    config = LoggingConfig(enabled=True, **logging)
    mocks = RecordingMocks()
    options: dict[str, dict[str, Any]] = {}

    def record(args: pulumi.ResourceTransformationArgs) -> None:
        # The component passes depends_on as a list of resources.
        depends_on = args.opts.depends_on if isinstance(args.opts.depends_on, list) else []
        options[args.name] = {
            "retain_on_delete": bool(args.opts.retain_on_delete),
            "depends_on": [getattr(r, "_name", None) for r in depends_on],
        }

    def build() -> None:
        pulumi.runtime.register_stack_transformation(record)
        network = docker.Network("logging-network", name=LOGGING_NETWORK, internal=True)
        Elk(
            "logging",
            ElkArgs(
                config=config,
                images=ImagesConfig(),
                prefix=PREFIX,
                stack="test",
                network=network,
                elastic_password=pulumi.Output.secret(ELASTIC_PASSWORD),
                kibana_system_password=pulumi.Output.secret(KIBANA_PASSWORD),
                platform=ContainersPlatform(DockerConnection()),
            ),
        )

    pulumi_settings.reset_options(project="microstack", stack="test")
    pulumi_settings.set_root_resource(None)  # type: ignore[arg-type]
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        pulumi.runtime.set_mocks(mocks, project="microstack", stack="test", preview=False)
        loop.run_until_complete(run_pulumi_func(build))
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    return Program(resources=list(mocks.resources), outputs={}), options


@pytest.fixture(scope="module")
def elk() -> Program:
    return evaluate(
        elasticsearch_heap_mb=768,
        elasticsearch_memory_mb=1536,
        logstash_memory_mb=900,
        kibana_memory_mb=1000,
        retention_days=3,
        kibana_port=15601,
        gelf_port=12299,
    )[0]


def networks_of(container: Resource) -> list[str]:
    return [n["name"] for n in container.inputs.get("networksAdvanced", [])]


def uploads_of(container: Resource) -> dict[str, dict[str, Any]]:
    return {u["file"]: u for u in container.inputs.get("uploads", [])}


def labels_of(container: Resource) -> dict[str, str]:
    return {label["label"]: label["value"] for label in container.inputs.get("labels", [])}


def edge_network(program: Program) -> Resource:
    return program.named("logging-edge")


# --- What exists --------------------------------------------------------------


def test_the_three_services_and_the_two_setup_jobs_exist(elk: Program) -> None:
    assert sorted(c.name for c in elk.containers) == sorted(ELK_CONTAINERS)


def test_images_come_from_the_images_config(elk: Program) -> None:
    images = {r.inputs["name"] for r in elk.of_type(REMOTE_IMAGE)}
    defaults = ImagesConfig()
    assert images == {defaults.elasticsearch, defaults.logstash, defaults.kibana}


@pytest.mark.parametrize("job", JOBS)
def test_the_setup_jobs_run_in_the_elasticsearch_image(elk: Program, job: str) -> None:
    assert elk.container(job).inputs["image"] == elk.container("logging-elasticsearch").inputs["image"]


# --- Health, limits, restart ---------------------------------------------------


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_long_running_containers_have_a_shell_healthcheck_and_restart(elk: Program, name: str) -> None:
    container = elk.container(name)
    tests = container.inputs["healthcheck"]["tests"]
    assert tests[0] == "CMD-SHELL" and tests[1].strip()
    assert container.inputs["restart"] == RESTART_POLICY
    # Its gate waits for the health check, so dependants start after it.
    assert container.inputs["wait"] is False
    assert elk.gate_of(container).inputs["condition"] == "healthy"


def test_memory_limits_come_from_the_config(elk: Program) -> None:
    expected = {"logging-elasticsearch": 1536, "logging-logstash": 900, "logging-kibana": 1000}
    for name, memory in expected.items():
        container = elk.container(name)
        assert container.inputs["memory"] == memory, name
        assert float(container.inputs["cpus"]) > 0, name


def test_every_container_has_a_memory_and_cpu_limit(elk: Program) -> None:
    for container in elk.containers:
        assert container.inputs["memory"] > 0, container.name
        assert float(container.inputs["cpus"]) > 0, container.name


def test_elasticsearch_heap_comes_from_the_config(elk: Program) -> None:
    envs = elk.container("logging-elasticsearch").inputs["envs"]
    assert "ES_JAVA_OPTS=-Xms768m -Xmx768m" in envs


def test_logstash_and_kibana_heaps_fit_in_their_limits(elk: Program) -> None:
    assert "LS_JAVA_OPTS=-Xms450m -Xmx450m" in elk.container("logging-logstash").inputs["envs"]
    assert "NODE_OPTIONS=--max-old-space-size=500" in elk.container("logging-kibana").inputs["envs"]


@pytest.mark.parametrize("name", JOBS)
def test_the_setup_jobs_run_once(elk: Program, name: str) -> None:
    job = elk.container(name)
    assert job.inputs["restart"] == "no"
    assert job.inputs["mustRun"] is False
    assert job.inputs.get("wait", False) is False
    # The policy pack recognises one-shot containers by this label.
    assert labels_of(job)[LABEL_ROLE] == ROLE_JOB
    # Creation waits for the script to finish (see the component's docstring),
    # and its gate fails the `up` unless it exited 0.
    assert job.inputs["attach"] is True
    assert elk.gate_of(job).inputs["condition"] == "exited-zero"
    # `docker stop` during a run lets curl finish its request.
    assert job.inputs["stopTimeout"] > 0


def test_long_running_containers_are_not_labelled_as_jobs(elk: Program) -> None:
    for name in LONG_RUNNING:
        assert labels_of(elk.container(name))[LABEL_ROLE] != ROLE_JOB, name


def test_start_order_is_elasticsearch_then_setup_then_logstash_and_kibana_then_kibana_setup() -> None:
    _, options = evaluate()
    # Each waits on the gate of the one before: healthy, or for the job exited 0.
    assert options["logging-setup"]["depends_on"] == ["logging-elasticsearch-ready"]
    assert options["logging-logstash"]["depends_on"] == ["logging-setup-ready"]
    assert options["logging-kibana"]["depends_on"] == ["logging-setup-ready"]
    # Kibana can log in only after the first job set kibana_system's password;
    # the second job talks to Kibana, so it comes after Kibana's gate.
    assert options["logging-kibana-setup"]["depends_on"] == ["logging-kibana-ready"]


def test_elk_containers_log_to_rotated_local_files_never_to_themselves(elk: Program) -> None:
    for container in elk.containers:
        assert container.inputs["logDriver"] == "local", container.name
        assert {"max-size", "max-file"} <= set(container.inputs["logOpts"]), container.name


# --- Networks and published ports ------------------------------------------------


def test_elasticsearch_and_the_setup_jobs_are_on_the_logging_network_only(elk: Program) -> None:
    for name in ("logging-elasticsearch", *JOBS):
        container = elk.container(name)
        assert networks_of(container) == [LOGGING_NETWORK], name
        assert not container.inputs.get("ports"), name


def test_logstash_and_kibana_add_only_the_edge_network_to_publish_on_loopback(elk: Program) -> None:
    edge = edge_network(elk).inputs["name"]
    for name in ("logging-logstash", "logging-kibana"):
        assert sorted(networks_of(elk.container(name))) == sorted([LOGGING_NETWORK, edge]), name


def test_edge_network_routes_nowhere(elk: Program) -> None:
    edge = edge_network(elk)
    assert edge.type == NETWORK
    assert not edge.inputs.get("internal", False)
    assert edge.inputs["options"]["com.docker.network.bridge.enable_ip_masquerade"] == "false"


def test_logstash_publishes_gelf_over_udp_on_loopback_only(elk: Program) -> None:
    assert elk.container("logging-logstash").inputs["ports"] == [
        {"internal": contract.GELF_PORT, "external": 12299, "ip": "127.0.0.1", "protocol": "udp"}
    ]


def test_kibana_publishes_on_loopback_only(elk: Program) -> None:
    assert elk.container("logging-kibana").inputs["ports"] == [
        {"internal": contract.KIBANA_PORT, "external": 15601, "ip": "127.0.0.1", "protocol": "tcp"}
    ]


def test_services_find_each_other_by_contract_aliases(elk: Program) -> None:
    expected = {
        "logging-elasticsearch": contract.Alias.ELASTICSEARCH,
        "logging-logstash": contract.Alias.LOGSTASH,
        "logging-kibana": contract.Alias.KIBANA,
    }
    for name, alias in expected.items():
        on_logging = [n for n in elk.container(name).inputs["networksAdvanced"] if n["name"] == LOGGING_NETWORK]
        assert on_logging[0]["aliases"] == [alias], name


# --- Secrets ------------------------------------------------------------------------


def test_no_secret_value_in_any_env_var_or_command(elk: Program) -> None:
    for container in elk.containers:
        visible = json.dumps([container.inputs.get("envs", []), container.inputs.get("command", [])])
        assert ELASTIC_PASSWORD not in visible, container.name
        assert KIBANA_PASSWORD not in visible, container.name


def test_no_secret_value_in_healthchecks_or_labels(elk: Program) -> None:
    for container in elk.containers:
        visible = json.dumps([container.inputs.get("healthcheck"), container.inputs.get("labels")])
        assert ELASTIC_PASSWORD not in visible and KIBANA_PASSWORD not in visible, container.name


def test_every_upload_holding_a_password_is_a_secret_file(elk: Program) -> None:
    holders = 0
    for container in elk.containers:
        for path, upload in uploads_of(container).items():
            if ELASTIC_PASSWORD in upload["content"] or KIBANA_PASSWORD in upload["content"]:
                holders += 1
                assert upload["permissions"] == SECRET_FILE_MODE, f"{container.name}: {path}"
    # ES and both jobs: elastic; the first job: kibana_system; the pipeline; kibana.yml.
    assert holders == 6


def test_elasticsearch_gets_its_password_from_the_contract_file(elk: Program) -> None:
    es = elk.container("logging-elasticsearch")
    assert uploads_of(es)[contract.ELASTIC_PASSWORD_FILE]["content"] == ELASTIC_PASSWORD
    assert es.inputs["command"] == render.elasticsearch_command(contract.ELASTIC_PASSWORD_FILE)
    assert contract.ELASTIC_PASSWORD_FILE in es.inputs["healthcheck"]["tests"][1]


def test_the_setup_job_gets_both_passwords_as_files(elk: Program) -> None:
    uploads = uploads_of(elk.container("logging-setup"))
    assert uploads[contract.ELASTIC_PASSWORD_FILE]["content"] == ELASTIC_PASSWORD
    assert uploads[contract.KIBANA_SYSTEM_PASSWORD_FILE]["content"] == KIBANA_PASSWORD


def test_logstash_pipeline_is_uploaded_with_the_elastic_password(elk: Program) -> None:
    pipeline = uploads_of(elk.container("logging-logstash"))[LOGSTASH_PIPELINE_FILE]["content"]
    assert pipeline == render.render_logstash_pipeline(ELASTIC_PASSWORD)


def test_kibana_logs_in_as_kibana_system_and_knows_its_loopback_url(elk: Program) -> None:
    settings = yaml.safe_load(uploads_of(elk.container("logging-kibana"))[KIBANA_CONFIG_FILE]["content"])
    assert settings["elasticsearch.username"] == "kibana_system"
    assert settings["elasticsearch.password"] == KIBANA_PASSWORD
    assert settings["server.publicBaseUrl"] == "http://127.0.0.1:15601"


# --- Data and retention ----------------------------------------------------------------


def test_elasticsearch_data_lives_in_a_named_volume(elk: Program) -> None:
    volume = elk.named("logging-elasticsearch-data")
    assert volume.type == VOLUME
    assert volume.inputs["name"] == f"{PREFIX}-elasticsearch-data"
    mounts = elk.container("logging-elasticsearch").inputs["volumes"]
    assert mounts == [{"volumeName": volume.inputs["name"], "containerPath": ES_DATA_DIR}]


@pytest.mark.parametrize("retain", [True, False])
def test_data_volume_retention_on_delete_follows_the_config(retain: bool) -> None:
    _, options = evaluate(retain_on_delete=retain)
    assert options["logging-elasticsearch-data"]["retain_on_delete"] is retain


def test_the_setup_job_installs_the_policy_for_the_configured_retention(elk: Program) -> None:
    job = elk.container("logging-setup")
    environment = dict(entry.split("=", 1) for entry in job.inputs["envs"])
    uploads = uploads_of(job)
    policy = json.loads(uploads[environment["SETUP_ILM_POLICY_FILE"]]["content"])
    assert policy["policy"]["phases"]["delete"]["min_age"] == "3d"
    assert uploads[environment["SETUP_INDEX_TEMPLATE_FILE"]]["content"] == render.render_index_template()
    assert environment["SETUP_ES_URL"] == f"http://{contract.Alias.ELASTICSEARCH}:{contract.ELASTICSEARCH_PORT}"
    assert job.inputs["command"][-1] in uploads


def test_the_kibana_setup_job_creates_the_data_view_and_the_saved_search(elk: Program) -> None:
    job = elk.container("logging-kibana-setup")
    environment = dict(entry.split("=", 1) for entry in job.inputs["envs"])
    uploads = uploads_of(job)
    assert environment["SETUP_TARGET"] == "kibana"
    assert environment["SETUP_KIBANA_URL"] == f"http://{contract.Alias.KIBANA}:{contract.KIBANA_PORT}"
    assert uploads[environment["SETUP_DATA_VIEW_FILE"]]["content"] == render.render_data_view()
    assert uploads[environment["SETUP_SAVED_SEARCH_FILE"]]["content"] == render.render_saved_search()
    assert job.inputs["command"] == ["/bin/bash", next(p for p in uploads if p.endswith("setup.sh"))]
    # It calls Kibana's API as elastic; kibana_system's password is not its business.
    assert uploads[environment["SETUP_ELASTIC_PASSWORD_FILE"]]["content"] == ELASTIC_PASSWORD
    assert contract.KIBANA_SYSTEM_PASSWORD_FILE not in uploads
    assert labels_of(job)[LABEL_ROLE] == ROLE_JOB
    assert job.inputs["name"] == f"{PREFIX}-kibana-setup"


def test_component_registers_under_the_logging_module(elk: Program) -> None:
    assert elk.named("logging").type == "microstack:logging:Elk"


# --- docs/logging.md states what the config model does --------------------------------

DOCS = Path(__file__).resolve().parents[2] / "docs" / "logging.md"


def _table_rows(section: str) -> list[list[str]]:
    """The rows of the first Markdown table after the heading `section`, cells stripped of markup."""
    text = DOCS.read_text().split(f"## {section}\n", 1)[1]
    rows: list[list[str]] = []
    for line in text.splitlines():
        if not line.startswith("|"):
            if rows:
                break
            continue
        if not set(line) <= {"|", "-", " "}:
            rows.append([cell.strip().strip("`*") for cell in line.strip("|").split("|")])
    return rows[1:]


def test_docs_settings_table_gives_the_models_defaults() -> None:
    defaults = LoggingConfig()
    documented = {row[0]: row[1] for row in _table_rows("Settings")}
    fields = {info.alias or name: getattr(defaults, name) for name, info in LoggingConfig.model_fields.items()}
    for key, default in documented.items():
        assert key in fields, f"docs list {key}, which is not a logging setting"
        assert default == json.dumps(fields[key]), key


def test_docs_memory_table_adds_up_to_the_default_limits() -> None:
    config = StackConfig()
    expected = {
        "API replicas": config.api.memory_mb * config.api.replicas,
        "auth": config.auth.memory_mb * config.auth.replicas,
        "proxy": config.proxy.memory_mb,
        "PostgreSQL": config.postgres.memory_mb,
        "Redis": config.redis.memory_mb,
        "Elasticsearch": config.logging.elasticsearch_memory_mb,
        "Logstash": config.logging.logstash_memory_mb,
        "Kibana": config.logging.kibana_memory_mb,
    }
    rows = {row[0]: int(row[2]) for row in _table_rows("Memory the stack needs with logging on")}
    total = rows.pop("total")
    assert rows == expected
    assert total == sum(expected.values())
