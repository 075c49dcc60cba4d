"""Running the rendered proxy configs with the real nginx and HAProxy binaries.

Shared by the render checks, the end-to-end tests and bench/bench_failover.py:
a proxy model pointed at temporary directories and loopback addresses, a
self-signed certificate, `nginx -t` / `haproxy -c`, and a `ProxyProcess` that
runs either proxy in the foreground and reads HAProxy's runtime API.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import getpass
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from dnslib import QTYPE, RCODE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from components.proxy import events, render
from components.proxy.model import Paths, ProxyKind, ProxyModel, Server, Tls, pem_bundle
from microstack_common import contract
from tests.support.binaries import require_binary
from tests.support.servers import (
    REPO_ROOT,
    SERVICE_SOURCE_DIRS,
    PostgresServer,
    RedisServer,
    SecretFiles,
    ServerError,
    ServiceProcess,
    free_port,
    service_env,
)

BINARY = {ProxyKind.NGINX: "nginx", ProxyKind.HAPROXY: "haproxy"}


def private_dir(prefix: str) -> Path:
    """A fresh directory outside pytest's root-only tmp_path.

    nginx workers run as the invoking user (see `worker_user`), and a directory
    they traverse must be reachable for it.
    """
    return Path(tempfile.mkdtemp(prefix=prefix))


def worker_user() -> str:
    """The account nginx workers run as in tests: whoever runs the suite.

    As root, nginx would otherwise switch workers to `nobody`, which cannot
    write the cache and temp directories the test created.
    """
    return getpass.getuser()


def proxy_paths(root: Path) -> Paths:
    """File locations under `root` for one proxy instance; creates the directories."""
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    return Paths(
        pid_file=str(root / "proxy.pid"),
        access_log=str(root / "access.log"),
        error_log=str(root / "error.log"),
        temp_dir=str(root / "tmp"),
        stats_socket=str(root / "admin.sock"),
    )


def self_signed_pem(host: str = "localhost") -> tuple[str, str]:
    """A fresh self-signed certificate for `host` and its key, both PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return cert_pem, key_pem


def self_signed_tls(root: Path, host: str = "localhost") -> Tls:
    """Write a fresh self-signed certificate, key and HAProxy bundle under `root`."""
    cert_pem, key_pem = self_signed_pem(host)
    tls_dir = root / "tls"
    tls_dir.mkdir(parents=True, exist_ok=True)
    tls = Tls(
        certificate_path=str(tls_dir / "cert.pem"),
        key_path=str(tls_dir / "key.pem"),
        bundle_path=str(tls_dir / "bundle.pem"),
    )
    Path(tls.certificate_path).write_text(cert_pem)
    Path(tls.key_path).write_text(key_pem)
    Path(tls.bundle_path).write_text(pem_bundle(cert_pem, key_pem))
    return tls


def write_config(model: ProxyModel, kind: ProxyKind, root: Path) -> Path:
    """Render `model` for `kind` into `root` and return the file's path."""
    path = root / ("nginx.conf" if kind is ProxyKind.NGINX else "haproxy.cfg")
    path.write_text(render(model, kind))
    return path


def check_config(kind: ProxyKind, config: Path) -> subprocess.CompletedProcess[str]:
    """Run `nginx -t` or `haproxy -c` on `config`; the caller asserts on the result."""
    binary = require_binary(BINARY[kind])
    if kind is ProxyKind.NGINX:
        command = [binary, "-t", "-q", "-p", str(config.parent), "-c", str(config)]
    else:
        command = [binary, "-c", "-f", str(config)]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def http_get(port: int, path: str, timeout: float = 1.0, host: str = "127.0.0.1") -> tuple[int, dict[str, str], bytes]:
    """A minimal blocking GET on loopback, for readiness checks (no client library)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


@dataclass
class ProxyProcess:
    """nginx or HAProxy in the foreground with a rendered config, on loopback.

    `start` waits until the proxy's own `/health` answers; `stop` ends it.
    For HAProxy, `servers_state` and `server_stats` read the runtime API on
    the model's stats socket. With `wrapped`, the proxy runs under
    proxy-log.pl as in its container, logging to its stdout and stderr, and
    `log_path` holds what the container would write.
    """

    kind: ProxyKind
    model: ProxyModel
    root: Path
    wrapped: bool = False
    config: Path = field(init=False)
    process: subprocess.Popen[bytes] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.wrapped:
            paths = replace(self.model.paths, access_log="/dev/stdout", error_log="/dev/stderr")
            self.model = replace(self.model, paths=paths)
        self.config = write_config(self.model, self.kind, self.root)

    @property
    def port(self) -> int:
        if self.model.tls is not None:
            return self.model.listen.https_port
        return self.model.listen.http_port

    @property
    def http_port(self) -> int:
        return self.model.listen.http_port

    @property
    def log_path(self) -> Path:
        """Where access log lines go: nginx writes the file, HAProxy its stdout, the wrapper its stdout."""
        if self.wrapped:
            return self.root / "proxy.out"
        if self.kind is ProxyKind.NGINX:
            return Path(self.model.paths.access_log)
        return self.root / "haproxy.out"

    def start(self, timeout: float = 15.0) -> Self:
        checked = check_config(self.kind, self.config)
        if checked.returncode != 0:
            raise ServerError(f"{self.kind} rejected its config:\n{checked.stderr}")
        binary = require_binary(BINARY[self.kind])
        if self.kind is ProxyKind.NGINX:
            command = [binary, "-p", str(self.root), "-c", str(self.config), "-g", "daemon off;"]
        else:
            command = [binary, "-W", "-db", "-f", str(self.config)]
        output = self.root / ("haproxy.out" if self.kind is ProxyKind.HAPROXY else "nginx.out")
        if self.wrapped:
            output = self.log_path
            command = events.wrapped_command(
                self.model, self.kind, command, instance="proxy", script=str(events.SCRIPT)
            )
            command[0] = require_binary("perl")
        with output.open("ab") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.root
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"{self.kind} exited with {self.process.returncode}")
            try:
                if http_get(self.http_port, "/health")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise ServerError(f"{self.kind} did not answer /health within {timeout}s")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def runtime_api(self, command: str) -> str:
        """Send one command to HAProxy's stats socket and return the answer."""
        path = self.model.paths.stats_socket
        if self.kind is not ProxyKind.HAPROXY or path is None:
            raise ServerError("only HAProxy with a stats socket has a runtime API")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2.0)
            sock.connect(path)
            sock.sendall(command.encode() + b"\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        return data.decode()

    def server_stats(self, backend: str) -> dict[str, dict[str, str]]:
        """`show stat` rows of `backend`'s servers by server name (status, weight, ...)."""
        lines = self.runtime_api("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows: dict[str, dict[str, str]] = {}
        for line in lines[1:]:
            if not line:
                continue
            row = dict(zip(header, line.split(","), strict=False))
            if row["pxname"] == backend and row["svname"] not in ("FRONTEND", "BACKEND"):
                rows[row["svname"]] = row
        return rows

    def servers_state(self, backend: str) -> dict[str, dict[str, str]]:
        """`show servers state` of `backend` by server name (operational state, weights)."""
        lines = self.runtime_api(f"show servers state {backend}").splitlines()
        header = next(line for line in lines if line.startswith("# be_id")).lstrip("# ").split()
        states: dict[str, dict[str, str]] = {}
        for line in lines:
            if not line or line.startswith("#") or line.strip() == "1":
                continue
            row = dict(zip(header, line.split(), strict=False))
            states[row["srv_name"]] = row
        return states

    def access_log_records(self) -> list[dict[str, object]]:
        """The JSON access log lines written so far (HAProxy's startup notices are skipped)."""
        records: list[dict[str, object]] = []
        if not self.log_path.exists():
            return records
        for line in self.log_path.read_text(errors="replace").splitlines():
            line = line.strip()
            if line.startswith("{"):
                records.append(json.loads(line))
        return records

    def output_lines(self) -> list[str]:
        """Every line written so far to `log_path` (with `wrapped`: all the container would log)."""
        if not self.log_path.exists():
            return []
        return [line for line in self.log_path.read_text(errors="replace").splitlines() if line.strip()]

    def events(self, event: str) -> list[dict[str, object]]:
        """The JSON lines so far whose `event` is `event` (with `wrapped`)."""
        records = (json.loads(line) for line in self.output_lines() if line.startswith("{"))
        return [record for record in records if record.get("event") == event]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass(frozen=True)
class Outcome:
    """One request of a load run: status 0 means no HTTP answer at all."""

    method: str
    path: str
    status: int
    started: float
    latency: float
    instance: str | None
    error: str | None = None


@dataclass(frozen=True)
class Call:
    """A request the load generator sends (body as JSON, extra headers)."""

    method: str
    path: str
    json_body: object = None
    headers: dict[str, str] = field(default_factory=dict)


async def run_load(
    base_url: str,
    next_call: Callable[[int], Call],
    *,
    duration: float,
    concurrency: int,
    max_requests: int = 100_000,
    timeout: float = 15.0,
    verify: bool | str = True,
    on_tick: Callable[[float], Awaitable[None]] | None = None,
    pause_seconds: float = 0.0,
) -> list[Outcome]:
    """Send requests from `concurrency` workers for `duration` seconds (bounded count).

    `next_call(n)` chooses the n-th request. `on_tick(elapsed)`, if given, is
    awaited every 50 ms while the load runs: tests kill or freeze replicas
    from it at a chosen moment. Each worker waits `pause_seconds` after each
    answer: 0 sends as fast as the machine allows.
    """
    outcomes: list[Outcome] = []
    counter = 0
    start = time.monotonic()
    deadline = start + duration
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits, verify=verify) as client:

        async def worker() -> None:
            nonlocal counter
            while time.monotonic() < deadline and counter < max_requests:
                counter += 1
                call = next_call(counter)
                sent = time.monotonic()
                try:
                    response = await client.request(call.method, call.path, json=call.json_body, headers=call.headers)
                    outcomes.append(
                        Outcome(
                            call.method,
                            call.path,
                            response.status_code,
                            sent - start,
                            time.monotonic() - sent,
                            response.headers.get(contract.INSTANCE_HEADER),
                        )
                    )
                except httpx.HTTPError as error:
                    outcomes.append(
                        Outcome(call.method, call.path, 0, sent - start, time.monotonic() - sent, None, repr(error))
                    )
                await asyncio.sleep(pause_seconds)

        async def ticker() -> None:
            while time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                if on_tick is not None:
                    await on_tick(time.monotonic() - start)

        await asyncio.gather(ticker(), *(worker() for _ in range(concurrency)))
    return outcomes


# The failover tests' clients each wait this long after an answer: 6 of them
# send up to 150 requests a second, hundreds within any replica's failure
# window, while leaving the machine's cores to the replicas under test (and
# to the other tests `make test` runs beside them). An unpaced client costs
# two cores for the same verdict; the overload tests do not pace theirs.
PACE_SECONDS = 0.04


def paced_gets(base_url: str, *, duration: float, **options: Any) -> Coroutine[Any, Any, list[Outcome]]:
    """`run_load` of the failover tests: GETs of /api/instance from 6 clients paced by PACE_SECONDS.

    Other `run_load` options (`on_tick`, `max_requests`) pass through.
    """
    return run_load(
        base_url,
        lambda n: Call("GET", "/api/instance"),
        duration=duration,
        concurrency=6,
        pause_seconds=PACE_SECONDS,
        **options,
    )


def failures(outcomes: list[Outcome], ok: frozenset[int] = frozenset({200, 201})) -> list[Outcome]:
    """The outcomes a client would count as failed (anything but an expected status)."""
    return [outcome for outcome in outcomes if outcome.status not in ok]


def wait_healthy(process: ServiceProcess, timeout: float) -> None:
    """`process.wait_healthy`, also for a service listening on another loopback address than 127.0.0.1."""
    host = process.env[contract.Env.HOST]
    if host == "127.0.0.1":
        process.wait_healthy(timeout)
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.process is None or process.process.poll() is not None:
            raise ServerError(f"{process.module} on {host} is not running (log: {process.log_path})")
        with contextlib.suppress(OSError):
            if http_get(process.port, contract.HEALTH_PATH, host=host)[0] == 200:
                return
        time.sleep(0.1)
    raise ServerError(f"{process.module} on {host}:{process.port} not healthy after {timeout}s")


@dataclass
class Replicas:
    """API replicas and one auth instance as real processes on loopback ports.

    Tests kill, freeze and stop replicas; `ensure_running` brings every one
    back (thawing a frozen one first) so the next test starts from a full,
    healthy pool. With `api_hosts`, the API replicas listen on those loopback
    addresses and one shared port instead, as Swarm tasks share a service's
    port on their own addresses (any 127.0.0.0/8 address works on Linux).
    """

    postgres: PostgresServer
    redis: RedisServer
    secrets: SecretFiles
    api_count: int = 3
    database: str | None = None
    # Longer than the end-to-end HAProxy config takes to see /health turn 503
    # (interval x fall = 3 s), as a deployment's drain must be: the replica
    # then leaves rotation before it stops accepting connections.
    drain_seconds: float = 3.5
    api_hosts: tuple[str, ...] = ()
    api: list[ServiceProcess] = field(init=False, default_factory=list)
    auth: ServiceProcess = field(init=False)
    frozen: set[int] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        if self.api_hosts:
            self.api_count = len(self.api_hosts)
            shared_port = free_port()
        for index in range(1, self.api_count + 1):
            env = self._env("api", f"api-{index}")
            if self.api_hosts:
                env[contract.Env.HOST] = self.api_hosts[index - 1]
                env[contract.Env.PORT] = str(shared_port)
            self.api.append(ServiceProcess("microstack_api", env, wait_ready=False))
        self.auth = ServiceProcess("microstack_auth", self._env("auth", "auth-1"), wait_ready=False)

    def _env(self, service: str, instance: str) -> dict[str, str]:
        env = service_env(
            self.postgres, self.redis, self.secrets, service=service, instance=instance, database=self.database
        )
        env[contract.Env.SHUTDOWN_DRAIN_SECONDS] = str(self.drain_seconds)
        return env

    @property
    def api_ports(self) -> list[int]:
        return [replica.port for replica in self.api]

    @property
    def auth_ports(self) -> list[int]:
        return [self.auth.port]

    def start(self) -> Self:
        for process in [*self.api, self.auth]:
            process.start()
        for process in [*self.api, self.auth]:
            wait_healthy(process, 60)
        return self

    def freeze(self, index: int) -> None:
        """SIGSTOP replica `index`: it keeps its socket, accepts connections, never answers."""
        self.api[index].send_signal(signal.SIGSTOP)
        self.frozen.add(index)

    def thaw(self, index: int) -> None:
        self.api[index].send_signal(signal.SIGCONT)
        self.frozen.discard(index)

    def ensure_running(self) -> None:
        for index in list(self.frozen):
            self.thaw(index)
        for process in [*self.api, self.auth]:
            if process.process is not None and process.process.poll() is None:
                # A process signalled a moment ago may still be on its way out.
                with contextlib.suppress(ServerError):
                    wait_healthy(process, contract.STOP_TIMEOUT_SECONDS)
            if process.process is None or process.process.poll() is not None:
                process.start()
        for process in [*self.api, self.auth]:
            wait_healthy(process, 60)

    def stop(self) -> None:
        for index in list(self.frozen):
            self.thaw(index)
        # SIGTERM every replica first, then wait: each drains for
        # `drain_seconds`, in parallel rather than one after another.
        processes = [*self.api, self.auth]
        for process in processes:
            if process.process is not None and process.process.poll() is None:
                process.process.terminate()
        for process in processes:
            process.stop()


@dataclass
class StandIns:
    """Stand-in API replicas (`standin.py`) as processes on loopback ports.

    Each accepts `backlog` connections beyond the `workers` it serves at once
    and takes `delay` seconds per API request; `sick` lists the indexes that
    answer everything, `/health` included, with 500 from the start, and
    `make_sick` turns one sick while it runs. `stats(i)` reads how
    many API requests and health checks replica `i` has served.
    """

    count: int = 3
    backlog: int = 5
    workers: int = 4
    delay: float = 0.1
    sick: tuple[int, ...] = ()
    ports: list[int] = field(init=False, default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(init=False, default_factory=list)

    def start(self, timeout: float = 10.0) -> Self:
        python_path = os.pathsep.join([str(REPO_ROOT), *SERVICE_SOURCE_DIRS])
        env = {**os.environ, "PYTHONPATH": python_path}
        for index in range(self.count):
            port = free_port()
            command = [
                sys.executable,
                "-m",
                "tests.integration.proxy.standin",
                f"--port={port}",
                f"--backlog={self.backlog}",
                f"--workers={self.workers}",
                f"--delay={self.delay}",
                f"--status={500 if index in self.sick else 200}",
                f"--instance=standin-{index + 1}",
            ]
            self.ports.append(port)
            self.processes.append(subprocess.Popen(command, stdin=subprocess.DEVNULL, cwd=REPO_ROOT, env=env))
        deadline = time.monotonic() + timeout
        for port in self.ports:
            while True:
                try:
                    http_get(port, "/_standin/stats")
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise ServerError(f"stand-in replica on port {port} did not answer within {timeout}s") from None
                    time.sleep(0.05)
        return self

    def make_sick(self, index: int) -> None:
        """From now on replica `index` answers everything, `/health` included, with 500."""
        self.processes[index].send_signal(signal.SIGUSR1)

    def stats(self, index: int) -> dict[str, int]:
        """API requests and health checks replica `index` served so far."""
        result: dict[str, int] = json.loads(http_get(self.ports[index], "/_standin/stats", timeout=15.0)[2])
        return result

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()
        self.ports.clear()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class FakeDns(BaseResolver):  # type: ignore[misc]
    """Docker's embedded DNS as the proxies see it, on a free loopback UDP port.

    `records` maps a name (`tasks.api`, `api`) to its A records and may change
    while the server runs, as Docker's answers do when tasks come and go; a
    name not in it is NXDOMAIN, another type of a known name an empty answer.
    Records carry Docker's TTL (600 s), which both proxies must ignore.
    """

    TTL = 600

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.records: dict[str, list[str]] = {}
        self._server = DNSServer(self, address=host, port=0, logger=DNSLogger(logf=lambda _: None))
        self.port = int(self._server.server.server_address[1])

    def __enter__(self) -> Self:
        self._server.start_thread()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.stop()
        self._server.server.server_close()

    @property
    def address(self) -> Server:
        """Where a model's `dns_resolver` points to ask this server."""
        return Server(str(self._server.server.server_address[0]), self.port)

    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        """dnslib's resolver hook: the reply to one query."""
        reply = request.reply()
        addresses = self.records.get(str(request.q.qname).rstrip(".").lower())
        if addresses is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype == QTYPE.A:
            for address in addresses:
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(address), ttl=self.TTL))
        return reply
