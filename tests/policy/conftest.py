"""Fixtures that run the policy pack, in its own virtualenv, on resources built by the tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests.policy.builders import PolicyInput
from tests.policy.pack import Finding, PackReport, PackRunner, build_policy_venv, findings


@pytest.fixture(scope="session")
def policy_python() -> Path:
    """The interpreter of policy/.venv, built or rebuilt from policy/requirements.txt."""
    return build_policy_venv()


@pytest.fixture(scope="session")
def pack_runner(policy_python: Path) -> Iterator[PackRunner]:
    """One run_policies.py process in the pack's virtualenv for the session's checks."""
    runner = PackRunner(policy_python)
    try:
        yield runner
    finally:
        runner.close()


@pytest.fixture
def check_policies(pack_runner: PackRunner) -> Callable[[Sequence[PolicyInput]], list[Finding]]:
    """Run every policy's validate on the resources; return the violations."""

    def check(resources: Sequence[PolicyInput]) -> list[Finding]:
        return findings(pack_runner.run("direct", resources)["violations"])

    return check


@pytest.fixture
def serve_pack(pack_runner: PackRunner) -> Callable[[Sequence[PolicyInput]], PackReport]:
    """Start the pack as the Pulumi CLI does and analyze the resources over gRPC."""

    def serve(resources: Sequence[PolicyInput]) -> PackReport:
        raw = pack_runner.run("grpc", resources)
        return PackReport(
            pack=raw["pack"],
            policies=raw["policies"],
            violations=findings(raw["violations"]),
            advisories=findings(raw["advisories"]),
        )

    return serve
