"""Rolling-update benchmark in the real Docker engine: ours, per platform, proxy and replica count, against the seed's.

Each row realizes a stack (the system test's stand-in images, logging off,
the proxy on a free port, the stack's default health-check and drain
settings), puts a steady load on the proxy's published port on loopback, and
rolls the API out to a new release (a code change: every answer carries an
`X-Release` header):

- **ours** (platform containers): the change planned and applied the way
  `pulumi up` does it (tests/system/rollout.py): each replica deleted before
  its replacement, replaced only after the previous replica's readiness gate
  (healthy, then back in the proxy's rotation);
- **swarm** (platform swarm, the engine a single-node swarm for the row,
  tests/system/swarm.py; it leaves the swarm afterwards, also on failure or
  Ctrl-C): the same `up`, in which the API service's update hands the tasks
  to Swarm (start-first, one at a time, the declared delay between them) and
  the service's gate waits until Swarm calls the update complete, after its
  monitor window;
- **seed**: the seed tutorial's documented rolling update, behind its own
  nginx.conf (`least_conn`, `max_fails=3 fail_timeout=30s`, `proxy_next_upstream
  error timeout invalid_header http_500 http_502 http_503`): recreate
  api-service-1 (`docker compose up -d --no-deps --force-recreate`: stop with
  Docker's 10 s grace, remove, create, start), `sleep 10`, recreate
  api-service-2. Same engine, same images, same load.

Printed per row: requests, failed requests, p99 latency, the rollout's
duration (from the first step to the last: for Swarm, until the `up`
returns), when the last replica of the new release first answered (from the
same start; for Swarm, the last new task), and the longest time a replica
answered nothing while the rollout ran (how long it was out of rotation, as
the clients saw it; with the seed's sleeps this includes the time nginx still
marks a replaced replica failed). A Swarm task answers as `api-<slot>`, so
there "replica" means a slot, whose old task serves until its new one runs.

Run from the repository root as root (it may start dockerd and builds images
like the system test): `venv/bin/python -m bench.bench_rollout` (about 30
minutes on two cores); `--rows nginx-2,seed-2,swarm-haproxy-2` picks rows.
"""

from __future__ import annotations

import argparse
import io
import itertools
import statistics
import tarfile
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import docker
import httpx
import pytest

import components.service
from microstack_common import contract
from tests.support.binaries import require_binary
from tests.support.program import Program, run_program
from tests.system.engine import docker_engine
from tests.system.images import BuiltImages, build_test_images
from tests.system.realizer import remove_abandoned
from tests.system.releases import FIRST_RELEASE, RELEASE_HEADER, Release, SourceTree, release_header
from tests.system.rollout import State, apply, plan
from tests.system.stack import Stack, free_port, free_subnet, realize_stack, stack_config, unique_stack_name
from tests.system.swarm import ForeignSwarm, swarm, swarm_config

INSTANCE = f"{contract.API_PREFIX}/instance"
CLIENTS = 4
PAUSE_SECONDS = 0.02
WARM_UP_SECONDS = 3
# After the last step, until every replica has answered again.
SETTLE_SECONDS = 30
NEW_RELEASE = Release("v2", (release_header("v2"),))
# Several clients share one address: the per-address rate limit must not be what is measured.
RATE_LIMIT = {"requestsPerSecond": 5000, "burst": 5000}
SEED_RECREATE_GRACE_SECONDS = 10
SEED_SLEEP_SECONDS = 10
ROWS = (
    "nginx-2",
    "nginx-4",
    "haproxy-2",
    "haproxy-4",
    "seed-2",
    "swarm-nginx-2",
    "swarm-haproxy-2",
    "swarm-nginx-4",
    "swarm-haproxy-4",
)
SWARM = "swarm-"

# The seed's nginx.conf, for the proxy container (paths the nginx stand-in has).
SEED_NGINX = """\
worker_processes 2;
pid /tmp/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    client_body_temp_path /tmp/client_body;
    proxy_temp_path /tmp/proxy;
    fastcgi_temp_path /tmp/fastcgi;
    uwsgi_temp_path /tmp/uwsgi;
    scgi_temp_path /tmp/scgi;
    access_log off;
    upstream api {{
        least_conn;
{servers}
    }}
    server {{
        listen {port};
        location = /health {{ return 200 'ok'; }}
        location /api/ {{
            proxy_pass http://api;
            proxy_next_upstream error timeout invalid_header http_500 http_502 http_503;
        }}
    }}
}}
"""


@dataclass(frozen=True)
class Answer:
    at: float
    seconds: float
    instance: str
    release: str


@dataclass
class Load:
    base_url: str
    answers: list[Answer] = field(default_factory=list)
    failures: list[tuple[float, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            while not self.stop.is_set():
                sent = time.monotonic()
                try:
                    response = client.get(INSTANCE)
                    done = time.monotonic()
                    with self.lock:
                        if response.status_code == 200:
                            self.answers.append(
                                Answer(
                                    done,
                                    done - sent,
                                    response.headers.get(contract.INSTANCE_HEADER, ""),
                                    response.headers.get(RELEASE_HEADER, FIRST_RELEASE),
                                )
                            )
                        else:
                            self.failures.append((done, f"{response.status_code} {response.text[:100]}"))
                except httpx.HTTPError as error:
                    with self.lock:
                        self.failures.append((time.monotonic(), repr(error)))
                time.sleep(PAUSE_SECONDS)

    def window(self, start: float, end: float) -> tuple[list[Answer], list[tuple[float, str]]]:
        return [a for a in self.answers if start <= a.at <= end], [f for f in self.failures if start <= f[0] <= end]

    def longest_silence(self, instances: list[str], start: float, end: float) -> float:
        longest = 0.0
        for instance in instances:
            times = [start, *(a.at for a in self.answers if start <= a.at <= end and a.instance == instance), end]
            longest = max(longest, max(b - a for a, b in itertools.pairwise(times)))
        return longest


@contextmanager
def steady_load(base_url: str) -> Iterator[Load]:
    load = Load(base_url)
    threads = [threading.Thread(target=load.client, daemon=True) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        yield load
    finally:
        load.stop.set()
        for thread in threads:
            thread.join(timeout=30)


@dataclass(frozen=True)
class Row:
    name: str
    requests: int
    failed: int
    p99_ms: float
    rollout_seconds: float
    new_release_seconds: float
    out_of_rotation_seconds: float
    failure_kinds: tuple[tuple[str, int], ...] = ()


def _until_all_answer(load: Load, instances: list[str], after: float) -> float:
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        seen = {a.instance for a in load.answers if a.at >= after}
        if set(instances) <= seen:
            break
        time.sleep(0.2)
    return time.monotonic()


def _row(name: str, load: Load, instances: list[str], started: float, ended: float, settled: float) -> Row:
    answers, failures = load.window(started, settled)
    latencies = sorted(a.seconds for a in answers)
    p99 = statistics.quantiles(latencies, n=100)[98] * 1000 if len(latencies) >= 100 else float("nan")
    return Row(
        name,
        requests=len(answers) + len(failures),
        failed=len(failures),
        p99_ms=p99,
        rollout_seconds=ended - started,
        new_release_seconds=_last_new_answer(answers, instances) - started,
        out_of_rotation_seconds=load.longest_silence(instances, started, settled),
        failure_kinds=tuple(Counter(reason.split(" ", 1)[0] for _, reason in failures).most_common(3)),
    )


def _last_new_answer(answers: list[Answer], instances: list[str]) -> float:
    """When the last of `instances` first answered with the new release (NaN if one never did)."""
    first: dict[str, float] = {}
    for answer in answers:
        if answer.release == NEW_RELEASE.name and answer.instance in instances:
            first[answer.instance] = min(answer.at, first.get(answer.instance, answer.at))
    return max(first.values()) if first.keys() == set(instances) else float("nan")


def _stack(
    client: docker.DockerClient, images: BuiltImages, kind: str, replicas: int, root: Path, *, on_swarm: bool = False
) -> tuple[Iterator[Stack], dict[str, object], str]:
    overrides = {"api": {"replicas": replicas}, "proxy": {"rateLimit": RATE_LIMIT}}
    if on_swarm:
        config = swarm_config(images, kind, free_port(), **overrides)
    else:
        config = stack_config(images, kind, free_port(), free_subnet(client), **overrides)
    name = unique_stack_name(f"bench-{SWARM if on_swarm else ''}{kind}-{replicas}")
    return realize_stack(client, config, stack_name=name, project_root=root, image_prefix="bench-"), config, name


def ours(client: docker.DockerClient, images: BuiltImages, kind: str, replicas: int, *, on_swarm: bool = False) -> Row:
    with tempfile.TemporaryDirectory(prefix="bench-rollout-") as directory, pytest.MonkeyPatch.context() as patch:
        root = Path(directory)
        tree = SourceTree(root)
        patch.setattr(components.service, "_PROJECT_DIR", root)
        stacks, config, name = _stack(client, images, kind, replicas, root, on_swarm=on_swarm)
        for stack in stacks:
            state = State.from_realized(stack.realizer)
            tree.deploy(NEW_RELEASE)
            program = run_program(dict(config), stack=name)
            steps = plan(state, program)
            instances = [f"api-{i}" for i in range(1, replicas + 1)]
            with steady_load(stack.base_url) as load:
                time.sleep(WARM_UP_SECONDS)
                started = time.monotonic()
                apply(stack.realizer, steps, program, state)
                ended = time.monotonic()
                settled = _until_all_answer(load, instances, ended)
            label = f"swarm {kind}" if on_swarm else f"{kind} (ours)"
            return _row(f"{label}, {replicas} replicas", load, instances, started, ended, settled)
    raise AssertionError("the stack was not realized")


def seed(client: docker.DockerClient, images: BuiltImages, replicas: int) -> Row:
    with tempfile.TemporaryDirectory(prefix="bench-rollout-") as directory, pytest.MonkeyPatch.context() as patch:
        root = Path(directory)
        tree = SourceTree(root)
        patch.setattr(components.service, "_PROJECT_DIR", root)
        stacks, config, name = _stack(client, images, "nginx", replicas, root)
        for stack in stacks:
            _use_seed_nginx_conf(client, stack, config, replicas)
            tree.deploy(NEW_RELEASE)
            program = run_program(dict(config), stack=name)
            _build_new_images(stack, program)
            instances = [f"api-{i}" for i in range(1, replicas + 1)]
            with steady_load(stack.base_url) as load:
                time.sleep(WARM_UP_SECONDS)
                started = time.monotonic()
                for index, instance in enumerate(instances):
                    _recreate(client, stack, program, instance)
                    if index < len(instances) - 1:
                        time.sleep(SEED_SLEEP_SECONDS)
                ended = time.monotonic()
                settled = _until_all_answer(load, instances, ended)
            return _row(f"nginx (seed), {replicas} replicas", load, instances, started, ended, settled)
    raise AssertionError("the stack was not realized")


def _use_seed_nginx_conf(client: docker.DockerClient, stack: Stack, config: dict[str, object], replicas: int) -> None:
    proxy_id = stack.realizer.realized.containers["proxy-container"]
    addresses = [
        attachment.ipv4_address
        for i in range(1, replicas + 1)
        for attachment in stack.realizer.specs[f"api-{i}"].networks
        if attachment.ipv4_address
    ]
    servers = "\n".join(
        f"        server {address}:{contract.API_PORT} max_fails=3 fail_timeout=30s;" for address in addresses
    )
    port = config["proxy"]["httpPort"]  # type: ignore[index]
    text = SEED_NGINX.format(servers=servers, port=port).encode()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo("etc/nginx/nginx.conf")
        info.size, info.mode = len(text), 0o644
        tar.addfile(info, io.BytesIO(text))
    client.api.put_archive(proxy_id, "/", archive.getvalue())
    # The master (PID 1) re-reads its configuration on SIGHUP; a config it
    # cannot load is logged and the old one kept, so check the running config.
    client.api.kill(proxy_id, signal="SIGHUP")
    time.sleep(2)
    check = client.api.exec_create(proxy_id, ["nginx", "-T"])
    dump = client.api.exec_start(check["Id"]).decode(errors="replace")
    if "max_fails=3 fail_timeout=30s" not in dump:
        raise RuntimeError(f"nginx did not take the seed config:\n{dump[-2000:]}")
    time.sleep(2)


def _build_new_images(stack: Stack, program: Program) -> None:
    """Build the new release's images first, as `docker compose build` would before the rolling update."""
    realizer = stack.realizer
    realizer.program = program
    for resource in program.of_type("docker:index/image:Image"):
        realizer.create(resource)
    for resource in program.of_type("docker:index/remoteImage:RemoteImage"):
        realizer.create(resource)


def _recreate(client: docker.DockerClient, stack: Stack, program: Program, instance: str) -> None:
    """`docker compose up -d --no-deps --force-recreate <service>`: stop (10 s grace), remove, create, start."""
    realizer = stack.realizer
    old = realizer.realized.containers[instance]
    client.api.stop(old, timeout=SEED_RECREATE_GRACE_SECONDS)
    client.api.remove_container(old, force=True)
    resource = program.container(instance)
    realizer.specs[instance] = realizer._container_spec(resource)
    realizer.realized.containers[instance] = realizer.run_container(instance)


def run_row(client: docker.DockerClient, images: BuiltImages, wanted: str) -> Row:
    """One row of ROWS; a Swarm row makes the engine a swarm for its duration and always leaves it."""
    kind, replicas = wanted.rsplit("-", 1)
    if kind == "seed":
        return seed(client, images, int(replicas))
    if kind.startswith(SWARM):
        with swarm(client):
            return ours(client, images, kind.removeprefix(SWARM), int(replicas), on_swarm=True)
    return ours(client, images, kind, int(replicas))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, from {', '.join(ROWS)}")
    rows_wanted = parser.parse_args().rows.split(",")
    unknown = [wanted for wanted in rows_wanted if wanted not in ROWS]
    if unknown:
        parser.error(f"--rows: unknown {', '.join(map(repr, unknown))}; choose from {', '.join(ROWS)}")
    rows: list[Row] = []
    with docker_engine(require_binary("dockerd")) as client:
        remove_abandoned(client)
        images = build_test_images(require_binary("debootstrap"))
        for wanted in rows_wanted:
            try:
                row = run_row(client, images, wanted)
            except ForeignSwarm as error:
                raise SystemExit(f"bench_rollout: row {wanted}: {error}") from None
            rows.append(row)
            print(_format(row), flush=True)
            if row.failure_kinds:
                print("  failed requests by status or error:", dict(row.failure_kinds), flush=True)
    print()
    print(
        f"{'rollout':32} {'requests':>8} {'failed':>6} {'p99 ms':>7} {'rollout s':>9} "
        f"{'last new answers s':>18} {'out of rotation s':>17}"
    )
    for row in rows:
        print(_format(row))


def _format(row: Row) -> str:
    return (
        f"{row.name:32} {row.requests:8d} {row.failed:6d} {row.p99_ms:7.1f} "
        f"{row.rollout_seconds:9.1f} {row.new_release_seconds:18.1f} {row.out_of_rotation_seconds:17.1f}"
    )


if __name__ == "__main__":
    main()
