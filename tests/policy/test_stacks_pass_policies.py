"""The real program, evaluated for each stack file under mocks, against the policy pack.

The program runs here, in its own environment (tests.support.program records
every resource it declares); the recorded resources go to the pack in its
virtualenv as JSON, just as the engine would hand them over: inputs to the
resource rules, outputs (inputs plus e.g. a password's `result`) to the stack
rules.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import pytest

from tests.policy.builders import PolicyInput
from tests.policy.pack import Finding
from tests.support.program import CONTAINER, RANDOM_PASSWORD, Program, run_stack_file

Check = Callable[[Sequence[PolicyInput]], list[Finding]]

STACKS = ("dev", "staging", "prod")
# What a user sets with `pulumi config set --secret` before the first `up`
# (see each stack file's comments); placeholders stand in under mocks.
USER_SECRETS = {"prod": {"tlsCertificate": "mock-cert", "tlsPrivateKey": "mock-key"}}


def recorded(program: Program) -> list[PolicyInput]:
    """The program's resources in the shape the policy runner reads."""
    return [
        {"type": r.type, "name": r.name, "inputs": copy.deepcopy(r.inputs), "outputs": copy.deepcopy(r.outputs)}
        for r in program.resources
    ]


def container_named(resources: list[PolicyInput], name: str) -> PolicyInput:
    matches = [r for r in resources if r.get("type") == CONTAINER and r.get("name") == name]
    assert len(matches) == 1, f"expected one container {name!r}, found {len(matches)}"
    return matches[0]


def mutate(resource: PolicyInput, **changes: object) -> None:
    """Change a property in both the inputs and the outputs, as a changed program would."""
    for props in (resource["inputs"], resource.get("outputs", {})):
        for key, value in changes.items():
            if value is None:
                props.pop(key, None)
            else:
                props[key] = value


@pytest.fixture(scope="module")
def dev_resources() -> list[PolicyInput]:
    return recorded(run_stack_file("dev"))


@pytest.mark.parametrize("stack", STACKS)
def test_stack_passes_every_policy(check_policies: Check, stack: str) -> None:
    resources = recorded(run_stack_file(stack, secrets=USER_SECRETS.get(stack)))
    assert any(r["type"] == CONTAINER for r in resources), "the program declared no containers"
    assert check_policies(resources) == []


def test_container_without_memory_limit_is_caught(check_policies: Check, dev_resources: list[PolicyInput]) -> None:
    resources = copy.deepcopy(dev_resources)
    mutate(container_named(resources, "api-1"), memory=None)
    findings = check_policies(resources)
    assert [(f.policy, f.resource) for f in findings] == [("container-memory-limit", "api-1")]


def test_database_publishing_its_port_is_caught(check_policies: Check, dev_resources: list[PolicyInput]) -> None:
    resources = copy.deepcopy(dev_resources)
    postgres = next(r for r in resources if r["type"] == CONTAINER and "postgres" in r["name"])
    mutate(postgres, ports=[{"internal": 5432, "external": 5432}])
    findings = check_policies(resources)
    assert [(f.policy, f.resource) for f in findings] == [("backend-isolation", postgres["name"])]


def test_generated_password_passed_in_env_is_caught(check_policies: Check, dev_resources: list[PolicyInput]) -> None:
    resources = copy.deepcopy(dev_resources)
    generated = next(r for r in resources if r["type"] == RANDOM_PASSWORD)["outputs"]["result"]
    api = container_named(resources, "api-1")
    mutate(api, envs=[*api["inputs"].get("envs", []), f"DATABASE_URL=postgresql://app:{generated}@postgres/app"])
    findings = check_policies(resources)
    assert [(f.policy, f.resource) for f in findings] == [("no-secrets-in-env", "api-1")]
