"""PostgreSQL backups in the real engine: the sidecar, a backup, and the documented restore.

A stack with `postgres.backup.enabled` (repository: a named volume) is
realized; the sidecar must run as declared and take a full backup. Then the
Postgres container, the sidecar and Postgres' data volume are removed, the
restore sequence of docs/backups.md is run with the Docker API's equivalents
of its `docker` commands (a one-off container from the stack's pgBackRest
image, on a fresh data volume and the repository volume), the stack is
redeployed as `pulumi up` would (the missing containers and their gates), and
the items written through the proxy's API before the loss, one in the base
backup and one only in archived WAL, are listed through the API again.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import docker
import httpx
import pytest

from components.backup import pgbackrest
from components.postgres_backup import ROLE
from tests.system.images import BuiltImages
from tests.system.load import ITEMS, register_and_login
from tests.system.readback_check import readback_changes
from tests.system.realizer import OWNER_LABEL, SESSION_LABEL
from tests.system.stack import (
    TABLES,
    Stack,
    free_port,
    free_subnet,
    realize_stack,
    stack_config,
    unique_stack_name,
)
from tests.system.timing import no_settle

pytestmark = pytest.mark.slow

# The shortest archive_timeout the config allows: the test waits for archiving, not for a minute.
ARCHIVE_TIMEOUT_SECONDS = 10
BACKUP_SECONDS = 240
CONVERGE_SECONDS = 90
SUMMARY = "backups: restore after losing Postgres' container and data volume"
# docs/backups.md, "A backup now": the sidecar's own umask, so the files stay the database user's only.
BACKUP_NOW = f"umask 0077 && pgbackrest --config={pgbackrest.CONFIG_PATH} --stanza=microstack backup --type=full"


@pytest.fixture(scope="module")
def backup_stack(docker_client: docker.DockerClient, test_images: BuiltImages) -> Iterator[Stack]:
    config = stack_config(
        test_images,
        "nginx",
        free_port(),
        free_subnet(docker_client),
        postgres={"backup": {"enabled": True, "archiveTimeoutSeconds": ARCHIVE_TIMEOUT_SECONDS}},
    )
    yield from realize_stack(docker_client, config, stack_name=unique_stack_name("backup"), transformations=[no_settle])


def _wait_until(condition: Callable[[], bool], what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1)
    raise AssertionError(f"{what} within {seconds}s")


def _exec(client: docker.DockerClient, container_id: str, argv: list[str], user: str = "postgres") -> str:
    result = client.api.exec_create(container_id, argv, user=user)
    output = client.api.exec_start(result["Id"]).decode(errors="replace")
    code = client.api.exec_inspect(result["Id"])["ExitCode"]
    assert code == 0, f"{argv} exited with {code}: {output}"
    return output


def _sql(client: docker.DockerClient, container_id: str, query: str) -> str:
    argv = ["psql", "-h", pgbackrest.PG_SOCKET_DIR, "-U", "microstack", "-d", "microstack", "-Atc", query]
    return _exec(client, container_id, argv).strip()


def _backups(client: docker.DockerClient, sidecar_id: str) -> list[dict[str, Any]]:
    argv = ["pgbackrest", f"--config={pgbackrest.CONFIG_PATH}", "--stanza=microstack", "info", "--output=json"]
    [stanza] = json.loads(_exec(client, sidecar_id, argv))
    return list(stanza.get("backup") or [])


def _sidecar(stack: Stack) -> str:
    (sidecar,) = stack.containers_with_role(ROLE)
    return stack.container_id(sidecar)


def _postgres(stack: Stack) -> str:
    (postgres,) = stack.containers_with_role("postgres")
    return stack.container_id(postgres)


def _write_item(http: httpx.Client, token: str, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    created = http.post(ITEMS, json={"name": name}, headers={"Authorization": f"Bearer {token}"})
    assert created.status_code == 201, created.text
    return name


def _listed(http: httpx.Client, token: str) -> set[str]:
    """Item names as PostgreSQL has them now: with credentials, never from the proxy's cache."""
    try:
        response = http.get(ITEMS, params={"limit": 100}, headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError:
        return set()
    return {i["name"] for i in response.json()["items"]} if response.status_code == 200 else set()


def _files(entries: dict[str, str]) -> bytes:
    """A tar of `path -> text` at mode 0444, what `docker cp` of such files uploads."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path, text in entries.items():
            data = text.encode()
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(data), 0o444
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_the_backup_sidecar_runs_as_declared(backup_stack: Stack, docker_client: docker.DockerClient) -> None:
    program = backup_stack.program
    sidecar = docker_client.api.inspect_container(_sidecar(backup_stack))
    declared = program.container("postgres-backup-container").inputs
    assert sidecar["Config"]["User"] == "postgres"
    assert sidecar["HostConfig"]["Memory"] == declared["memory"] * 1024 * 1024
    assert sidecar["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert sidecar["Config"]["StopTimeout"] == declared["stopTimeout"]
    assert sidecar["Config"]["Healthcheck"]["Test"] == pgbackrest.HEALTH_COMMAND
    mounts = {m["Destination"]: m for m in sidecar["Mounts"]}
    assert mounts[pgbackrest.PG_DATA]["RW"] is False
    assert mounts[pgbackrest.REPOSITORY_PATH]["Name"] == program.named("postgres-backups").inputs["name"]
    # Nothing the provider would read back differently: a second `up` changes nothing.
    ours = {"postgres-container", "postgres-backup-container", "postgres-backups", "postgres-socket", "postgres-data"}
    changes = readback_changes(program, docker_client, backup_stack.realizer.realized)
    assert [d for d in changes if d.resource in ours] == []
    _wait_until(
        lambda: docker_client.api.inspect_container(_sidecar(backup_stack))["State"]["Health"]["Status"] == "healthy",
        "the sidecar was not healthy (stanza created, archiving checked)",
        60,
    )


def test_a_full_backup_exists_and_only_the_database_user_can_read_it(
    backup_stack: Stack, docker_client: docker.DockerClient
) -> None:
    sidecar = _sidecar(backup_stack)
    _wait_until(lambda: bool(_backups(docker_client, sidecar)), "no backup in the repository", BACKUP_SECONDS)
    assert {b["type"] for b in _backups(docker_client, sidecar)} == {"full"}
    # Readable by the database's OS user only: no group or other bit on any file or
    # directory (symbolic links, such as `latest`, carry no permissions of their own).
    argv = [
        "find",
        pgbackrest.REPOSITORY_PATH,
        "!",
        "-type",
        "l",
        "(",
        "-perm",
        "/077",
        "-o",
        "!",
        "-user",
        "postgres",
        ")",
    ]
    assert _exec(docker_client, sidecar, argv).strip() == ""


def _archived(client: docker.DockerClient, stack: Stack) -> None:
    """Wait until the WAL segment holding everything committed so far is in the repository.

    Segment names of one timeline sort in WAL order; `.history` and `.partial`
    files (archived at a promotion) are not segments and are skipped.
    """
    postgres = _postgres(stack)
    segment = _sql(client, postgres, "select pg_walfile_name(pg_current_wal_lsn())")

    def done() -> bool:
        last = _sql(client, postgres, "select coalesce(last_archived_wal, '') from pg_stat_archiver")
        return len(last) == len(segment) and last >= segment

    try:
        # The segment switch comes within archive_timeout of the last one, and the
        # archiver pushes it at once: a few timeouts is ample on a loaded machine.
        _wait_until(done, f"WAL segment {segment} was not archived", ARCHIVE_TIMEOUT_SECONDS * 6)
    except AssertionError as error:
        # Why not: a failing archive_command (failed_count, last_failed_wal and
        # the log's "archive command failed" lines) or no segment switch at all
        # (the checkpointer, which forces it, asleep since the last checkpoint).
        archiver = _sql(client, postgres, "select * from pg_stat_archiver")
        checkpoint = _sql(client, postgres, "select checkpoint_time, redo_wal_file from pg_control_checkpoint()")
        lines = client.api.logs(postgres).decode(errors="replace").splitlines()
        wanted = ("archive command", "ERROR", "WARN", "checkpoint")
        log = "\n".join(line for line in lines if any(word in line for word in wanted))
        raise AssertionError(
            f"{error}\npg_stat_archiver: {archiver}\nlast checkpoint: {checkpoint}\n"
            f"Postgres' archiving and checkpoint lines:\n{log}"
        ) from None


def _lose_restore_and_redeploy(stack: Stack, client: docker.DockerClient, target: str | None) -> tuple[float, float]:
    """Remove Postgres, the sidecar and the data volume; restore as docs/backups.md does; `pulumi up`.

    Returns the seconds the one-off restore took and the seconds until Postgres
    was ready again, both from the start of the restore.
    """
    program, realizer, api = stack.program, stack.realizer, client.api
    # The loss: Postgres' container, the sidecar (it mounts the data volume) and the data volume.
    for name in ("postgres-container", "postgres-backup-container"):
        realizer.remove_container(realizer.realized.containers.pop(name), name)
    data_volume = realizer.realized.volumes["postgres-data"]
    api.remove_volume(data_volume)

    # docs/backups.md, "Restore": a fresh data volume, the one-off restore, then `pulumi up --refresh`.
    started = time.monotonic()
    own_labels = {SESSION_LABEL: realizer.session, OWNER_LABEL: str(os.getpid())}
    api.create_volume(name=data_volume, labels=own_labels)
    repository = program.named("postgres-backups").inputs["name"]
    one_off = api.create_container(
        realizer.realized.images["postgres-pgbackrest-image"],
        entrypoint=["bash"],
        command=pgbackrest.restore_command(target),
        user="postgres",
        labels=own_labels,
        host_config=api.create_host_config(
            binds={
                data_volume: {"bind": pgbackrest.PG_DATA, "mode": "rw"},
                repository: {"bind": pgbackrest.REPOSITORY_PATH, "mode": "rw"},
            },
            network_mode="none",
        ),
    )["Id"]
    conf = program.outputs["pgbackrestConf"]
    assert conf.secret
    files = {pgbackrest.CONFIG_PATH: conf.value, pgbackrest.RESTORE_SCRIPT_PATH: pgbackrest.RESTORE_SCRIPT.read_text()}
    api.put_archive(one_off, "/", _files(files))
    api.start(one_off)
    exit_code = api.wait(one_off, timeout=300)["StatusCode"]
    log = api.logs(one_off).decode(errors="replace")
    api.remove_container(one_off)
    assert exit_code == 0, log
    restored = time.monotonic() - started

    # `pulumi up --refresh`: the provider creates what is missing, each container after its dependencies' gates.
    for name in ("postgres-container", "postgres-ready", "postgres-backup-container", "postgres-backup-ready"):
        realizer.create(program.named(name))
    ready = time.monotonic() - started
    # Archiving goes on, on the restored server's new timeline.
    assert _sql(client, _postgres(stack), "select pg_is_in_recovery()") == "f"
    _wait_until(
        lambda: api.inspect_container(_sidecar(stack))["State"]["Health"]["Status"] == "healthy",
        "the redeployed sidecar was not healthy",
        60,
    )
    return restored, ready


def _record(target: str, restored: float, ready: float, items: int) -> None:
    TABLES.setdefault(SUMMARY, []).append(
        {
            "restored to": target,
            "restore (one-off container)": f"{restored:.1f} s",
            "until Postgres ready again": f"{ready:.1f} s",
            "items checked through the API": str(items),
        }
    )


def test_a_restore_after_losing_postgres_and_its_volume_brings_the_data_back(
    backup_stack: Stack, docker_client: docker.DockerClient
) -> None:
    with httpx.Client(base_url=backup_stack.base_url, timeout=10) as http:
        _, token = register_and_login(http)
        sidecar = _sidecar(backup_stack)
        # The loop's first backup done (it then sleeps until the next is due), so
        # the on-demand backup below, as docs/backups.md runs one, takes no lock it holds.
        _wait_until(lambda: bool(_backups(docker_client, sidecar)), "no backup in the repository", BACKUP_SECONDS)
        before = {_write_item(http, token, "in-backup")}
        taken = len(_backups(docker_client, sidecar))
        _exec(docker_client, sidecar, ["bash", "-c", BACKUP_NOW])
        assert len(_backups(docker_client, sidecar)) == taken + 1
        # One more item, which only the archived WAL holds.
        before.add(_write_item(http, token, "in-wal"))
        _archived(docker_client, backup_stack)
        assert before <= _listed(http, token)

        restored, ready = _lose_restore_and_redeploy(backup_stack, docker_client, None)

        _wait_until(
            lambda: before <= _listed(http, token), f"items {sorted(before)} were not listed again", CONVERGE_SECONDS
        )
        _record("the end of the archive", restored, ready, len(before))


def test_a_restore_to_a_timestamp_brings_back_what_was_committed_before_it_and_nothing_after(
    backup_stack: Stack, docker_client: docker.DockerClient
) -> None:
    with httpx.Client(base_url=backup_stack.base_url, timeout=10) as http:
        _, token = register_and_login(http)
        sidecar = _sidecar(backup_stack)
        _wait_until(lambda: bool(_backups(docker_client, sidecar)), "no backup in the repository", BACKUP_SECONDS)
        # A target needs a backup that stopped in an earlier whole second
        # (docs/backups.md): run alone, this test's only backup may just have.
        newest_stop = max(int(b["timestamp"]["stop"]) for b in _backups(docker_client, sidecar))
        time.sleep(max(0.0, newest_stop + 1.2 - time.time()))
        kept = _write_item(http, token, "before-target")
        # The target: the database's own clock after `kept` committed, a second
        # clear of the next commit.
        target = _sql(docker_client, _postgres(backup_stack), "select clock_timestamp()")
        time.sleep(1)
        dropped = _write_item(http, token, "after-target")
        _archived(docker_client, backup_stack)
        assert {kept, dropped} <= _listed(http, token)

        restored, ready = _lose_restore_and_redeploy(backup_stack, docker_client, target)

        _wait_until(lambda: kept in _listed(http, token), f"item {kept} was not listed again", CONVERGE_SECONDS)
        assert dropped not in _listed(http, token)
        _record(f"a timestamp ({target})", restored, ready, 2)
