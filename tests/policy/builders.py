"""Resources as the policy pack sees them, built compliant by default.

Each builder returns one resource in the JSON shape run_policies.py reads:
type token, logical name, camelCase inputs and, where the engine would show
more than the inputs (a password's `result`, a resource's `id`), outputs. A
test overrides just the property it is about; passing None removes a property.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any, NotRequired, TypedDict

CONTAINER = "docker:index/container:Container"
SERVICE = "docker:index/service:Service"
SECRET = "docker:index/secret:Secret"
SERVICE_CONFIG = "docker:index/serviceConfig:ServiceConfig"
NETWORK = "docker:index/network:Network"
IMAGE = "docker:index/image:Image"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"

DIGEST = "@sha256:" + "d" * 64

# The engine's stand-in for a string `pulumi preview` cannot know yet
# (pulumi_policy.proxy.UNKNOWN_STRING_VALUE).
UNKNOWN_STRING = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"

JOB_LABELS = [{"label": "microstack.role", "value": "job"}]


class PolicyInput(TypedDict):
    """One resource handed to the policy pack."""

    type: str
    name: str
    inputs: dict[str, Any]
    outputs: NotRequired[dict[str, Any]]


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def container(name: str = "api-1", *, networks: Sequence[str] = ("frontend",), **overrides: Any) -> PolicyInput:
    """A container that satisfies every policy: limits, healthcheck, restart, secret files."""
    inputs: dict[str, Any] = {
        "name": f"microstack-{name}",
        "image": "microstack-api:1.4.2",
        "memory": 256,
        "restart": "unless-stopped",
        "healthcheck": {"tests": ["CMD", "python", "-c", "import urllib.request"], "interval": "5s"},
        "networksAdvanced": [{"name": network} for network in networks],
        "envs": ["SERVICE_NAME=api", "DATABASE_PASSWORD_FILE=/run/secrets/postgres_password"],
        "labels": [{"label": "microstack.service", "value": "api"}],
    }
    inputs.update(overrides)
    return {"type": CONTAINER, "name": name, "inputs": _without_none(inputs)}


def network_id(name: str) -> str:
    """The ID `network(name)` is created with: what a service's `networksAdvanceds` names."""
    return f"{name}-network-id"


def network(name: str, *, internal: bool, docker_name: str | None = None) -> PolicyInput:
    """A Docker network; `docker_name` is the name Docker knows it by, when it differs."""
    inputs = {"name": docker_name or name, "internal": internal}
    return {"type": NETWORK, "name": name, "inputs": inputs, "outputs": {**inputs, "id": network_id(name)}}


def service(
    name: str = "api",
    *,
    networks: Sequence[str] = (network_id("frontend"),),
    image: str | None = f"registry.example.com/microstack/api:1.4.2{DIGEST}",
    memory_bytes: int | None = 256 * 1024 * 1024,
    healthcheck: dict[str, Any] | None = None,
    restart_condition: str | None = "any",
    env: dict[str, str] | None = None,
    secrets: Sequence[str] = (),
    ports: Sequence[dict[str, Any]] = (),
    max_failure_ratio: str | None = "0.0",
    labels: Sequence[dict[str, str]] = (),
) -> PolicyInput:
    """A Swarm service that satisfies every policy, shaped like components/platform/swarm.py declares one.

    `networks` are what `taskSpec.networksAdvanceds` name (network IDs);
    `secrets` the IDs of the docker Secrets it mounts. None removes a property.
    """
    update = _without_none({"parallelism": 1, "order": "start-first", "maxFailureRatio": max_failure_ratio})
    container_spec = {
        "image": image,
        "env": {"SERVICE_NAME": name, "DATABASE_PASSWORD_FILE": "/run/secrets/postgres_password"}
        if env is None
        else env,
        "healthcheck": healthcheck
        if healthcheck is not None
        else {"tests": ["CMD", "python", "-m", "microstack_common.healthcheck", "8000"], "interval": "5s"},
        "secrets": [{"secretId": secret_id, "fileName": f"/run/secrets/{secret_id}"} for secret_id in secrets],
    }
    task_spec = {
        "containerSpec": _without_none(container_spec),
        "resources": {"limits": _without_none({"nanoCpus": 500_000_000, "memoryBytes": memory_bytes})},
        "restartPolicy": _without_none({"condition": restart_condition, "delay": "5s", "window": "0s"}),
        "networksAdvanceds": [{"name": ref, "aliases": [name]} for ref in networks],
    }
    inputs = {
        "name": f"microstack-{name}",
        "labels": list(labels),
        "taskSpec": task_spec,
        "endpointSpec": {"mode": "dnsrr", "ports": list(ports)},
        "updateConfig": update,
        "rollbackConfig": {**update, "order": "stop-first"},
    }
    return {"type": SERVICE, "name": name, "inputs": inputs}


def swarm_secret(name: str, secret_id: str, content: str = "secret file") -> PolicyInput:
    """A docker Secret; its ID is an output, which the stack policies see."""
    inputs = {"data": base64.b64encode(content.encode()).decode()}
    return {"type": SECRET, "name": name, "inputs": inputs, "outputs": {**inputs, "id": secret_id}}


def swarm_config(name: str, content: str) -> PolicyInput:
    """A docker ServiceConfig holding `content` (base64, as the provider wants it)."""
    inputs = {"data": base64.b64encode(content.encode()).decode()}
    return {"type": SERVICE_CONFIG, "name": name, "inputs": inputs, "outputs": {**inputs, "id": f"{name}-id"}}


def built_image(name: str, image_name: str, *, pushed: bool) -> PolicyInput:
    """An image the program builds: pushed to a registry, or kept on the Docker host (`skipPush`)."""
    return {"type": IMAGE, "name": name, "inputs": {"imageName": image_name, "skipPush": not pushed}}


def password(name: str, result: str) -> PolicyInput:
    """A generated password: `result` is an output, so only stack policies see it."""
    inputs = {"length": len(result), "special": False}
    return {"type": RANDOM_PASSWORD, "name": name, "inputs": inputs, "outputs": {**inputs, "result": result}}


def remote_image(name: str, reference: str) -> PolicyInput:
    """An image pulled by reference."""
    return {"type": REMOTE_IMAGE, "name": name, "inputs": {"name": reference, "keepLocally": True}}
