"""Real PostgreSQL, Redis and service processes for integration tests and benchmarks.

Each server runs on a free loopback port with its data in a private temporary
directory, and can be stopped, started and restarted in the middle of a test
(the services' health and degradation behaviour is tested that way). Nothing
here is a mock: the same binaries Debian ships run with throw-away data.

Typical use::

    with PostgresServer() as pg, RedisServer() as redis:
        secrets = SecretFiles.create()
        env = service_env(pg, redis, secrets, instance="api-1")
        with ServiceProcess("microstack_api", env) as api:
            api.get("/health")

PostgreSQL refuses to run as root, so when the caller is root the server runs
as the unprivileged `postgres` system user (created by Debian's package) or,
failing that, `nobody`. Its directory is created outside pytest's tmp_path
because pytest makes that private to root.

Binaries are located with `require_binary`, so a missing one skips a test
locally and fails it in CI.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets as _secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from microstack_common import contract
from tests.support.binaries import require_binary

REPO_ROOT = Path(__file__).resolve().parents[2]

# Where the service packages live when they are not installed: a service
# subprocess gets these on PYTHONPATH so it runs straight from the checkout.
SERVICE_SOURCE_DIRS = tuple(str(REPO_ROOT / "services" / name) for name in ("common", "api", "auth"))


class ServerError(RuntimeError):
    """A server did not start or stop as expected; the message carries its log tail."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on `host` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    """Return True once a TCP connect to host:port succeeds, False at timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _unprivileged_user() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise ServerError("neither a 'postgres' nor a 'nobody' user exists to run PostgreSQL")


class _ManagedProcess:
    """A server process that can be started, stopped and restarted on one port."""

    host = "127.0.0.1"

    def __init__(self, workdir: Path, port: int | None) -> None:
        self.workdir = workdir
        self.port = port if port is not None else free_port()
        self.log_path = workdir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _preexec_user(self) -> list[str]:
        return []

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        """Start the server (again) on the same port and data, and wait until it serves."""
        if self.running:
            return
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self._preexec_user() + self._command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.workdir,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(
                    f"{type(self).__name__} exited with {self.process.returncode} "
                    f"while starting:\n{_tail(self.log_path)}"
                )
            if self._ready():
                return
            time.sleep(0.05)
        self.stop()
        raise ServerError(
            f"{type(self).__name__} not ready on port {self.port} after {timeout}s:\n{_tail(self.log_path)}"
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Stop the server with `sig` and wait; SIGKILL if it outlives `timeout`."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """Kill the server abruptly, as a crash or an OOM kill would."""
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        """Stop the server and delete its data."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()


class PostgresServer(_ManagedProcess):
    """A PostgreSQL 15 cluster in a temporary directory, on a free loopback port.

    The cluster has one superuser (`user`) with a random password written to
    `password_file`, password (scram) authentication on TCP, and a database
    named `database`. `durable=False` (the default) turns off fsync: tests need
    real SQL semantics, not crash safety, and fsync on CI disks is slow.

    For backup tests: `settings` adds `-c` server settings (WAL archiving);
    `local_trust` trusts connections on the Unix socket, as the official
    image does, with the socket directory private to the server's OS user;
    `restored=True` starts on a data directory something else fills (a
    restore, with `password` the original cluster's): no initdb, no createdb.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        user: str = "microstack",
        database: str = "microstack",
        durable: bool = False,
        max_connections: int = 200,
        settings: Mapping[str, str] | None = None,
        local_trust: bool = False,
        restored: bool = False,
        password: str | None = None,
    ) -> None:
        self._postgres = require_binary("postgres")
        self._initdb = require_binary("initdb")
        self._pg_isready = require_binary("pg_isready")
        self._createdb = require_binary("createdb")
        workdir = Path(tempfile.mkdtemp(prefix="microstack-pg-"))
        super().__init__(workdir, port)
        self.user = user
        self.database = database
        self.durable = durable
        self.max_connections = max_connections
        self.settings = dict(settings or {})
        self.local_trust = local_trust
        self.password = password if password is not None else _secrets.token_urlsafe(18)
        self.password_file = workdir / "password"
        self.password_file.write_text(self.password)
        self.data_dir = workdir / "data"
        self.socket_dir = workdir / "socket"
        self._owner = _unprivileged_user() if os.geteuid() == 0 else None
        self._initialised = False
        if restored:
            self._prepare_directories()
            self._initialised = True

    def owner_command(self, argv: list[str]) -> list[str]:
        """`argv` run as the server's OS user (the owner of its data), e.g. for pgBackRest."""
        return self._preexec_user() + argv

    @property
    def os_user(self) -> pwd.struct_passwd:
        """The OS user the server runs as."""
        return self._owner if self._owner is not None else pwd.getpwuid(os.geteuid())

    def _prepare_directories(self) -> None:
        self.socket_dir.mkdir()
        if self.local_trust:
            self.socket_dir.chmod(0o700)
        if self._owner is not None:
            for path in (self.workdir, self.socket_dir):
                os.chown(path, self._owner.pw_uid, self._owner.pw_gid)
            self.log_path.touch()
            os.chown(self.log_path, self._owner.pw_uid, self._owner.pw_gid)

    def _preexec_user(self) -> list[str]:
        if self._owner is None:
            return []
        return [
            "setpriv",
            f"--reuid={self._owner.pw_uid}",
            f"--regid={self._owner.pw_gid}",
            "--clear-groups",
            "--",
        ]

    def _initialise(self) -> None:
        self._prepare_directories()
        pwfile = self.workdir / "initdb-pw"
        pwfile.write_text(self.password + "\n")
        if self._owner is not None:
            os.chown(pwfile, self._owner.pw_uid, self._owner.pw_gid)
        auth = ["--auth-local=trust", "--auth-host=scram-sha-256"] if self.local_trust else ["--auth=scram-sha-256"]
        result = subprocess.run(
            [
                *self._preexec_user(),
                self._initdb,
                "-D",
                str(self.data_dir),
                "-U",
                self.user,
                f"--pwfile={pwfile}",
                *auth,
                "--encoding=UTF8",
                "--no-sync",
            ],
            capture_output=True,
            cwd=self.workdir,
            check=False,
        )
        pwfile.unlink()
        if result.returncode != 0:
            raise ServerError(f"initdb failed:\n{result.stdout.decode()}{result.stderr.decode()}")
        self._initialised = True

    def _command(self) -> list[str]:
        settings = {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "max_connections": str(self.max_connections),
            "fsync": "on" if self.durable else "off",
            "synchronous_commit": "on" if self.durable else "off",
            "full_page_writes": "on" if self.durable else "off",
            **self.settings,
        }
        command = [self._postgres, "-D", str(self.data_dir)]
        for key, value in settings.items():
            command += ["-c", f"{key}={value}"]
        return command

    def _ready(self) -> bool:
        result = subprocess.run(
            [self._pg_isready, "-h", self.host, "-p", str(self.port), "-t", "1", "-q"],
            check=False,
        )
        return result.returncode == 0

    def start(self, timeout: float = 30.0) -> None:
        first = not self._initialised
        if first:
            self._initialise()
        super().start(timeout)
        if first:
            self.create_database(self.database)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 15.0) -> None:
        """Stop PostgreSQL; SIGINT is its "fast" shutdown that drops client connections."""
        super().stop(sig, timeout)

    def create_database(self, name: str) -> str:
        """Create an empty database `name` (for a test that wants its own) and return it."""
        result = subprocess.run(
            [
                self._createdb,
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                self.user,
                name,
            ],
            env={**os.environ, "PGPASSWORD": self.password},
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            raise ServerError(f"createdb {name} failed: {result.stderr.decode().strip()}")
        return name

    def dsn(self, database: str | None = None) -> str:
        """A libpq/asyncpg URL for a direct connection from the test itself."""
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{database or self.database}"


class RedisServer(_ManagedProcess):
    """A Redis server with a password, no persistence, on a free loopback port."""

    def __init__(self, *, port: int | None = None) -> None:
        self._redis_server = require_binary("redis-server")
        super().__init__(Path(tempfile.mkdtemp(prefix="microstack-redis-")), port)
        self.password = _secrets.token_urlsafe(18)
        self.password_file = self.workdir / "password"
        self.password_file.write_text(self.password)

    def _command(self) -> list[str]:
        return [
            self._redis_server,
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--requirepass",
            self.password,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
        ]

    def _ready(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                auth = self.password.encode()
                sock.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n*1\r\n$4\r\nPING\r\n" % (len(auth), auth))
                reply = b""
                while b"PONG" not in reply and b"-" not in reply:
                    chunk = sock.recv(256)
                    if not chunk:
                        break
                    reply += chunk
                return b"PONG" in reply
        except OSError:
            return False

    def url(self, db: int = 0) -> str:
        """A redis:// URL (with password) for a direct client in the test."""
        return f"redis://:{self.password}@{self.host}:{self.port}/{db}"


@dataclass
class SecretFiles:
    """The JWT signing key as a file, the way containers receive it."""

    jwt_signing_key_file: Path
    jwt_signing_key: str

    @classmethod
    def create(cls, directory: Path | None = None) -> SecretFiles:
        where = directory or Path(tempfile.mkdtemp(prefix="microstack-secrets-"))
        key = _secrets.token_urlsafe(48)
        path = where / "jwt_signing_key"
        path.write_text(key)
        path.chmod(0o400)
        return cls(path, key)


def service_env(
    postgres: PostgresServer,
    redis: RedisServer,
    secrets: SecretFiles,
    *,
    service: str = "api",
    instance: str = "api-1",
    port: int | None = None,
    database: str | None = None,
    jwt_ttl_seconds: int = 900,
    log_level: str = "INFO",
    drain_seconds: float = 0.0,
) -> dict[str, str]:
    """The environment a service container gets, pointing at the given servers.

    `drain_seconds` defaults to 0 (stop at once on SIGTERM) because most tests
    stop services in teardown; tests of draining, or a proxy in front that
    should notice the 503, set it.
    """
    names = contract.Env
    return {
        names.SERVICE_NAME: service,
        names.INSTANCE_NAME: instance,
        names.HOST: "127.0.0.1",
        names.PORT: str(port if port is not None else free_port()),
        names.LOG_LEVEL: log_level,
        names.DATABASE_HOST: postgres.host,
        names.DATABASE_PORT: str(postgres.port),
        names.DATABASE_NAME: database or postgres.database,
        names.DATABASE_USER: postgres.user,
        names.DATABASE_PASSWORD_FILE: str(postgres.password_file),
        names.REDIS_HOST: redis.host,
        names.REDIS_PORT: str(redis.port),
        names.REDIS_PASSWORD_FILE: str(redis.password_file),
        names.JWT_SIGNING_KEY_FILE: str(secrets.jwt_signing_key_file),
        names.JWT_TTL_SECONDS: str(jwt_ttl_seconds),
        names.SHUTDOWN_DRAIN_SECONDS: str(drain_seconds),
    }


def _lower_keys(items: Any) -> dict[str, str]:
    return {key.lower(): value for key, value in items}


@dataclass
class Response:
    """What a request to a service returned; 4xx/5xx are answers, not exceptions.

    `headers` keys are lower-case (HTTP header names are case-insensitive).
    """

    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ServiceProcess:
    """One service (`python -m microstack_api` or `microstack_auth`) as a subprocess.

    Starting waits until `GET /health` answers 200; the process's stdout (its
    JSON log lines) goes to `log_path`. `wait_ready=False` starts without
    waiting (several processes racing at start-up, for instance).
    """

    module: str
    env: dict[str, str]
    wait_ready: bool = True
    start_timeout: float = 30.0
    log_path: Path = field(init=False)
    process: subprocess.Popen[bytes] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.log_path = Path(tempfile.mkdtemp(prefix=f"microstack-{self.module}-")) / "out.log"

    @property
    def port(self) -> int:
        return int(self.env[contract.Env.PORT])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        """Start the process and, unless told not to, wait until it is healthy."""
        python_path = os.pathsep.join([*SERVICE_SOURCE_DIRS, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env = {
            **os.environ,
            **self.env,
            "PYTHONPATH": python_path,
            "PYTHONUNBUFFERED": "1",
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        if self.wait_ready:
            self.wait_healthy(self.start_timeout)
        return self

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Block until /health answers 200; raise with the log tail otherwise."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServerError(f"{self.module} exited with {self.process.returncode}:\n{_tail(self.log_path)}")
            try:
                response = self.get(contract.HEALTH_PATH, timeout=1.0)
                if response.status == 200:
                    return
                last = f"{response.status} {response.body[:200]!r}"
            except OSError as error:
                last = str(error)
            time.sleep(0.1)
        raise ServerError(f"{self.module} not healthy after {timeout}s ({last}):\n{_tail(self.log_path)}")

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
    ) -> Response:
        """Send one HTTP request with the standard library; errors come back as Responses."""
        all_headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        request = urllib.request.Request(self.base_url + path, data=body, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as reply:
                return Response(reply.status, _lower_keys(reply.headers.items()), reply.read())
        except urllib.error.HTTPError as error:
            return Response(error.code, _lower_keys(error.headers.items()), error.read())

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.request("GET", path, **kwargs)

    def send_signal(self, sig: int) -> None:
        if self.process is None:
            raise ServerError(f"{self.module} is not running")
        self.process.send_signal(sig)

    def wait(self, timeout: float = contract.STOP_TIMEOUT_SECONDS) -> int:
        """Wait for the process to exit and return its exit code."""
        if self.process is None:
            raise ServerError(f"{self.module} was never started")
        return self.process.wait(timeout)

    def stop(self, timeout: float = contract.STOP_TIMEOUT_SECONDS) -> int | None:
        """SIGTERM and wait (SIGKILL after `timeout`); return the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def cleanup(self) -> None:
        """Stop the process and delete its log (kept after `stop` for assertions)."""
        self.stop()
        shutil.rmtree(self.log_path.parent, ignore_errors=True)

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far; a non-JSON line is kept as {"raw": line}."""
        records: list[dict[str, Any]] = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                records.append({"raw": line})
        return records

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# What the `start_service` fixture returns: start a module against servers.
ServiceStarter = Callable[..., ServiceProcess]
