"""PostgreSQL backups on a real single-node Swarm: the backup service beside Postgres on the data node.

The session's engine becomes a swarm manager for this module (`swarm_node`),
a swarm stack with `postgres.backup.enabled` is realized, and the backup
service must converge healthy on the node labelled for data, read back as
declared (with Postgres' service, its configs and volumes), mount the data
volume read-only, and take a full backup into the repository volume that
Postgres archives its WAL into.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import docker
import pytest

from components.backup import pgbackrest
from tests.system.images import BuiltImages
from tests.system.readback_check import check_services
from tests.system.stack import Stack, free_port, realize_stack, unique_stack_name
from tests.system.swarm import swarm_config

pytestmark = pytest.mark.slow

BACKUP_SECONDS = 240


@pytest.fixture(scope="module")
def swarm_backup_stack(
    docker_client: docker.DockerClient, test_images: BuiltImages, swarm_node: str
) -> Iterator[Stack]:
    config = swarm_config(test_images, "haproxy", free_port(), postgres={"backup": {"enabled": True}})
    yield from realize_stack(
        docker_client, config, stack_name=unique_stack_name("swarm-backup"), image_prefix="swarm-backup-"
    )


def _task_container(client: docker.DockerClient, service: str) -> docker.models.containers.Container:
    [container] = client.containers.list(filters={"label": f"com.docker.swarm.service.name={service}"})
    return container


def test_the_backup_service_runs_on_the_data_node_and_takes_a_backup(
    swarm_backup_stack: Stack, docker_client: docker.DockerClient, swarm_node: str
) -> None:
    program, realizer = swarm_backup_stack.program, swarm_backup_stack.realizer
    ours = {
        "postgres-service",
        "postgres-backup-service",
        "postgres-pgbackrest-conf",
        "postgres-backup-pgbackrest-conf",
        "postgres-backup-backup-loop",
    }
    assert ours <= {r.name for r in program.resources}
    changes = check_services(program, docker_client, realizer.realized)
    assert [d for d in changes if d.resource in ours] == []

    service = program.named("postgres-backup-service").inputs["name"]
    [task] = [t for t in docker_client.api.tasks(filters={"service": service}) if t["Status"]["State"] == "running"]
    assert task["NodeID"] == swarm_node
    # Placed by the engine where the data volumes are: the node labelled for data.
    assert task["Spec"]["Placement"]["Constraints"] == ["node.labels.microstack.data == true"]

    container = _task_container(docker_client, service)
    inspect = docker_client.api.inspect_container(container.id)
    assert inspect["Config"]["User"] == "postgres"
    mounts = {m["Destination"]: m for m in inspect["Mounts"]}
    assert mounts[pgbackrest.PG_DATA]["RW"] is False
    postgres = docker_client.api.inspect_container(
        _task_container(docker_client, program.named("postgres-service").inputs["name"]).id
    )
    postgres_mounts = {m["Destination"]: m["Name"] for m in postgres["Mounts"]}
    for path in (pgbackrest.REPOSITORY_PATH, pgbackrest.PG_SOCKET_DIR, pgbackrest.PG_DATA):
        assert mounts[path]["Name"] == postgres_mounts[path], path

    argv = ["pgbackrest", f"--config={pgbackrest.CONFIG_PATH}", "--stanza=microstack", "info", "--output=json"]
    deadline = time.monotonic() + BACKUP_SECONDS
    backups: list[dict[str, object]] = []
    while time.monotonic() < deadline and not backups:
        code, output = container.exec_run(argv, user="postgres")
        assert code == 0, output.decode(errors="replace")
        [stanza] = json.loads(output)
        backups = list(stanza.get("backup") or [])
        time.sleep(2)
    assert [b["type"] for b in backups] == ["full"], f"no backup within {BACKUP_SECONDS}s"
    assert docker_client.api.inspect_container(container.id)["State"]["Health"]["Status"] == "healthy"
