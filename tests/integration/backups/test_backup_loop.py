"""backup-loop.sh, the backup sidecar's entrypoint, as a real process against a real cluster.

It runs as the database's OS user with the environment `loop_env` renders,
as in its container: it creates the stanza, backs up on schedule, keeps its
status file fresh for the health check, reads the schedule back from the
repository after a restart, and stops cleanly on SIGTERM, also mid-backup.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import pytest

from components.backup import BACKUP_LOOP_SCRIPT, STATUS_OK, STATUS_STARTING, LoopEnv, health_command, loop_env
from tests.integration.backups.harness import BackupRig

pytestmark = pytest.mark.slow

# Enough data that a full backup takes a few seconds, so SIGTERM can land mid-backup.
BULK_ROWS = 300_000
LOG_FIELDS = {"timestamp", "level", "message", "service", "instance"}


class Loop:
    """One run of backup-loop.sh; its stdout (JSON lines) goes to a file."""

    def __init__(self, rig: BackupRig, full_every_seconds: int, run: int) -> None:
        self.status_file = rig.server.workdir / "loop" / "status"
        env = loop_env(
            rig.plan,
            service="backup",
            instance="backup-test",
            config_path=str(rig.config_path),
            status_file=str(self.status_file),
            poll_seconds=1,
        )
        env[LoopEnv.FULL_EVERY_SECONDS] = str(full_every_seconds)
        env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
        self.log_path = rig.server.workdir / f"loop-{run}.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                rig.server.owner_command(["bash", str(BACKUP_LOOP_SCRIPT)]),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]

    def messages(self) -> list[str]:
        return [record["message"] for record in self.records()]

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            assert self.process.poll() is None, (
                f"loop exited with {self.process.returncode}:\n{self.log_path.read_text()}"
            )
            time.sleep(0.1)
        raise AssertionError(f"{what} did not happen within {timeout}s:\n{self.log_path.read_text()}")

    def status(self) -> str:
        try:
            return self.status_file.read_text().strip()
        except FileNotFoundError:
            return ""

    def healthy(self, stale_seconds: int = 5) -> bool:
        command = health_command(str(self.status_file), stale_seconds)
        assert command[0] == "CMD-SHELL"
        return subprocess.run(["sh", "-c", command[1]], check=False).returncode == 0

    def terminate(self, timeout: float = 10) -> tuple[int, float]:
        """SIGTERM; return the exit code and the seconds it took to exit."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def rig() -> Iterator[BackupRig]:
    rig = BackupRig()
    try:
        rig.start()
        yield rig
    finally:
        rig.cleanup()


@pytest.fixture
def rig_with_data(rig: BackupRig) -> BackupRig:
    """A rig whose database takes a full backup a few seconds long."""
    asyncio.run(_bulk(rig.server.dsn()))
    return rig


async def _bulk(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            f"CREATE TABLE bulk AS SELECT g AS id, md5(g::text) AS a FROM generate_series(1, {BULK_ROWS}) g"
        )
    finally:
        await conn.close()


def _backup_count(rig: BackupRig) -> int:
    try:
        return len(rig.backups())
    except AssertionError:
        # No stanza yet: the loop has not created it.
        return 0


def _requested_checkpoints(rig: BackupRig) -> int:
    async def fetch() -> int:
        conn = await asyncpg.connect(rig.server.dsn())
        try:
            return int(await conn.fetchval("SELECT checkpoints_req FROM pg_stat_bgwriter"))
        finally:
            await conn.close()

    return asyncio.run(fetch())


def test_backup_loop_backs_up_on_schedule_survives_restarts_and_stops_on_sigterm(rig_with_data: BackupRig) -> None:
    rig = rig_with_data
    loops: list[Loop] = []
    try:
        # First start: stanza, check, and a backup at once (the repository has none).
        first = Loop(rig, full_every_seconds=3600, run=1)
        loops.append(first)
        first.wait_for(lambda: _backup_count(rig) == 1 and first.status() == STATUS_OK, "the first backup")
        assert first.healthy()
        code, seconds = first.terminate()
        assert code == 0
        assert first.messages()[-1] == "backup loop stopped"
        time.sleep(1.5)
        assert not first.healthy(stale_seconds=1), "a status file nobody refreshes reads unhealthy"

        # A restart within the interval: healthy again, and no second backup. It
        # requests a checkpoint at start (after a restore, archive_timeout applies
        # only once one ran: backup-loop.sh, request_checkpoint).
        requested = _requested_checkpoints(rig)
        second = Loop(rig, full_every_seconds=3600, run=2)
        loops.append(second)
        second.wait_for(lambda: second.status() == STATUS_OK and second.healthy(), "healthy after restart")
        second.wait_for(lambda: _requested_checkpoints(rig) > requested, "a requested checkpoint")
        time.sleep(3)
        assert _backup_count(rig) == 1
        assert not any("taking a full backup" in message for message in second.messages())
        assert second.terminate()[0] == 0

        # SIGTERM in the middle of a backup: the loop stops pgBackRest and exits 0,
        # and no half-made backup is listed.
        third = Loop(rig, full_every_seconds=1, run=3)
        loops.append(third)
        third.wait_for(
            lambda: any(m.startswith("backup start archive") for m in third.messages()),
            "a backup under way",
        )
        mid_backup_code, mid_backup_seconds = third.terminate()
        assert mid_backup_code == 0
        assert _backup_count(rig) == 1
        stopped = [r for r in third.records() if r.get("command") == "backup" and "exit_code" in r]
        assert stopped and stopped[-1]["exit_code"] != 0, "pgBackRest was stopped, not waited for"

        # The schedule: with a fresh backup in the repository (and the interrupted
        # one in nobody's way) the loop waits out the interval, then backs up.
        rig.pgbackrest_run("--type=full", "backup")
        fourth = Loop(rig, full_every_seconds=10, run=4)
        loops.append(fourth)
        fourth.wait_for(lambda: fourth.status() == STATUS_OK, "healthy")
        time.sleep(2)
        assert _backup_count(rig) == 2
        fourth.wait_for(lambda: _backup_count(rig) == 3, "the scheduled backup", timeout=90)
        assert fourth.terminate()[0] == 0

        for loop in loops:
            for record in loop.records():
                assert record.keys() >= LOG_FIELDS, record
                assert record["service"] == "backup" and record["instance"] == "backup-test"
            assert rig.server.password not in loop.log_path.read_text()
        print(
            f"\n[backup-loop] SIGTERM while idle: exit 0 after {seconds:.2f} s; "
            f"mid-backup: exit 0 after {mid_backup_seconds:.2f} s"
        )
    finally:
        for loop in loops:
            loop.kill()


def test_backup_loop_waits_for_the_server_and_reports_starting(rig: BackupRig) -> None:
    rig.server.stop()
    loop = Loop(rig, full_every_seconds=3600, run=1)
    try:
        loop.wait_for(lambda: any("waiting for PostgreSQL" in m for m in loop.messages()), "waiting")
        assert loop.status() == STATUS_STARTING
        assert not loop.healthy()
        rig.server.start()
        loop.wait_for(lambda: _backup_count(rig) == 1 and loop.status() == STATUS_OK, "a backup once it is up")
        assert loop.terminate()[0] == 0
    finally:
        loop.kill()
