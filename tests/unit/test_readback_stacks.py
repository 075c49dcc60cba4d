"""Read-back at mock speed: a second `pulumi up` of every stack file changes nothing.

Every container, network, volume, Swarm service, secret and config the
program declares is created in the engine model (tests/support/engine_state.py:
the provider's Create, then what Docker Engine 20.10 stores), read back with
the provider's own rules (tests/support/readback.py, readback_service.py,
ported from kreuzwerker/terraform-provider-docker v3.9.0) and diffed against
the declaration (tests/support/drift.py). The diff must be empty: for each
stack file on each platform, for edge configurations, and on daemons that
differ where it matters (restarted since the networks were created; without
swap accounting).

The system test (tests/system/test_readback.py) does the same against a real
engine and also holds the engine model against it, field by field.

The defects the program was once fixed for, each caught here (put back one at
a time by a stack transformation, the way a user's own program could), with
the field the report names:

- cpus written as "1": `cpus`, a replacement. Read stores
  nanoInt64ToDecimalString of NanoCPUs: "1.0".
- memory_swap dropped: `memorySwap`, an update. The engine makes it
  2 × memory (-1 without swap accounting), and the attribute is not Computed.
- health-check durations in seconds ("120s"): `healthcheck.startPeriod`, an
  update. Read stores Go's Duration.String(): "2m0s".
- a network without its gateway: `ipamConfigs[].gateway`, a replacement. The
  engine reports the gateway it took once it has restarted (upstream #54).
- the json-file log driver: `logOpts`, a replacement. The daemon merges its
  own log-opts into every container of its default driver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache, partial
from typing import Any

import pulumi
import pulumi_docker as docker
import pytest

from tests.support.drift import Drift, ModelEngine, describe, drift
from tests.support.engine_state import Daemon
from tests.support.program import CONTAINER, NETWORK, SERVICE, Program, run_program, stack_file_config
from tests.unit.conftest import evaluate_stack

# Secret config the stack files need, as `pulumi config set --secret` would give it.
SECRETS = {
    "tlsCertificate": "mock-cert",
    "tlsPrivateKey": "mock-key",
    "registryPassword": "mock-registry-password",
    "backupS3KeyId": "mock-key-id",
    "backupS3KeySecret": "mock-key-secret",
}

DAEMONS = {
    "fresh daemon": Daemon(),
    "after a daemon restart": Daemon(restarted=True),
    "no swap accounting": Daemon(swap_limit=False),
}


def _stack(stack: str, **changes: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """configs/Pulumi.<stack>.yaml's project and provider values, with top-level keys replaced (None removes one)."""
    project, provider = stack_file_config(stack)
    project = {k: v for k, v in project.items() if not (isinstance(v, dict) and set(v) == {"secure"})}
    for key, value in changes.items():
        if value is None:
            project.pop(key, None)
        else:
            project[key] = value
    return project, provider


def _on_swarm(stack: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A containers stack file moved to a single-node local swarm, with what the config model then requires."""
    project, provider = _stack(stack)
    proxy = {**project.get("proxy", {}), "bindAddress": "0.0.0.0"}
    return _stack(stack, platform="swarm", proxy=proxy, network=None) if project else (project, provider)


def _on_containers(stack: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The swarm stack file on one Docker host (its `swarm` section applies only to Swarm)."""
    return _stack(stack, platform="containers", swarm=None)


def _with(stack: str, **sections: dict[str, Any]) -> Callable[[], tuple[dict[str, Any], dict[str, Any]]]:
    """A stack file with some of its sections merged with `sections`."""

    def build() -> tuple[dict[str, Any], dict[str, Any]]:
        project, provider = _stack(stack)
        for key, value in sections.items():
            project[key] = {**project.get(key, {}), **value}
        return project, provider

    return build


def _swarm_with(**sections: dict[str, Any]) -> Callable[[], tuple[dict[str, Any], dict[str, Any]]]:
    return _with("swarm", **sections)


# Each stack file as written: dev, staging and prod on one host, swarm on a swarm.
STACK_FILES = ("dev", "staging", "prod", "swarm")
CASES: dict[str, Callable[[], tuple[dict[str, Any], dict[str, Any]]]] = {
    **{stack: partial(_stack, stack) for stack in STACK_FILES},
    # Each on the other platform.
    "dev on swarm": lambda: _on_swarm("dev"),
    "staging on swarm": lambda: _on_swarm("staging"),
    "swarm on containers": lambda: _on_containers("swarm"),
    # Edge configurations.
    "tls provided, nginx": _with("dev", proxy={"tls": {"mode": "provided"}}),
    "tls provided, swarm": _swarm_with(proxy={"tls": {"mode": "provided"}}),
    "1 replica each": _with("dev", api={"replicas": 1}, auth={"replicas": 1}),
    "8 replicas, haproxy": _with("staging", api={"replicas": 8}, auth={"replicas": 8}),
    "8 replicas, swarm": _swarm_with(api={"replicas": 8}, auth={"replicas": 8}),
    "logging on, nginx": _with("dev", logging={"enabled": True}),
    "backups on, dev": _with("dev", postgres={"backup": {"enabled": True}}),
    "backups to s3": _with(
        "staging",
        postgres={
            "backup": {
                "enabled": True,
                "repository": {"kind": "s3", "bucket": "backups", "endpoint": "s3.example.com", "region": "eu-1"},
            }
        },
    ),
}


@cache
def evaluated(case: str) -> Program:
    if case in STACK_FILES:
        return evaluate_stack(case)
    project, provider = CASES[case]()
    return run_program(project, stack=case.split()[0], secrets=SECRETS, provider_config=provider)


def _fail_message(case: str, daemon: str, drifts: list[Drift]) -> str:
    return f"{case}, {daemon}: a second `pulumi up` would change:\n{describe(drifts)}"


@pytest.mark.parametrize("daemon", DAEMONS)
@pytest.mark.parametrize("case", CASES)
def test_every_declared_resource_reads_back_unchanged(case: str, daemon: str) -> None:
    program = evaluated(case)
    drifts = drift(program, ModelEngine(program, DAEMONS[daemon]))
    assert not drifts, _fail_message(case, daemon, drifts)


def test_each_case_declares_what_it_is_named_for() -> None:
    """The cases are what their names say: a judged graph that lacks its resources would pass for nothing."""
    for case in CASES:
        program = evaluated(case)
        on_swarm = bool(program.of_type(SERVICE))
        assert on_swarm == ("swarm" in case and "on containers" not in case), case
        assert program.of_type(NETWORK), case
        if not on_swarm:
            assert len(program.of_type(CONTAINER)) >= 4, case
    assert len([r for r in evaluated("8 replicas, haproxy").of_type(CONTAINER) if "api-" in r.name]) == 8


# --- the defects, put back one at a time --------------------------------------------------


@dataclass(frozen=True)
class Defect:
    transform: Callable[[pulumi.ResourceTransformationArgs], pulumi.ResourceTransformationResult | None]
    path: str
    replaces: bool
    daemon: Daemon = field(default_factory=Daemon)


def _on_containers_only(
    change: Callable[[dict[str, Any]], None],
) -> Callable[[pulumi.ResourceTransformationArgs], pulumi.ResourceTransformationResult | None]:
    def transform(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
        if args.type_ != CONTAINER:
            return None
        props = dict(args.props)
        change(props)
        return pulumi.ResourceTransformationResult(props, args.opts)

    return transform


def _cpus_as_typed(props: dict[str, Any]) -> None:
    props["cpus"] = "1"


def _swap_dropped(props: dict[str, Any]) -> None:
    props["memory_swap"] = None


def _start_period_in_seconds(props: dict[str, Any]) -> None:
    check = props.get("healthcheck")
    if check is not None:
        props["healthcheck"] = docker.ContainerHealthcheckArgs(
            tests=check.tests,
            interval=check.interval,
            timeout=check.timeout,
            retries=check.retries,
            start_period="120s",
        )


def _json_file(props: dict[str, Any]) -> None:
    props["log_driver"] = "json-file"


def _network_without_gateway(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
    if args.type_ != NETWORK or not args.props.get("ipam_configs"):
        return None
    configs = args.props["ipam_configs"]
    assert isinstance(configs, list), configs  # the platform passes a plain list of NetworkIpamConfigArgs
    pools = [docker.NetworkIpamConfigArgs(subnet=pool.subnet, ip_range=pool.ip_range) for pool in configs]
    return pulumi.ResourceTransformationResult({**args.props, "ipam_configs": pools}, args.opts)


DEFECTS = {
    "cpus written as '1'": Defect(_on_containers_only(_cpus_as_typed), "cpus", replaces=True),
    "memory_swap dropped": Defect(_on_containers_only(_swap_dropped), "memorySwap", replaces=False),
    "memory_swap dropped, no swap accounting": Defect(
        _on_containers_only(_swap_dropped), "memorySwap", replaces=False, daemon=Daemon(swap_limit=False)
    ),
    "health-check durations in seconds": Defect(
        _on_containers_only(_start_period_in_seconds), "healthcheck.startPeriod", replaces=False
    ),
    "a network without its gateway": Defect(
        _network_without_gateway, "ipamConfigs[].gateway", replaces=True, daemon=Daemon(restarted=True)
    ),
    "the json-file log driver": Defect(_on_containers_only(_json_file), "logOpts", replaces=True),
}


@pytest.fixture(scope="module")
def dev_with_defect() -> Iterator[Callable[[Defect], Program]]:
    def build(defect: Defect) -> Program:
        project, provider = _stack("dev")
        return run_program(
            project, stack="dev", secrets=SECRETS, provider_config=provider, transformations=[defect.transform]
        )

    yield build


@pytest.mark.parametrize("name", DEFECTS)
def test_a_defect_put_back_is_reported_naming_the_resource_and_field(
    name: str, dev_with_defect: Callable[[Defect], Program]
) -> None:
    defect = DEFECTS[name]
    program = dev_with_defect(defect)
    drifts = drift(program, ModelEngine(program, defect.daemon))
    hits = [d for d in drifts if d.path == defect.path]
    assert hits, f"{name} was not caught; the read-back reported:\n{describe(drifts)}"
    assert all(d.replaces == defect.replaces for d in hits), describe(hits)
    # Only the defect: nothing else of the program drifts with it.
    assert {d.path for d in drifts} == {defect.path}, describe(drifts)
    first = hits[0]
    assert first.resource in str(first) and defect.path in str(first)
    assert repr(first.declared) in str(first) and repr(first.read_back) in str(first)


def test_the_gateway_defect_shows_only_once_the_daemon_has_restarted(
    dev_with_defect: Callable[[Defect], Program],
) -> None:
    program = dev_with_defect(DEFECTS["a network without its gateway"])
    assert drift(program, ModelEngine(program, Daemon())) == []
    assert drift(program, ModelEngine(program, Daemon(restarted=True)))
