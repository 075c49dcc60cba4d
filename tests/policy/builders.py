"""Resources as the policy pack sees them, built compliant by default.

Each builder returns one resource in the JSON shape run_policies.py reads:
type token, logical name, camelCase inputs and, where the engine would show
more than the inputs (a password's `result`), outputs. A test overrides just
the property it is about; passing None removes a property.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NotRequired, TypedDict

CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"

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


def network(name: str, *, internal: bool, docker_name: str | None = None) -> PolicyInput:
    """A Docker network; `docker_name` is the name Docker knows it by, when it differs."""
    return {"type": NETWORK, "name": name, "inputs": {"name": docker_name or name, "internal": internal}}


def password(name: str, result: str) -> PolicyInput:
    """A generated password: `result` is an output, so only stack policies see it."""
    inputs = {"length": len(result), "special": False}
    return {"type": RANDOM_PASSWORD, "name": name, "inputs": inputs, "outputs": {**inputs, "result": result}}


def remote_image(name: str, reference: str) -> PolicyInput:
    """An image pulled by reference."""
    return {"type": REMOTE_IMAGE, "name": name, "inputs": {"name": reference, "keepLocally": True}}
