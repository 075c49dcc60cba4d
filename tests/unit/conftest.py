"""Fixtures for the unit tests: the program evaluated under Pulumi mocks."""

from __future__ import annotations

import pytest

from tests.support.program import Program, run_stack_file

STACKS = ("dev", "staging", "prod")
# prod takes its TLS pair from secret config; under mocks a placeholder stands in.
PROD_SECRETS = {"tlsCertificate": "mock-cert", "tlsPrivateKey": "mock-key"}


def evaluate_stack(stack: str) -> Program:
    return run_stack_file(stack, secrets=PROD_SECRETS if stack == "prod" else None)


@pytest.fixture(scope="module", params=STACKS)
def stack_program(request: pytest.FixtureRequest) -> Program:
    """The program evaluated with each stack file in configs/."""
    return evaluate_stack(request.param)
