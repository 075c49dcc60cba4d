"""Render the nginx configuration from a `ProxyModel`.

nginx open source only sees failures on live traffic, so the circuit breaker
is passive: a replica that refuses, resets or times out is skipped for
`fail_timeout`, idempotent requests are retried on another replica, cached
reads are served stale while every replica fails, and when nothing can answer
the proxy itself returns a JSON 503 with Retry-After.
"""

from __future__ import annotations

from components.proxy._templates import template
from components.proxy.model import ModelError, ProxyModel, Route
from microstack_common import contract

_PROXY_ERRORS = (502, 503, 504)


def render_nginx(model: ProxyModel) -> str:
    """Return nginx.conf text for `model`.

    Raises ModelError for a model nginx cannot express: DNS discovery needs
    re-resolving upstreams, which only NGINX Plus does.
    """
    if model.discovery_used:
        raise ModelError(
            "nginx open source cannot follow DNS discovery; give the upstream "
            "groups static servers or use proxy kind 'haproxy'"
        )

    def cached_prefixes(route: Route) -> list[str]:
        if not model.cache.enabled:
            return []
        return [p for p in model.cache.prefixes if p.startswith(route.prefix)]

    # A rate-limit status of 503 gets its own answer, so the fallback only
    # catches the gateway errors nginx raises itself.
    fallback_codes = " ".join(str(code) for code in _PROXY_ERRORS if code != model.rate_limit.status)
    https_port = model.listen.https_port
    return template("nginx.conf.j2").render(
        m=model,
        t=model.timeouts,
        health_path=contract.HEALTH_PATH,
        fallback_codes=fallback_codes,
        cached_prefixes=cached_prefixes,
        https_port_suffix="" if https_port == 443 else f":{https_port}",
    )
