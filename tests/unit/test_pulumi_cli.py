"""scripts/pulumi_cli.py: which Pulumi CLI `make up` runs, and installing the pinned one.

No network: `pulumi`, `curl` and Pulumi's installer are small shell scripts in tmp dirs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from scripts.pulumi_cli import (
    INSTALL_DIR,
    INSTALL_PAGE,
    INSTALLER_URL,
    PULUMI_VERSION,
    CliUnavailable,
    InstallFailed,
    install_with_pulumi_installer,
    locate,
    parse_version,
    project_cli,
)
from tests.support.binaries import require_binary

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "pulumi_cli.py"
MAJOR, MINOR, _ = (int(part) for part in PULUMI_VERSION.split("."))
PINNED = f"v{PULUMI_VERSION}"
NEWER = f"v{MAJOR}.{MINOR + 1}.0"
OLDER = f"v{MAJOR}.{MINOR - 1}.0"
MANUAL_COMMAND = f"curl -fsSL {INSTALLER_URL} | sh -s -- --version {PULUMI_VERSION} --install-root"
NO_NETWORK = "curl: (6) Could not resolve host: get.pulumi.com"


def _script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nPATH=/usr/bin:/bin\n" + body)
    path.chmod(0o755)
    return path


def _fake_pulumi(path: Path, version: str) -> Path:
    # Reports its version; otherwise echoes how it was run.
    return _script(
        path,
        f'if [ "$1" = version ]; then echo "{version}"; exit 0; fi\n'
        'echo "args: $*"\necho "skip-update-check: ${PULUMI_SKIP_UPDATE_CHECK:-}"\n',
    )


def _fake_installer(path: Path, calls: Path) -> Path:
    # Pulumi's installer, reduced to its interface: --version and --install-root.
    return _script(
        path,
        f'echo "$*" >> "{calls}"\n'
        "while [ $# -gt 0 ]; do\n"
        '  case "$1" in --version) version=$2; shift;; --install-root) root=$2; shift;; esac\n'
        "  shift\n"
        "done\n"
        'mkdir -p "$root/bin"\n'
        'printf \'#!/bin/sh\\necho v%s\\n\' "$version" > "$root/bin/pulumi"\n'
        'chmod +x "$root/bin/pulumi"\n',
    )


def _fake_curl(path: Path, served: Path, requested: Path) -> Path:
    # Serves `served` for any URL and notes the URL.
    return _script(
        path,
        'for argument; do url=$argument; done\nout=""\n'
        'while [ $# -gt 0 ]; do [ "$1" = -o ] && out=$2; shift; done\n'
        f'echo "$url" >> "{requested}"\ncp "{served}" "$out"\n',
    )


def _offline_curl(path: Path) -> Path:
    return _script(path, f'echo "{NO_NETWORK}" >&2\nexit 6\n')


class FakeInstaller:
    """Stands in for Pulumi's installer: installs `installs` (a `pulumi version` line), or fails."""

    def __init__(self, installs: str | None = None, fails: str | None = None) -> None:
        self.installs, self.fails = installs, fails
        self.calls: list[tuple[str, Path]] = []

    def __call__(self, version: str, root: Path) -> None:
        self.calls.append((version, root))
        if self.fails is not None:
            raise InstallFailed(self.fails)
        if self.installs is not None:
            _fake_pulumi(root / "bin" / "pulumi", self.installs)


@pytest.fixture
def path_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The only directory on PATH: empty unless a test puts a `pulumi` there."""
    directory = tmp_path / "path"
    directory.mkdir()
    monkeypatch.setenv("PATH", str(directory))
    return directory


@pytest.fixture
def project(tmp_path: Path) -> Path:
    directory = tmp_path / "project"
    directory.mkdir()
    return directory


@pytest.mark.parametrize(
    ("text", "version"),
    [("v3.140.0\n", (3, 140, 0)), ("3.1.2", (3, 1, 2)), ("v3.141.0-alpha.1718+g1234abc", (3, 141, 0)), ("", None)],
)
def test_parse_version_reads_what_pulumi_version_prints(text: str, version: tuple[int, int, int] | None) -> None:
    assert parse_version(text) == version


def test_the_pin_is_inside_the_sdk_range_of_requirements_txt() -> None:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    (sdk,) = [Requirement(line) for line in lines if line.startswith("pulumi") and Requirement(line).name == "pulumi"]
    assert sdk.specifier.contains(PULUMI_VERSION), f"pin {PULUMI_VERSION} is outside requirements.txt's {sdk}"


def test_the_projects_copy_of_the_pinned_version_is_used_first(path_dir: Path, project: Path) -> None:
    local = _fake_pulumi(project_cli(project), PINNED)
    _fake_pulumi(path_dir / "pulumi", NEWER)
    installer = FakeInstaller()
    assert locate(project, install=installer) == local
    assert installer.calls == []


@pytest.mark.parametrize("version", [PINNED, NEWER])
def test_a_pulumi_on_path_of_the_pinned_major_and_no_older_is_used(path_dir: Path, project: Path, version: str) -> None:
    on_path = _fake_pulumi(path_dir / "pulumi", version)
    installer = FakeInstaller()
    assert locate(project, install=installer) == on_path
    assert installer.calls == []


@pytest.mark.parametrize("version", [OLDER, f"v{MAJOR + 1}.0.0", f"v{MAJOR - 1}.25.2", "not a version"])
def test_a_wrong_pulumi_on_path_gets_the_pinned_version_installed_into_the_project(
    path_dir: Path, project: Path, version: str
) -> None:
    _fake_pulumi(path_dir / "pulumi", version)
    installer = FakeInstaller(installs=PINNED)
    said: list[str] = []
    assert locate(project, install=installer, say=said.append) == project_cli(project)
    assert installer.calls == [(PULUMI_VERSION, project / INSTALL_DIR)]
    (line,) = said
    assert str(path_dir / "pulumi") in line
    assert f"installing Pulumi {PULUMI_VERSION} into {INSTALL_DIR}/" in line


def test_an_absent_pulumi_is_installed_into_the_project(path_dir: Path, project: Path) -> None:
    installer = FakeInstaller(installs=PINNED)
    said: list[str] = []
    assert locate(project, install=installer, say=said.append) == project_cli(project)
    assert installer.calls == [(PULUMI_VERSION, project / INSTALL_DIR)]
    assert said == [
        f"the Pulumi CLI is not installed: installing Pulumi {PULUMI_VERSION} into {INSTALL_DIR}/"
        " (once; make uses it from then on)"
    ]


def test_a_projects_copy_of_another_version_is_replaced_by_the_pinned_one(path_dir: Path, project: Path) -> None:
    _fake_pulumi(project_cli(project), OLDER)
    installer = FakeInstaller(installs=PINNED)
    said: list[str] = []
    assert locate(project, install=installer, say=said.append) == project_cli(project)
    assert installer.calls == [(PULUMI_VERSION, project / INSTALL_DIR)]
    assert f"not the pinned {PULUMI_VERSION}" in said[0]


def test_an_install_that_cannot_download_says_what_to_install(path_dir: Path, project: Path) -> None:
    installer = FakeInstaller(fails=f"could not download Pulumi's installer from {INSTALLER_URL} ({NO_NETWORK})")
    with pytest.raises(CliUnavailable) as raised:
        locate(project, install=installer, say=lambda _: None)
    message = str(raised.value)
    assert f"needs the Pulumi CLI {PULUMI_VERSION}" in message
    assert NO_NETWORK in message
    assert f"{MANUAL_COMMAND} {project / INSTALL_DIR} --no-edit-path" in message
    assert INSTALL_PAGE in message


def test_an_installer_that_leaves_no_working_cli_is_an_error(path_dir: Path, project: Path) -> None:
    reason = f"the installer finished, but {project_cli(project)} is not a working Pulumi CLI"
    with pytest.raises(CliUnavailable, match=re.escape(reason)):
        locate(project, install=FakeInstaller(), say=lambda _: None)


def test_pulumis_installer_is_run_with_the_pin_the_project_root_and_no_profile_edit(tmp_path: Path) -> None:
    calls, requested = tmp_path / "installer-calls", tmp_path / "requested"
    installer = _fake_installer(tmp_path / "install.sh", calls)
    curl = _fake_curl(tmp_path / "curl", installer, requested)
    root = tmp_path / "project" / INSTALL_DIR
    install_with_pulumi_installer(PULUMI_VERSION, root, curl=str(curl))
    assert requested.read_text().split() == [INSTALLER_URL]
    assert calls.read_text().split() == ["--version", PULUMI_VERSION, "--install-root", str(root), "--no-edit-path"]
    installed = subprocess.run([root / "bin" / "pulumi", "version"], capture_output=True, text=True, check=True)
    assert installed.stdout.strip() == PINNED


def test_no_network_is_reported_with_curls_own_words(tmp_path: Path) -> None:
    curl = _offline_curl(tmp_path / "curl")
    with pytest.raises(InstallFailed, match=f"could not download Pulumi's installer .*{re.escape(NO_NETWORK)}"):
        install_with_pulumi_installer(PULUMI_VERSION, tmp_path / INSTALL_DIR, curl=str(curl))


def test_a_failing_installer_is_reported_with_its_exit_status(tmp_path: Path) -> None:
    installer = _script(tmp_path / "install.sh", "echo 'error: failed to download' >&2\nexit 1\n")
    curl = _fake_curl(tmp_path / "curl", installer, tmp_path / "requested")
    with pytest.raises(InstallFailed, match="installer exited with status 1"):
        install_with_pulumi_installer(PULUMI_VERSION, tmp_path / INSTALL_DIR, curl=str(curl))


def test_without_curl_the_install_says_it_needs_curl(path_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InstallFailed, match="curl is not installed"):
        install_with_pulumi_installer(PULUMI_VERSION, tmp_path / INSTALL_DIR)


def _run_script(project: Path, path_dir: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """The script as `make up` runs it, from a copy in `project` (so it installs there)."""
    copy = project / "scripts" / "pulumi_cli.py"
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(SCRIPT, copy)
    sh = shutil.which("sh")
    assert sh is not None
    path_dir.mkdir(exist_ok=True)
    (path_dir / "sh").symlink_to(sh)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PULUMI_")}
    return subprocess.run(
        [sys.executable, str(copy), *arguments],
        env={**env, "PATH": str(path_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_script_runs_the_chosen_pulumi_with_its_arguments(tmp_path: Path, project: Path) -> None:
    _fake_pulumi(project_cli(project), PINNED)
    done = _run_script(project, tmp_path / "path-bin", "stack", "select", "--create", "dev")
    assert done.returncode == 0, done.stderr
    # The project's copy runs without Pulumi's upgrade notices: the pin decides its version.
    assert done.stdout.splitlines() == ["args: stack select --create dev", "skip-update-check: true"]


def test_the_script_installs_an_absent_pulumi_then_runs_it(tmp_path: Path, project: Path) -> None:
    path_dir = tmp_path / "path-bin"
    installer = _fake_installer(tmp_path / "install.sh", tmp_path / "installer-calls")
    _fake_curl(path_dir / "curl", installer, tmp_path / "requested")
    done = _run_script(project, path_dir, "version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == PINNED
    assert "the Pulumi CLI is not installed: installing" in done.stderr


def test_the_script_without_network_exits_1_with_what_to_install_and_no_traceback(
    tmp_path: Path, project: Path
) -> None:
    path_dir = tmp_path / "path-bin"
    _offline_curl(path_dir / "curl")
    done = _run_script(project, path_dir, "up", "--stack", "dev")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert NO_NETWORK in done.stderr
    assert f"{MANUAL_COMMAND} {project / INSTALL_DIR} --no-edit-path" in done.stderr
    assert INSTALL_PAGE in done.stderr
    assert not project_cli(project).exists()


def test_make_up_preview_and_destroy_run_pulumi_through_the_script() -> None:
    targets = ("up", "preview", "destroy")
    done = subprocess.run(
        [require_binary("make"), "-n", "--no-print-directory", "-C", str(ROOT), *targets, "STACK=dev"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    pulumi = "venv/bin/python scripts/pulumi_cli.py"
    assert [line for line in done.stdout.splitlines() if "stack" in line] == [
        f"{pulumi} stack select --create dev",
        f"{pulumi} up --stack dev",
        f"{pulumi} stack select --create dev",
        f"{pulumi} preview --stack dev",
        f"{pulumi} destroy --stack dev",
    ]
    assert not any(line.startswith("pulumi ") for line in done.stdout.splitlines())
