"""A real PostgreSQL 15 archiving into a real pgBackRest repository, for the backup tests.

`BackupRig` starts a cluster with the settings `postgres_parameters` renders,
a repository directory owned by the server's OS user, and pgbackrest.conf from
`render_config`; it runs pgBackRest, restore.sh and backup-loop.sh as that
user, the way the sidecar and the restore job run them in containers.
`Writer` commits numbered rows one at a time on one connection, so the order of
acknowledgements is the commit order.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from components.backup import RESTORE_SCRIPT, Plan, Repository, RestoreEnv, postgres_parameters, render_config
from tests.support.binaries import require_binary
from tests.support.servers import PostgresServer


def _owner_only(path: Path, uid: int, gid: int, mode: int) -> None:
    os.chown(path, uid, gid)
    path.chmod(mode)


class BackupRig:
    """One archiving cluster, its repository and config; restores into fresh clusters."""

    def __init__(self, *, archive_timeout_seconds: int = 60) -> None:
        self.pgbackrest = require_binary("pgbackrest")
        require_binary("jq")
        self.repo_root = Path(tempfile.mkdtemp(prefix="microstack-pgbackrest-"))
        self.archive_timeout_seconds = archive_timeout_seconds
        # full_page_writes as in production (the harness turns it off for speed):
        # torn-page protection is part of what a restore replays.
        self.server = PostgresServer(local_trust=True, settings={"full_page_writes": "on"})
        self.plan, self.config_path = self._configure(self.server, "pgbackrest.conf")
        self.restored: list[PostgresServer] = []

    @property
    def repository(self) -> Path:
        return Path(self.plan.repository.path)

    def _configure(self, server: PostgresServer, name: str) -> tuple[Plan, Path]:
        """A plan and config file for `server` on the shared repository; its archive settings."""
        owner = server.os_user
        _owner_only(self.repo_root, owner.pw_uid, owner.pw_gid, 0o700)
        plan = Plan(
            pg_data=str(server.data_dir),
            pg_socket_dir=str(server.socket_dir),
            pg_port=server.port,
            pg_user=server.user,
            repository=Repository(kind="volume", path=str(self.repo_root / "repo")),
            archive_timeout_seconds=self.archive_timeout_seconds,
        )
        config_path = server.workdir / name
        # Locks of the rig's own: pgBackRest's default (/tmp/pgbackrest) is
        # shared by every rig on the machine, and `make test` runs rigs in
        # parallel (in a container the default is private to it).
        rendered = render_config(plan).replace("[global]\n", f"[global]\nlock-path={self.repo_root / 'lock'}\n", 1)
        config_path.write_text(rendered)
        _owner_only(config_path, owner.pw_uid, owner.pw_gid, 0o600)
        server.settings.update(postgres_parameters(plan, str(config_path)))
        return plan, config_path

    def start(self) -> None:
        self.server.start()

    def owner_run(self, argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run `argv` as the database's OS user with umask 0077, as the containers do."""
        command = self.server.owner_command(["sh", "-c", 'umask 0077 && exec "$@"', "sh", *argv])
        return subprocess.run(command, capture_output=True, text=True, env=env, check=False)

    def pgbackrest_run(self, *args: str) -> str:
        result = self.owner_run(
            [self.pgbackrest, f"--config={self.config_path}", f"--stanza={self.plan.stanza}", *args]
        )
        if result.returncode != 0:
            raise AssertionError(f"pgbackrest {' '.join(args)} exited {result.returncode}:\n{result.stdout}")
        return result.stdout

    def info(self) -> dict[str, Any]:
        stanzas = json.loads(self.pgbackrest_run("info", "--output=json"))
        assert len(stanzas) == 1
        info: dict[str, Any] = stanzas[0]
        return info

    def backups(self) -> list[dict[str, Any]]:
        return list(self.info().get("backup", []))

    def restore(self, target_time: str | None = None) -> tuple[PostgresServer, float]:
        """restore.sh into a fresh cluster, start it and wait until it has promoted.

        Returns the running cluster and the seconds from the restore command to a
        promoted server accepting writes.
        """
        original = self.server
        fresh = PostgresServer(
            user=original.user,
            database=original.database,
            password=original.password,
            local_trust=True,
            restored=True,
            settings={"full_page_writes": "on"},
        )
        self.restored.append(fresh)
        # Its own config only for pg1-path: in the containers the path is the same.
        _, config_path = self._configure(fresh, "pgbackrest.conf")
        started = time.monotonic()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            RestoreEnv.CONFIG: str(config_path),
            RestoreEnv.STANZA: self.plan.stanza,
            RestoreEnv.PG_DATA: str(fresh.data_dir),
        }
        argv = [str(RESTORE_SCRIPT)] if target_time is None else [str(RESTORE_SCRIPT), target_time]
        result = self.owner_run(["bash", *argv], env=env)
        if result.returncode != 0:
            raise AssertionError(f"restore.sh exited {result.returncode}:\n{result.stdout}{result.stderr}")
        fresh.start(timeout=180)
        asyncio.run(_wait_promoted(fresh.dsn(), timeout=180))
        return fresh, time.monotonic() - started

    def cleanup(self) -> None:
        for server in [self.server, *self.restored]:
            server.cleanup()
        shutil.rmtree(self.repo_root, ignore_errors=True)


async def _wait_promoted(dsn: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = await asyncpg.connect(dsn)
            try:
                if not await conn.fetchval("SELECT pg_is_in_recovery()"):
                    return
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresError):
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"restored server still in recovery after {timeout}s")


async def fetch_ids(dsn: str, table: str = "writes") -> list[int]:
    conn = await asyncpg.connect(dsn)
    try:
        return [row["id"] for row in await conn.fetch(f"SELECT id FROM {table} ORDER BY id")]
    finally:
        await conn.close()


@dataclass
class Mark:
    """A moment taken from the server between two commits: `last_id` committed before it."""

    server_time: str
    last_id: int
    wall: float


@dataclass
class Writer:
    """Commits rows 1, 2, 3, ... one transaction each on one connection.

    `acked` holds ids in the order their commits were acknowledged, `ack_wall`
    when; `errors` anything a write raised. `mark()` asks for a server
    timestamp taken between two commits.
    """

    dsn: str
    pause_seconds: float = 0.0
    """Between two commits: 0 writes as fast as one connection can; the tests pace it to spare the CPU."""
    acked: list[int] = field(default_factory=list)
    ack_wall: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _mark_requests: asyncio.Queue[asyncio.Future[Mark]] = field(default_factory=asyncio.Queue)
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS writes (id integer PRIMARY KEY, at timestamptz NOT NULL, filler text)"
        )
        self._task = asyncio.create_task(self._run(conn))

    async def _run(self, conn: asyncpg.Connection) -> None:
        try:
            next_id = 1
            while not self._stop.is_set():
                while not self._mark_requests.empty():
                    waiter = self._mark_requests.get_nowait()
                    server_time = await conn.fetchval("SELECT clock_timestamp()::text")
                    waiter.set_result(Mark(server_time, next_id - 1, time.time()))
                try:
                    await conn.execute(
                        "INSERT INTO writes VALUES ($1::integer, clock_timestamp(), repeat(md5($1::integer::text), 4))",
                        next_id,
                    )
                except (OSError, asyncpg.PostgresError) as error:
                    self.errors.append(f"row {next_id}: {error!r}")
                    await asyncio.sleep(0.05)
                    continue
                self.acked.append(next_id)
                self.ack_wall.append(time.time())
                next_id += 1
                # Yield so the test's other tasks (the backup, marks) run meanwhile.
                await asyncio.sleep(self.pause_seconds)
        finally:
            await conn.close()

    async def mark(self) -> Mark:
        waiter: asyncio.Future[Mark] = asyncio.get_running_loop().create_future()
        await self._mark_requests.put(waiter)
        return await waiter

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task


@dataclass
class PitrRun:
    """What one point-in-time recovery run did and measured (`pitr_run`)."""

    bulk_rows: int
    database_bytes: int
    repository_bytes: int
    writer: Writer
    before_backup: int
    during_backup: int
    backup_seconds: float
    mark: Mark
    # A digest of the bulk table's contents, before the loss and after restoring to the end of the archive.
    bulk_digest: str
    # After restoring to the end of the archive: the writes and the bulk table back.
    latest_ids: list[int]
    latest_bulk_digest: str
    latest_seconds: float
    # After restoring to the mark: the writes back, and whether it took a write.
    at_mark_ids: list[int]
    at_mark_seconds: float
    at_mark_writable: bool

    def summary(self) -> str:
        return (
            f"[backup] database {self.database_bytes / 2**20:.0f} MiB ({self.bulk_rows} bulk rows + "
            f"{len(self.writer.acked)} writes); repository {self.repository_bytes / 2**20:.0f} MiB (zstd)\n"
            f"[backup] full backup under load: {self.backup_seconds:.1f} s, {self.during_backup} commits "
            f"acknowledged meanwhile, {len(self.writer.errors)} failed\n"
            f"[backup] restore to the end of the archive: {self.latest_seconds:.1f} s to a promoted server\n"
            f"[backup] restore to {self.mark.server_time}: {self.at_mark_seconds:.1f} s, rows "
            f"1..{self.mark.last_id} of {len(self.writer.acked)} back"
        )


async def _execute(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _fetchval(dsn: str, sql: str) -> object:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


# Every row of the bulk table, in order, as one digest.
_BULK_DIGEST = "SELECT count(*) || ':' || md5(string_agg(id || a || b, ',' ORDER BY id)) FROM bulk"


def pitr_run(rig: BackupRig, bulk_rows: int, commit_pause_seconds: float = 0.0) -> PitrRun:
    """A database of `bulk_rows` rows, a full backup under continuous writes, the cluster lost, two restores.

    Rows are committed one by one throughout; a moment is taken from the
    server between two commits after the backup; every acknowledged commit is
    archived; then the cluster is killed and its data directory deleted, and
    restore.sh brings it back into fresh clusters: to the end of the archive,
    and to the moment. `commit_pause_seconds` paces the writes (0: as fast as
    one connection commits).
    """
    dsn = rig.server.dsn()
    asyncio.run(
        _execute(
            dsn,
            "CREATE TABLE bulk AS SELECT g AS id, md5(g::text) AS a, md5((-g)::text) AS b "
            f"FROM generate_series(1, {bulk_rows}) g",
        )
    )
    database_bytes = int(str(asyncio.run(_fetchval(dsn, "SELECT pg_database_size(current_database())"))))
    bulk_digest = str(asyncio.run(_fetchval(dsn, _BULK_DIGEST)))

    async def scenario() -> tuple[Writer, int, int, float, Mark]:
        writer = Writer(dsn, pause_seconds=commit_pause_seconds)
        await writer.start()
        await asyncio.sleep(0.5)
        before_backup = len(writer.acked)
        backup_started = time.monotonic()
        await asyncio.to_thread(rig.pgbackrest_run, "--type=full", "backup")
        backup_seconds = time.monotonic() - backup_started
        during_backup = len(writer.acked) - before_backup
        # pgBackRest keeps a backup's stop time in whole seconds and restores to
        # a time T from the newest backup that stopped before T's whole second
        # (2.45 src/command/restore/restore.c, restoreBackupSet): a moment in
        # the second the only backup stopped has no backup set to start from.
        (backup,) = await asyncio.to_thread(rig.backups)
        await asyncio.sleep(max(0.5, backup["timestamp"]["stop"] + 1.2 - time.time()))
        mark = await writer.mark()
        await asyncio.sleep(1.0)
        await writer.stop()
        # Every acknowledged commit into the repository: switch to a new WAL
        # segment and wait until it is archived (check does both).
        await asyncio.to_thread(rig.pgbackrest_run, "check")
        return writer, before_backup, during_backup, backup_seconds, mark

    writer, before_backup, during_backup, backup_seconds, mark = asyncio.run(scenario())
    repository_bytes = sum(path.stat().st_size for path in rig.repository.rglob("*") if path.is_file())

    # Lose the cluster: stop it and delete its data directory, as a lost volume would.
    rig.server.kill()
    shutil.rmtree(rig.server.data_dir)

    latest, latest_seconds = rig.restore()
    latest_ids = asyncio.run(fetch_ids(latest.dsn()))
    latest_bulk_digest = str(asyncio.run(_fetchval(latest.dsn(), _BULK_DIGEST)))
    latest.cleanup()

    at_mark, mark_seconds = rig.restore(mark.server_time)
    at_mark_ids = asyncio.run(fetch_ids(at_mark.dsn()))
    # Promoted: the restored cluster takes writes.
    asyncio.run(_execute(at_mark.dsn(), f"INSERT INTO writes VALUES ({mark.last_id + 1}, now(), 'after restore')"))
    writable = (mark.last_id + 1) in asyncio.run(fetch_ids(at_mark.dsn()))
    return PitrRun(
        bulk_rows=bulk_rows,
        database_bytes=database_bytes,
        repository_bytes=repository_bytes,
        writer=writer,
        before_backup=before_backup,
        during_backup=during_backup,
        backup_seconds=backup_seconds,
        mark=mark,
        bulk_digest=bulk_digest,
        latest_ids=latest_ids,
        latest_bulk_digest=latest_bulk_digest,
        latest_seconds=latest_seconds,
        at_mark_ids=at_mark_ids,
        at_mark_seconds=mark_seconds,
        at_mark_writable=writable,
    )
