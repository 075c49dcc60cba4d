"""Backups and point-in-time recovery against a real PostgreSQL 15 and pgBackRest.

Rows are committed continuously on one connection (so the acknowledgement
order is the commit order); a full backup runs under that load; the cluster is
destroyed; restore.sh brings it back into a fresh data directory, to a moment
taken from the server between two commits, or to the end of the archive.

The figures (RPO; backup and restore times of this small database) are printed: run with
`pytest -s tests/integration/backups` to see them. bench/bench_backup.py measures a
larger database (1.5 million rows by default) the same way.
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
from tests.integration.backups.harness import BackupRig, Writer, fetch_ids, pitr_run

pytestmark = pytest.mark.slow

# Rows of bulk data: enough that the backup and the restores copy several
# files and the backup runs while writes go on (about 10 MiB). The figures for
# a database of a stated size come from bench/bench_backup.py.
BULK_ROWS = 100_000
# Commits about every 2 ms: hundreds a second go on through the backup and
# every moment, without a core spent on them (the benchmark writes at full speed).
COMMIT_PAUSE_SECONDS = 0.002


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


def _destroy(rig: BackupRig) -> None:
    """Lose the cluster: stop it and delete its data directory, as a lost volume would."""
    rig.server.kill()
    shutil.rmtree(rig.server.data_dir)


def test_restore_to_a_moment_and_to_the_end_of_the_archive_after_losing_the_data(rig: BackupRig) -> None:
    run = pitr_run(rig, BULK_ROWS, COMMIT_PAUSE_SECONDS)
    writer, mark = run.writer, run.mark
    assert writer.errors == [], "writes failed while the backup ran"
    assert run.during_backup > 0, "no write was acknowledged while the backup ran"
    assert run.before_backup < mark.last_id < len(writer.acked), "rows on both sides of the moment"
    assert writer.acked == list(range(1, len(writer.acked) + 1))

    assert run.latest_ids == writer.acked, "every acknowledged write is back"
    assert run.latest_bulk_digest == run.bulk_digest, "the bulk table is back as it was"
    assert run.at_mark_ids == list(range(1, mark.last_id + 1)), (
        f"restored rows 1..{run.at_mark_ids[-1] if run.at_mark_ids else 0}, expected exactly 1..{mark.last_id} "
        f"(committed before {mark.server_time})"
    )
    assert run.at_mark_writable, "the cluster restored to the moment was promoted and takes writes"
    print(f"\n{run.summary()}")


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
        writer = Writer(dsn, pause_seconds=COMMIT_PAUSE_SECONDS)
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
