"""The swarm platform on two Docker nodes (nodes.py): placement, and a worker that crashes under load.

The microstack stack is realized on a manager and a worker node, each a
dockerd in a network namespace of its own, with the program's swarm config
(the proxy is HAProxy, the API has 4 replicas). The manager carries the data
and edge labels, so Postgres, Redis and the proxy run there and the API
replicas spread over both nodes. The nodes cannot build or pull: the images
are built on the session's engine and copied in (a registry's part in a real
swarm), and `docker:host` points the readiness gates at the manager.

Then the worker crashes (every process killed, its interface gone) while a
client sends steady reads and writes to the proxy's published port on the
manager. The test prints how many requests failed, when Swarm marks the
worker Down, when all 4 API replicas run on the manager again and when
HAProxy routes to replicas on the manager only (read from its admin socket),
then boots the worker again and waits for it to be Ready.

What it holds the stack to (READ_TIMEOUT_SECONDS and below say why): every
request sent after the crash succeeds; the one request that may have been in
flight on a worker replica fails only if it is a write (504 after the read
timeout); Postgres keeps its task and container throughout. Swarm does not
move tasks back when the worker returns, so the API stays on the manager.

Only HAProxy runs here: nginx (passive checks) would double the module's
three minutes.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from components.proxy.component import HAPROXY_RUN_DIR
from components.proxy.model import Timeouts
from tests.support.program import Resource
from tests.system.images import BuiltImages, build_context_image
from tests.system.load import Load, register_and_login, steady_load
from tests.system.nodes import (
    DockerNode,
    TwoNodeSwarm,
    copy_image,
    require_node_support,
    two_node_swarm,
    wait_for_state,
)
from tests.system.realizer import ImageBuilder
from tests.system.stack import TABLES, TIMINGS, Stack, free_port, realize_stack, unique_stack_name
from tests.system.test_swarm import PROXY_OVERRIDES, swarm_config

pytestmark = pytest.mark.slow

API_REPLICAS = 4
# Generous bounds; the figures measured are printed (and docs/swarm.md explains them).
FAILOVER_TIMEOUT_SECONDS = 90
SAMPLE_SECONDS = 0.2
# HAProxy's admin socket inside the proxy's container (components/proxy/component.py).
ADMIN_SOCKET = f"{HAPROXY_RUN_DIR}/admin.sock"
# `show servers state` op states in which a server takes requests (running, or starting in slow start).
IN_ROTATION = {"1", "2"}
# What the client may see when the worker dies. A request sent after the crash
# to a replica on the worker fails to connect, and HAProxy retries it on
# another server (`retry-on conn-failure`, redispatch), writes included: none of
# those may fail, and the health checks take the dead replicas out within
# about interval x fall (1 s x 2 here). The load sends one request at a time,
# so at most one was in flight on a worker replica when it died. HAProxy waits
# for its answer until `timeout server` (the read timeout), then retries a
# read elsewhere, but answers a write 504: a write that reached a replica may
# have been applied, and repeating it is not the proxy's call. So: at most
# that one request fails, only as `POST 504`; the silence it causes starts at
# the crash and lasts at most the read timeout; any other silence is short.
READ_TIMEOUT_SECONDS = Timeouts().read_seconds
IN_FLIGHT_FAILURES = ("POST 504",)
# Slack for the client's own pause and the time from the crash to its next request.
SILENCE_SLACK_SECONDS = 1.0
# The longest gap between answers other than the in-flight request's.
LONGEST_SILENCE_SECONDS = 3.0


@dataclass
class NodeStack:
    """The stack realized on a two-node swarm, and the services' IDs by role."""

    swarm: TwoNodeSwarm
    stack: Stack
    token: str

    @property
    def manager(self) -> docker.DockerClient:
        return self.swarm.manager.client

    def service_id(self, role: str) -> str:
        return self.stack.realizer.realized.services[f"{role}-service"]

    def running_tasks(self, role: str) -> list[dict[str, Any]]:
        """The service's tasks that run and are meant to."""
        tasks = self.manager.api.tasks(filters={"service": self.service_id(role), "desired-state": "running"})
        return [t for t in tasks if t["Status"]["State"] == "running"]

    def nodes_of(self, role: str) -> list[str]:
        """The hostnames of the nodes running the service's tasks, one entry per task."""
        names = {n.id: n.attrs["Description"]["Hostname"] for n in self.manager.nodes.list()}
        return sorted(names.get(t["NodeID"], t["NodeID"]) for t in self.running_tasks(role))

    def proxy_networks(self) -> set[str]:
        """IDs of the overlay networks the proxy's task is attached to."""
        (task,) = self.running_tasks("proxy")
        return {attachment["Network"]["ID"] for attachment in task.get("NetworksAttachments") or []}

    def proxy_pid(self) -> int:
        """The root namespace's PID of the proxy's process (nodes share this machine's PID namespace)."""
        (task,) = self.running_tasks("proxy")
        container = self.manager.containers.get(task["Status"]["ContainerStatus"]["ContainerID"])
        return int(container.attrs["State"]["Pid"])


def task_addresses(tasks: list[dict[str, Any]], networks: set[str]) -> set[str]:
    """The tasks' addresses on `networks` (network IDs), where the proxy resolves `tasks.<service>`."""
    return {
        address.split("/")[0]
        for task in tasks
        for attachment in task.get("NetworksAttachments") or []
        if attachment["Network"]["ID"] in networks
        for address in attachment.get("Addresses") or []
    }


def haproxy_servers_in_rotation(pid: int, backend: str) -> set[str]:
    """Addresses of `backend`'s servers HAProxy sends requests to, from its admin socket.

    The socket is reached through the process's root (/proc/<pid>/root): the
    node's mounts are in a namespace of its own, its processes in this one.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as admin:
        admin.settimeout(2)
        admin.connect(f"/proc/{pid}/root{ADMIN_SOCKET}")
        admin.sendall(f"show servers state {backend}\n".encode())
        reply = b""
        while chunk := admin.recv(65536):
            reply += chunk
    lines = reply.decode().splitlines()
    header = next(line for line in lines if line.startswith("# be_id"))
    columns = header[2:].split()
    rows = [dict(zip(columns, line.split(), strict=False)) for line in lines if line and line[0].isdigit()]
    # Version line "1" has a single field; server rows have all of them.
    return {
        row["srv_addr"]
        for row in rows
        if len(row) == len(columns) and row["srv_op_state"] in IN_ROTATION and row["srv_admin_state"] == "0"
    }


def copy_images(source: docker.DockerClient, targets: Mapping[DockerNode, list[str]]) -> None:
    """Copy each node's images from the session's engine, all at once (docker save | docker load)."""
    work = [(node, tag) for node, tags in targets.items() for tag in tags]
    with ThreadPoolExecutor(max_workers=len(work)) as pool:
        list(pool.map(lambda item: copy_image(source, item[0].client, item[1]), work))


@pytest.fixture(scope="module")
def node_stack(docker_client: docker.DockerClient, test_images: BuiltImages) -> Iterator[NodeStack]:
    binaries = require_node_support()
    started = time.monotonic()
    # The proxy's checks at their shortest (1 s x 2), as in test_swarm.py.
    config = swarm_config(test_images, "haproxy", free_port(), proxy=PROXY_OVERRIDES, api={"replicas": API_REPLICAS})
    proxy_image = test_images.haproxy
    with two_node_swarm(binaries) as swarm, ThreadPoolExecutor(max_workers=1) as background:
        TIMINGS["two nodes ready"] = time.monotonic() - started
        # Postgres, Redis and the proxy are placed by the manager's labels, so
        # only the manager gets their images; they are copied while the
        # services' images build. The realizer builds every image before it
        # looks for the others, so a build returns only once they are in.
        stand_ins = background.submit(
            copy_images, docker_client, {swarm.manager: [test_images.postgres, test_images.redis, proxy_image]}
        )

        def build(resource: Resource, context: Path, dockerfile: str, args: Mapping[str, str]) -> str:
            """Build on the session's engine, copy into both nodes (a registry's part in a real swarm)."""
            tag = build_context_image(
                docker_client, f"nodes-{resource.name}", context, dockerfile=dockerfile, buildargs=args
            )
            copy_images(docker_client, {swarm.manager: [tag], swarm.worker: [tag]})
            stand_ins.result()
            return tag

        yield from _realized(swarm, config, build, started)


def _realized(swarm: TwoNodeSwarm, config: dict[str, Any], build: ImageBuilder, started: float) -> Iterator[NodeStack]:
    kind = config["proxy"]["kind"]
    for stack in realize_stack(
        swarm.manager.client,
        config,
        stack_name=unique_stack_name(f"nodes-{kind}"),
        build_image=build,
        provider_config={"docker:host": f"unix://{swarm.manager.socket}"},
        proxy_host=swarm.manager.address,
    ):
        with httpx.Client(base_url=stack.base_url, timeout=10) as client:
            _, token = register_and_login(client)
        TIMINGS["stack realized on two nodes"] = time.monotonic() - started
        yield NodeStack(swarm, stack, token)


def test_api_replicas_run_on_both_nodes_and_the_data_services_on_the_labelled_node(node_stack: NodeStack) -> None:
    assert node_stack.nodes_of("api") == ["manager"] * 2 + ["worker"] * 2
    assert node_stack.nodes_of("postgres") == ["manager"]
    assert node_stack.nodes_of("redis") == ["manager"]
    assert node_stack.nodes_of("proxy") == ["manager"]


@dataclass
class Timeline:
    """When (seconds after the crash) each condition was first seen to hold, by a sampler thread."""

    crashed: float
    load: Load
    first_seen: dict[str, float] = field(default_factory=dict)
    failed: list[tuple[float, int]] = field(default_factory=list)
    """(seconds after the crash, requests failed so far) at each sample."""
    errors: list[str] = field(default_factory=list)

    def sample(self, conditions: Mapping[str, Callable[[], bool]], stop: threading.Event) -> None:
        while not stop.is_set() and len(self.first_seen) < len(conditions):
            self.failed.append((time.monotonic() - self.crashed, len(self.load.failures)))
            for name, holds in conditions.items():
                if name in self.first_seen:
                    continue
                # A sample that fails (the proxy's socket busy, say) is recorded and taken again.
                try:
                    if holds():
                        self.first_seen[name] = time.monotonic() - self.crashed
                except Exception as error:
                    self.errors.append(f"{name}: {error!r}")
            time.sleep(SAMPLE_SECONDS)


def test_a_crashed_worker_fails_only_the_write_in_flight_and_the_api_comes_back_on_the_manager(
    node_stack: NodeStack,
) -> None:
    swarm, manager = node_stack.swarm, node_stack.manager
    (postgres_before,) = node_stack.running_tasks("postgres")
    postgres_container = postgres_before["Status"]["ContainerStatus"]["ContainerID"]
    postgres_started = manager.containers.get(postgres_container).attrs["State"]["StartedAt"]
    api_tasks = node_stack.running_tasks("api")
    worker_id = swarm.node_id(swarm.worker)
    networks = node_stack.proxy_networks()
    worker_addresses = task_addresses([t for t in api_tasks if t["NodeID"] == worker_id], networks)
    proxy_pid = node_stack.proxy_pid()
    assert haproxy_servers_in_rotation(proxy_pid, "api") == task_addresses(api_tasks, networks)

    def manager_tasks() -> list[dict[str, Any]]:
        return [t for t in node_stack.running_tasks("api") if t["NodeID"] != worker_id]

    conditions: dict[str, Callable[[], bool]] = {
        "worker marked Down": lambda: swarm.node_state(swarm.worker) == "down",
        "HAProxy routes to no replica on the worker": lambda: (
            not (haproxy_servers_in_rotation(proxy_pid, "api") & worker_addresses)
        ),
        "4 API replicas run on the manager": lambda: len(manager_tasks()) == API_REPLICAS,
        "HAProxy routes to the 4 replicas on the manager": lambda: routes_to_the_manager_only(),
    }

    def routes_to_the_manager_only() -> bool:
        tasks = manager_tasks()
        in_rotation = haproxy_servers_in_rotation(proxy_pid, "api")
        return len(tasks) == API_REPLICAS and in_rotation == task_addresses(tasks, networks)

    with steady_load(node_stack.stack.base_url, token=node_stack.token) as load:
        time.sleep(3)
        timeline = Timeline(crashed=time.monotonic(), load=load)
        swarm.worker.stop_engine()
        stop = threading.Event()
        sampler = threading.Thread(target=timeline.sample, args=(conditions, stop), daemon=True)
        sampler.start()
        sampler.join(timeout=FAILOVER_TIMEOUT_SECONDS)
        stop.set()
        # A little load after the last event: the replicas that came back answer.
        time.sleep(3)
    ended = time.monotonic()
    (postgres_after,) = node_stack.running_tasks("postgres")

    restarted = time.monotonic()
    swarm.worker.start_engine()

    wait_for_state(swarm, swarm.worker, "ready")
    report = _report(load, timeline, ended, time.monotonic() - restarted)
    print("\n" + "\n".join(f"{event}: {value}" for event, value in report.items()))
    assert set(timeline.first_seen) == set(conditions), (
        f"within {FAILOVER_TIMEOUT_SECONDS} s only {timeline.first_seen}; sampling errors: {timeline.errors[-5:]}"
    )
    failed = f"{len(load.failures)} of {load.requests} requests failed: {load.failures[:5]}"
    assert len(load.failures) <= 1, failed
    assert all(f.startswith(IN_FLIGHT_FAILURES) for f in load.failures), failed
    for began, length in _gaps(load, timeline.crashed, ended):
        if began < SILENCE_SLACK_SECONDS:
            bound = READ_TIMEOUT_SECONDS + SILENCE_SLACK_SECONDS
            assert length <= bound, f"the request in flight at the crash took {length:.1f} s (bound {bound:g} s)"
        else:
            assert length < LONGEST_SILENCE_SECONDS, f"no answer for {length:.1f} s, from {began:.1f} s after the crash"
    writes = [a for a in load.between(timeline.crashed, ended) if a.method == "POST"]
    assert writes, "no write succeeded after the crash"
    # Postgres never moved: the same task, the same container, not restarted.
    assert postgres_after["ID"] == postgres_before["ID"]
    assert postgres_after["Status"]["ContainerStatus"]["ContainerID"] == postgres_container
    assert manager.containers.get(postgres_container).attrs["State"]["StartedAt"] == postgres_started
    assert node_stack.nodes_of("api") == ["manager"] * API_REPLICAS
    assert swarm.node_state(swarm.worker) == "ready"


def _gaps(load: Load, start: float, end: float) -> list[tuple[float, float]]:
    """Each time without an answer in [start, end]: when it began (seconds after `start`) and how long it lasted."""
    times = [start] + [a.at for a in load.between(start, end)] + [end]
    return [(earlier - start, later - earlier) for earlier, later in itertools.pairwise(times)]


def _report(load: Load, timeline: Timeline, ended: float, rejoined: float) -> dict[str, str]:
    after = load.between(timeline.crashed, ended)
    began, longest = max(_gaps(load, timeline.crashed, ended), key=lambda gap: gap[1])
    counts = [(at, count) for at, count in timeline.failed]
    failing = [at for (at, count), (_, before) in zip(counts[1:], counts, strict=False) if count > before]
    rows = {
        "failed requests": f"{len(load.failures)}: {load.failures[:3]}, seen at {[round(at, 1) for at in failing]} s"
        f" after the crash (failed before it: {counts[0][1] if counts else 0})",
        "requests after the crash": f"{len(after)} answered, {len(load.failures)} failed in the whole run "
        f"({load.requests} requests)",
        "longest time without an answer": f"{longest:.2f} s, from {began:.1f} s after the crash",
        **{
            event: f"{seconds:.1f} s after the crash"
            for event, seconds in sorted(timeline.first_seen.items(), key=lambda e: e[1])
        },
        "worker Ready again": f"{rejoined:.1f} s after its engine was started",
    }
    TABLES["two-node swarm, HAProxy: the worker crashes under load"] = [
        {"event": event, "when": value} for event, value in rows.items()
    ]
    return rows


def _by_time(events: Mapping[str, float]) -> list[tuple[str, float]]:
    return sorted(events.items(), key=lambda event: event[1])
