"""pgBackRest's config, the archive settings and the sidecar's environment, from components/backup.

The files are parsed back (pgbackrest.conf is INI) and compared with exact
values; awkward values (spaces, quotes, `%` in paths) are checked the way the
consumer reads them: archive_command as PostgreSQL expands it and a shell
splits it. The option names themselves are checked against the real
pgBackRest in tests/integration/backups/test_config.py.
"""

from __future__ import annotations

import configparser
import re
import shlex

import pytest

from components.backup import (
    CONFIG_PATH,
    HEALTH_COMMAND,
    STATUS_FILE,
    LoopEnv,
    Plan,
    Repository,
    health_command,
    loop_env,
    postgres_parameters,
    render_config,
    restore_command,
)

S3_KEY = "AKIAEXAMPLEKEY123"
S3_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYsecret"


def _parse(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


def _s3_plan() -> Plan:
    return Plan(
        repository=Repository(
            kind="s3",
            path="/microstack/prod",
            bucket="backups-bucket",
            endpoint="s3.eu-west-1.amazonaws.com",
            region="eu-west-1",
            uri_style="path",
            verify_tls=False,
        )
    )


def _expand_percent(command: str, wal_path: str) -> str:
    """What PostgreSQL does to archive_command before the shell sees it (%p, %f, %%)."""
    return re.sub(r"%([pf%])", lambda m: {"p": wal_path, "f": wal_path.rsplit("/", 1)[-1], "%": "%"}[m[1]], command)


def test_default_config_has_owner_only_files_time_retention_and_console_logs() -> None:
    config = _parse(render_config(Plan()))
    assert config.sections() == ["global", "global:archive-push", "microstack"]
    assert dict(config["global"]) == {
        "repo1-path": "/var/lib/pgbackrest",
        "repo1-retention-full-type": "time",
        "repo1-retention-full": "7",
        "start-fast": "y",
        "neutral-umask": "n",
        "compress-type": "zst",
        "process-max": "1",
        "log-level-console": "info",
        "log-level-stderr": "off",
        "log-level-file": "off",
        "log-timestamp": "n",
        "repo1-type": "posix",
    }
    assert dict(config["global:archive-push"]) == {"log-level-console": "warn"}
    assert dict(config["microstack"]) == {
        "pg1-path": "/var/lib/postgresql/data",
        "pg1-socket-path": "/var/run/postgresql",
        "pg1-port": "5432",
        "pg1-user": "postgres",
    }


def test_config_follows_the_plan() -> None:
    plan = Plan(
        stanza="prod_db-1",
        pg_data="/data/pg",
        pg_socket_dir="/run/pg sock",
        pg_port=6543,
        pg_user="microstack",
        repository=Repository(kind="host-path", path="/srv/backups/pg"),
        retention_days=30,
        process_max=2,
    )
    config = _parse(render_config(plan))
    assert config["global"]["repo1-path"] == "/srv/backups/pg"
    assert config["global"]["repo1-retention-full"] == "30"
    assert config["global"]["process-max"] == "2"
    assert dict(config["prod_db-1"]) == {
        "pg1-path": "/data/pg",
        "pg1-socket-path": "/run/pg sock",
        "pg1-port": "6543",
        "pg1-user": "microstack",
    }


def test_s3_config_carries_the_bucket_and_the_key_pair() -> None:
    config = _parse(render_config(_s3_plan(), S3_KEY, S3_SECRET))
    s3 = {key: value for key, value in config["global"].items() if key.startswith(("repo1-s3", "repo1-storage"))}
    assert s3 == {
        "repo1-s3-bucket": "backups-bucket",
        "repo1-s3-endpoint": "s3.eu-west-1.amazonaws.com",
        "repo1-s3-region": "eu-west-1",
        "repo1-s3-uri-style": "path",
        "repo1-storage-verify-tls": "n",
        "repo1-s3-key": S3_KEY,
        "repo1-s3-key-secret": S3_SECRET,
    }
    assert config["global"]["repo1-type"] == "s3"
    assert config["global"]["repo1-path"] == "/microstack/prod"


def test_s3_verifies_tls_and_uses_host_style_by_default() -> None:
    plan = Plan(repository=Repository(kind="s3", bucket="b", endpoint="e.example", region="r"))
    config = _parse(render_config(plan, S3_KEY, S3_SECRET))
    assert config["global"]["repo1-storage-verify-tls"] == "y"
    assert config["global"]["repo1-s3-uri-style"] == "host"


@pytest.mark.parametrize(
    ("repository", "key", "secret", "message"),
    [
        (Repository(kind="s3", bucket="b", endpoint="e", region="r"), None, None, "needs s3_key and s3_secret"),
        (Repository(kind="s3", bucket="b", endpoint="e", region="r"), S3_KEY, None, "needs s3_key and s3_secret"),
        (Repository(kind="volume"), S3_KEY, S3_SECRET, "not 'volume'"),
        (Repository(kind="s3", bucket="b", endpoint="e", region="r"), S3_KEY, "line\nrepo1-path=/x", "one line"),
        (Repository(kind="s3", bucket="b", endpoint="e", region="r"), " padded", S3_SECRET, "leading/trailing"),
    ],
)
def test_config_refuses_a_key_pair_that_does_not_fit(
    repository: Repository, key: str | None, secret: str | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        render_config(Plan(repository=repository), key, secret)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Repository(kind="s3", bucket="b", endpoint="e"), "needs region"),
        (lambda: Repository(kind="volume", bucket="b"), "for an s3 repository"),
        (lambda: Repository(path="relative/dir"), "must be absolute"),
        (lambda: Repository(path="/a\nb"), "one line"),
        (lambda: Plan(stanza="bad stanza"), "stanza 'bad stanza'"),
        (lambda: Plan(stanza="-x"), "stanza '-x'"),
        (lambda: Plan(pg_data="data"), "pg_data 'data': must be absolute"),
        (lambda: Plan(pg_port=0), "pg_port 0"),
        (lambda: Plan(retention_days=0), "retention_days 0"),
        (lambda: Plan(full_every_hours=0), "full_every_hours 0"),
        (lambda: Plan(archive_timeout_seconds=0), "archive_timeout_seconds 0"),
        (lambda: Plan(process_max=0), "process_max 0"),
        (lambda: Plan(pg_user=""), "pg_user ''"),
    ],
)
def test_plan_and_repository_refuse_bad_values_naming_them(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        build()  # type: ignore[operator]


def test_postgres_parameters_turn_on_archiving_into_the_stanza() -> None:
    assert postgres_parameters(Plan(archive_timeout_seconds=45)) == {
        "wal_level": "replica",
        "archive_mode": "on",
        "archive_command": f"pgbackrest --config={CONFIG_PATH} --stanza=microstack archive-push %p",
        "archive_timeout": "45s",
    }


@pytest.mark.parametrize(
    "config_path",
    ["/etc/pgbackrest/pgbackrest.conf", "/etc/pg backrest/it's 100%p.conf", "/tmp/$(touch x)/`id`;rm -rf.conf"],
)
def test_archive_command_survives_percent_expansion_and_the_shell(config_path: str) -> None:
    command = postgres_parameters(Plan(stanza="s_1"), config_path)["archive_command"]
    wal = "pg_wal/000000010000000000000003"
    assert shlex.split(_expand_percent(command, wal)) == [
        "pgbackrest",
        f"--config={config_path}",
        "--stanza=s_1",
        "archive-push",
        wal,
    ]


def test_no_secret_reaches_a_command_line_or_the_environment() -> None:
    plan = _s3_plan()
    assert S3_SECRET in render_config(plan, S3_KEY, S3_SECRET)
    visible = [
        *postgres_parameters(plan).values(),
        *loop_env(plan, service="backup", instance="backup-1").values(),
        *HEALTH_COMMAND,
        *restore_command("2026-12-01 06:00:00+00"),
    ]
    for value in visible:
        assert S3_KEY not in value and S3_SECRET not in value, value


def test_loop_env_names_paths_and_turns_hours_into_seconds() -> None:
    env = loop_env(
        Plan(stanza="prod", full_every_hours=1.5, pg_port=6543),
        service="backup",
        instance="prod-backup",
        poll_seconds=5,
    )
    assert env == {
        LoopEnv.CONFIG: CONFIG_PATH,
        LoopEnv.STANZA: "prod",
        LoopEnv.PG_SOCKET_DIR: "/var/run/postgresql",
        LoopEnv.PG_PORT: "6543",
        LoopEnv.PG_USER: "postgres",
        LoopEnv.FULL_EVERY_SECONDS: "5400",
        LoopEnv.POLL_SECONDS: "5",
        LoopEnv.STATUS_FILE: STATUS_FILE,
        LoopEnv.SERVICE: "backup",
        LoopEnv.INSTANCE: "prod-backup",
    }


def test_health_command_reads_the_status_file_and_its_age() -> None:
    assert [
        "CMD-SHELL",
        f"grep -qx ok {STATUS_FILE} && test $(( $(date +%s) - $(stat -c %Y {STATUS_FILE}) )) -lt 120",
    ] == HEALTH_COMMAND
    awkward = health_command("/tmp/it's here/status", 30)[1]
    assert "'/tmp/it'\"'\"'s here/status'" in awkward
    assert awkward.endswith("-lt 30")


def test_restore_command_to_the_end_or_to_a_moment() -> None:
    assert restore_command() == ["/usr/local/bin/restore.sh"]
    assert restore_command("2026-12-01 06:00:00.5+00") == ["/usr/local/bin/restore.sh", "2026-12-01 06:00:00.5+00"]
    with pytest.raises(ValueError, match="target time"):
        restore_command("2026-12-01\n--type=immediate")
