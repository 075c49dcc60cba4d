"""Deploy the dev stack with the Automation API to a local Docker engine, probe it, destroy it.

The `up` runs with the policy pack (`--policy-pack policy`), so a violation
fails it as it would in the deploy workflow.

This is `pulumi up` for real: the Pulumi CLI, the Docker provider plugin and
a Docker engine. It runs where the CLI is on PATH and skips, saying so, where
it is not. State goes to a file backend in a temporary directory, encrypted
with a throw-away passphrase, so the test touches no one's stacks.

The project is copied to a temporary directory first: creating a stack with
the passphrase provider writes its `encryptionsalt` into
the stack's file in configs/, and the repository's copy must stay as it is.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pulumi import automation

from microstack_common import contract
from tests.policy.pack import VENV as POLICY_VENV
from tests.policy.pack import build_policy_venv
from tests.support.binaries import REQUIRE_ENV, binaries_required

ROOT = Path(__file__).resolve().parents[2]
# The dev stack file, deployed under a stack name of its own: Docker object
# names and the frontend subnet derive from the stack name, so the test never
# touches a `make up` dev stack on the same engine.
SOURCE_STACK = "dev"
PROJECT_COPY_IGNORE = shutil.ignore_patterns(
    ".git",
    "venv",
    ".venv",
    ".pulumi-state",
    ".pulumi-cli",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
)
# Where `make up` installs the pinned CLI when none is on PATH (scripts/pulumi_cli.py).
PROJECT_CLI = ROOT / ".pulumi-cli" / "bin" / "pulumi"
PROBE_DEADLINE_SECONDS = 120
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"

pytestmark = pytest.mark.slow


def _require_pulumi_cli() -> str:
    cli = shutil.which("pulumi")
    if cli is None and PROJECT_CLI.is_file():
        # The copy `make up` installed: the Automation API runs `pulumi` from PATH.
        os.environ["PATH"] = f"{PROJECT_CLI.parent}{os.pathsep}{os.environ.get('PATH', '')}"
        cli = str(PROJECT_CLI)
    if cli is None:
        # The one skip CI may take: the CLI cannot be installed from a package registry.
        pytest.skip(
            "the pulumi CLI is neither on PATH nor in .pulumi-cli (`make up` installs it; see "
            "pulumi.com/docs/install); this test runs `pulumi up` with it"
        )
    return cli


def _require_docker_engine() -> str:
    host = os.environ.get("DOCKER_HOST", DEFAULT_DOCKER_HOST)
    docker = shutil.which("docker")
    answered = (
        docker is not None
        and subprocess.run([docker, "info"], capture_output=True, timeout=30, check=False).returncode == 0
    )
    if not answered:
        message = f"no Docker engine answers at {host} (start dockerd, or point DOCKER_HOST at one)"
        if binaries_required():
            pytest.fail(f"{message}; {REQUIRE_ENV} is set, so this is a failure")
        pytest.skip(message)
    return host


def _free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _virtualenv_for(project: Path) -> None:
    """Give the copy the `venv` Pulumi.yaml names, holding this interpreter's packages."""
    venv = project / "venv"
    if sys.prefix != sys.base_prefix:
        # Running inside a virtualenv already (e.g. `make test`): reuse it.
        venv.symlink_to(sys.prefix, target_is_directory=True)
    else:
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)


def _dev_config(project: Path, key: str) -> dict[str, Any]:
    document = yaml.safe_load((project / "configs" / f"Pulumi.{SOURCE_STACK}.yaml").read_text())
    value: dict[str, Any] = document["config"].get(f"microstack:{key}", {})
    return value


@pytest.fixture
def dev_stack(tmp_path: Path) -> Iterator[tuple[automation.Stack, int]]:
    """The dev stack, created in a temporary file backend; destroyed and removed afterwards."""
    _require_pulumi_cli()
    docker_host = _require_docker_engine()

    project = tmp_path / "project"
    shutil.copytree(ROOT, project, ignore=PROJECT_COPY_IGNORE, symlinks=True)
    _virtualenv_for(project)
    # The policy pack runs in the `up` too, from its own virtualenv.
    build_policy_venv()
    (project / "policy" / ".venv").symlink_to(POLICY_VENV, target_is_directory=True)
    state = tmp_path / "state"
    state.mkdir()
    stack_name = f"{SOURCE_STACK}-automation-{uuid.uuid4().hex[:8]}"
    shutil.copy(project / "configs" / f"Pulumi.{SOURCE_STACK}.yaml", project / "configs" / f"Pulumi.{stack_name}.yaml")

    options = automation.LocalWorkspaceOptions(
        secrets_provider="passphrase",
        env_vars={
            "PULUMI_BACKEND_URL": state.as_uri(),
            "PULUMI_CONFIG_PASSPHRASE": "automation-test-only",
            "PULUMI_SKIP_UPDATE_CHECK": "true",
        },
    )
    stack = automation.create_or_select_stack(stack_name=stack_name, work_dir=str(project), opts=options)
    try:
        # The dev stack file applies as is; only where it would collide with
        # the machine running the test is it changed: a free port for the
        # proxy (8080 may be taken) and the engine that answered above.
        port = _free_loopback_port()
        proxy = {**_dev_config(project, "proxy"), "bindAddress": "127.0.0.1", "httpPort": port}
        stack.set_config("microstack:proxy", automation.ConfigValue(value=json.dumps(proxy)))
        stack.set_config("docker:host", automation.ConfigValue(value=docker_host))
        yield stack, port
    finally:
        try:
            stack.destroy(on_output=print)
        finally:
            stack.workspace.remove_stack(stack_name)


def _get_when_ready(url: str) -> httpx.Response:
    """GET url, retrying while the replicas are still starting behind the proxy."""
    deadline = time.monotonic() + PROBE_DEADLINE_SECONDS
    while True:
        try:
            response = httpx.get(url, timeout=5)
            if response.status_code == 200 or time.monotonic() > deadline:
                return response
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
        time.sleep(2)


def test_up_serves_the_api_through_the_proxy_on_loopback(dev_stack: tuple[automation.Stack, int]) -> None:
    stack, port = dev_stack
    result = stack.up(on_output=print, policy_packs=[str(Path(stack.workspace.work_dir) / "policy")])
    assert result.summary.result == "succeeded"

    base = f"http://127.0.0.1:{port}"
    health = _get_when_ready(base + contract.HEALTH_PATH)
    assert health.status_code == 200, health.text

    instance = _get_when_ready(f"{base}{contract.API_PREFIX}/instance")
    assert instance.status_code == 200, instance.text
    assert instance.json()["instance"], "the API did not say which instance answered"
