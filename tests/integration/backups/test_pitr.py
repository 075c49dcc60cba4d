"""Backups and point-in-time recovery against a real PostgreSQL 15 and pgBackRest.

Rows are committed continuously on one connection (so the acknowledgement
order is the commit order); a full backup runs under that load; the cluster is
destroyed; restore.sh brings it back into a fresh data directory, to a moment
taken from the server between two commits, or to the end of the archive.

The figures (RPO, restore time for the stated size) are printed: run with
`pytest -s tests/integration/backups` to see them.
"""

from __future__ import annotations

import asyncio
import shutil
import stat
import time
from collections.abc import Iterator

import asyncpg
import pytest

from components.backup import RESTORE_SCRIPT, RestoreEnv
from tests.integration.backups.harness import BackupRig, Mark, Writer, fetch_ids

pytestmark = pytest.mark.slow

# Rows of bulk data that make the database a stated size for the restore time
# (about 140 bytes a row on disk with its index-free heap).
BULK_ROWS = 1_500_000


@pytest.fixture
def rig() -> Iterator[BackupRig]:
    rig = BackupRig()
    try:
        rig.start()
        rig.pgbackrest_run("stanza-create")
        rig.pgbackrest_run("check")
        yield rig
    finally:
        rig.cleanup()


@pytest.fixture(scope="module")
def backed_up_rig() -> Iterator[BackupRig]:
    """A rig with one full backup and archived WAL, for tests that only look at it."""
    rig = BackupRig()
    try:
        rig.start()
        rig.pgbackrest_run("stanza-create")
        rig.pgbackrest_run("--type=full", "backup")
        rig.pgbackrest_run("check")
        yield rig
    finally:
        rig.cleanup()


@pytest.fixture
def quiet_rig() -> Iterator[BackupRig]:
    """A rig whose server switches WAL segments every 2 s when anything was written."""
    rig = BackupRig(archive_timeout_seconds=2)
    try:
        rig.start()
        rig.pgbackrest_run("stanza-create")
        rig.pgbackrest_run("check")
        yield rig
    finally:
        rig.cleanup()


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


def _destroy(rig: BackupRig) -> None:
    """Lose the cluster: stop it and delete its data directory, as a lost volume would."""
    rig.server.kill()
    shutil.rmtree(rig.server.data_dir)


def test_restore_to_a_moment_and_to_the_end_of_the_archive_after_losing_the_data(rig: BackupRig) -> None:
    dsn = rig.server.dsn()
    asyncio.run(
        _execute(
            dsn,
            f"CREATE TABLE bulk AS SELECT g AS id, md5(g::text) AS a, md5((-g)::text) AS b "
            f"FROM generate_series(1, {BULK_ROWS}) g",
        )
    )
    database_bytes = int(str(asyncio.run(_fetchval(dsn, "SELECT pg_database_size(current_database())"))))

    async def scenario() -> tuple[Writer, int, int, float, Mark]:
        writer = Writer(dsn)
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
    assert writer.errors == [], "writes failed while the backup ran"
    assert during_backup > 0, "no write was acknowledged while the backup ran"
    assert before_backup < mark.last_id < len(writer.acked), "rows on both sides of the moment"
    assert writer.acked == list(range(1, len(writer.acked) + 1))
    repository_bytes = sum(path.stat().st_size for path in rig.repository.rglob("*") if path.is_file())

    _destroy(rig)

    latest, latest_seconds = rig.restore()
    assert asyncio.run(fetch_ids(latest.dsn())) == writer.acked, "every acknowledged write is back"
    assert asyncio.run(fetch_ids(latest.dsn(), "bulk")) == list(range(1, BULK_ROWS + 1))
    latest.cleanup()

    at_mark, mark_seconds = rig.restore(mark.server_time)
    restored = asyncio.run(fetch_ids(at_mark.dsn()))
    assert restored == list(range(1, mark.last_id + 1)), (
        f"restored rows 1..{restored[-1] if restored else 0}, expected exactly 1..{mark.last_id} "
        f"(committed before {mark.server_time})"
    )
    # Promoted: the restored cluster takes writes.
    asyncio.run(_execute(at_mark.dsn(), f"INSERT INTO writes VALUES ({mark.last_id + 1}, now(), 'after restore')"))

    print(
        f"\n[backup] database {database_bytes / 2**20:.0f} MiB ({BULK_ROWS} bulk rows + {len(writer.acked)} writes); "
        f"repository {repository_bytes / 2**20:.0f} MiB (zstd)"
        f"\n[backup] full backup under load: {backup_seconds:.1f} s, {during_backup} commits acknowledged "
        f"meanwhile, 0 failed"
        f"\n[backup] restore to the end of the archive: {latest_seconds:.1f} s to a promoted server"
        f"\n[backup] restore to {mark.server_time}: {mark_seconds:.1f} s, rows 1..{mark.last_id} of "
        f"{len(writer.acked)} back"
    )


def test_without_a_forced_wal_switch_a_crash_loses_at_most_the_last_archive_timeout(quiet_rig: BackupRig) -> None:
    rig = quiet_rig
    dsn = rig.server.dsn()
    rig.pgbackrest_run("--type=full", "backup")

    async def commit_to_archive_seconds() -> list[float]:
        """How long after a commit on a quiet server its WAL segment is in the repository."""
        conn = await asyncpg.connect(dsn)
        samples = []
        try:
            await conn.execute("CREATE TABLE IF NOT EXISTS probe (at timestamptz)")
            for _ in range(3):
                # Start just after a switch, as a commit on a quiet server would.
                await asyncio.sleep(rig.archive_timeout_seconds + 0.5)
                await conn.execute("INSERT INTO probe VALUES (clock_timestamp())")
                committed = time.monotonic()
                segment = await conn.fetchval("SELECT pg_walfile_name(pg_current_wal_insert_lsn())")
                while True:
                    archived = await conn.fetchval("SELECT last_archived_wal FROM pg_stat_archiver")
                    if archived is not None and archived >= segment:
                        break
                    await asyncio.sleep(0.02)
                samples.append(time.monotonic() - committed)
        finally:
            await conn.close()
        return samples

    rpo_samples = asyncio.run(commit_to_archive_seconds())

    async def write_then_crash() -> Writer:
        writer = Writer(dsn)
        await writer.start()
        await asyncio.sleep(3 * rig.archive_timeout_seconds + 1)
        await writer.stop()
        return writer

    writer = asyncio.run(write_then_crash())
    crashed_at = time.time()
    assert writer.errors == []
    _destroy(rig)

    latest, _ = rig.restore()
    restored = asyncio.run(fetch_ids(latest.dsn()))
    assert restored == writer.acked[: len(restored)], "what comes back is a prefix of the acknowledged writes"
    lost = len(writer.acked) - len(restored)
    oldest_lost = writer.ack_wall[len(restored)] if lost else crashed_at
    lost_window = crashed_at - oldest_lost
    # archive_timeout bounds the loss: every segment older than it was switched
    # and archived (with room for one archive-push on a slow machine).
    assert lost_window < rig.archive_timeout_seconds + 5, f"lost {lost_window:.1f} s of commits"
    assert len(restored) > 0
    print(
        f"\n[backup] archive_timeout {rig.archive_timeout_seconds} s: commit to WAL in the repository "
        f"{', '.join(f'{s:.2f}' for s in rpo_samples)} s"
        f"\n[backup] crash without a WAL switch: {lost} of {len(writer.acked)} acknowledged commits lost, "
        f"the last {lost_window:.2f} s"
    )


def test_repository_files_belong_to_the_database_user_alone_and_names_carry_no_secret(
    backed_up_rig: BackupRig,
) -> None:
    rig = backed_up_rig
    owner = rig.server.os_user
    paths = [rig.repository, *rig.repository.rglob("*")]
    assert any(path.name.endswith(".zst") and "archive" in path.parts for path in paths), "WAL was archived"
    assert any("backup" in path.parts and path.name.endswith(".zst") for path in paths), "a backup was taken"
    for path in paths:
        info = path.lstat()
        assert (info.st_uid, info.st_gid) == (owner.pw_uid, owner.pw_gid), path
        relative = str(path.relative_to(rig.repo_root))
        assert rig.server.password not in relative
        if stat.S_ISLNK(info.st_mode):
            # `latest` points at the newest backup; Linux ignores a symlink's own mode.
            assert path.resolve().is_relative_to(rig.repository), path
            continue
        expected = 0o700 if stat.S_ISDIR(info.st_mode) else 0o600
        assert stat.S_IMODE(info.st_mode) == expected, f"{path}: {oct(stat.S_IMODE(info.st_mode))}"


def test_restore_refuses_a_data_directory_that_is_not_empty(backed_up_rig: BackupRig) -> None:
    rig = backed_up_rig
    # The live cluster's own directory: restoring over it must not start.
    result = rig.owner_run(
        ["bash", str(RESTORE_SCRIPT)],
        env={
            "PATH": "/usr/bin:/bin",
            RestoreEnv.CONFIG: str(rig.config_path),
            RestoreEnv.STANZA: rig.plan.stanza,
            RestoreEnv.PG_DATA: str(rig.server.data_dir),
        },
    )
    assert result.returncode == 1
    assert "not empty" in result.stderr
    assert (rig.server.data_dir / "PG_VERSION").exists()
    assert rig.server.running
