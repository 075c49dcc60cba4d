"""Run the Pulumi CLI for `make up`, `make preview` and `make destroy`, installing it when missing.

    venv/bin/python scripts/pulumi_cli.py <pulumi arguments>

runs `pulumi <arguments>` with the first of:

1. the project's own copy, .pulumi-cli/bin/pulumi, when it is the pinned version;
2. a `pulumi` on PATH of the pinned major version and no older than the pin;
3. the pinned version, installed into .pulumi-cli/ with Pulumi's own installer (saying why).

When that install fails (no network, no curl, an unsupported platform), it exits 1 with the
version to install, the command that does it and the install page; not with a stack trace.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

# The one pin of the CLI version. Pulumi releases the CLI and the Python SDK together under one
# version number; this is the SDK release requirements.txt resolved to when it was set, and a
# unit test keeps it inside requirements.txt's `pulumi` range.
PULUMI_VERSION = "3.272.0"

PROJECT = Path(__file__).resolve().parents[1]
INSTALL_DIR = ".pulumi-cli"
INSTALL_PAGE = "https://www.pulumi.com/docs/install/"
# get.pulumi.com serves dist/install.sh of github.com/pulumi/get.pulumi.com (the bucket's default
# root object). With `--version X.Y.Z` it downloads, with curl,
#   https://github.com/pulumi/pulumi/releases/download/vX.Y.Z/pulumi-vX.Y.Z-<os>-<arch>.tar.gz
# (os linux or darwin, arch x64 or arm64), falling back to the same file under
# https://get.pulumi.com/releases/sdk/, and unpacks the CLI and its language hosts into
# <install-root>/bin. It checks no checksum: it relies on HTTPS. Without --no-edit-path it
# would append the install root to the user's ~/.bashrc or ~/.zshrc.
INSTALLER_URL = "https://get.pulumi.com"
INSTALL_TIMEOUT_SECONDS = 900
VERSION_TIMEOUT_SECONDS = 60
STDERR_FD = 2

Version = tuple[int, int, int]


class InstallFailed(Exception):
    """The pinned CLI could not be installed; the message says why."""


class CliUnavailable(Exception):
    """No usable CLI and none could be installed; the message tells the user what to do."""


Installer = Callable[[str, Path], None]


def parse_version(text: str) -> Version | None:
    """`pulumi version` prints `v3.140.0` (dev builds add `-alpha...`); None for anything else."""
    match = re.match(r"\s*v?(\d+)\.(\d+)\.(\d+)", text)
    if match is None:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def _pinned(version: str) -> Version:
    parsed = parse_version(version)
    if parsed is None:
        raise ValueError(f"the pinned Pulumi version {version!r} is not X.Y.Z")
    return parsed


def acceptable(found: Version, pinned: Version) -> bool:
    # Within a major version a newer CLI runs an older SDK's program; an older one may lack what
    # the SDK asks of it.
    return found[0] == pinned[0] and found >= pinned


def version_of(binary: Path) -> Version | None:
    """What `binary version` reports, or None when it does not run or says something else."""
    try:
        done = subprocess.run(
            [str(binary), "version"],
            capture_output=True,
            text=True,
            timeout=VERSION_TIMEOUT_SECONDS,
            check=False,
            env={**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "true"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_version(done.stdout) if done.returncode == 0 else None


def _describe(version: Version | None) -> str:
    return "v" + ".".join(map(str, version)) if version is not None else "not a working Pulumi CLI"


def install_with_pulumi_installer(version: str, root: Path, curl: str | None = None) -> None:
    """Install Pulumi `version` into `root`/bin with Pulumi's installer, or raise InstallFailed."""
    curl = curl or shutil.which("curl")
    if curl is None:
        raise InstallFailed("curl is not installed, and Pulumi's installer downloads with it")
    with tempfile.TemporaryDirectory(prefix="pulumi-installer-") as scratch:
        script = Path(scratch) / "install.sh"
        try:
            fetched = subprocess.run(
                [curl, "-fsSL", "-o", str(script), INSTALLER_URL],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise InstallFailed(f"downloading {INSTALLER_URL} timed out") from None
        if fetched.returncode != 0:
            reason = fetched.stderr.strip() or f"curl exited with status {fetched.returncode}"
            raise InstallFailed(f"could not download Pulumi's installer from {INSTALLER_URL} ({reason})")
        try:
            # Its progress goes to stderr: stdout stays the CLI's.
            installed = subprocess.run(
                ["sh", str(script), "--version", version, "--install-root", str(root), "--no-edit-path"],
                stdout=STDERR_FD,
                timeout=INSTALL_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise InstallFailed(f"Pulumi's installer did not finish in {INSTALL_TIMEOUT_SECONDS} s") from None
    if installed.returncode != 0:
        raise InstallFailed(f"Pulumi's installer exited with status {installed.returncode} (its messages are above)")


def manual_install_message(version: str, project: Path, reason: str) -> str:
    root = project / INSTALL_DIR
    major = version.split(".")[0]
    return (
        f"error: this project needs the Pulumi CLI {version}, and installing it failed: {reason}\n"
        f"Install it into the project (make finds it there), then run make again:\n"
        f"    curl -fsSL {INSTALLER_URL} | sh -s -- --version {version} --install-root {root} --no-edit-path\n"
        f"or install Pulumi {version} or a newer {major}.x on your PATH, as {INSTALL_PAGE} describes."
    )


def project_cli(project: Path) -> Path:
    return project / INSTALL_DIR / "bin" / "pulumi"


def locate(
    project: Path,
    version: str = PULUMI_VERSION,
    install: Installer = install_with_pulumi_installer,
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> Path:
    """The `pulumi` binary to run: see the module docstring. Raises CliUnavailable."""
    pinned = _pinned(version)
    local = project_cli(project)
    local_version = version_of(local) if local.exists() else None
    if local_version == pinned:
        return local
    on_path = shutil.which("pulumi")
    path_version = version_of(Path(on_path)) if on_path is not None else None
    if on_path is not None and path_version is not None and acceptable(path_version, pinned):
        return Path(on_path)

    if on_path is not None:
        why = (
            f"the pulumi on PATH ({on_path}) is {_describe(path_version)}, "
            f"and this project needs {version} or a newer {pinned[0]}.x"
        )
    elif local.exists():
        why = f"{INSTALL_DIR}/bin/pulumi is {_describe(local_version)}, not the pinned {version}"
    else:
        why = "the Pulumi CLI is not installed"
    say(f"{why}: installing Pulumi {version} into {INSTALL_DIR}/ (once; make uses it from then on)")
    try:
        install(version, project / INSTALL_DIR)
    except InstallFailed as failure:
        raise CliUnavailable(manual_install_message(version, project, str(failure))) from None
    installed = version_of(local)
    if installed != pinned:
        reason = f"the installer finished, but {local} is {_describe(installed)}"
        raise CliUnavailable(manual_install_message(version, project, reason))
    return local


def _exec(cli: Path, arguments: Sequence[str], pinned_copy: bool) -> NoReturn:
    env = dict(os.environ)
    if pinned_copy:
        # The language hosts the CLI ships with (pulumi-language-python) sit beside it; on PATH,
        # the CLI finds them there. A copy found on PATH has its directory there already.
        env["PATH"] = os.pathsep.join([str(cli.parent), env.get("PATH", os.defpath)])
        # The project's copy moves with the pin, not with Pulumi's upgrade notices.
        env["PULUMI_SKIP_UPDATE_CHECK"] = "true"
    sys.stderr.flush()
    os.execve(cli, [str(cli), *arguments], env)


def main(arguments: Sequence[str]) -> int:
    try:
        cli = locate(PROJECT)
    except CliUnavailable as unavailable:
        print(unavailable, file=sys.stderr)
        return 1
    _exec(cli, arguments, pinned_copy=cli == project_cli(PROJECT))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
