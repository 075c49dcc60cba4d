"""The swarm platform in a real single-node Swarm, under load, behind each proxy.

The session's engine becomes a swarm manager (advertise and listen on
127.0.0.1; `swarm_node` in conftest.py leaves the swarm after the module).
This machine has no IPVS, so VIP load balancing and the routing mesh do not
work here: the program uses DNS round robin and host-mode publishing anyway,
the production choice (docs/swarm.md).

For nginx and HAProxy, one stack with 2 API replicas is realized (services,
secrets, configs, overlay networks) and taken through a sequence of `up`s,
each planned and applied as the Pulumi engine does (rollout.py), while a
client sends steady reads and writes through the published port:

1. the realized services read back as declared (the provider's Read, ported
   in tests/support/readback_service.py), and a no-change `up` takes no step;
2. scaling api 2 → 4 → 2: Swarm adds and removes tasks, the proxy follows DNS;
3. a new release: Swarm rolls the tasks (start-first, one at a time);
4. a release whose health check never passes: Swarm rolls it back, the `up`
   fails, the old release keeps serving; the next `up` fails again, at the
   service's gate;
5. a changed secret (the Redis password): a new Swarm secret, Redis and the
   services roll to it, the old secret is removed.

No request may fail in any of them.
"""

from __future__ import annotations

import base64
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import httpx
import pytest

import components.service
from microstack_common import contract
from tests.system.images import BuiltImages
from tests.system.load import register_and_login
from tests.system.readback_check import check_services, readback_changes
from tests.system.releases import FIRST_RELEASE, Release, SourceTree, fails_at_start, release_header
from tests.system.rollout import State, changes
from tests.system.stack import free_port, realize_stack, unique_stack_name
from tests.system.swarm import swarm_config
from tests.system.timing import fast_health
from tests.system.updates import Day2, Up

pytestmark = pytest.mark.slow

CODE_CHANGE = Release("v2", (release_header("v2"),))
NEVER_HEALTHY = Release("v3", (release_header("v3"), fails_at_start("v3")))
# The proxy's checks at their shortest, and the tasks' own checks every second
# (tests/system/timing.py), as in the day-2 test.
PROXY_OVERRIDES = {"healthCheck": {"intervalSeconds": 1, "fall": 2, "rise": 2}, "slowStartSeconds": 2}


class SwarmDay2(Day2):
    """A realized swarm stack; replicas are a service's tasks, named `api-<slot>`."""

    def service_id(self, name: str) -> str:
        return self.stack.realizer.realized.services[name]

    def tasks(self, name: str) -> list[dict[str, Any]]:
        client = self.stack.realizer.client
        return client.api.tasks(filters={"service": self.service_id(name), "desired-state": "running"})

    def scale(self, replicas: int) -> None:
        self.config = {**self.config, "api": {**self.config["api"], "replicas": replicas}}
        self.replicas = replicas


@pytest.fixture(scope="module", params=["nginx", "haproxy"])
def swarm_stack(
    request: pytest.FixtureRequest,
    docker_client: docker.DockerClient,
    test_images: BuiltImages,
    swarm_node: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[SwarmDay2]:
    kind = request.param
    root = tmp_path_factory.mktemp(f"swarm-{kind}")
    tree = SourceTree(root)
    config = swarm_config(test_images, kind, free_port(), proxy=PROXY_OVERRIDES)
    stack_name = unique_stack_name(f"swarm-{kind}")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(components.service, "_PROJECT_DIR", root)
        for stack in realize_stack(
            docker_client,
            config,
            stack_name=stack_name,
            project_root=root,
            image_prefix="swarm-",
            transformations=[fast_health],
        ):
            with httpx.Client(base_url=stack.base_url, timeout=10) as client:
                _, token = register_and_login(client)
            yield SwarmDay2(
                kind=f"swarm {kind}",
                replicas=2,
                stack=stack,
                tree=tree,
                config=config,
                stack_name=stack_name,
                state=State.from_realized(stack.realizer),
                token=token,
                transformations=(fast_health,),
            )


def _no_failures(up: Up) -> None:
    assert up.load.failures == [], f"{len(up.load.failures)} of {up.load.requests} failed: {up.load.failures[:5]}"


def _after(stack: SwarmDay2, scenario: str) -> None:
    if scenario not in stack.ups:
        pytest.skip(f"needs the {scenario!r} up of this stack, which did not run")


def _releases_since(up: Up, since: float) -> set[str]:
    return {a.release for a in up.load.answers if a.at >= since}


def _ops(up: Up) -> dict[str, str]:
    return {s.name: s.op for s in changes(up.steps)}


def test_services_secrets_configs_and_overlays_read_back_as_declared(swarm_stack: SwarmDay2) -> None:
    """The provider's Read (ported in tests/support/readback*.py) finds nothing to change."""
    stack = swarm_stack.stack
    client, realized = stack.realizer.client, stack.realizer.realized
    assert check_services(stack.program, client, realized) == []
    # The overlay networks, through the same port of the network resource as on the containers platform.
    assert len(realized.networks) >= 2
    assert readback_changes(stack.program, client, realized) == []


def test_a_no_change_up_takes_no_step(swarm_stack: SwarmDay2) -> None:
    up = swarm_stack.up("no change", Release(FIRST_RELEASE))
    assert changes(up.steps) == []
    assert up.error is None
    _no_failures(up)


def test_scaling_up_and_down_fails_no_request(swarm_stack: SwarmDay2) -> None:
    _after(swarm_stack, "no change")
    service = swarm_stack.service_id("api-service")
    swarm_stack.scale(4)
    up = swarm_stack.up("scale 2 → 4", Release(FIRST_RELEASE))
    assert up.error is None, up.error
    assert _ops(up) == {"api-service": "update", "api-ready": "replace"}
    assert len(swarm_stack.tasks("api-service")) == 4
    assert swarm_stack.service_id("api-service") == service
    _no_failures(up)
    swarm_stack.scale(2)
    up = swarm_stack.up("scale 4 → 2", Release(FIRST_RELEASE))
    assert up.error is None, up.error
    assert len(swarm_stack.tasks("api-service")) == 2
    _no_failures(up)


def test_a_new_release_rolls_the_tasks_and_fails_no_request(swarm_stack: SwarmDay2) -> None:
    _after(swarm_stack, "scale 4 → 2")
    before = {t["ID"] for t in swarm_stack.tasks("api-service")}
    up = swarm_stack.up("code change", CODE_CHANGE)
    assert up.error is None, up.error
    assert _ops(up).get("api-service") == "update", _ops(up)
    _no_failures(up)
    after = {t["ID"] for t in swarm_stack.tasks("api-service")}
    assert not before & after, "Swarm kept a task of the old release"
    assert _releases_since(up, up.ended) == {"v2"}


def test_a_release_that_never_gets_healthy_is_rolled_back_by_swarm(swarm_stack: SwarmDay2) -> None:
    _after(swarm_stack, "code change")
    up = swarm_stack.up("never healthy", NEVER_HEALTHY)
    assert up.error is not None, "the up succeeded although Swarm rolled the release back"
    assert up.error.step.name == "api-service"
    print(up.error)
    assert "rolled back" in str(up.error)
    _no_failures(up)
    assert _releases_since(up, up.ended) == {"v2"}
    # The next `up` of the same release: the provider recorded the new spec, so
    # the service has nothing to change; its gate checks what Swarm runs.
    again = swarm_stack.up("never healthy, again", NEVER_HEALTHY)
    assert again.error is not None and again.error.step.name == "api-ready", again.error
    print(again.error)
    assert re.search(
        r"update (rollback_started|rollback_completed|rollback_paused|paused)|not the declared", str(again.error)
    ), again.error
    _no_failures(again)


def test_rolling_forward_again_converges(swarm_stack: SwarmDay2) -> None:
    _after(swarm_stack, "never healthy, again")
    up = swarm_stack.up("roll back", CODE_CHANGE)
    assert up.error is None, up.error
    _no_failures(up)
    assert _releases_since(up, up.ended) == {"v2"}


def test_a_changed_secret_rolls_the_services_to_a_new_swarm_secret(swarm_stack: SwarmDay2) -> None:
    _after(swarm_stack, "roll back")
    realized = swarm_stack.stack.realizer.realized
    old_secret = realized.secrets["secret-redis-password"]
    password = f"rotated-{uuid.uuid4().hex[:12]}"
    swarm_stack.secrets = {"redisPassword": password}
    up = swarm_stack.up("changed secret", CODE_CHANGE)
    assert up.error is None, up.error
    ops = _ops(up)
    assert ops["secret-redis-password"] == "replace" and ops["secret-redis-conf"] == "replace", ops
    assert {ops["redis-service"], ops["api-service"], ops["auth-service"]} == {"update"}, ops
    _no_failures(up)
    client = swarm_stack.stack.realizer.client
    assert realized.secrets["secret-redis-password"] != old_secret
    with pytest.raises(docker.errors.NotFound):
        client.api.inspect_secret(old_secret)
    # Inside every task of the API, the file holds the new password. The
    # provider's converge returns once every slot runs a task (Swarm may still
    # be finishing the update); the gate would wait for "completed", but under
    # mocks the secret's ID does not change, so neither does the gate's input.
    _wait_until_updated(client, swarm_stack.service_id("api-service"))
    tasks = swarm_stack.tasks("api-service")
    assert len(tasks) == 2
    for task in tasks:
        container = client.containers.get(task["Status"]["ContainerStatus"]["ContainerID"])
        assert container.exec_run(["cat", contract.REDIS_PASSWORD_FILE]).output.decode() == password
    declared = swarm_stack.stack.program.named("secret-redis-password").inputs["data"]
    assert base64.b64decode(declared).decode() == password


def _wait_until_updated(client: docker.DockerClient, service_id: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.api.inspect_service(service_id).get("UpdateStatus") or {}
        if status.get("State") in (None, "completed"):
            return
        time.sleep(0.5)
    raise AssertionError(f"service {service_id} did not finish its update within {timeout:g} s")
