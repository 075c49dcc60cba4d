"""Render the HAProxy 2.6 configuration from a `ProxyModel`.

HAProxy open source checks replicas actively, so its circuit breaker opens on
a replica's own `/health` probes (interval, fall, rise, slow start on the way
back), not on live traffic, where an overload looks like failed connections
and a 500 may belong to the request. Retries (a 500 included) go to another
replica, but a request that already reached one is repeated only for
idempotent methods.
When a route has no server left, a JSON 503 with Retry-After answers for it.
"""

from __future__ import annotations

from components.proxy._templates import template
from components.proxy.model import ModelError, ProxyModel
from microstack_common import contract

# Sections the template defines next to one backend per upstream group.
RESERVED_NAMES = frozenset({"microstack", "rate_limit", "fallback", "not_found"})


def render_haproxy(model: ProxyModel) -> str:
    """Return haproxy.cfg text for `model`.

    Servers given by name and discovery groups (`server-template`, e.g. on
    Swarm's `tasks.<service>`) are re-resolved through `model.dns_resolver`,
    so a replaced container's new address is followed without a reload. The
    HTTPS bind reads `model.tls.bundle_path`, one PEM with certificate and key
    (see `pem_bundle`).
    """
    clashes = RESERVED_NAMES.intersection(g.name for g in model.upstreams)
    if clashes:
        raise ModelError(f"upstream names {sorted(clashes)} are reserved in haproxy.cfg; rename them")
    rate = model.rate_limit
    https_port = model.listen.https_port
    return template("haproxy.cfg.j2").render(
        m=model,
        t=model.timeouts,
        hc=model.health_check,
        health_path=contract.HEALTH_PATH,
        request_id_header=contract.REQUEST_ID_HEADER,
        per_second_limit=rate.requests_per_second + rate.burst,
        per_ten_seconds_limit=rate.requests_per_second * 10 + rate.burst,
        https_port_suffix="" if https_port == 443 else f":{https_port}",
    )
