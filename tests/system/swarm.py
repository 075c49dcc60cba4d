"""A single-node Docker Swarm on the test engine, for the `swarm` platform's system tests.

`swarm(client)` makes the engine the manager of a swarm of its own, with the
node labels the program's placement constraints name, and leaves it again
(by force: the node is the last manager) when the block ends, also after a
failure. Leaving discards the swarm's services, secrets and configs and
stops their tasks; the realizer's `destroy` removes them one by one before
that, so that a test can end its stack and keep the swarm.

This machine has no IPVS: VIP load balancing and the ingress routing mesh do
not work, so services here use endpoint mode `dnsrr` and host-mode ports.
`swarm_config` is the stack's config for such a swarm, shared by the Swarm
system tests and the rollout benchmark.

An engine that is already in a swarm is used only when an earlier, finished
test session created that swarm (the swarm spec carries the session labels):
then it is left and made anew. A swarm the tests did not create, such as a
developer's, is never left; `ForeignSwarm` says so.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import docker
from docker.errors import APIError, NotFound

from tests.system.images import BuiltImages
from tests.system.realizer import OWNER_LABEL, SESSION_LABEL, alive, remove_abandoned

ADVERTISE_ADDR = "127.0.0.1"
LISTEN_ADDR = "127.0.0.1:2377"
# The labels the program's placement constraints select nodes by
# (node.labels.microstack.data==true for Postgres and Redis, .edge for the proxy).
NODE_LABELS = {"microstack.data": "true", "microstack.edge": "true"}
_SWARM_SESSION = "swarm"
# The bridge Swarm creates for host-mode ports and outbound traffic of overlay tasks.
_GWBRIDGE = "docker_gwbridge"


def swarm_config(images: BuiltImages, kind: str, http_port: int, **overrides: Any) -> dict[str, Any]:
    """The test stack's `microstack:` config on platform swarm: local images, logging off, 2 API replicas.

    The images are the engine's own (one node, no registry). The proxy
    publishes in host mode on every interface (`bindAddress: 0.0.0.0`, as
    configs/Pulumi.swarm.yaml) and is reached on loopback; no frontend subnet,
    as the overlay networks get theirs from Swarm. Its health checks keep the
    stack's defaults. Each override is merged into its section.
    """
    config: dict[str, Any] = {
        "platform": "swarm",
        "proxy": {"kind": kind, "bindAddress": "0.0.0.0", "httpPort": http_port},
        "images": {
            "postgres": images.postgres,
            "redis": images.redis,
            "nginx": images.nginx,
            "haproxy": images.haproxy,
            "serviceBaseImage": images.python,
        },
        "logging": {"enabled": False},
        "api": {"replicas": 2},
    }
    for key, value in overrides.items():
        config[key] = {**config.get(key, {}), **value}
    return config


class ForeignSwarm(RuntimeError):
    """The engine is part of a swarm the tests did not create."""


@contextmanager
def swarm(client: docker.DockerClient) -> Iterator[str]:
    """Make the engine a single-node swarm manager with NODE_LABELS; yield the node's ID; leave after."""
    _leave_abandoned_swarm(client)
    had_gwbridge = bool(client.api.networks(names=[_GWBRIDGE]))
    client.swarm.init(
        advertise_addr=ADVERTISE_ADDR,
        listen_addr=LISTEN_ADDR,
        labels={SESSION_LABEL: _SWARM_SESSION, OWNER_LABEL: str(os.getpid())},
    )
    try:
        node_id = str(client.info()["Swarm"]["NodeID"])
        node = client.nodes.get(node_id)
        spec = dict(node.attrs["Spec"])
        spec["Labels"] = {**(spec.get("Labels") or {}), **NODE_LABELS}
        node.update(spec)
        yield node_id
    finally:
        client.swarm.leave(force=True)
        if not had_gwbridge:
            # Left behind by the swarm; nothing else uses it once its tasks are gone.
            with suppress(NotFound, APIError):
                client.api.remove_network(_GWBRIDGE)


def _leave_abandoned_swarm(client: docker.DockerClient) -> None:
    """Leave a swarm an earlier test session made and did not leave (it was interrupted)."""
    state = (client.info().get("Swarm") or {}).get("LocalNodeState")
    if state == "inactive":
        return
    labels: dict[str, str] = {}
    with suppress(APIError):
        labels = (client.swarm.attrs.get("Spec") or {}).get("Labels") or {}
    if labels.get(SESSION_LABEL) != _SWARM_SESSION or alive(labels.get(OWNER_LABEL, "")):
        raise ForeignSwarm(
            f"the Docker engine is already part of a swarm (node state {state!r}) that no finished test session "
            "created; the swarm tests will not leave it. Run them against an engine outside any swarm "
            "(`docker swarm leave` if that swarm is yours to end)."
        )
    remove_abandoned(client)
    client.swarm.leave(force=True)
