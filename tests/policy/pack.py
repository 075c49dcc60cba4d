"""The policy pack's own virtualenv, and calls into it from the program's environment.

The pack lives in policy/.venv (the virtualenv PulumiPolicy.yaml names, so
`pulumi preview --policy-pack policy` uses the same one): pulumi-policy pins
protobuf 5.29, and installing it next to the program's SDKs would downgrade
their protobuf. `build_policy_venv` builds it from policy/requirements.txt
(again whenever that file changes); `PackRunner` hands resources as JSON to
run_policies.py inside it, one process for a test session.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.policy.builders import PolicyInput

ROOT = Path(__file__).resolve().parents[2]
POLICY_DIR = ROOT / "policy"
VENV = POLICY_DIR / ".venv"
RUNNER = Path(__file__).with_name("run_policies.py")
# Records which requirements the virtualenv was built from.
STAMP = VENV / "microstack-requirements.sha256"
# Held while the virtualenv is checked or built: pytest-xdist workers each run
# the session fixture, and two pip installs into one venv corrupt it.
LOCK = POLICY_DIR / ".venv.lock"
RUN_TIMEOUT_SECONDS = 120
VENV_BUILD_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class Finding:
    """One violation (or advisory) the pack reported."""

    policy: str
    resource: str
    message: str


@dataclass(frozen=True)
class PackReport:
    """What the served pack said: its policies with their levels, and its findings."""

    pack: str
    policies: dict[str, str]
    violations: list[Finding]
    advisories: list[Finding]


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=VENV_BUILD_TIMEOUT_SECONDS)
    if done.returncode != 0:
        pytest.fail(f"{what} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def build_policy_venv() -> Path:
    """Return the interpreter of policy/.venv, (re)building it when policy/requirements.txt changed.

    Safe to call from several processes at once: the first builds while the
    others wait on the lock, then find the stamp current.
    """
    requirements = POLICY_DIR / "requirements.txt"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    python = VENV / "bin" / "python"
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if python.exists() and STAMP.exists() and STAMP.read_text() == digest:
            return python
        _run([sys.executable, "-m", "venv", "--clear", str(VENV)], "creating policy/.venv")
        _run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(requirements)],
            "installing policy/requirements.txt into policy/.venv",
        )
        STAMP.write_text(digest)
    return python


def findings(raw: list[dict[str, str]]) -> list[Finding]:
    """Findings from run_policies.py's JSON."""
    return [Finding(**item) for item in raw]


class PackRunner:
    """run_policies.py in `serve` mode: one process for many checks, each a JSON line in and out."""

    def __init__(self, python: Path) -> None:
        self.process = subprocess.Popen(
            [str(python), str(RUNNER), "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, mode: str, resources: Sequence[PolicyInput]) -> dict[str, Any]:
        """run_policies.py's JSON answer for `mode` (direct or grpc) on the resources."""
        assert self.process.stdin is not None and self.process.stdout is not None
        request = json.dumps({"mode": mode, "resources": list(resources)}, default=str)
        try:
            self.process.stdin.write(request + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass
        answer = self.process.stdout.readline()
        if not answer:
            self.process.wait(RUN_TIMEOUT_SECONDS)
            stderr = self.process.stderr.read() if self.process.stderr else ""
            pytest.fail(f"run_policies.py serve exited ({self.process.returncode}):\n{stderr}")
        result: dict[str, Any] = json.loads(answer)
        return result

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(RUN_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
