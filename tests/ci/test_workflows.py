"""The GitHub workflows: actionlint-clean, and shaped the way delivery depends on.

actionlint (with shellcheck for the `run:` scripts) comes from requirements-dev.txt;
a missing binary fails these tests rather than skipping them.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.binaries import find_binary

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
PREPARE_ACTION = ROOT / ".github" / "actions" / "pulumi-prepare" / "action.yml"
STACKS = ["dev", "staging", "prod", "swarm"]
PULUMI_ACTION = "pulumi/actions@"
# A release tag with all three parts, or a commit SHA: never a branch or a moving major tag.
PINNED_REF = re.compile(r"@(v\d+\.\d+\.\d+|[0-9a-f]{40})$")


def _tool(name: str) -> str:
    # Not require_binary: these come from pip, not apt, so they are never missing for a good reason.
    path = find_binary(name)
    if path is None:
        pytest.fail(f"{name} is not installed; `pip install -r requirements-dev.txt` provides it")
    return path


def _actionlint(*paths: Path, cwd: Path = ROOT) -> list[dict[str, Any]]:
    done = subprocess.run(
        [_tool("actionlint"), "-shellcheck", _tool("shellcheck"), "-format", "{{json .}}", *map(str, paths)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # 0: clean, 1: findings; anything else is actionlint failing to run.
    assert done.returncode in (0, 1), done.stderr
    findings: list[dict[str, Any]] = json.loads(done.stdout or "[]")
    return findings


def _load(path: Path) -> dict[Any, Any]:
    document: dict[Any, Any] = yaml.safe_load(path.read_text())
    return document


def _triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the bare key `on` as the boolean True.
    triggers: dict[str, Any] = workflow["on"] if "on" in workflow else workflow[True]
    return triggers


def _pulumi_step(job: dict[str, Any]) -> dict[str, Any]:
    steps = [step for step in job["steps"] if step.get("uses", "").startswith(PULUMI_ACTION)]
    assert len(steps) == 1, f"expected one pulumi/actions step, found {len(steps)}"
    return steps[0]


def _all_uses(document: dict[str, Any]) -> list[str]:
    uses = []
    for job in document.get("jobs", {}).values():
        if "uses" in job:
            uses.append(job["uses"])
        uses.extend(step["uses"] for step in job.get("steps", []) if "uses" in step)
    uses.extend(step["uses"] for step in document.get("runs", {}).get("steps", []) if "uses" in step)
    return uses


@pytest.fixture(scope="module")
def pull_request() -> dict[Any, Any]:
    return _load(WORKFLOWS / "pull-request.yml")


@pytest.fixture(scope="module")
def deploy() -> dict[Any, Any]:
    return _load(WORKFLOWS / "deploy.yml")


def test_workflows_pass_actionlint() -> None:
    workflows = sorted(WORKFLOWS.glob("*.yml"))
    assert workflows, "no workflows found"
    findings = _actionlint(*workflows)
    assert findings == [], "\n".join(f"{f['filepath']}:{f['line']}: {f['message']} [{f['kind']}]" for f in findings)


def test_actionlint_reports_a_broken_workflow(tmp_path: Path) -> None:
    # Guards the test above against a linter that finds nothing at all.
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: echo ${{ github.no_such_field }} $unquoted\n"
    )
    kinds = {finding["kind"] for finding in _actionlint(broken, cwd=tmp_path)}
    assert {"expression", "shellcheck"} <= kinds


def test_composite_action_scripts_pass_shellcheck(tmp_path: Path) -> None:
    # actionlint checks workflows only; the composite action's scripts get shellcheck directly.
    steps = [step for step in _load(PREPARE_ACTION)["runs"]["steps"] if "run" in step]
    assert steps
    for index, step in enumerate(steps):
        assert step["shell"] == "bash"
        assert "${{" not in step["run"], "pass inputs through env, not into the script text"
        script = tmp_path / f"step-{index}.sh"
        script.write_text("#!/usr/bin/env bash\n" + step["run"])
        done = subprocess.run([_tool("shellcheck"), str(script)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{step.get('name', index)}:\n{done.stdout}"


def test_every_action_is_pinned_to_a_release() -> None:
    for path in [*WORKFLOWS.glob("*.yml"), PREPARE_ACTION]:
        for uses in _all_uses(_load(path)):
            if uses.startswith("./"):
                continue
            assert PINNED_REF.search(uses), f"{path.name}: {uses} is not pinned to vX.Y.Z or a commit"


def test_workflow_stacks_match_the_stack_files(pull_request: dict[Any, Any], deploy: dict[Any, Any]) -> None:
    stack_files = sorted(p.name.split(".")[1] for p in (ROOT / "configs").glob("Pulumi.*.yaml"))
    assert sorted(pull_request["jobs"]["preview"]["strategy"]["matrix"]["stack"]) == stack_files
    assert sorted(_pulumi_step(deploy["jobs"][stack])["with"]["stack-name"] for stack in STACKS) == stack_files


def test_pull_requests_preview_every_stack_after_the_tests(pull_request: dict[Any, Any]) -> None:
    assert "pull_request" in _triggers(pull_request)
    preview = pull_request["jobs"]["preview"]
    assert preview["needs"] == "tests"
    assert pull_request["jobs"]["tests"]["uses"] == "./.github/workflows/tests.yml"
    assert preview["strategy"]["matrix"]["stack"] == STACKS
    step = _pulumi_step(preview)["with"]
    assert step["command"] == "preview"
    assert step["stack-name"] == "${{ matrix.stack }}"
    assert step["comment-on-pr"] is True
    assert step["policyPacks"] == "policy"


def test_preview_job_may_comment_on_the_pull_request(pull_request: dict[Any, Any]) -> None:
    assert pull_request["jobs"]["preview"]["permissions"]["pull-requests"] == "write"
    # Everything else stays read-only.
    assert pull_request["permissions"] == {"contents": "read"}


@pytest.mark.parametrize("workflow", ["pull-request.yml", "deploy.yml"])
def test_state_backend_and_passphrase_come_from_secrets(workflow: str) -> None:
    document = _load(WORKFLOWS / workflow)
    env: dict[str, str] = dict(document.get("env", {}))
    for job in document["jobs"].values():
        env.update(job.get("env", {}))
    assert env["PULUMI_BACKEND_URL"] == "${{ secrets.PULUMI_BACKEND_URL }}"
    assert env["PULUMI_CONFIG_PASSPHRASE"] == "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"


def test_main_deploys_dev_then_staging_then_prod_and_swarm(deploy: dict[Any, Any]) -> None:
    assert _triggers(deploy)["push"]["branches"] == ["main"]
    jobs = deploy["jobs"]
    needs = [jobs[stack]["needs"] for stack in ("dev", "staging", "prod", "swarm")]
    assert needs == ["tests", "dev", "staging", "staging"]
    assert deploy["concurrency"]["cancel-in-progress"] is False


@pytest.mark.parametrize("stack", STACKS)
def test_each_deploy_runs_up_with_the_policy_pack_in_its_environment(deploy: dict[Any, Any], stack: str) -> None:
    job = deploy["jobs"][stack]
    assert job["environment"] == stack
    step = _pulumi_step(job)["with"]
    assert (step["command"], step["stack-name"], step["policyPacks"]) == ("up", stack, "policy")
