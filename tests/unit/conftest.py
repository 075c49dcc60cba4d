"""Fixtures for the unit tests: the program evaluated under Pulumi mocks."""

from __future__ import annotations

from functools import cache

import pytest

from tests.support.program import Program, run_stack_file

STACKS = ("dev", "staging", "prod")
# prod takes its TLS pair from secret config; under mocks a placeholder stands in.
PROD_SECRETS = {"tlsCertificate": "mock-cert", "tlsPrivateKey": "mock-key"}
# swarm pushes to a registry whose password is secret config.
SWARM_SECRETS = {"registryPassword": "mock-registry-password"}
_STACK_SECRETS = {"prod": PROD_SECRETS, "swarm": SWARM_SECRETS}


@cache
def evaluate_stack(stack: str) -> Program:
    """configs/Pulumi.<stack>.yaml under mocks, with the secret config it needs.

    Evaluated once per test session (about a second each for the larger
    stacks, asked for by dozens of tests): the stack files and the program do
    not change during a run, and tests only read the result. A test that
    patches the program or changes the config calls run_program itself.
    """
    return run_stack_file(stack, secrets=_STACK_SECRETS.get(stack))


@pytest.fixture(scope="module", params=STACKS)
def stack_program(request: pytest.FixtureRequest) -> Program:
    """The program evaluated with each stack file in configs/."""
    return evaluate_stack(request.param)
