"""The rendered nginx.conf and haproxy.cfg: accepted by the real binaries, with the
circuit-breaker directives issue 4 asks for, and models that could render a
broken or unsafe config rejected before any text is produced."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from components.proxy import render, render_haproxy, render_nginx
from components.proxy.model import (
    Cache,
    DnsDiscovery,
    HealthCheck,
    ModelError,
    PassiveCheck,
    Paths,
    ProxyKind,
    ProxyModel,
    RateLimit,
    Route,
    Server,
    Timeouts,
    Tls,
    UpstreamGroup,
    pem_bundle,
)
from microstack_common import contract
from tests.integration.proxy.conftest import ModelFactory
from tests.integration.proxy.harness import check_config, self_signed_tls, write_config


@pytest.mark.parametrize("kind", list(ProxyKind))
@pytest.mark.parametrize("replicas", [1, 10])
@pytest.mark.parametrize("tls_enabled", [False, True], ids=["http", "tls"])
def test_rendered_config_passes_the_binary_check(
    kind: ProxyKind, replicas: int, tls_enabled: bool, make_model: ModelFactory, proxy_root: Path
) -> None:
    tls = self_signed_tls(proxy_root) if tls_enabled else None
    model = make_model(api_ports=list(range(18000, 18000 + replicas)), tls=tls)
    result = check_config(kind, write_config(model, kind, proxy_root))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("tls_enabled", [False, True], ids=["http", "tls"])
def test_haproxy_with_dns_discovery_passes_the_binary_check(
    tls_enabled: bool, make_model: ModelFactory, proxy_root: Path
) -> None:
    discovery = DnsDiscovery(name=contract.Alias.API, port=contract.API_PORT, max_servers=10)
    model = make_model(
        upstreams=(
            UpstreamGroup("api", discovery=discovery),
            UpstreamGroup("auth", (Server(contract.Alias.AUTH, contract.AUTH_PORT),)),
        ),
        tls=self_signed_tls(proxy_root) if tls_enabled else None,
    )
    text = render_haproxy(model)
    assert "resolvers docker\n    nameserver docker 127.0.0.11:53" in text
    assert "server-template api- 10 api:8000 resolvers docker init-addr none" in text
    result = check_config(ProxyKind.HAPROXY, write_config(model, ProxyKind.HAPROXY, proxy_root))
    assert result.returncode == 0, result.stdout + result.stderr


def _container_model() -> ProxyModel:
    """The model as the component builds it for containers: aliases and image paths."""
    return ProxyModel(
        upstreams=(
            UpstreamGroup("api", (Server("api-1", 8000), Server("api-2", 8000))),
            UpstreamGroup("auth", (Server("auth", 8001),)),
        )
    )


def test_haproxy_container_defaults_pass_the_binary_check(proxy_root: Path) -> None:
    """Replica names that do not resolve here (nor yet in a starting stack) must
    not stop HAProxy: they start unresolved and are re-resolved at run time."""
    text = render_haproxy(_container_model())
    assert "server api-1 api-1:8000 resolvers docker init-addr last,libc,none" in text
    config = proxy_root / "haproxy.cfg"
    config.write_text(text)
    result = check_config(ProxyKind.HAPROXY, config)
    assert result.returncode == 0, result.stdout + result.stderr


def test_nginx_container_defaults_log_to_the_container_streams() -> None:
    text = render_nginx(_container_model())
    assert "access_log /dev/stdout microstack_json;" in text
    assert "error_log /dev/stderr warn;" in text
    assert "proxy_temp_path /var/cache/nginx/proxy;" in text
    assert "server api-2:8000 max_fails=1" in text
    assert "\nuser " not in text


NGINX_FRAGMENTS = [
    "least_conn;",
    "server 127.0.0.1:18000 max_fails=1 fail_timeout=10s;",
    "server 127.0.0.1:18001 backup max_fails=0;",
    "proxy_next_upstream error timeout http_500 http_502 http_503 http_504;",
    "proxy_next_upstream_tries 3;",
    "proxy_next_upstream_timeout 25500ms;",
    "proxy_connect_timeout 3500ms;",
    "proxy_read_timeout 5000ms;",
    "limit_req_zone $binary_remote_addr zone=microstack_rate:10m rate=50r/s;",
    "limit_req zone=microstack_rate burst=100 nodelay;",
    "limit_req_status 429;",
    "error_page 502 503 504 = @fallback;",
    "error_page 429 = @rate_limited;",
    "proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;",
    "proxy_cache_background_update on;",
    "proxy_cache_valid 200 30s;",
    "proxy_no_cache $http_authorization;",
    "location /api/items/ {",
    "add_header Retry-After 5 always;",
    "client_max_body_size 1048576;",
    "proxy_set_header X-Request-ID $microstack_request_id;",
    "proxy_set_header X-Forwarded-For $remote_addr;",
    "proxy_set_header X-Forwarded-Proto $scheme;",
    "location = /health {",
    '"request_id":"$microstack_request_id"',
]

HAPROXY_FRAGMENTS = [
    "balance leastconn",
    "option httpchk",
    "http-check send meth GET uri /health ver HTTP/1.1",
    "http-check expect status 200",
    "default-server check weight 100 inter 2000ms fastinter 500ms downinter 2000ms fall 3 rise 2 slowstart 30000ms\n",
    "retries 2",
    "option redispatch 1",
    "retry-on conn-failure empty-response response-timeout 500 502 503 504",
    "http-request disable-l7-retry unless { method GET HEAD OPTIONS PUT DELETE }",
    "stick-table type ipv6 size 100k expire 60s store gpc0_rate(1s),gpc1_rate(10s)",
    "acl rate_exceeded sc0_gpc0_rate ge 150",
    "acl rate_exceeded sc0_gpc1_rate ge 600",
    "http-request deny deny_status 429",
    "use_backend fallback if route_api { nbsrv(api) eq 0 }",
    "hdr Retry-After 5",
    "if { req.hdr_val(content-length) gt 1048576 }",
    "http-request return status 200 content-type application/json string "
    '\'{"status":"ok","proxy":"haproxy"}\' if { path /health }',
    "unique-id-format %[uuid()]",
    "option forwardfor",
    "server api-1 127.0.0.1:18000",
    "timeout server 5000ms",
    "timeout check 500ms",
    "timeout connect 3500ms",
]


@pytest.mark.parametrize(
    ("kind", "fragments"), [(ProxyKind.NGINX, NGINX_FRAGMENTS), (ProxyKind.HAPROXY, HAPROXY_FRAGMENTS)]
)
def test_config_has_the_circuit_breaker_directives(
    kind: ProxyKind, fragments: list[str], make_model: ModelFactory
) -> None:
    text = render(make_model(api_ports=[18000, 18001]), kind)
    missing = [fragment for fragment in fragments if fragment not in text]
    assert not missing, f"missing from {kind} config: {missing}"


def test_nginx_never_retries_non_idempotent_requests(make_model: ModelFactory) -> None:
    directives = [
        line.strip()
        for line in render_nginx(make_model()).splitlines()
        if line.strip().startswith("proxy_next_upstream ")
    ]
    assert directives
    assert all("non_idempotent" not in line for line in directives)


def test_haproxy_has_a_single_connect_timeout_above_the_syn_retransmission(make_model: ModelFactory) -> None:
    """Live connects and checks share it; a check still times out on `timeout check` once connected."""
    lines = [line.strip() for line in render_haproxy(make_model()).splitlines()]
    assert [line for line in lines if line.startswith("timeout connect")] == ["timeout connect 3500ms"]


def test_haproxy_observes_live_connections_only_when_asked(make_model: ModelFactory) -> None:
    assert " observe layer" not in render_haproxy(make_model())
    text = render_haproxy(make_model(health_check=HealthCheck(error_limit=5)))
    assert "slowstart 30000ms observe layer4 error-limit 5 on-error fastinter\n" in text


def test_nginx_ejection_on_live_traffic_can_be_switched_off(make_model: ModelFactory) -> None:
    model = make_model(passive_check=PassiveCheck(max_fails=0))
    nginx = render_nginx(model)
    assert "max_fails=1" not in nginx
    assert "server 127.0.0.1:" in nginx and " max_fails=0 fail_timeout=10s;" in nginx


def test_haproxy_has_no_slowstart_when_it_is_zero(make_model: ModelFactory) -> None:
    assert "slowstart" not in render_haproxy(make_model(slow_start_seconds=0))


def test_rate_limit_status_503_keeps_its_own_answer(make_model: ModelFactory) -> None:
    text = render_nginx(make_model(rate_limit=RateLimit(10, 5, 503)))
    assert "error_page 502 504 = @fallback;" in text
    assert "error_page 503 = @rate_limited;" in text
    assert "deny_status 503" in render_haproxy(make_model(rate_limit=RateLimit(10, 5, 503)))


@pytest.mark.parametrize("kind", list(ProxyKind))
def test_tls_redirects_http_and_allows_only_modern_protocols(
    kind: ProxyKind, make_model: ModelFactory, proxy_root: Path
) -> None:
    tls = self_signed_tls(proxy_root)
    model = make_model(tls=tls)
    text = render(model, kind)
    port = model.listen.https_port
    if kind is ProxyKind.NGINX:
        assert "ssl_protocols TLSv1.2 TLSv1.3;" in text
        assert f"return 301 https://$host:{port}$request_uri;" in text
    else:
        assert f"ssl crt {tls.bundle_path} ssl-min-ver TLSv1.2" in text
        assert "ssl-default-bind-options ssl-min-ver TLSv1.2" in text
        assert f"redirect location https://%[req.hdr(host),field(1,:)]:{port}%[capture.req.uri] code 301" in text


def test_cache_disabled_renders_no_cache(make_model: ModelFactory, proxy_root: Path) -> None:
    model = make_model(cache=Cache(enabled=False, directory=str(proxy_root / "cache")))
    text = render_nginx(model)
    assert "proxy_cache" not in text
    assert check_config(ProxyKind.NGINX, write_config(model, ProxyKind.NGINX, proxy_root)).returncode == 0


def _swarm_model(make_model: ModelFactory, proxy_root: Path, tls_enabled: bool) -> ProxyModel:
    """Both groups found as Swarm tasks (`tasks.<service>`) through a resolver on loopback."""
    return make_model(
        upstreams=(
            UpstreamGroup("api", discovery=DnsDiscovery(f"tasks.{contract.Alias.API}", contract.API_PORT, 10)),
            UpstreamGroup("auth", discovery=DnsDiscovery(f"tasks.{contract.Alias.AUTH}", contract.AUTH_PORT, 4)),
        ),
        dns_resolver=Server("127.0.0.1", 5353),
        dns_valid_seconds=3,
        dns_timeout_seconds=0.5,
        tls=self_signed_tls(proxy_root) if tls_enabled else None,
    )


@pytest.mark.parametrize("kind", list(ProxyKind))
@pytest.mark.parametrize("tls_enabled", [False, True], ids=["http", "tls"])
def test_swarm_discovery_config_passes_the_binary_check(
    kind: ProxyKind, tls_enabled: bool, make_model: ModelFactory, proxy_root: Path
) -> None:
    model = _swarm_model(make_model, proxy_root, tls_enabled)
    result = check_config(kind, write_config(model, kind, proxy_root))
    assert result.returncode == 0, result.stdout + result.stderr


# The breaker directives that do not depend on an upstream block.
NGINX_DISCOVERY_FRAGMENTS = [
    fragment for fragment in NGINX_FRAGMENTS if not fragment.startswith(("least_conn", "server 127.0.0.1"))
] + [
    "resolver 127.0.0.1:5353 valid=3s ipv6=off;",
    "resolver_timeout 500ms;",
    "set $api_upstream tasks.api:8000;",
    "set $auth_upstream tasks.auth:8001;",
    "proxy_pass http://$api_upstream;",
    "proxy_pass http://$auth_upstream;",
]


def test_nginx_discovery_resolves_per_request_and_keeps_the_breaker(make_model: ModelFactory, proxy_root: Path) -> None:
    text = render_nginx(_swarm_model(make_model, proxy_root, tls_enabled=False))
    missing = [fragment for fragment in NGINX_DISCOVERY_FRAGMENTS if fragment not in text]
    assert not missing, missing
    assert "upstream api" not in text and "proxy_pass http://api;" not in text


def test_haproxy_discovery_uses_the_model_resolver_and_hold_times(make_model: ModelFactory, proxy_root: Path) -> None:
    text = render_haproxy(_swarm_model(make_model, proxy_root, tls_enabled=False))
    assert "nameserver docker 127.0.0.1:5353" in text
    assert "server-template api- 10 tasks.api:8000 resolvers docker init-addr none" in text
    assert "timeout retry 500ms" in text
    for status in ("valid", "obsolete", "nx"):
        assert f"hold {status} 3s" in text


def test_nginx_mixes_static_and_discovered_groups(make_model: ModelFactory) -> None:
    text = render_nginx(
        make_model(
            upstreams=(
                UpstreamGroup("api", discovery=DnsDiscovery("tasks.api", 8000)),
                UpstreamGroup("auth", (Server("127.0.0.1", 18001),)),
            )
        )
    )
    assert "proxy_pass http://$api_upstream;" in text
    assert "upstream auth {" in text and "proxy_pass http://auth;" in text


def test_nginx_without_discovery_has_no_resolver(make_model: ModelFactory) -> None:
    assert "resolver" not in render_nginx(make_model())


def test_nginx_refuses_groups_that_share_a_variable_name(make_model: ModelFactory) -> None:
    model = make_model(
        upstreams=(
            UpstreamGroup("my-api", discovery=DnsDiscovery("tasks.a", 8000)),
            UpstreamGroup("my_api", discovery=DnsDiscovery("tasks.b", 8000)),
        ),
        routes=(Route("/a/", "my-api"), Route("/b/", "my_api")),
    )
    with pytest.raises(ModelError, match=r"\$my_api_upstream"):
        render_nginx(model)


def test_haproxy_refuses_an_upstream_named_like_its_own_sections(make_model: ModelFactory) -> None:
    model = make_model(
        upstreams=(UpstreamGroup("fallback", (Server("a", 1),)),),
        routes=(Route("/api/", "fallback"),),
    )
    with pytest.raises(ModelError, match="reserved"):
        render_haproxy(model)


def _api_only(**fields: object) -> ProxyModel:
    return ProxyModel((UpstreamGroup("api", (Server("a", 1),)),), routes=(Route("/api/", "api"),), **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Server("api;evil", 8000), "not an IPv4 address or a DNS name"),
        (lambda: Server('api"', 8000), "not an IPv4 address or a DNS name"),
        (lambda: Server("api", 0), "not a TCP port"),
        (lambda: UpstreamGroup("api pool", (Server("a", 1),)), "must start with a letter"),
        (lambda: UpstreamGroup("api"), "exactly one"),
        (lambda: UpstreamGroup("api", (Server("a", 1),), DnsDiscovery("api", 1)), "exactly one"),
        (lambda: UpstreamGroup("api", (Server("a", 1), Server("a", 1))), "twice"),
        (lambda: Route("/api", "api"), "must look like '/api/'"),
        (lambda: Route("/", "api"), "must look like '/api/'"),
        (lambda: Route("/api/{x}/", "api"), "must look like '/api/'"),
        (lambda: Paths(access_log="/var/log/a b.log"), "no spaces or quotes"),
        (lambda: Paths(pid_file="/run/x';"), "no spaces or quotes"),
        (lambda: Paths(temp_dir="relative/tmp"), "absolute path"),
        (lambda: Tls(certificate_path='/etc/"cert".pem'), "no spaces or quotes"),
        (lambda: Cache(directory="/var/cache/x\\y"), "no spaces or quotes"),
        (lambda: RateLimit(10, 5, 418), "429 or 503"),
        (lambda: RateLimit(0, 5), "greater than 0"),
        (lambda: HealthCheck(fall=0), "at least 1"),
        (lambda: Timeouts(read_seconds=0), "greater than 0"),
        (lambda: DnsDiscovery("api", 8000, max_servers=0), "1-1024"),
        (lambda: DnsDiscovery("tasks.api;", 8000), "not an IPv4 address or a DNS name"),
        (lambda: _api_only(dns_valid_seconds=1.5), "dns_valid_seconds must be whole seconds"),
        (lambda: _api_only(dns_valid_seconds=0), "dns_valid_seconds must be greater than 0"),
        (lambda: _api_only(dns_timeout_seconds=0), "dns_timeout_seconds must be greater than 0"),
    ],
)
def test_model_rejects_values_that_would_break_the_config(build: Callable[[], object], message: str) -> None:
    with pytest.raises(ModelError, match=message):
        build()


def test_model_rejects_a_route_to_an_unknown_upstream(make_model: ModelFactory) -> None:
    with pytest.raises(ModelError, match="names upstream 'billing'"):
        make_model(routes=(Route("/api/", "api"), Route("/billing/", "billing")))


def test_user_name_with_quotes_is_rejected(make_model: ModelFactory) -> None:
    with pytest.raises(ModelError, match="user"):
        make_model(user="www'data")


def test_timeouts_render_in_whole_milliseconds(make_model: ModelFactory) -> None:
    model = make_model(timeouts=Timeouts(connect_seconds=0.25, read_seconds=1.5, retries=1))
    nginx = render_nginx(model)
    assert "proxy_connect_timeout 250ms;" in nginx
    assert "proxy_read_timeout 1500ms;" in nginx
    assert "proxy_next_upstream_tries 2;" in nginx
    assert "proxy_next_upstream_timeout 3500ms;" in nginx
    haproxy = render_haproxy(model)
    assert "timeout server 1500ms" in haproxy
    assert "timeout connect 250ms" in haproxy


def test_health_check_timing_defaults_keep_detection_within_interval_times_fall() -> None:
    check = HealthCheck(interval_seconds=2, fall=3)
    worst_case = check.interval_seconds + check.timeout + (check.fall - 1) * (check.fast_interval + check.timeout)
    assert worst_case <= check.interval_seconds * check.fall


def test_pem_bundle_puts_the_certificate_before_the_key() -> None:
    bundle = pem_bundle("-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n\n", "KEY\n")
    assert bundle == "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\nKEY\n"
