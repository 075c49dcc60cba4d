"""Starting (or reusing) the Docker engine the system tests drive.

The README promises a single test command, so the session starts `dockerd`
itself when no engine answers, and stops it again only if it started it: a
developer's running engine is left alone. The daemon runs with its defaults
(iptables on): Docker enforces `internal: true` networks and publishes ports
through iptables rules, so turning iptables off would make the isolation the
tests check meaningless.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import docker
from docker.errors import DockerException

from tests.support.engine_state import DAEMON_LOG_OPTS

# A cold dockerd on a fresh machine initialises its data root and iptables
# chains before it answers; that takes a few seconds, rarely more than 30.
_START_TIMEOUT_SECONDS = 60
# dockerd stops every running container within that container's own stop
# timeout before it exits (the API replicas allow 30 s to drain): killing it
# sooner leaves its containerd behind, and the next dockerd cannot start.
_STOP_TIMEOUT_SECONDS = 120
# The containerd that dockerd starts (and stops) runs in a session of its own.
_CONTAINERD_PID_FILE = Path("/var/run/docker/containerd/containerd.pid")

# Default log options such as many hosts set in daemon.json (defined with the
# engine model, which assumes the same daemon).
DAEMON_ARGS = [arg for key, value in DAEMON_LOG_OPTS.items() for arg in ("--log-opt", f"{key}={value}")]


class _Owned:
    """The dockerd this session started, if any: only that one may be restarted by a test."""

    process: subprocess.Popen[bytes] | None = None
    dockerd: str = ""
    log: Path | None = None


def owns_engine() -> bool:
    """Whether this test session started the engine (and so may restart it)."""
    return _Owned.process is not None and _Owned.process.poll() is None


def restart_engine() -> docker.DockerClient:
    """Stop the engine this session started and start it again, as a host reboot would.

    Containers with a restart policy come back by themselves. Returns a new client.
    """
    if not owns_engine() or _Owned.log is None:
        raise RuntimeError("this session did not start the Docker engine, so it cannot restart it")
    assert _Owned.process is not None
    _stop(_Owned.process)
    with _Owned.log.open("ab") as log_file:
        _Owned.process = subprocess.Popen(
            [_Owned.dockerd, *DAEMON_ARGS], stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    return _wait_for_engine(_Owned.process, _Owned.log)


def _ping(client: docker.DockerClient) -> bool:
    try:
        return bool(client.ping())
    except DockerException:
        return False
    except OSError:
        return False


def _connect() -> docker.DockerClient | None:
    try:
        client = docker.from_env(timeout=300)
    except DockerException:
        return None
    if _ping(client):
        return client
    client.close()
    return None


@contextmanager
def docker_engine(dockerd: str) -> Iterator[docker.DockerClient]:
    """Yield a client of a running engine, starting `dockerd` if none answers.

    The daemon's output goes to a temporary log file whose path is part of
    every startup error, because a daemon that fails to start says why there
    and nowhere else.
    """
    client = _connect()
    if client is not None:
        try:
            yield client
        finally:
            client.close()
        return

    log = Path(tempfile.mkstemp(prefix="microstack-dockerd-", suffix=".log")[1])
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [dockerd, *DAEMON_ARGS],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _Owned.process, _Owned.dockerd, _Owned.log = process, dockerd, log
    try:
        client = _wait_for_engine(process, log)
        try:
            yield client
        finally:
            client.close()
    finally:
        # A restart (restart_engine) may have replaced the process.
        _stop(_Owned.process or process)
        _Owned.process = None
    # Kept only when starting failed: then its path is in the error.
    log.unlink(missing_ok=True)


def _wait_for_engine(process: subprocess.Popen[bytes], log: Path) -> docker.DockerClient:
    deadline = time.monotonic() + _START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"dockerd exited with status {process.returncode} while starting; "
                f"its log is {log}:\n{log.read_text(errors='replace')[-4000:]}"
            )
        client = _connect()
        if client is not None:
            return client
        time.sleep(0.5)
    raise RuntimeError(
        f"dockerd did not answer within {_START_TIMEOUT_SECONDS}s; its log is {log}:\n"
        f"{log.read_text(errors='replace')[-4000:]}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM lets dockerd stop its containers and its containerd itself; then make sure containerd is gone."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=_STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    _stop_containerd()


def _stop_containerd() -> None:
    """Wait for the containerd of the stopped dockerd to exit, and kill it if it does not."""
    try:
        pid = int(_CONTAINERD_PID_FILE.read_text().strip())
    except (OSError, ValueError):
        return
    deadline = time.monotonic() + _STOP_TIMEOUT_SECONDS / 4
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
