"""The proxy's log wrapper: how the container's command runs nginx or HAProxy under proxy-log.pl.

proxy-log.pl (beside this module) is the proxy container's PID 1: it runs the
proxy as its child, forwards signals, and writes every line the proxy prints
as one JSON object, turning server state changes and upstream failures into
the circuit breaker's events (docs/logging.md, "Circuit-breaker events").
It is Perl because both official images are Debian with perl-base and no
Python, and HAProxy's Lua could not serve nginx; one mechanism covers both.
"""

from __future__ import annotations

from pathlib import Path

from components.proxy.model import ProxyKind, ProxyModel

SCRIPT = Path(__file__).with_name("proxy-log.pl")
# Where the component uploads the script inside the proxy container.
CONTAINER_SCRIPT = "/usr/local/lib/microstack/proxy-log.pl"
SERVICE = "proxy"


def script_text() -> str:
    """The wrapper script's source, uploaded into the container."""
    return SCRIPT.read_text()


def replica_names(model: ProxyModel) -> list[tuple[str, str, str]]:
    """(upstream, replica name, address) of each static server.

    Named `<group>-<n>` in list order, as HAProxy names static servers and as
    the containers platform names the replica holding the n-th fixed address.
    nginx reports only addresses, so the wrapper maps them back to names.
    Discovery groups have no fixed list: their replicas are reported by
    address (nginx) or by HAProxy's slot name.
    """
    return [
        (group.name, f"{group.name}-{index}", server.address)
        for group in model.upstreams
        for index, server in enumerate(group.servers, 1)
    ]


def wrapped_command(
    model: ProxyModel,
    kind: ProxyKind,
    proxy_command: list[str],
    *,
    instance: str,
    script: str = CONTAINER_SCRIPT,
    replicas: list[tuple[str, str, str]] | None = None,
) -> list[str]:
    """`proxy_command` run under the wrapper, which is told the replicas' names and the routes.

    `replicas` (upstream, name, "ip:port") defaults to the model's static
    servers; the component passes the platform's fixed replica addresses,
    which HAProxy's discovery slots resolve to.
    """
    command = ["perl", script, "--proxy", kind.value, "--service", SERVICE, "--instance", instance]
    for upstream, name, address in replica_names(model) if replicas is None else replicas:
        command += ["--replica", f"{upstream}/{name}={address}"]
    for route in model.routes:
        command += ["--route", f"{route.prefix}={route.upstream}"]
    return [*command, "--", *proxy_command]
