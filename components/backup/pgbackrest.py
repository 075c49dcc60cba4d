"""pgBackRest for the stack's PostgreSQL, as pure functions: config, server settings, sidecar.

No Pulumi here. The deploy side turns a `Plan` into files and containers:

- `render_config` gives pgbackrest.conf. It is uploaded as a secret file (an S3
  key pair lives in it, never in env or args) to `CONFIG_PATH` in both the
  Postgres container (archive-push runs there, from `archive_command`) and the
  backup sidecar (stanza-create, check, backup, expire, restore).
- `postgres_parameters` gives the `-c key=value` settings that turn on WAL
  archiving into the repository.
- `BACKUP_LOOP_SCRIPT` is the sidecar's entrypoint (backup-loop.sh beside this
  module), configured by `loop_env`; `HEALTH_COMMAND` is its Docker health check.
- `RESTORE_SCRIPT` (restore.sh) restores into an empty data directory, to the
  end of the archive or to a timestamp; `restore_command` builds its argv.

The repository lives apart from the data: a named volume or host path mounted
into both containers, or an S3 bucket. Losing the Postgres container or its
data volume leaves the backups and the archived WAL where they are.

Why these pgBackRest settings (option reference: `pgbackrest help <command>
<option>` for 2.45; user guide https://pgbackrest.org/user-guide.html):

- `neutral-umask=n`: with the default (`y`) pgBackRest sets umask 0000 and
  creates repository files 0640 and directories 0750, readable by the group.
  With `n` the running process's umask applies to those modes; the sidecar runs
  with umask 0077 and PostgreSQL sets umask 0077 for its children (archive-push)
  unless the data directory allows group access, so repository files are 0600
  and directories 0700: readable only by the database's OS user.
- `repo1-retention-full-type=time`: retention is in days, as configured, rather
  than a count of backups whose span depends on the schedule. Expiring a full
  backup also expires the WAL only it needed, so the PITR window is the retention.
- `start-fast=y`: a backup asks PostgreSQL for an immediate checkpoint instead
  of waiting up to checkpoint_timeout for a spread one.
- Logs go to the console only (`log-level-file=off`, stderr off) so the
  container's log driver carries them; backup-loop.sh wraps each line as JSON
  and stamps it, so pgBackRest's own timestamp (local time, no zone) is off.
- No separate `expire`: `backup` runs it after every successful backup (user
  guide, "Retention"), which is also the only time there is anything to expire.
- `compress-type=zst`: faster than the default gzip at a similar ratio, which
  shortens both the backup and the restore (Debian builds pgBackRest with zstd).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

# Paths inside the containers, shared by the deploy side, the scripts and the tests.
CONFIG_PATH: Final = "/etc/pgbackrest/pgbackrest.conf"
REPOSITORY_PATH: Final = "/var/lib/pgbackrest"
PG_DATA: Final = "/var/lib/postgresql/data"
PG_SOCKET_DIR: Final = "/var/run/postgresql"
STATUS_FILE: Final = "/tmp/backup-loop/status"
LOOP_SCRIPT_PATH: Final = "/usr/local/bin/backup-loop.sh"
RESTORE_SCRIPT_PATH: Final = "/usr/local/bin/restore.sh"
DEFAULT_STANZA: Final = "microstack"

# The scripts themselves, for the deploy side to upload and the tests to run.
BACKUP_LOOP_SCRIPT: Final = Path(__file__).with_name("backup-loop.sh")
RESTORE_SCRIPT: Final = Path(__file__).with_name("restore.sh")

# How often the loop wakes (re-checks the schedule, refreshes its status file),
# and how old the status file may get before the health check fails. A running
# backup refreshes it too, so a long backup does not read as a hung loop.
POLL_SECONDS: Final = 30
STATUS_STALE_SECONDS: Final = 4 * POLL_SECONDS

# States backup-loop.sh writes as the first line of STATUS_FILE.
STATUS_STARTING: Final = "starting"
STATUS_OK: Final = "ok"
STATUS_ERROR: Final = "error"


def health_command(status_file: str = STATUS_FILE, stale_seconds: int = STATUS_STALE_SECONDS) -> list[str]:
    """The sidecar's Docker health check: the last step succeeded and the loop is alive.

    Healthy when the status file says `ok` and was written less than
    `stale_seconds` ago; only coreutils and grep are needed in the image.
    """
    quoted = shlex.quote(status_file)
    return [
        "CMD-SHELL",
        f"grep -qx {STATUS_OK} {quoted} && test $(( $(date +%s) - $(stat -c %Y {quoted}) )) -lt {stale_seconds}",
    ]


HEALTH_COMMAND: Final = health_command()


class LoopEnv:
    """Names of the environment variables backup-loop.sh reads (none carries a secret)."""

    CONFIG: Final = "BACKUP_CONFIG"
    STANZA: Final = "BACKUP_STANZA"
    PG_SOCKET_DIR: Final = "BACKUP_PG_SOCKET_DIR"
    PG_PORT: Final = "BACKUP_PG_PORT"
    # The database role for the CHECKPOINT the loop requests at start (pgBackRest's pg1-user).
    PG_USER: Final = "BACKUP_PG_USER"
    FULL_EVERY_SECONDS: Final = "BACKUP_FULL_EVERY_SECONDS"
    POLL_SECONDS: Final = "BACKUP_POLL_SECONDS"
    # Optional: the wait after a failed step (default ten polls).
    RETRY_SECONDS: Final = "BACKUP_RETRY_SECONDS"
    STATUS_FILE: Final = "BACKUP_STATUS_FILE"
    SERVICE: Final = "BACKUP_SERVICE"
    INSTANCE: Final = "BACKUP_INSTANCE"


class RestoreEnv:
    """Names of the environment variables restore.sh reads."""

    CONFIG: Final = "BACKUP_CONFIG"
    STANZA: Final = "BACKUP_STANZA"
    PG_DATA: Final = "BACKUP_PG_DATA"


RepositoryKind = Literal["volume", "host-path", "s3"]
UriStyle = Literal["host", "path"]

_STANZA_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def _config_value(name: str, value: str) -> str:
    """A value for one line of pgbackrest.conf (INI: one line, surrounding blanks trimmed)."""
    if value == "" or value != value.strip() or any(ch in value for ch in "\r\n\0"):
        raise ValueError(f"pgBackRest {name} {value!r}: must be non-empty, one line, without leading/trailing blanks")
    return value


@dataclass(frozen=True)
class Repository:
    """Where backups and archived WAL live.

    `volume` and `host-path` are a directory (`path`) mounted into the Postgres
    container and the sidecar; `s3` is a bucket, with `path` the prefix inside it.
    The S3 key pair is not here: it goes into the config file (`render_config`).
    """

    kind: RepositoryKind = "volume"
    path: str = REPOSITORY_PATH
    bucket: str | None = None
    endpoint: str | None = None
    region: str | None = None
    uri_style: UriStyle = "host"
    verify_tls: bool = True

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise ValueError(f"repository path {self.path!r}: must be absolute")
        _config_value("repository path", self.path)
        if self.kind == "s3":
            for name in ("bucket", "endpoint", "region"):
                value = getattr(self, name)
                if value is None:
                    raise ValueError(f"an s3 repository needs {name}")
                _config_value(f"s3 {name}", value)
        elif (self.bucket, self.endpoint, self.region) != (None, None, None):
            raise ValueError(f"bucket, endpoint and region are for an s3 repository, not {self.kind!r}")


@dataclass(frozen=True)
class Plan:
    """What to back up, where, and how often.

    `pg_user` is the database role pgBackRest connects as over the Unix socket
    (a superuser: the official image's `POSTGRES_USER`), not the OS user.
    `archive_timeout_seconds` bounds the RPO on a quiet server: PostgreSQL
    switches to a new WAL segment (and so archives the last one) at least that
    often when anything was written.
    """

    stanza: str = DEFAULT_STANZA
    pg_data: str = PG_DATA
    pg_socket_dir: str = PG_SOCKET_DIR
    pg_port: int = 5432
    pg_user: str = "postgres"
    repository: Repository = field(default_factory=Repository)
    retention_days: int = 7
    full_every_hours: float = 24.0
    archive_timeout_seconds: int = 60
    process_max: int = 1

    def __post_init__(self) -> None:
        if not _STANZA_RE.match(self.stanza):
            raise ValueError(f"stanza {self.stanza!r}: letters, digits, '-' and '_' only, starting with a letter/digit")
        for name in ("pg_data", "pg_socket_dir"):
            value = getattr(self, name)
            if not value.startswith("/"):
                raise ValueError(f"{name} {value!r}: must be absolute")
            _config_value(name, value)
        _config_value("pg_user", self.pg_user)
        if not 1 <= self.pg_port <= 65535:
            raise ValueError(f"pg_port {self.pg_port}: must be 1..65535")
        if not 1 <= self.retention_days <= 9999999:
            raise ValueError(f"retention_days {self.retention_days}: must be at least 1")
        if self.full_every_hours <= 0:
            raise ValueError(f"full_every_hours {self.full_every_hours}: must be positive")
        if self.archive_timeout_seconds < 1:
            raise ValueError(f"archive_timeout_seconds {self.archive_timeout_seconds}: must be at least 1")
        if self.process_max < 1:
            raise ValueError(f"process_max {self.process_max}: must be at least 1")


def _yn(value: bool) -> str:
    return "y" if value else "n"


def render_config(plan: Plan, s3_key: str | None = None, s3_secret: str | None = None) -> str:
    """Render pgbackrest.conf for `plan`; see the module docstring for the settings chosen.

    With an s3 repository the key pair is written here (`repo1-s3-key`,
    `repo1-s3-key-secret`), which makes the file a secret to upload as one.
    """
    repo = plan.repository
    lines = [
        "[global]",
        f"repo1-path={repo.path}",
        "repo1-retention-full-type=time",
        f"repo1-retention-full={plan.retention_days}",
        "start-fast=y",
        "neutral-umask=n",
        "compress-type=zst",
        f"process-max={plan.process_max}",
        "log-level-console=info",
        "log-level-stderr=off",
        "log-level-file=off",
        "log-timestamp=n",
    ]
    if repo.kind == "s3":
        if s3_key is None or s3_secret is None:
            raise ValueError("an s3 repository needs s3_key and s3_secret")
        lines += [
            "repo1-type=s3",
            f"repo1-s3-bucket={repo.bucket}",
            f"repo1-s3-endpoint={repo.endpoint}",
            f"repo1-s3-region={repo.region}",
            f"repo1-s3-uri-style={repo.uri_style}",
            f"repo1-storage-verify-tls={_yn(repo.verify_tls)}",
            f"repo1-s3-key={_config_value('s3 key', s3_key)}",
            f"repo1-s3-key-secret={_config_value('s3 secret', s3_secret)}",
        ]
    else:
        if s3_key is not None or s3_secret is not None:
            raise ValueError(f"an s3 key pair is for an s3 repository, not {repo.kind!r}")
        lines.append("repo1-type=posix")
    lines += [
        "",
        # PostgreSQL runs archive-push for every WAL segment; its begin/end lines
        # at info would be most of the log, so only warnings and errors remain.
        "[global:archive-push]",
        "log-level-console=warn",
        "",
        f"[{plan.stanza}]",
        f"pg1-path={plan.pg_data}",
        f"pg1-socket-path={plan.pg_socket_dir}",
        f"pg1-port={plan.pg_port}",
        f"pg1-user={plan.pg_user}",
        "",
    ]
    return "\n".join(lines)


def _archive_command_word(value: str) -> str:
    """Shell-quote `value` for archive_command, where PostgreSQL expands `%` first."""
    return shlex.quote(value).replace("%", "%%")


def postgres_parameters(plan: Plan, config_path: str = CONFIG_PATH) -> dict[str, str]:
    """The server settings for continuous WAL archiving into the plan's repository.

    archive_command is run by a shell after PostgreSQL replaces `%p`; every
    word is shell-quoted and a literal `%` doubled. It names the config file, so
    no secret is on the command line.
    """
    command = " ".join(
        [
            "pgbackrest",
            _archive_command_word(f"--config={config_path}"),
            _archive_command_word(f"--stanza={plan.stanza}"),
            "archive-push",
            "%p",
        ]
    )
    return {
        "wal_level": "replica",
        "archive_mode": "on",
        "archive_command": command,
        "archive_timeout": f"{plan.archive_timeout_seconds}s",
    }


def loop_env(
    plan: Plan,
    *,
    service: str,
    instance: str,
    config_path: str = CONFIG_PATH,
    status_file: str = STATUS_FILE,
    poll_seconds: int = POLL_SECONDS,
) -> dict[str, str]:
    """The environment for backup-loop.sh: where things are and the schedule, no secret."""
    return {
        LoopEnv.CONFIG: config_path,
        LoopEnv.STANZA: plan.stanza,
        LoopEnv.PG_SOCKET_DIR: plan.pg_socket_dir,
        LoopEnv.PG_PORT: str(plan.pg_port),
        LoopEnv.PG_USER: plan.pg_user,
        LoopEnv.FULL_EVERY_SECONDS: str(max(1, round(plan.full_every_hours * 3600))),
        LoopEnv.POLL_SECONDS: str(poll_seconds),
        LoopEnv.STATUS_FILE: status_file,
        LoopEnv.SERVICE: service,
        LoopEnv.INSTANCE: instance,
    }


def restore_command(target_time: str | None = None, *, script: str = RESTORE_SCRIPT_PATH) -> list[str]:
    """argv for restore.sh: to the end of the archive, or to `target_time`.

    `target_time` is a PostgreSQL timestamp with time zone, e.g.
    `2026-12-01 06:00:00.123456+00`; recovery stops just after the last
    transaction committed at or before it, and the server then promotes.
    """
    if target_time is None:
        return [script]
    _config_value("target time", target_time)
    return [script, target_time]
