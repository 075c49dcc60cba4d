"""How the stack files differ, and what only some of them do."""

from __future__ import annotations

import pytest

from tests.support.program import VOLUME
from tests.unit.conftest import evaluate_stack


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_data_volumes_survive_destroy_in_staging_and_prod(stack: str) -> None:
    program = evaluate_stack(stack)
    for volume in program.of_type(VOLUME):
        if volume.name in {"postgres-data", "redis-data"}:
            assert volume.options["retain_on_delete"], f"{stack}: {volume.name} would be deleted with the stack"


def test_dev_data_volumes_are_removed_with_the_stack() -> None:
    program = evaluate_stack("dev")
    assert not program.named("postgres-data").options["retain_on_delete"]


def test_docker_resources_are_named_per_stack_so_stacks_can_share_a_host() -> None:
    dev, staging = evaluate_stack("dev"), evaluate_stack("staging")
    dev_names = {r.inputs.get("name") for r in dev.resources if r.type.startswith("docker:")}
    staging_names = {r.inputs.get("name") for r in staging.resources if r.type.startswith("docker:")}
    shared = {name for name in dev_names & staging_names if name is not None}
    # Image references are shared on purpose; containers, networks and volumes are not.
    assert all(":" in name for name in shared), shared


def test_prod_targets_a_remote_docker_host_over_ssh() -> None:
    from tests.support.program import stack_file_config

    _, provider = stack_file_config("prod")
    assert provider["docker:host"].startswith("ssh://")


@pytest.mark.parametrize(
    ("stack", "proxy_image", "api_replicas", "https", "logging", "bind"),
    [
        ("dev", "nginx", 2, False, False, "127.0.0.1"),
        ("staging", "haproxy", 3, True, True, "0.0.0.0"),
        ("prod", "haproxy", 4, True, True, "0.0.0.0"),
    ],
)
def test_stacks_differ_where_environments_differ(
    stack: str, proxy_image: str, api_replicas: int, https: bool, logging: bool, bind: str
) -> None:
    program = evaluate_stack(stack)
    proxy = program.container("proxy-container").inputs
    assert proxy_image in program.named("proxy-image").inputs["name"]
    api = [c for c in program.containers if c.name.startswith("api-")]
    assert len(api) == api_replicas
    ports = proxy["ports"]
    assert {p["ip"] for p in ports} == {bind}
    assert (len(ports) == 2) is https
    assert any(c.name == "logging-elasticsearch" for c in program.containers) is logging


def test_staging_generates_its_certificate_and_prod_brings_its_own() -> None:
    staging, prod = evaluate_stack("staging"), evaluate_stack("prod")
    assert staging.of_type("tls:index/selfSignedCert:SelfSignedCert")
    assert not prod.of_type("tls:index/selfSignedCert:SelfSignedCert")


def test_prod_is_sized_for_steady_load_beyond_dev() -> None:
    dev, prod = evaluate_stack("dev"), evaluate_stack("prod")
    assert prod.container("api-1").inputs["memory"] > dev.container("api-1").inputs["memory"]
    assert prod.container("postgres-container").inputs["memory"] > dev.container("postgres-container").inputs["memory"]
