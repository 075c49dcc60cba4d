"""Day 2: the second and later `pulumi up`s of a running stack, under load, in the real engine.

For each proxy kind with 2 and with 4 API replicas, one stack is realized and
then taken through a sequence of `up`s, each planned and applied the way the
Pulumi engine does (rollout.py) while a client sends steady requests (reads
and writes) through the proxy's published port:

1. no change: zero steps;
2. a code change to the API: the replicas are replaced one at a time, no
   request fails;
3. a release that never gets healthy (it exits at start): the `up` fails at
   the first replica's gate, naming the container and the reason, and the
   other replicas keep serving;
4. the same `up` again: it fails again at the same gate and does not touch
   the next replica;
5. rolling back to the release of step 2: no request fails;
6. a schema change (expand: a new column with a default, used by the new
   code): the old replicas keep serving reads and writes during the rollout;
7. rolling back after the migration: the old code works with the new schema.

The tests of one stack run in that order and share its state; pytest groups
them by stack (module-scoped parameter). For each `up` the rollout's duration,
the requests and failures, and the longest time a replica that should have
been in rotation answered nothing are printed in the terminal summary.

The ELK setup job is checked on its own: its image cannot be built here, so
only the job container and its gate are realized, against a stand-in
Elasticsearch that refuses the job's requests.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pulumi
import pytest

import components.service
from components.common import LABEL_ROLE, ROLE_JOB
from microstack_common import contract
from tests.support.program import NETWORK, READY_GATE, Program, Resource, run_program
from tests.system.images import BuiltImages
from tests.system.load import ITEMS, register_and_login
from tests.system.realizer import OWNER_LABEL, SESSION_LABEL, Realizer
from tests.system.releases import (
    COLUMN,
    FIRST_RELEASE,
    Release,
    SourceTree,
    adds_a_column,
    fails_at_start,
    release_header,
)
from tests.system.rollout import State, UpError, apply, changes, plan
from tests.system.stack import (
    free_port,
    free_subnet,
    realize_stack,
    stack_config,
    unique_stack_name,
)
from tests.system.timing import fast_health
from tests.system.updates import Day2, Up

pytestmark = pytest.mark.slow

CODE_CHANGE = Release("v2", (release_header("v2"),))
NEVER_HEALTHY = Release("v3", (release_header("v3"), fails_at_start("v3")))
SCHEMA_CHANGE = Release("v4", (release_header("v4"), adds_a_column()))

# The proxy's checks at their shortest, so that a replica rejoins the
# rotation (and the gate's settle time ends) within seconds; the containers'
# own checks every second (tests/system/timing.py).
PROXY_OVERRIDES = {"healthCheck": {"intervalSeconds": 1, "fall": 2, "rise": 2}, "slowStartSeconds": 2}
# A replica's gate waits this long for health, not the program's 180 s: a
# healthy replica is ready within about 15 s here, and the release that never
# gets healthy is waited for twice per stack. Not a config key of the
# program, so the test sets the gates' input through a stack transformation.
API_READY_TIMEOUT_SECONDS = 40
_API_GATE = re.compile(r"api-\d+-ready")


# How long replicas may take to answer again once an `up` has returned.
def _api_gate_timeout(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
    if args.type_ == READY_GATE and _API_GATE.fullmatch(args.name):
        return pulumi.ResourceTransformationResult(
            {**args.props, "timeoutSeconds": API_READY_TIMEOUT_SECONDS}, args.opts
        )
    return None


@pytest.fixture(
    scope="module",
    params=[("nginx", 2), ("nginx", 4), ("haproxy", 2), ("haproxy", 4)],
    ids=lambda param: f"{param[0]}-{param[1]}",
)
def day2(
    request: pytest.FixtureRequest,
    docker_client: docker.DockerClient,
    test_images: BuiltImages,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Day2]:
    kind, replicas = request.param
    root = tmp_path_factory.mktemp(f"day2-{kind}-{replicas}")
    tree = SourceTree(root)
    config = stack_config(
        test_images,
        kind,
        free_port(),
        free_subnet(docker_client),
        api={"replicas": replicas},
        proxy=PROXY_OVERRIDES,
    )
    stack_name = unique_stack_name(f"day2-{kind}-{replicas}")
    with pytest.MonkeyPatch.context() as patch:
        # The program digests and the realizer builds the services from the copy.
        patch.setattr(components.service, "_PROJECT_DIR", root)
        for stack in realize_stack(
            docker_client,
            config,
            stack_name=stack_name,
            project_root=root,
            image_prefix="day2-",
            transformations=[_api_gate_timeout, fast_health],
        ):
            with httpx.Client(base_url=stack.base_url, timeout=10) as client:
                _, token = register_and_login(client)
            yield Day2(
                transformations=(_api_gate_timeout, fast_health),
                kind=kind,
                replicas=replicas,
                stack=stack,
                tree=tree,
                config=config,
                stack_name=stack_name,
                state=State.from_realized(stack.realizer),
                token=token,
            )


def _no_failures(up: Up) -> None:
    assert up.load.failures == [], f"{len(up.load.failures)} of {up.load.requests} failed: {up.load.failures[:5]}"


def _releases_answering(up: Up, since: float) -> dict[str, str]:
    return {a.instance: a.release for a in up.load.answers if a.at >= since}


def _after(day2: Day2, scenario: str) -> None:
    if scenario not in day2.ups:
        pytest.skip(f"needs the {scenario!r} up of this stack, which did not run")


def test_a_no_change_up_takes_no_step(day2: Day2) -> None:
    up = day2.up("no change", Release(FIRST_RELEASE))
    assert changes(up.steps) == []
    assert up.error is None
    _no_failures(up)


def test_a_code_change_replaces_the_replicas_one_at_a_time_and_fails_no_request(day2: Day2) -> None:
    _after(day2, "no change")
    before = {name: day2.container_id(name) for name in day2.replica_names}
    up = day2.up("code change", CODE_CHANGE)
    assert up.error is None, up.error
    _no_failures(up)
    replaced = [s.name for s in up.steps if s.op == "replace" and s.type.endswith("container:Container")]
    assert replaced == day2.replica_names
    for previous, replica in zip(day2.replica_names, day2.replica_names[1:], strict=False):
        gate = up.applied("replace", f"{previous}-ready")
        assert up.applied("replace", replica).started >= gate.started + gate.seconds, f"{replica} did not wait"
    assert all(day2.container_id(name) != before[name] for name in day2.replica_names)
    assert set(_releases_answering(up, up.ended).values()) == {"v2"}


def test_a_release_that_never_gets_healthy_stops_at_the_first_replica(day2: Day2) -> None:
    _after(day2, "code change")
    others = day2.replica_names[1:]
    before = {name: day2.container_id(name) for name in others}
    up = day2.up("never healthy", NEVER_HEALTHY, in_rotation=others)
    assert up.error is not None, "the up succeeded although the first replica never got healthy"
    assert up.error.step.name == "api-1-ready"
    message = str(up.error)
    print(message)
    assert day2.stack.realizer.specs["api-1"].name in message, message
    # It exits at start: the gate says so once it has restarted a few times.
    assert "keeps exiting" in message and "cannot start" in message, message
    assert {name: day2.container_id(name) for name in others} == before
    _no_failures(up)
    assert set(_releases_answering(up, up.started).items()) >= {(name, "v2") for name in others}


def test_a_second_up_of_that_release_does_not_move_on(day2: Day2) -> None:
    _after(day2, "never healthy")
    others = day2.replica_names[1:]
    before = {name: day2.container_id(name) for name in others}
    up = day2.up("never healthy, again", NEVER_HEALTHY, in_rotation=others)
    assert [(s.op, s.name) for s in changes(up.steps)][:1] == [("create", "api-1-ready")]
    assert up.error is not None and up.error.step.name == "api-1-ready"
    assert day2.stack.realizer.specs["api-1"].name in str(up.error)
    assert {name: day2.container_id(name) for name in others} == before
    _no_failures(up)


def test_rolling_back_fails_no_request(day2: Day2) -> None:
    _after(day2, "never healthy, again")
    up = day2.up("roll back", CODE_CHANGE)
    assert up.error is None, up.error
    _no_failures(up)
    replaced = {s.name for s in up.steps if s.op == "replace" and s.type.endswith("container:Container")}
    assert replaced == {"api-1"}
    assert set(_releases_answering(up, up.ended).values()) == {"v2"}


def test_a_schema_change_keeps_the_old_replicas_working(day2: Day2) -> None:
    _after(day2, "roll back")
    up = day2.up("schema change (expand)", SCHEMA_CHANGE)
    assert up.error is None, up.error
    _no_failures(up)
    # A replica of the new release answers only once it has migrated (at start).
    migrated_at = min(a.at for a in up.load.answers if a.release == "v4")
    old_writes = [a for a in up.load.answers if a.at >= migrated_at and a.method == "POST" and a.release == "v2"]
    assert old_writes, "no replica of the old release answered a write after the migration"
    with httpx.Client(base_url=day2.stack.base_url, timeout=10, headers=_auth(day2)) as client:
        created = client.post(ITEMS, json={"name": f"ranked-{uuid.uuid4().hex[:6]}", COLUMN: 7})
        assert created.status_code == 201, created.text
        assert created.json()[COLUMN] == 7
        assert client.get(f"{ITEMS}/{created.json()['id']}").json()[COLUMN] == 7
    day2.item_with_column = created.json()["id"]


def test_rolling_back_after_the_migration_still_works(day2: Day2) -> None:
    _after(day2, "schema change (expand)")
    item = day2.item_with_column
    up = day2.up("roll back after migration", CODE_CHANGE)
    assert up.error is None, up.error
    _no_failures(up)
    assert set(_releases_answering(up, up.ended).values()) == {"v2"}
    with httpx.Client(base_url=day2.stack.base_url, timeout=10, headers=_auth(day2)) as client:
        read = client.get(f"{ITEMS}/{item}")
        assert read.status_code == 200, read.text
        assert COLUMN not in read.json()
        written = client.put(f"{ITEMS}/{item}", json={"name": "renamed by the old release"})
        assert written.status_code == 200, written.text


def _auth(day2: Day2) -> dict[str, str]:
    return {"Authorization": f"Bearer {day2.token}"}


# --- the ELK setup job ---------------------------------------------------------------

# Answers the job's wait for the cluster, and refuses everything after it.
_REFUSING_ELASTICSEARCH = """
import http.server, json

class Handler(http.server.BaseHTTPRequestHandler):
    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        ready = self.path.startswith("/_cluster/health")
        body = json.dumps({"status": "green"} if ready else {"error": "refused by the day-2 test"}).encode()
        self.send_response(200 if ready else 500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = _answer

http.server.ThreadingHTTPServer(("0.0.0.0", 9200), Handler).serve_forever()
"""


def _job_and_what_it_needs(program: Program) -> Program:
    """The setup job, its gate, its image and its network, and the components above them."""
    # The Elasticsearch setup job; the Kibana one runs after Kibana, which this test leaves out.
    (job,) = [
        r
        for r in program.containers
        if {"label": LABEL_ROLE, "value": ROLE_JOB} in (r.inputs.get("labels") or [])
        and not r.name.endswith("-kibana-setup")
    ]
    (attachment,) = job.inputs["networksAdvanced"]
    (network,) = [r for r in program.of_type(NETWORK) if r.outputs.get("name") == attachment["name"]]
    parent = job.options.get("parent")
    (image,) = [
        r
        for r in program.resources
        if r.outputs.get("imageId") == job.inputs["image"] and r.options.get("parent") == parent
    ]
    keep = {job.name, program.gate_of(job).name, network.name, image.name}
    parents = {r.name: r.options.get("parent") for r in program.resources}
    for name in list(keep):
        parent = parents.get(name)
        while parent:
            keep.add(parent)
            parent = parents.get(parent)
    return Program([r for r in program.resources if r.name in keep], {})


def test_a_failing_elk_setup_job_fails_the_up(docker_client: docker.DockerClient, test_images: BuiltImages) -> None:
    session = unique_stack_name("day2-elk-job")
    config = stack_config(test_images, "nginx", free_port(), free_subnet(docker_client), logging={"enabled": True})
    # The stand-in nginx image has what the job runs: bash and curl.
    config["images"] = {**config["images"], "elasticsearch": test_images.nginx}
    program = _job_and_what_it_needs(run_program(config, stack=session))
    (job,) = program.containers
    realizer = Realizer(docker_client, program, session=session, project_root=Path("."), build_image=_no_build)
    state = State()
    try:
        network_only = Program([r for r in program.resources if r.type != READY_GATE and r.name != job.name], {})
        apply(realizer, plan(state, network_only), network_only, state)
        (network,) = realizer.realized.networks.values()
        _refusing_elasticsearch(docker_client, test_images, network, session)
        for attempt in ("first up", "second up"):
            with pytest.raises(UpError) as failed:
                apply(realizer, plan(state, program), program, state)
            message = str(failed.value)
            assert failed.value.step.name == program.gate_of(job).name, f"{attempt}: {message}"
            assert job.inputs["name"] in message and "exit code" in message, f"{attempt}: {message}"
            assert "refused by the day-2 test" in message, f"{attempt}: {message}"
    finally:
        realizer.destroy()


def _refusing_elasticsearch(client: docker.DockerClient, images: BuiltImages, network: str, session: str) -> None:
    """Elasticsearch's place on the logging network: a small server that refuses the job's requests."""
    api = client.api
    created = api.create_container(
        images.python,
        ["python3", "-c", _REFUSING_ELASTICSEARCH],
        name=f"{session}-elasticsearch",
        labels={SESSION_LABEL: session, OWNER_LABEL: str(os.getpid())},
        networking_config=api.create_networking_config(
            {network: api.create_endpoint_config(aliases=[contract.Alias.ELASTICSEARCH])}
        ),
    )
    api.start(created["Id"])


def _no_build(resource: Resource, *_args: Any) -> str:
    raise AssertionError(f"{resource.name}: nothing is built for the setup job")
