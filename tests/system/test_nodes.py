"""A two-node swarm on this machine (nodes.py): placement, overlay, host-mode ports, a node failure.

Two services of a tiny HTTP server that answers with its node's hostname run
on a manager and a worker node: `web` with at most one task per node and a
host-mode port, `api` placed as the program places the API (no limit per
node, Swarm spreads replicas by itself). The worker then crashes while a
client inside the manager's `web` task keeps resolving `tasks.api` and
calling every address, as the HAProxy discovery does. The swarm keeps its
default dispatcher heartbeat (5 s): the program does not change it, and the
figures printed are what a deployment gets.

The failover test also shows what one task per node costs: the crashed
worker's `web` task has nowhere to go (max_replicas 1, and its host-mode port
is taken on the manager) until the worker is back.
"""

from __future__ import annotations

import functools
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import docker
import pytest
from docker.types import EndpointSpec, RestartPolicy, ServiceMode

from components.platform.swarm import RESTART_DELAY_SECONDS
from tests.system.nodes import (
    TwoNodeSwarm,
    copy_image,
    manager_labels,
    node_image,
    require_node_support,
    two_node_swarm,
    wait_for_state,
)
from tests.system.stack import TABLES

pytestmark = pytest.mark.slow

HTTP_PORT = 8000
PUBLISHED_PORT = 18080
REPLICAS = 2
# Answers GET with the hostname of its task ({{.Node.Hostname}}); exits at once on SIGTERM.
SERVER = f"""
import http.server, signal, socket, sys
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = socket.gethostname().encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("", {HTTP_PORT}), Handler).serve_forever()
"""
# Resolves tasks.<service> and calls each address, as a proxy with DNS discovery does,
# for argv[2] seconds (or once); prints one JSON line per round.
PROBE = f"""
import json, socket, sys, time, urllib.request
started, rounds = time.monotonic(), 0
while rounds == 0 or time.monotonic() - started < float(sys.argv[2]):
    rounds += 1
    try:
        ips = sorted({{a[4][0] for a in socket.getaddrinfo("tasks." + sys.argv[1], {HTTP_PORT}, proto=6)}})
    except OSError:
        ips = []
    answers = {{}}
    for ip in ips:
        try:
            answers[ip] = urllib.request.urlopen(f"http://{{ip}}:{HTTP_PORT}/", timeout=1).read().decode()
        except OSError as error:
            answers[ip] = "error: " + str(error)
    print(json.dumps({{"at": time.time(), "answers": answers}}), flush=True)
    time.sleep(0.25)
"""
FAILOVER_TIMEOUT_SECONDS = 60
PROBE_SECONDS = 40


@dataclass(frozen=True)
class Cluster:
    swarm: TwoNodeSwarm
    image: str

    @property
    def manager(self) -> docker.DockerClient:
        return self.swarm.manager.client


def running_nodes(client: docker.DockerClient, service: str) -> list[str]:
    """Node IDs of the service's tasks that are running and meant to be."""
    tasks = client.services.get(service).tasks(filters={"desired-state": "running"})
    return sorted(t["NodeID"] for t in tasks if t["Status"]["State"] == "running")


def wait_until(what: str, check: Callable[[], bool], timeout: float = FAILOVER_TIMEOUT_SECONDS) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.2)
    raise TimeoutError(f"{what} did not happen within {timeout:.0f}s")


def task_container(client: docker.DockerClient, service: str) -> docker.models.containers.Container:
    found = client.containers.list(filters={"label": f"com.docker.swarm.service.name={service}"})
    assert len(found) == 1, f"expected one {service} task on this node, found {len(found)}"
    return found[0]


def probe(container: docker.models.containers.Container, service: str, seconds: float = 0) -> list[dict[str, Any]]:
    result = container.exec_run(["python3", "-c", PROBE, service, str(seconds)])
    assert result.exit_code == 0, result.output.decode(errors="replace")
    return [json.loads(line) for line in result.output.decode().splitlines()]


def create_service(client: docker.DockerClient, image: str, network: str, name: str, **placement: object) -> None:
    client.services.create(
        image,
        ["python3", "-c", SERVER],
        name=name,
        hostname="{{.Node.Hostname}}",
        mode=ServiceMode("replicated", replicas=REPLICAS),
        endpoint_spec=EndpointSpec(mode="dnsrr", ports={PUBLISHED_PORT: (HTTP_PORT, "tcp", "host")})
        if name == "web"
        else EndpointSpec(mode="dnsrr"),
        networks=[network],
        # As the program declares it: restart on any exit, after the same delay.
        restart_policy=RestartPolicy(condition="any", delay=RESTART_DELAY_SECONDS * 1_000_000_000),
        **placement,
    )


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    binaries = require_node_support()
    started = time.monotonic()
    with two_node_swarm(binaries) as swarm:
        print(f"\ntwo nodes Ready in {time.monotonic() - started:.1f} s")
        image = node_image(swarm.manager.client, binaries["debootstrap"])
        copy_image(swarm.manager.client, swarm.worker.client, image)
        network = swarm.manager.client.networks.create("ms-overlay", driver="overlay")
        create_service(swarm.manager.client, image, network.id, "web", maxreplicas=1)
        create_service(swarm.manager.client, image, network.id, "api")

        def all_running(service: str) -> bool:
            return len(running_nodes(swarm.manager.client, service)) == REPLICAS

        for service in ("web", "api"):
            wait_until(f"{service} running {REPLICAS} tasks", functools.partial(all_running, service))
        print(f"services running {time.monotonic() - started:.1f} s after start")
        yield Cluster(swarm, image)


def test_both_nodes_are_ready_and_the_manager_has_the_program_labels(cluster: Cluster) -> None:
    nodes = {n.attrs["Description"]["Hostname"]: n.attrs for n in cluster.manager.nodes.list()}
    assert {name: attrs["Status"]["State"] for name, attrs in nodes.items()} == {"manager": "ready", "worker": "ready"}
    assert nodes["manager"]["Spec"]["Labels"] == manager_labels()
    assert not nodes["worker"]["Spec"].get("Labels")
    assert nodes["worker"]["Spec"]["Role"] == "worker"


@pytest.mark.parametrize("service", ["web", "api"])
def test_replicas_are_spread_one_per_node(cluster: Cluster, service: str) -> None:
    swarm = cluster.swarm
    assert running_nodes(cluster.manager, service) == sorted(
        [swarm.node_id(swarm.manager), swarm.node_id(swarm.worker)]
    )


def test_each_node_publishes_its_host_mode_port_to_the_machine(cluster: Cluster) -> None:
    # A task is "running" once its process started, which can be before the
    # server listens (a loaded machine took over a second): the port is given
    # until it answers, then the answer must come from that node's task.
    def answer(node_address: str) -> str | None:
        try:
            with urllib.request.urlopen(f"http://{node_address}:{PUBLISHED_PORT}/", timeout=5) as response:
                return response.read().decode()
        except urllib.error.URLError as error:
            if isinstance(error.reason, ConnectionRefusedError):
                return None
            raise

    def answering(node_address: str) -> bool:
        return answer(node_address) is not None

    for node in (cluster.swarm.manager, cluster.swarm.worker):
        wait_until(f"the {node.name}'s port {PUBLISHED_PORT} answering", functools.partial(answering, node.address))
        assert answer(node.address) == node.name


def test_tasks_on_both_nodes_reach_each_other_over_the_overlay(cluster: Cluster) -> None:
    for node in (cluster.swarm.manager, cluster.swarm.worker):
        (round_,) = probe(task_container(node.client, "web"), "web")
        assert sorted(round_["answers"].values()) == ["manager", "worker"], f"from the {node.name}: {round_}"


def test_a_crashed_workers_tasks_come_back_on_the_manager_and_the_worker_rejoins(cluster: Cluster) -> None:
    swarm, manager = cluster.swarm, cluster.manager
    manager_id, worker_id = swarm.node_id(swarm.manager), swarm.node_id(swarm.worker)
    client_task = task_container(manager, "web")
    timeline: list[dict[str, Any]] = []
    load = threading.Thread(target=lambda: timeline.extend(probe(client_task, "api", PROBE_SECONDS)))
    load.start()
    time.sleep(2)

    crashed = time.time()
    swarm.worker.stop_engine()
    wait_for_state(swarm, swarm.worker, "down", FAILOVER_TIMEOUT_SECONDS)
    down = time.time() - crashed
    wait_until("api's crashed task running on the manager", lambda: running_nodes(manager, "api") == [manager_id] * 2)
    rescheduled = time.time() - crashed
    load.join()
    web_waiting = [
        t["Status"]
        for t in manager.services.get("web").tasks(filters={"desired-state": "running"})
        if t["Status"]["State"] != "running"
    ]

    restarted = time.time()
    swarm.worker.start_engine()
    wait_for_state(swarm, swarm.worker, "ready")
    ready = time.time() - restarted
    wait_until("web's task running on the worker again", lambda: worker_id in running_nodes(manager, "web"))
    web_back = time.time() - restarted

    (crashed_ip,) = [ip for ip, answer in timeline[0]["answers"].items() if answer == "worker"]
    rows = {
        "worker marked Down": f"{down:.1f} s after the crash",
        "api's task running on the manager": f"{rescheduled:.1f} s after the crash",
        "calls to the crashed task": _failures(timeline, crashed, lambda ip: ip == crashed_ip),
        "calls to the other tasks": _failures(timeline, crashed, lambda ip: ip != crashed_ip),
        "worker Ready again": f"{ready:.1f} s after its engine was started",
        "web's task running on the worker again": f"{web_back:.1f} s after its engine was started",
        "web's task meanwhile": "; ".join(f"{s['State']}: {s.get('Err', '')}" for s in web_waiting),
    }
    TABLES["two-node swarm: the worker crashes (dispatcher heartbeat 5 s)"] = [
        {"event": event, "when": value} for event, value in rows.items()
    ]
    print("\n" + "\n".join(f"{event}: {value}" for event, value in rows.items()))

    # max_replicas 1 and the host-mode port both leave web's task no place on the manager.
    assert web_waiting and web_waiting[0]["State"] == "pending", web_waiting
    assert set(timeline[-1]["answers"].values()) == {"manager"}, timeline[-1]


def _failures(timeline: list[dict[str, Any]], since: float, which: Callable[[str], bool]) -> str:
    """How many of the probe's calls to the addresses `which` selects failed, and when the last did."""
    calls = [(r["at"] - since, answer) for r in timeline for ip, answer in r["answers"].items() if which(ip)]
    failed = [at for at, answer in calls if answer.startswith("error")]
    if not failed:
        return f"{len(calls)}, none failed"
    return f"{len(failed)} of {len(calls)} failed, the last {max(failed):.1f} s after the crash"
