"""A gate that a rollout passes only when a container is ready: healthy (and back in rotation), or a job that exited 0.

Why not the provider's own `wait` (kreuzwerker/terraform-provider-docker
v3.9.0, resourceDockerContainerCreate in resource_docker_container_funcs.go):
when the health wait times out, Create returns an error with the container
already in state. Pulumi keeps it as a resource with initialization errors,
and the next `pulumi up` sends it an Update with nothing changed, which the
provider applies as a no-op (resourceDockerContainerUpdate only touches
restart and resource limits) and reports as success: the rollout moves on to
the next replica with the broken release, one more on every retry. A job
container (`attach`, `must_run=false`) is worse: its exit code is recorded
and never checked, so a failed job is a success and never runs again.

A gate is a Pulumi dynamic resource, created after its container. Its create
waits for the condition and raises when it does not hold, naming the
container and the reason (the last health probes, the exit code, the last
log lines). A failed create leaves no gate in the state, so every later `up`
waits again, and fails again, until the container is fixed or replaced; what
depends on the gate (the next replica, the proxy) is never touched in between.
A gate is replaced (waited for again) when its container is replaced, since
the container's ID is one of its inputs.

`settle_seconds` covers what Docker's health status does not know: after a
replica is healthy, the proxy still needs its own checks (HAProxy's
rise × interval) or the end of a passive failure window (nginx's
fail_timeout) before it routes to it again. The next replica must not start
draining before then, or two replicas are out of rotation at once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal

import pulumi
import pulumi.dynamic

from components.engine import DockerConnection, engine_client

Condition = Literal["healthy", "exited-zero", "service-updated"]

# How often the engine is asked for the container's state.
POLL_SECONDS = 1.0
# A job that failed is run once more before the gate fails the `up`:
# setup jobs are idempotent, and a first failure is often a peer still starting.
JOB_RUNS = 2
LOG_LINES = 20
# A container that restarted this often while it was waited on is crash-looping:
# the gate says so at once instead of waiting out its timeout.
CRASH_LOOP_RESTARTS = 3
# The only inputs whose change means "wait again"; timeouts and connection
# settings may change without re-checking a container that is already ready.
_REPLACING_INPUTS = ("containerId", "condition", "specDigest")
# Swarm update states (moby api/types/swarm, UpdateState): an update or a
# rollback that stopped; a service in one of these does not run what was declared.
SERVICE_FAILED_STATES = ("paused", "rollback_started", "rollback_paused", "rollback_completed")


class GateError(Exception):
    """The container did not reach the gate's condition; the message says which container and why."""


class ReadyGateProvider(pulumi.dynamic.ResourceProvider):
    """Waits, in `create`, for the container named by `containerId` to meet `condition`."""

    def create(self, props: Any) -> pulumi.dynamic.CreateResult:
        wait_until_ready(props)
        # Everything diff compares: the engine passes the old outputs to diff as `olds`.
        outs = {key: props.get(key) for key in ("containerName", *_REPLACING_INPUTS) if key in props}
        return pulumi.dynamic.CreateResult(id_=str(props["containerId"]), outs=outs)

    def diff(self, _id: str, olds: Any, news: Any) -> pulumi.dynamic.DiffResult:
        changed = [key for key in _REPLACING_INPUTS if olds.get(key) != news.get(key)]
        return pulumi.dynamic.DiffResult(changes=bool(changed), replaces=changed, delete_before_replace=False)

    def delete(self, _id: str, _props: Any) -> None:
        """A gate owns nothing in the engine."""


class ReadyGate(pulumi.dynamic.Resource, module="microstack", name="ReadyGate"):
    """The dynamic resource; see the module docstring."""

    def __init__(
        self,
        name: str,
        *,
        container: Any,
        container_name: pulumi.Input[str],
        condition: Condition,
        timeout_seconds: int,
        settle_seconds: int,
        docker_connection: DockerConnection,
        spec_digest: pulumi.Input[str] | None = None,
        expected_image: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "containerId": container.id,
            "containerName": container_name,
            "condition": condition,
            "timeoutSeconds": timeout_seconds,
            "settleSeconds": settle_seconds,
            "docker": docker_connection.inputs(),
        }
        if spec_digest is not None:
            props["specDigest"] = spec_digest
        if expected_image is not None:
            props["expectedImage"] = expected_image
        super().__init__(ReadyGateProvider(), name, props, opts)


def wait_until_ready(props: Mapping[str, Any]) -> None:
    """Block until the container meets the condition, or raise GateError naming it and the reason."""
    with engine_client(props.get("docker") or {}) as client:
        _wait_with(client, props)


def _wait_with(client: Any, props: Mapping[str, Any]) -> None:
    container_id = str(props["containerId"])
    name = str(props.get("containerName") or container_id[:12])
    timeout = float(props.get("timeoutSeconds") or 60)
    if props.get("condition") == "exited-zero":
        _wait_job(client, container_id, name, timeout)
    elif props.get("condition") == "service-updated":
        _wait_service(client, container_id, name, str(props.get("expectedImage") or ""), timeout)
    else:
        _wait_healthy(client, container_id, name, timeout)
        settle = float(props.get("settleSeconds") or 0)
        if settle > 0:
            time.sleep(settle)
            _wait_healthy(client, container_id, name, max(timeout - settle, POLL_SECONDS * 5))


def _wait_healthy(client: Any, container_id: str, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    first_restarts: int | None = None
    while True:
        details = _inspect(client, container_id, name)
        state = details["State"]
        health = state.get("Health")
        if health is None:
            raise GateError(f"container {name} has no health check, so it cannot be waited on until healthy")
        if state.get("Running") and health.get("Status") == "healthy":
            return
        restarts = int(details.get("RestartCount") or 0)
        first_restarts = restarts if first_restarts is None else first_restarts
        if restarts - first_restarts >= CRASH_LOOP_RESTARTS:
            raise GateError(_report(client, details, name, f"keeps exiting ({restarts - first_restarts} restarts)"))
        if time.monotonic() >= deadline:
            raise GateError(_report(client, details, name, f"did not become healthy within {timeout:g} s"))
        time.sleep(POLL_SECONDS)


def _wait_service(client: Any, service_id: str, name: str, image: str, timeout: float) -> None:
    """Until the Swarm service runs what was declared: its update completed, on the declared image.

    The provider's converge_config already waits for this when it updates the
    service; the gate is for the `up` after a failed one. When Swarm rolls an
    update back, the provider's Update fails but records the new spec (no
    partial state in resourceDockerServiceUpdate, kreuzwerker/terraform-provider-docker
    v3.9.0), so the next `up` finds nothing to change and would succeed with
    the old release running. The gate is replaced whenever the declared spec
    changes (`specDigest`) and is missing from the state after it failed, so
    that `up` checks again, and fails again, until a release converges.
    """
    import docker.errors

    deadline = time.monotonic() + timeout
    while True:
        try:
            service = client.api.inspect_service(service_id)
        except docker.errors.NotFound:
            raise GateError(f"service {name} ({service_id[:12]}) no longer exists") from None
        status = service.get("UpdateStatus") or {}
        state = status.get("State")
        running = str(service["Spec"]["TaskTemplate"]["ContainerSpec"].get("Image", ""))
        if state in SERVICE_FAILED_STATES:
            raise GateError(_service_report(client, service, name, f"update {state}: {status.get('Message', '')}"))
        if state in (None, "completed") and image and not running.startswith(image):
            raise GateError(_service_report(client, service, name, f"runs {running}, not the declared {image}"))
        if state in (None, "completed") and _tasks_running(client, service):
            return
        if time.monotonic() >= deadline:
            raise GateError(_service_report(client, service, name, f"did not converge within {timeout:g} s"))
        time.sleep(POLL_SECONDS)


def _tasks_running(client: Any, service: Mapping[str, Any]) -> bool:
    """Whether every replica (or, for a global service, every node's task) is running."""
    tasks = client.api.tasks(filters={"service": service["ID"], "desired-state": "running"})
    running = [t for t in tasks if t.get("Status", {}).get("State") == "running"]
    replicated = service["Spec"].get("Mode", {}).get("Replicated")
    if replicated is not None:
        return len(running) >= int(replicated.get("Replicas") or 0)
    return bool(running) and len(running) == len(tasks)


def _service_report(client: Any, service: Mapping[str, Any], name: str, what: str) -> str:
    tasks = client.api.tasks(filters={"service": service["ID"]})
    recent = sorted(tasks, key=lambda t: str(t.get("UpdatedAt", "")))[-5:]
    lines = [
        f"  {t.get('Slot', t.get('NodeID', '')[:12])}: {t['Status'].get('State')} "
        f"{t['Status'].get('Err') or t['Status'].get('Message', '')}".rstrip()
        for t in recent
    ]
    return "\n".join([f"service {name} {what}", "last tasks:", *(lines or ["  none"])])


def _wait_job(client: Any, container_id: str, name: str, timeout: float) -> None:
    for run in range(1, JOB_RUNS + 1):
        details = _wait_exited(client, container_id, name, timeout)
        code = details["State"].get("ExitCode")
        if code == 0:
            return
        if run == JOB_RUNS:
            raise GateError(_report(client, details, name, f"failed with exit code {code} ({run} runs)"))
        client.api.start(container_id)


def _wait_exited(client: Any, container_id: str, name: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        details = _inspect(client, container_id, name)
        if not details["State"].get("Running") and not details["State"].get("Restarting"):
            return details
        if time.monotonic() >= deadline:
            raise GateError(_report(client, details, name, f"did not finish within {timeout:g} s"))
        time.sleep(POLL_SECONDS)


def _inspect(client: Any, container_id: str, name: str) -> dict[str, Any]:
    import docker.errors

    try:
        details: dict[str, Any] = client.api.inspect_container(container_id)
    except docker.errors.NotFound:
        raise GateError(f"container {name} ({container_id[:12]}) no longer exists") from None
    return details


def _report(client: Any, details: Mapping[str, Any], name: str, what: str) -> str:
    state = details["State"]
    probes = (state.get("Health") or {}).get("Log") or []
    probe_lines = [f"  exit {p.get('ExitCode')}: {str(p.get('Output', '')).strip()[:300]}" for p in probes[-3:]]
    try:
        logs = client.api.logs(details["Id"], tail=LOG_LINES).decode(errors="replace").rstrip()
    except Exception as error:
        logs = f"(logs unavailable: {error})"
    return "\n".join(
        [
            f"container {name} {what}: state {state.get('Status')}, exit code {state.get('ExitCode')}, "
            f"restarts {details.get('RestartCount', 0)}",
            "last health probes:",
            *(probe_lines or ["  none"]),
            f"last {LOG_LINES} log lines:",
            logs or "  none",
        ]
    )
