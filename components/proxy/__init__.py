"""The reverse proxy's configuration: a typed model and pure render functions.

No Pulumi here: the component that uploads the rendered text lives apart, so
these functions are tested directly and against the real nginx and HAProxy.
"""

from components.proxy.haproxy import render_haproxy
from components.proxy.model import ProxyKind, ProxyModel
from components.proxy.nginx import render_nginx


def render(model: ProxyModel, kind: ProxyKind) -> str:
    """The configuration text for `kind` (nginx.conf or haproxy.cfg)."""
    if kind is ProxyKind.NGINX:
        return render_nginx(model)
    return render_haproxy(model)


__all__ = ["ProxyKind", "ProxyModel", "render", "render_haproxy", "render_nginx"]
