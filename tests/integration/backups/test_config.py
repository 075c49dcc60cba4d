"""The rendered pgbackrest.conf read by the real pgBackRest 2.45, and the scripts under shellcheck.

Every option name is checked with `pgbackrest help <command> <option>` (which
fails for an option the command does not take), and a posix-repository config
is loaded by `pgbackrest info` without a warning about an invalid option.
"""

from __future__ import annotations

import configparser
import re
import subprocess
from pathlib import Path

import pytest

from components.backup import BACKUP_LOOP_SCRIPT, HEALTH_COMMAND, RESTORE_SCRIPT, Plan, Repository, render_config
from tests.support.binaries import require_binary

_INDEXED = re.compile(r"^(repo|pg)\d+-")


def _options(text: str) -> dict[str, set[str]]:
    """Option names per config section, with repo1-/pg1- indexes dropped as the help wants."""
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.read_string(text)
    return {section: {_INDEXED.sub(r"\1-", key) for key in parser[section]} for section in parser.sections()}


@pytest.mark.parametrize(
    "repository",
    [Repository(), Repository(kind="s3", bucket="b", endpoint="s3.example", region="eu-west-1")],
    ids=["posix", "s3"],
)
def test_every_rendered_option_is_one_pgbackrest_knows(repository: Repository) -> None:
    pgbackrest = require_binary("pgbackrest")
    key_pair = ("key", "secret") if repository.kind == "s3" else (None, None)
    text = render_config(Plan(repository=repository), *key_pair)
    for section, options in _options(text).items():
        # [global:archive-push] holds options for that command; the rest apply to backup.
        command = section.split(":", 1)[1] if ":" in section else "backup"
        for option in sorted(options):
            result = subprocess.run([pgbackrest, "help", command, option], capture_output=True, text=True)
            assert result.returncode == 0, f"[{section}] {option}: {result.stdout}{result.stderr}"


def test_pgbackrest_loads_the_rendered_config_without_a_warning(tmp_path: Path) -> None:
    pgbackrest = require_binary("pgbackrest")
    config = tmp_path / "pgbackrest.conf"
    config.write_text(render_config(Plan(repository=Repository(path=str(tmp_path / "repo")))))
    (tmp_path / "repo").mkdir()
    result = subprocess.run(
        [pgbackrest, f"--config={config}", "--stanza=microstack", "info"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARN" not in result.stdout + result.stderr
    assert "missing stanza path" in result.stdout


@pytest.mark.parametrize(
    ("shell", "script"),
    [
        ("bash", BACKUP_LOOP_SCRIPT.read_text()),
        ("bash", RESTORE_SCRIPT.read_text()),
        # Docker runs a CMD-SHELL health check with /bin/sh.
        ("sh", f"#!/bin/sh\n{HEALTH_COMMAND[1]}\n"),
    ],
    ids=["backup-loop", "restore", "health"],
)
def test_the_scripts_the_containers_run_pass_shellcheck(tmp_path: Path, shell: str, script: str) -> None:
    path = tmp_path / "script.sh"
    path.write_text(script)
    result = subprocess.run(
        [require_binary("shellcheck"), f"--shell={shell}", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout
