"""The replicated api and auth services as the program declares them."""

from __future__ import annotations

import ipaddress
import itertools

import pytest

from components.service import replica_address
from microstack_common import contract
from tests.support.program import IMAGE, Program, run_program


def _replicas(program: Program, service: str) -> list:
    return sorted(
        (c for c in program.containers if c.name.startswith(f"{service}-") and c.name[len(service) + 1 :].isdigit()),
        key=lambda c: int(c.name.rsplit("-", 1)[1]),
    )


@pytest.mark.parametrize("replicas", [1, 3, 10])
def test_replica_count_follows_config(replicas: int) -> None:
    program = run_program({"api": {"replicas": replicas}, "auth": {"replicas": max(1, replicas // 2)}})
    assert len(_replicas(program, "api")) == replicas
    assert len(_replicas(program, "auth")) == max(1, replicas // 2)


@pytest.fixture(scope="module")
def three_replicas() -> Program:
    return run_program({"api": {"replicas": 3, "memoryMb": 300, "cpus": 0.75}})


def test_each_replica_has_health_limits_restart_and_both_networks(three_replicas: Program) -> None:
    frontend = three_replicas.named("networks-frontend").inputs["name"]
    backend = three_replicas.named("networks-backend").inputs["name"]
    for replica in _replicas(three_replicas, "api"):
        inputs = replica.inputs
        assert inputs["memory"] == 300
        assert inputs["cpus"] == "0.75"
        assert inputs["restart"] == "unless-stopped"
        assert inputs["healthcheck"]["tests"][:4] == ["CMD", "python", "-m", "microstack_common.healthcheck"]
        assert inputs["wait"] is False
        assert {n["name"] for n in inputs["networksAdvanced"]} == {frontend, backend}
        assert not inputs.get("ports")


def test_replicas_share_the_service_alias_and_have_their_own(three_replicas: Program) -> None:
    for index, replica in enumerate(_replicas(three_replicas, "api"), start=1):
        for network in replica.inputs["networksAdvanced"]:
            assert contract.Alias.API in network["aliases"]
            assert f"api-{index}" in network["aliases"]


def test_replicas_keep_fixed_distinct_frontend_addresses(three_replicas: Program) -> None:
    frontend = three_replicas.named("networks-frontend").inputs["name"]
    addresses = [
        n["ipv4Address"]
        for r in _replicas(three_replicas, "api") + _replicas(three_replicas, "auth")
        for n in r.inputs["networksAdvanced"]
        if n["name"] == frontend
    ]
    assert len(addresses) == len(set(addresses)) == 4


def test_replica_addresses_lie_in_the_frontend_subnet(three_replicas: Program) -> None:
    frontend = three_replicas.named("networks-frontend").inputs
    [ipam] = frontend["ipamConfigs"]
    subnet = ipaddress.ip_network(ipam["subnet"])
    for replica in _replicas(three_replicas, "api"):
        [attachment] = [n for n in replica.inputs["networksAdvanced"] if n["name"] == frontend["name"]]
        assert ipaddress.ip_address(attachment["ipv4Address"]) in subnet


def test_frontend_subnet_is_configurable() -> None:
    program = run_program({"network": {"frontendSubnet": "10.77.0.0/24"}})
    assert program.named("networks-frontend").inputs["ipamConfigs"] == [
        {"subnet": "10.77.0.0/24", "gateway": "10.77.0.1", "ipRange": "10.77.0.192/26"}
    ]
    assert program.container("api-1").inputs["networksAdvanced"][0]["ipv4Address"] == "10.77.0.11"


def test_replicas_are_replaced_one_at_a_time(three_replicas: Program) -> None:
    # Each replica waits for the previous one's gate: healthy, then back in the
    # proxy's rotation (settleSeconds), before it is taken out itself.
    replicas = _replicas(three_replicas, "api")
    for previous, replica in itertools.pairwise(replicas):
        assert replica.options["delete_before_replace"]
        depends = replica.options["depends_on"]
        gate = three_replicas.gate_of(previous)
        assert depends is not None and [getattr(d, "_name", None) for d in depends] == [gate.name]
        assert gate.inputs["condition"] == "healthy" and gate.inputs["settleSeconds"] > 0


def test_a_changed_health_check_replaces_a_replica(three_replicas: Program) -> None:
    # The provider's Update ignores `healthcheck` (not ForceNew): only a replacement applies it.
    for replica in _replicas(three_replicas, "api"):
        assert "healthcheck" in replica.options["replace_on_changes"]


def test_images_are_built_for_the_configured_platform() -> None:
    program = run_program({"images": {"platform": "linux/arm64"}})
    for image in program.of_type("docker:index/image:Image"):
        assert image.inputs["build"]["platform"] == "linux/arm64", image.name


def test_services_get_secrets_as_files_and_names_in_env(three_replicas: Program) -> None:
    secrets = three_replicas.secret_values()
    replica = _replicas(three_replicas, "api")[0]
    env = dict(e.split("=", 1) for e in replica.inputs["envs"])
    assert env[contract.Env.DATABASE_PASSWORD_FILE] == contract.POSTGRES_PASSWORD_FILE
    assert env[contract.Env.JWT_SIGNING_KEY_FILE] == contract.JWT_SIGNING_KEY_FILE
    uploaded = {u["file"]: u["content"] for u in replica.inputs["uploads"]}
    assert uploaded[contract.JWT_SIGNING_KEY_FILE] == three_replicas.named("secrets-jwt-signing-key").outputs["result"]
    assert not any(s in e for e in replica.inputs["envs"] for s in secrets)


def test_image_is_built_from_services_with_the_configured_base() -> None:
    program = run_program({"images": {"serviceBaseImage": "registry.example/python:3.12-slim"}})
    [api_image] = [r for r in program.of_type(IMAGE) if r.name == "api-image"]
    build = api_image.inputs["build"]
    assert build["context"] == "services"
    assert build["dockerfile"] == "services/api/Dockerfile"
    assert build["args"]["BASE_IMAGE"] == "registry.example/python:3.12-slim"
    assert api_image.inputs["skipPush"] is True
    tag = api_image.inputs["imageName"].rsplit(":", 1)[1]
    assert len(tag) == 16 and tag != "latest"


def test_replicas_name_their_image_by_id_so_an_unchanged_build_replaces_nothing(three_replicas: Program) -> None:
    built = three_replicas.named("api-image").outputs["imageName"]
    lookup = three_replicas.named("api-built-image")
    assert lookup.inputs["name"] == built
    assert three_replicas.container("api-1").inputs["image"] == lookup.outputs["imageId"]


def test_dynamic_addresses_cannot_collide_with_replica_addresses(three_replicas: Program) -> None:
    frontend = three_replicas.named("networks-frontend").inputs
    [ipam] = frontend["ipamConfigs"]
    dynamic = ipaddress.IPv4Network(ipam["ipRange"])
    assert dynamic.subnet_of(ipaddress.IPv4Network(ipam["subnet"]))
    most = [replica_address(ipam["subnet"], "api", 50), replica_address(ipam["subnet"], "auth", 20)]
    assert all(ipaddress.ip_address(a) not in dynamic for a in most)


def test_registry_push_only_when_configured() -> None:
    registry = {"server": "ghcr.io", "username": "bot", "repository": "ghcr.io/acme/microstack"}
    program = run_program({"images": {"registry": registry}}, secrets={"registryPassword": "s3cret-registry"})
    image = program.named("api-image").inputs
    assert image["skipPush"] is False
    assert image["imageName"].startswith("ghcr.io/acme/microstack/api:")
    assert image["registry"]["password"] == "s3cret-registry"


def test_replicas_drain_for_as_long_as_the_proxy_needs_to_notice() -> None:
    program = run_program({"proxy": {"healthCheck": {"intervalSeconds": 5, "fall": 4}}})
    replica = program.container("api-1").inputs
    env = dict(e.split("=", 1) for e in replica["envs"])
    drain = float(env[contract.Env.SHUTDOWN_DRAIN_SECONDS])
    assert drain > 5 * 4
    assert replica["stopTimeout"] >= drain + 10


def test_scaling_the_api_does_not_restart_postgres() -> None:
    # max_connections is on Postgres' command line (ForceNew): it must not follow the replica count.
    two = run_program({"api": {"replicas": 2}}).container("postgres-container")
    four = run_program({"api": {"replicas": 4}}).container("postgres-container")
    assert two.inputs == four.inputs


def test_every_container_is_replaced_delete_before_replace() -> None:
    # Fixed names: Docker refuses a second container of the same name.
    program = run_program({"logging": {"enabled": True}})
    for container in program.containers:
        assert container.options["delete_before_replace"], container.name
