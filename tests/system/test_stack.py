"""The declared stack, running in a real Docker engine, behind each proxy kind.

HTTP goes only to the proxy's published port on 127.0.0.1. Isolation is
checked from inside the stack's own containers, towards addresses of
containers this test created, and by reading routing tables: no traffic
leaves the machine.

The tests that change the running stack (a replica stopped and started, a
replica added, Postgres replaced) put it back as they found it and come after
the ones that only read.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import httpx
import pytest

from microstack_common import contract
from tests.support.binaries import require_binary
from tests.support.program import Resource
from tests.system.load import INSTANCE, INTERVAL_SECONDS, ITEMS, register_and_login, steady_load
from tests.system.stack import Stack

pytestmark = pytest.mark.slow

# How long the services and proxies may take to notice a replaced or re-added peer.
CONVERGE_SECONDS = 60


def _env(resource: Resource, name: str) -> str:
    prefix = f"{name}="
    return next(e[len(prefix) :] for e in resource.inputs["envs"] if e.startswith(prefix))


def _instances(stack: Stack, role: str) -> set[str]:
    return {_env(r, contract.Env.INSTANCE_NAME) for r in stack.containers_with_role(role)}


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.base_url, timeout=10) as client:
        yield client


def test_auth_flow_through_the_proxy(http: httpx.Client) -> None:
    username, token = register_and_login(http)
    verified = http.get(f"{contract.AUTH_PREFIX}/verify", headers={"Authorization": f"Bearer {token}"})
    assert verified.status_code == 200
    assert verified.json()["username"] == username
    wrong = http.post(f"{contract.AUTH_PREFIX}/login", json={"username": username, "password": "not-the-password"})
    assert wrong.status_code == 401
    forged = http.get(f"{contract.AUTH_PREFIX}/verify", headers={"Authorization": f"Bearer {token[:-4]}AAAA"})
    assert forged.status_code == 401


def test_crud_with_the_redis_cache_through_the_proxy(http: httpx.Client) -> None:
    _, token = register_and_login(http)
    # A request with credentials is never answered from the proxy's cache, so
    # X-Cache below is the API's Redis cache speaking.
    auth = {"Authorization": f"Bearer {token}"}
    assert http.post(ITEMS, json={"name": "anonymous"}).status_code == 401
    created = http.post(ITEMS, json={"name": "widget", "description": "first"}, headers=auth)
    assert created.status_code == 201, created.text
    item = f"{ITEMS}/{created.json()['id']}"

    first, second = http.get(item, headers=auth), http.get(item, headers=auth)
    assert (first.status_code, first.headers["X-Cache"]) == (200, "miss")
    assert (second.status_code, second.headers["X-Cache"]) == (200, "hit")
    assert second.json()["name"] == "widget"

    updated = http.put(item, json={"name": "gadget", "description": "second"}, headers=auth)
    assert updated.status_code == 200, updated.text
    after_update = http.get(item, headers=auth)
    assert (after_update.headers["X-Cache"], after_update.json()["name"]) == ("miss", "gadget")

    assert http.delete(item, headers=auth).status_code == 204
    assert http.get(item, headers=auth).status_code == 404


def test_every_api_replica_answers(stack: Stack, http: httpx.Client) -> None:
    expected = _instances(stack, "api")
    assert len(expected) >= 2, "the test stack should run more than one API replica"
    # HAProxy ramps a replica that just came up over slowStartSeconds, so a
    # late starter may take a while to get its first request.
    seen: set[str] = set()
    deadline = time.monotonic() + CONVERGE_SECONDS
    while seen != expected and time.monotonic() < deadline:
        response = http.get(INSTANCE)
        assert response.status_code == 200, response.text
        seen.add(response.headers[contract.INSTANCE_HEADER])
        time.sleep(INTERVAL_SECONDS)
    assert seen == expected


def test_postgres_and_redis_publish_no_host_ports(stack: Stack, docker_client: docker.DockerClient) -> None:
    for role in ("postgres", "redis", "api", "auth"):
        for resource in stack.containers_with_role(role):
            details = docker_client.api.inspect_container(stack.container_id(resource))
            assert not details["HostConfig"]["PortBindings"], f"{resource.name} publishes ports"
            published = [b for b in (details["NetworkSettings"]["Ports"] or {}).values() if b]
            assert published == [], f"{resource.name} publishes {published}"
    (proxy,) = stack.containers_with_role("proxy")
    bindings = docker_client.api.inspect_container(stack.container_id(proxy))["HostConfig"]["PortBindings"]
    assert {b["HostIp"] for v in bindings.values() for b in v} == {"127.0.0.1"}


def test_no_generated_secret_appears_in_docker_inspect(stack: Stack, docker_client: docker.DockerClient) -> None:
    secrets = stack.program.secret_values()
    assert secrets, "the program generated no secrets to look for"
    for resource_name, container_id in stack.realizer.realized.containers.items():
        details = docker_client.api.inspect_container(container_id)
        environment = "\n".join(details["Config"]["Env"] or [])
        everything = json.dumps(details)
        for secret in secrets:
            assert secret not in environment, f"{resource_name} has a generated secret in its environment"
            assert secret not in everything, f"{resource_name} shows a generated secret in docker inspect"
    # The secrets are really in use, as files: the check above is not vacuous.
    (api, *_) = stack.containers_with_role("api")
    container = docker_client.containers.get(stack.container_id(api))
    shown = container.exec_run(["cat", contract.POSTGRES_PASSWORD_FILE])
    assert shown.exit_code == 0
    assert shown.output.decode() in secrets


def _proxy_address(stack: Stack, docker_client: docker.DockerClient) -> tuple[str, int]:
    (proxy,) = stack.containers_with_role("proxy")
    details = docker_client.api.inspect_container(stack.container_id(proxy))
    (address,) = [n["IPAddress"] for n in details["NetworkSettings"]["Networks"].values()]
    (port,) = {int(p["internal"]) for p in proxy.inputs["ports"]}
    return address, port


def _can_connect(container: docker.models.containers.Container, address: str, port: int) -> bool:
    probe = f"timeout 3 bash -c 'exec 3<>/dev/tcp/{address}/{port}'"
    return container.exec_run(["bash", "-c", probe]).exit_code == 0


def test_backend_only_containers_cannot_reach_the_proxy(stack: Stack, docker_client: docker.DockerClient) -> None:
    address, port = _proxy_address(stack, docker_client)
    (api, *_) = stack.containers_with_role("api")
    # Control: a container on the frontend network does reach it.
    assert _can_connect(docker_client.containers.get(stack.container_id(api)), address, port)
    for role in ("postgres", "redis"):
        (resource,) = stack.containers_with_role(role)
        container = docker_client.containers.get(stack.container_id(resource))
        assert not _can_connect(container, address, port), f"{role} reached the proxy at {address}:{port}"


def _routes(container: docker.models.containers.Container) -> list[tuple[str, str]]:
    """(destination, gateway) of each IPv4 route, as dotted quads, from /proc/net/route."""
    lines = container.exec_run(["cat", "/proc/net/route"]).output.decode().splitlines()[1:]

    def quad(hex_le: str) -> str:
        return str(ipaddress.IPv4Address(int(hex_le, 16).to_bytes(4, "little")))

    return [(quad(f[1]), quad(f[2])) for f in (line.split() for line in lines) if len(f) > 2]


def _engine_major(docker_client: docker.DockerClient) -> int:
    return int(docker_client.version()["Version"].split(".")[0])


def _host_drops_leaving(network: dict[str, Any]) -> bool:
    """The host's iptables drop what the network's bridge sends outside its subnet."""
    bridge = network["Options"].get("com.docker.network.bridge.name") or f"br-{network['Id'][:12]}"
    (pool,) = network["IPAM"]["Config"]
    rules = subprocess.run(
        [require_binary("iptables"), "-S", "DOCKER-ISOLATION-STAGE-1"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    return f"-A DOCKER-ISOLATION-STAGE-1 ! -d {pool['Subnet']} -i {bridge} -j DROP" in rules


def test_backend_only_containers_have_no_way_out(stack: Stack, docker_client: docker.DockerClient) -> None:
    """No default route; on engines before 25.0 the host drops what that route would carry.

    Docker gave containers on internal networks a default route via the
    bridge until 25.0 (moby/moby#46603), with iptables rules dropping every
    packet that leaves the subnet. Debian bookworm ships 20.10, so there the
    test reads the host's rule set instead of expecting the route to be absent.
    """
    for role in ("postgres", "redis"):
        (resource,) = stack.containers_with_role(role)
        details = docker_client.api.inspect_container(stack.container_id(resource))
        (network_name,) = details["NetworkSettings"]["Networks"]
        network = docker_client.api.inspect_network(network_name)
        assert network["Internal"], f"{role} is on {network_name}, which is not internal"
        routes = _routes(docker_client.containers.get(details["Id"]))
        assert routes, f"{role} has no routes at all"
        defaults = [gateway for destination, gateway in routes if destination == "0.0.0.0"]
        if _engine_major(docker_client) >= 25:
            assert defaults == [], f"{role} has a default route via {defaults}"
        else:
            (pool,) = network["IPAM"]["Config"]
            assert defaults in ([], [pool["Gateway"]]), f"{role} routes by default via {defaults}"
            assert _host_drops_leaving(network), f"the host forwards what {network_name} sends outside its subnet"


def _wait_until(condition: object, what: str, seconds: float = CONVERGE_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} within {seconds}s")


def test_a_replica_stopped_and_started_under_load_fails_no_request(
    stack: Stack, docker_client: docker.DockerClient
) -> None:
    (first, *_) = stack.containers_with_role("api")
    instance = _env(first, contract.Env.INSTANCE_NAME)
    spec = stack.realizer.specs[first.name]
    container_id = stack.container_id(first)
    with steady_load(stack.base_url) as load:
        time.sleep(2)
        docker_client.api.stop(container_id, timeout=spec.grace_seconds)
        # One request may be in flight (the load is sequential) when stop returns.
        stopped_at = len(load.instances) + 1
        time.sleep(3)
        started_at = len(load.instances)
        docker_client.api.start(container_id)
        stack.realizer.wait_ready(container_id, spec)
        _wait_until(lambda: instance in load.instances[started_at:], f"{instance} did not serve again")
    assert load.failures == [], f"{len(load.failures)} failed requests, first: {load.failures[:3]}"
    assert started_at > stopped_at, "no request was made while the replica was stopped"
    assert instance not in load.instances[stopped_at:started_at], f"{instance} answered while stopped"


def test_haproxy_finds_a_replica_added_and_removed_by_dns(
    haproxy_stack: Stack, docker_client: docker.DockerClient
) -> None:
    stack = haproxy_stack
    (template, *_) = stack.containers_with_role("api")
    extra = f"{stack.realizer.specs[template.name].name}-extra"
    extra_instance = f"api-extra-{uuid.uuid4().hex[:6]}"
    container_id = stack.realizer.run_copy(
        template.name,
        name=extra,
        aliases=[contract.Alias.API],
        env={contract.Env.INSTANCE_NAME: extra_instance},
    )
    (proxy,) = stack.containers_with_role("proxy")
    proxy_started = docker_client.api.inspect_container(stack.container_id(proxy))["State"]["StartedAt"]
    with httpx.Client(base_url=stack.base_url, timeout=10) as client:

        def answered_by_extra() -> bool:
            return any(client.get(INSTANCE).headers.get(contract.INSTANCE_HEADER) == extra_instance for _ in range(6))

        try:
            _wait_until(answered_by_extra, f"the new replica {extra_instance} received no traffic")
        finally:
            stack.realizer.remove_container(container_id, template.name)
        time.sleep(1)
        with steady_load(stack.base_url) as load:
            time.sleep(5)
        assert load.failures == [], f"{len(load.failures)} failed requests after removal: {load.failures[:3]}"
        assert extra_instance not in load.instances
        assert set(load.instances) == _instances(stack, "api")
    after = docker_client.api.inspect_container(stack.container_id(proxy))["State"]
    assert after["StartedAt"] == proxy_started, "the proxy was restarted"


def test_postgres_data_survives_replacing_its_container(stack: Stack, docker_client: docker.DockerClient) -> None:
    with httpx.Client(base_url=stack.base_url, timeout=10) as client:
        _, token = register_and_login(client)
        name = f"durable-{uuid.uuid4().hex[:8]}"
        created = client.post(ITEMS, json={"name": name}, headers={"Authorization": f"Bearer {token}"})
        assert created.status_code == 201, created.text

        (postgres,) = stack.containers_with_role("postgres")
        old_id = stack.container_id(postgres)
        stack.realizer.remove_container(old_id, postgres.name)
        new_id = stack.realizer.run_container(postgres.name)
        stack.realizer.realized.containers[postgres.name] = new_id
        assert new_id != old_id

        def listed() -> bool:
            # The list is read from PostgreSQL (never from Redis), after the
            # services' pools have reconnected to the new container.
            response = client.get(ITEMS, params={"limit": 100})
            return response.status_code == 200 and name in {i["name"] for i in response.json()["items"]}

        _wait_until(listed, f"item {name} was not listed after Postgres was replaced")
