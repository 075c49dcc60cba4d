"""The real program, evaluated for each stack file under mocks, against the policy pack.

The program runs here, in its own environment (tests.support.program records
every resource it declares); the recorded resources go to the pack in its
virtualenv as JSON, just as the engine would hand them over: inputs to the
resource rules, outputs (inputs plus e.g. a password's `result`) to the stack
rules. Outputs carry each resource's `id`, as bridged providers' outputs do
in the engine (a service names its networks and secrets by ID).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import pytest

from tests.policy.builders import PolicyInput
from tests.policy.pack import Finding
from tests.support.program import CONTAINER, NETWORK, RANDOM_PASSWORD, SERVICE, Program, mock_id, run_stack_file

Check = Callable[[Sequence[PolicyInput]], list[Finding]]

STACKS = ("dev", "staging", "prod", "swarm")
# What a user sets with `pulumi config set --secret` before the first `up`
# (see each stack file's comments); placeholders stand in under mocks.
USER_SECRETS = {
    "prod": {"tlsCertificate": "mock-cert", "tlsPrivateKey": "mock-key"},
    "swarm": {"registryPassword": "mock-registry-password"},
}


def recorded(program: Program) -> list[PolicyInput]:
    """The program's resources in the shape the policy runner reads."""
    return [
        {
            "type": r.type,
            "name": r.name,
            "inputs": copy.deepcopy(r.inputs),
            "outputs": {**copy.deepcopy(r.outputs), "id": mock_id(r.name)},
        }
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


def service_named(resources: list[PolicyInput], name: str) -> PolicyInput:
    matches = [r for r in resources if r.get("type") == SERVICE and r.get("name") == name]
    assert len(matches) == 1, f"expected one service {name!r}, found {len(matches)}"
    return matches[0]


def mutate_service(resource: PolicyInput, path: tuple[str, ...], value: object) -> None:
    """Set a nested property of a service in both its inputs and outputs."""
    for props in (resource["inputs"], resource.get("outputs", {})):
        for key in path[:-1]:
            props = props[key]
        props[path[-1]] = copy.deepcopy(value)


@pytest.fixture(scope="module")
def dev_resources() -> list[PolicyInput]:
    return recorded(run_stack_file("dev"))


@pytest.fixture(scope="module")
def swarm_resources() -> list[PolicyInput]:
    return recorded(run_stack_file("swarm", secrets=USER_SECRETS["swarm"]))


def findings_beyond_known(findings: list[Finding], stack: str) -> list[tuple[str, str]]:
    return [(f.policy, f.resource) for f in findings if (f.policy, f.resource) not in ADVISORIES.get(stack, [])]


# Advisories the pack reports on a stack that passes: on the swarm platform
# Logstash's GELF port and Kibana, both on the internal logging network, are
# published on every interface of their nodes (Swarm cannot bind 127.0.0.1,
# moby/moby#26696) and say why and how to firewall them (docs/swarm.md).
ADVISORIES = {
    "swarm": [
        ("published-on-every-interface", "logging-kibana-service"),
        ("published-on-every-interface", "logging-logstash-service"),
    ],
}
# What each platform declares its workloads as.
WORKLOAD_TYPE = {"swarm": SERVICE}


@pytest.mark.parametrize("stack", STACKS)
def test_stack_passes_every_policy(check_policies: Check, stack: str) -> None:
    resources = recorded(run_stack_file(stack, secrets=USER_SECRETS.get(stack)))
    workload_type = WORKLOAD_TYPE.get(stack, CONTAINER)
    assert any(r["type"] == workload_type for r in resources), f"the program declared no {workload_type}"
    findings = check_policies(resources)
    assert sorted((f.policy, f.resource) for f in findings) == ADVISORIES.get(stack, [])


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


def test_service_without_memory_limit_is_caught(check_policies: Check, swarm_resources: list[PolicyInput]) -> None:
    resources = copy.deepcopy(swarm_resources)
    mutate_service(service_named(resources, "api-service"), ("taskSpec", "resources", "limits"), {"nanoCpus": 10**9})
    findings = findings_beyond_known(check_policies(resources), "swarm")
    assert findings == [("container-memory-limit", "api-service")]


def test_service_joining_a_network_by_name_is_caught(check_policies: Check, swarm_resources: list[PolicyInput]) -> None:
    resources = copy.deepcopy(swarm_resources)
    backend = next(r for r in resources if r["type"] == NETWORK and r["inputs"].get("internal"))
    postgres = service_named(resources, "postgres-service")
    mutate_service(postgres, ("taskSpec", "networksAdvanceds"), [{"name": backend["inputs"]["name"]}])
    findings = findings_beyond_known(check_policies(resources), "swarm")
    assert findings == [("service-networks-by-id", "postgres-service")]


def test_service_image_by_tag_from_a_registry_is_caught(
    check_policies: Check, swarm_resources: list[PolicyInput]
) -> None:
    resources = copy.deepcopy(swarm_resources)
    api = service_named(resources, "api-service")
    reference = api["inputs"]["taskSpec"]["containerSpec"]["image"].partition("@")[0]
    mutate_service(api, ("taskSpec", "containerSpec", "image"), reference)
    findings = findings_beyond_known(check_policies(resources), "swarm")
    assert findings == [("service-image-digest", "api-service")]


def test_generated_password_in_service_env_is_caught(check_policies: Check, swarm_resources: list[PolicyInput]) -> None:
    resources = copy.deepcopy(swarm_resources)
    generated = next(r for r in resources if r["type"] == RANDOM_PASSWORD)["outputs"]["result"]
    auth = service_named(resources, "auth-service")
    env = {**auth["inputs"]["taskSpec"]["containerSpec"]["env"], "DATABASE_URL": f"postgresql://app:{generated}@db/app"}
    mutate_service(auth, ("taskSpec", "containerSpec", "env"), env)
    findings = findings_beyond_known(check_policies(resources), "swarm")
    assert findings == [("no-secrets-in-env", "auth-service")]
