"""Fixtures that run the policy pack, in its own virtualenv, on resources built by the tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tests.policy.builders import PolicyInput
from tests.policy.pack import Finding, PackReport, build_policy_venv, findings, run_pack


@pytest.fixture(scope="session")
def policy_python() -> Path:
    """The interpreter of policy/.venv, built or rebuilt from policy/requirements.txt."""
    return build_policy_venv()


@pytest.fixture
def check_policies(policy_python: Path) -> Callable[[Sequence[PolicyInput]], list[Finding]]:
    """Run every policy's validate on the resources; return the violations."""

    def check(resources: Sequence[PolicyInput]) -> list[Finding]:
        return findings(run_pack(policy_python, "direct", resources)["violations"])

    return check


@pytest.fixture
def serve_pack(policy_python: Path) -> Callable[[Sequence[PolicyInput]], PackReport]:
    """Start the pack as the Pulumi CLI does and analyze the resources over gRPC."""

    def serve(resources: Sequence[PolicyInput]) -> PackReport:
        raw = run_pack(policy_python, "grpc", resources)
        return PackReport(
            pack=raw["pack"],
            policies=raw["policies"],
            violations=findings(raw["violations"]),
            advisories=findings(raw["advisories"]),
        )

    return serve
