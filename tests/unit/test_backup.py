"""PostgreSQL backups under mocks: what each stack declares, on both platforms.

Archiving settings on Postgres, the backup sidecar's runtime (limits, health,
restart, stop, logs), its files (secrets as files, nothing secret in env,
labels or names), the repository apart from the data, and the provider's
read-back of what backups add.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from components.backup import pgbackrest
from components.config import parse_config
from components.postgres_backup import plan_for
from tests.support.program import (
    CONTAINER,
    IMAGE,
    NETWORK,
    SECRET,
    SERVICE_CONFIG,
    VOLUME,
    Program,
    Resource,
    run_program,
    run_stack_file,
    stack_file_config,
)
from tests.support.readback import declared_state, diff, read_volume
from tests.support.readback_service import diff_service, read_service, stored_service
from tests.support.workloads import by_role, of_role
from tests.unit.conftest import SWARM_SECRETS, evaluate_stack

S3_KEY_ID = "AKIAMOCKBACKUPKEYID"
S3_KEY_SECRET = "mock-backup-key-secret-value"
S3: dict[str, Any] = {
    "enabled": True,
    "repository": {"kind": "s3", "bucket": "acme-backups", "endpoint": "s3.example.com", "region": "eu-west-1"},
}
S3_SECRETS = {"backupS3KeyId": S3_KEY_ID, "backupS3KeySecret": S3_KEY_SECRET}
ROLE = "postgres-backup"


def swarm_stack(postgres: dict[str, Any] | None = None, secrets: dict[str, str] | None = None) -> Program:
    if postgres is None and secrets is None:
        return evaluate_stack("swarm")
    overrides = {"postgres": postgres} if postgres is not None else None
    return run_stack_file("swarm", secrets={**SWARM_SECRETS, **(secrets or {})}, overrides=overrides)


def backup_config(stack: str) -> Any:
    values, _ = stack_file_config(stack)
    return parse_config(values, ["tlsCertificate", "tlsPrivateKey", "registryPassword"]).postgres


def command_settings(command: list[str]) -> dict[str, str]:
    """`-c name=value` pairs of Postgres' command line."""
    pairs = [command[i + 1] for i, word in enumerate(command) if word == "-c"]
    return dict(pair.split("=", 1) for pair in pairs)


def uploads(container: Resource) -> dict[str, str]:
    return {u["file"]: u["content"] for u in container.inputs.get("uploads", [])}


@pytest.fixture(scope="module")
def swarm() -> Program:
    return swarm_stack()


@pytest.fixture(scope="module")
def s3_containers() -> Program:
    return run_program({"postgres": {"backup": S3}}, stack="staging", secrets=S3_SECRETS)


@pytest.fixture(scope="module")
def s3_swarm() -> Program:
    return swarm_stack({"backup": S3}, S3_SECRETS)


# --- per stack ------------------------------------------------------------------------------------


def test_dev_declares_no_backup_and_postgres_as_before() -> None:
    program = evaluate_stack("dev")
    assert not [r for r in program.resources if "backup" in r.name or "pgbackrest" in r.name]
    assert not of_role(program, ROLE)
    postgres = program.container("postgres-container").inputs
    assert "archive_mode" not in command_settings(postgres["command"])
    # The configured image as it is, not a derived one.
    assert not [i for i in program.of_type(IMAGE) if i.name.startswith("postgres")]
    assert {v["containerPath"] for v in postgres["volumes"]} == {pgbackrest.PG_DATA}


@pytest.mark.parametrize("stack", ["staging", "prod", "swarm"])
def test_staging_prod_and_swarm_archive_wal_as_configured(stack: str) -> None:
    program = swarm_stack() if stack == "swarm" else evaluate_stack(stack)
    config = backup_config(stack)
    assert config.backup.enabled
    postgres = by_role(program, "postgres").resource.inputs
    command = postgres["command"] if stack != "swarm" else postgres["taskSpec"]["containerSpec"]["args"]
    settings = command_settings(command)
    expected = pgbackrest.postgres_parameters(plan_for(config, f"microstack-{stack}"))
    assert {key: settings[key] for key in expected} == expected
    assert settings["archive_timeout"] == f"{config.backup.archive_timeout_seconds}s"
    assert [w.role for w in of_role(program, ROLE)] == [ROLE]


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_pgbackrest_conf_carries_the_stack_schedule_and_retention(stack: str) -> None:
    program = evaluate_stack(stack)
    config = backup_config(stack)
    conf = uploads(program.container("postgres-container"))[pgbackrest.CONFIG_PATH]
    assert f"repo1-retention-full={config.backup.retention_days}\n" in conf
    assert f"pg1-user={config.user}\n" in conf
    assert conf == uploads(program.container("postgres-backup-container"))[pgbackrest.CONFIG_PATH]
    env = by_role(program, ROLE).env
    assert env[pgbackrest.LoopEnv.FULL_EVERY_SECONDS] == str(config.backup.full_backup_interval_hours * 3600)


def test_prod_keeps_its_repository_in_the_configured_host_directory() -> None:
    program = evaluate_stack("prod")
    volume = program.named("postgres-backups")
    assert volume.inputs["driverOpts"] == {"type": "none", "o": "bind", "device": "/mnt/backups/microstack-prod"}


# --- the repository lives apart from the data -----------------------------------------------------


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_the_repository_is_its_own_volume_retained_on_destroy(stack: str) -> None:
    program = evaluate_stack(stack)
    repository = program.named("postgres-backups")
    assert repository.type == VOLUME
    assert repository.inputs["name"] == f"microstack-{stack}-postgres-backups"
    assert repository.options["retain_on_delete"] is True
    for name in ("postgres-container", "postgres-backup-container"):
        mounts = {v["containerPath"]: v["volumeName"] for v in program.container(name).inputs["volumes"]}
        assert mounts[pgbackrest.REPOSITORY_PATH] == repository.inputs["name"], name
        assert mounts[pgbackrest.PG_DATA] == f"microstack-{stack}-postgres-data", name


def test_the_repository_is_retained_even_where_the_data_volume_is_not() -> None:
    program = run_program({"postgres": {"backup": {"enabled": True}}})
    assert program.named("postgres-data").options["retain_on_delete"] is False
    assert program.named("postgres-backups").options["retain_on_delete"] is True


def test_postgres_and_the_sidecar_share_one_resource_per_volume() -> None:
    program = evaluate_stack("staging")
    names = [v.inputs["name"] for v in program.of_type(VOLUME)]
    assert len(names) == len(set(names))
    sidecar = program.container("postgres-backup-container").inputs
    data = next(v for v in sidecar["volumes"] if v["containerPath"] == pgbackrest.PG_DATA)
    # A base backup only reads the data directory.
    assert data.get("readOnly") is True
    postgres = program.container("postgres-container").inputs
    assert not any(v.get("readOnly") for v in postgres["volumes"])


def test_swarm_mounts_the_same_volumes_on_the_data_node(swarm: Program) -> None:
    postgres = by_role(swarm, "postgres").resource.inputs["taskSpec"]
    sidecar = by_role(swarm, ROLE).resource.inputs["taskSpec"]
    assert sidecar["placement"] == postgres["placement"]
    assert sidecar["placement"]["constraints"] == ["node.labels.microstack.data == true"]

    def mounts(task: dict[str, Any]) -> dict[str, tuple[str, bool]]:
        return {m["target"]: (m["source"], m["readOnly"]) for m in task["containerSpec"]["mounts"]}

    assert mounts(sidecar) == {
        pgbackrest.REPOSITORY_PATH: ("microstack-swarm-postgres-backups", False),
        pgbackrest.PG_SOCKET_DIR: ("microstack-swarm-postgres-socket", False),
        pgbackrest.PG_DATA: ("microstack-swarm-postgres-data", True),
    }
    assert {t: s for t, (s, _) in mounts(postgres).items()} == {t: s for t, (s, _) in mounts(sidecar).items()}
    # Stop-first: never two loops on one repository.
    assert by_role(swarm, ROLE).resource.inputs["updateConfig"]["order"] == "stop-first"


# --- the sidecar's runtime, on both platforms -----------------------------------------------------


@pytest.mark.parametrize("stack", ["staging", "swarm"])
def test_the_sidecar_has_limits_health_restart_and_a_graceful_stop(stack: str) -> None:
    program = swarm_stack() if stack == "swarm" else evaluate_stack(stack)
    config = backup_config(stack).backup
    view = by_role(program, ROLE)
    assert view.memory_mb == config.memory_mb
    assert view.cpus == config.cpus
    assert view.health_test == pgbackrest.HEALTH_COMMAND
    assert view.restart == ("any" if stack == "swarm" else "unless-stopped")
    assert view.stop_seconds >= 30
    inputs = view.resource.inputs
    if stack == "swarm":
        spec = inputs["taskSpec"]["containerSpec"]
        assert spec["user"] == "postgres"
        assert spec["args"] == ["bash", pgbackrest.LOOP_SCRIPT_PATH]
        assert spec["stopSignal"] == "SIGTERM"
        assert inputs["taskSpec"]["logDriver"]["name"] == "gelf"
    else:
        assert inputs["user"] == "postgres"
        assert inputs["command"] == ["bash", pgbackrest.LOOP_SCRIPT_PATH]
        assert inputs["stopSignal"] == "SIGTERM"
        assert inputs["logDriver"] == program.container("postgres-container").inputs["logDriver"]
        assert uploads(program.container("postgres-backup-container"))[pgbackrest.LOOP_SCRIPT_PATH] == (
            pgbackrest.BACKUP_LOOP_SCRIPT.read_text()
        )


def test_the_sidecar_starts_after_postgres_is_ready() -> None:
    program = evaluate_stack("staging")
    sidecar = program.container("postgres-backup-container")
    assert "postgres-ready" in {getattr(d, "_name", None) for d in sidecar.options["depends_on"]}


def test_the_services_wait_for_postgres_but_not_for_the_backup_sidecar() -> None:
    program = evaluate_stack("staging")
    sidecar = program.named("postgres-backup")
    # Not a child of Postgres: depending on the Postgres component does not wait for it.
    assert sidecar.options["parent"] is None
    assert program.named("postgres-backup-container").options["parent"] == "postgres-backup"
    for service in ("api", "auth"):
        depends_on = {getattr(d, "_name", None) for d in program.named(service).options["depends_on"]}
        assert depends_on == {"postgres", "redis"}, service


@pytest.mark.parametrize("stack", ["staging", "swarm"])
def test_the_sidecar_is_not_reachable_as_postgres(stack: str) -> None:
    program = swarm_stack() if stack == "swarm" else evaluate_stack(stack)
    inputs = by_role(program, ROLE).resource.inputs
    attached = inputs["networksAdvanced"] if stack != "swarm" else inputs["taskSpec"]["networksAdvanceds"]
    assert attached and all(not a.get("aliases") for a in attached)
    assert by_role(program, ROLE).networks == {"networks-backend"}
    assert not by_role(program, ROLE).ports


# --- secrets --------------------------------------------------------------------------------------


def _everything_but_file_contents(program: Program) -> str:
    """Every input of every resource, with uploaded file contents and Swarm secret data left out."""
    texts = []
    for resource in program.resources:
        inputs = dict(resource.inputs)
        if resource.type == SECRET:
            inputs.pop("data", None)
        if "uploads" in inputs:
            inputs["uploads"] = [{k: v for k, v in u.items() if k != "content"} for u in inputs["uploads"]]
        texts.append(f"{resource.name} {json.dumps(inputs, default=str)}")
    return "\n".join(texts)


def test_the_s3_key_pair_reaches_both_containers_as_a_file_only(s3_containers: Program) -> None:
    for name in ("postgres-container", "postgres-backup-container"):
        conf = uploads(s3_containers.container(name))[pgbackrest.CONFIG_PATH]
        assert f"repo1-s3-key={S3_KEY_ID}\n" in conf and f"repo1-s3-key-secret={S3_KEY_SECRET}\n" in conf
        assert "repo1-s3-bucket=acme-backups\n" in conf
        # A per-stack prefix in the bucket by default.
        assert "repo1-path=/microstack-staging\n" in conf
    everything = _everything_but_file_contents(s3_containers)
    assert S3_KEY_ID not in everything and S3_KEY_SECRET not in everything
    assert not [v for v in s3_containers.of_type(VOLUME) if v.name == "postgres-backups"]


def test_on_swarm_the_s3_key_pair_is_a_swarm_secret_never_a_config(s3_swarm: Program) -> None:
    decoded = {c.name: base64.b64decode(c.inputs["data"]).decode() for c in s3_swarm.of_type(SERVICE_CONFIG)}
    assert not [name for name, text in decoded.items() if S3_KEY_SECRET in text or S3_KEY_ID in text]
    [secret] = [s for s in s3_swarm.of_type(SECRET) if s.name == "secret-pgbackrest-conf"]
    assert S3_KEY_SECRET in base64.b64decode(secret.inputs["data"]).decode()
    for role in ("postgres", ROLE):
        spec = by_role(s3_swarm, role).resource.inputs["taskSpec"]["containerSpec"]
        files = {s["fileName"]: s["secretId"] for s in spec["secrets"]}
        assert files[pgbackrest.CONFIG_PATH] == "secret-pgbackrest-conf-id", role
    everything = _everything_but_file_contents(s3_swarm)
    assert S3_KEY_ID not in everything and S3_KEY_SECRET not in everything


def test_the_s3_key_pair_is_a_secret_output(s3_containers: Program) -> None:
    assert s3_containers.outputs["pgbackrestConf"].secret


def test_no_env_var_or_label_of_the_sidecar_holds_a_generated_secret() -> None:
    program = evaluate_stack("staging")
    view = by_role(program, ROLE)
    secrets = program.secret_values()
    labels = json.dumps(view.resource.inputs.get("labels"))
    assert not [v for v in view.env.values() for s in secrets if s in v]
    assert not [s for s in secrets if s in labels]
    # The sidecar needs no password: it connects over the socket as the superuser the image trusts locally.
    assert not view.secret_files


# --- an object store needs a way out --------------------------------------------------------------


@pytest.mark.parametrize("platform", ["containers", "swarm"])
def test_an_s3_repository_adds_an_egress_network_for_postgres_and_the_sidecar_only(
    platform: str, s3_containers: Program, s3_swarm: Program
) -> None:
    program = s3_swarm if platform == "swarm" else s3_containers
    egress = program.named("postgres-backup-egress")
    assert egress.type == NETWORK and not egress.inputs.get("internal")
    on_egress = {
        view.role
        for role in ("postgres", ROLE, "api", "auth", "redis", "proxy")
        for view in of_role(program, role)
        if "postgres-backup-egress" in view.networks
    }
    assert on_egress == {"postgres", ROLE}
    assert not by_role(program, "postgres").ports and not by_role(program, ROLE).ports


# --- the provider's read-back ---------------------------------------------------------------------


def test_a_host_path_repository_volume_reads_back_unchanged() -> None:
    program = evaluate_stack("prod")
    declared = program.named("postgres-backups").inputs
    # What the engine returns for a local volume: the options it was created with.
    inspect = {
        "Name": declared["name"],
        "Driver": "local",
        "Labels": None,
        "Options": dict(declared["driverOpts"]),
        "Mountpoint": f"/var/lib/docker/volumes/{declared['name']}/_data",
    }
    assert diff(VOLUME, declared, read_volume(inspect, declared)) == []


def test_every_backup_container_field_is_known_to_the_read_back_port() -> None:
    program = evaluate_stack("prod")
    for name in ("postgres-container", "postgres-backup-container"):
        declared = program.container(name).inputs
        assert diff(CONTAINER, declared, declared_state(CONTAINER, declared)) == [], name


@pytest.mark.parametrize("kind", ["volume", "hostPath", "s3"])
def test_the_swarm_backup_services_read_back_unchanged(kind: str) -> None:
    repository: dict[str, Any] = {"kind": kind}
    if kind == "hostPath":
        repository["path"] = "/srv/backups"
    if kind == "s3":
        repository = S3["repository"]
    program = swarm_stack({"backup": {"enabled": True, "repository": repository}}, S3_SECRETS if kind == "s3" else {})
    for role in ("postgres", ROLE):
        service = by_role(program, role).resource
        inspect = stored_service(service.inputs, registry_digest="sha256:" + "cd" * 32, platforms=[("amd64", "linux")])
        state = read_service(inspect, service.inputs)
        assert diff_service(service.inputs, state, service.options.get("ignore_changes") or []) == [], role
    if kind == "hostPath":
        mounts = by_role(program, ROLE).resource.inputs["taskSpec"]["containerSpec"]["mounts"]
        [repo] = [m for m in mounts if m["target"] == pgbackrest.REPOSITORY_PATH]
        assert repo["volumeOptions"] == {
            "noCopy": False,
            "driverName": "local",
            "driverOptions": {"type": "none", "o": "bind", "device": "/srv/backups"},
        }


def test_the_derived_image_is_rebuilt_exactly_when_its_base_changes() -> None:
    first = run_program({"postgres": {"backup": {"enabled": True}}})
    second = run_program({"postgres": {"backup": {"enabled": True}}, "images": {"postgres": "postgres:16.4-bookworm"}})
    tags = [p.named("postgres-pgbackrest-image").inputs["imageName"] for p in (first, second)]
    assert tags[0] != tags[1]
    assert first.named("postgres-pgbackrest-image").inputs["build"]["args"] == {"BASE_IMAGE": "postgres:15.8-bookworm"}
    again = run_program({"postgres": {"backup": {"enabled": True}}})
    assert again.named("postgres-pgbackrest-image").inputs["imageName"] == tags[0]
