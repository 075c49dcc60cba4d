"""Render the nginx configuration from a `ProxyModel`.

nginx open source only sees failures on live traffic, so the circuit breaker
is passive: a replica that refuses, resets or times out is skipped for
`fail_timeout`, idempotent requests are retried on another replica, cached
reads are served stale while every replica fails, and when nothing can answer
the proxy itself returns a JSON 503 with Retry-After.

A group with DNS discovery (Swarm's `tasks.<service>`) has no `upstream`
block: its name goes through a variable, which makes nginx resolve it at
request time with `resolver`, re-asking once the answer is `valid` seconds
old. That path keeps retries, timeouts, the rate limit, the cache and the
fallback, but none of the upstream block's state (docs/proxy.md, "On Swarm").
"""

from __future__ import annotations

from components.proxy._templates import template
from components.proxy.model import ModelError, ProxyModel, Route
from microstack_common import contract

_PROXY_ERRORS = (502, 503, 504)


def render_nginx(model: ProxyModel) -> str:
    """Return nginx.conf text for `model`.

    Static groups become `upstream` blocks; a discovery group becomes
    `set $<group>_upstream <name>:<port>` and `proxy_pass` through that
    variable (open-source nginx re-resolves only names it gets from a
    variable). Raises ModelError when two group names map to one variable.
    """
    targets = _proxy_targets(model)

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
        # Upper bound on one request's time across every attempt.
        retry_budget_seconds=(model.timeouts.retries + 1)
        * (model.timeouts.connect_seconds + model.timeouts.read_seconds),
        health_path=contract.HEALTH_PATH,
        fallback_codes=fallback_codes,
        cached_prefixes=cached_prefixes,
        targets=targets,
        static_groups=[group for group in model.upstreams if group.discovery is None],
        discovery_groups=[(targets[g.name][1:], g.discovery) for g in model.upstreams if g.discovery is not None],
        https_port_suffix="" if https_port == 443 else f":{https_port}",
    )


def _proxy_targets(model: ProxyModel) -> dict[str, str]:
    """What `proxy_pass http://` names for each group: its upstream block, or `$<group>_upstream`."""
    targets: dict[str, str] = {}
    for group in model.upstreams:
        if group.discovery is None:
            targets[group.name] = group.name
            continue
        # nginx variable names take letters, digits and '_' only.
        variable = "$" + group.name.replace("-", "_") + "_upstream"
        clash = [name for name, target in targets.items() if target == variable]
        if clash:
            raise ModelError(
                f"upstream names {clash[0]!r} and {group.name!r} both become the nginx variable "
                f"{variable}; rename one (e.g. without '-' or '_')"
            )
        targets[group.name] = variable
    return targets
