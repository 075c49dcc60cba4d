"""A typed model of the reverse proxy, independent of nginx, HAProxy and Pulumi.

The Pulumi component fills a `ProxyModel` from the validated stack config and
hands it to `render_nginx` or `render_haproxy`; tests build one directly with
loopback addresses and temporary directories. Every value that ends up in a
config file passes through here, so validation happens once: a model that
constructs renders to a config the real binary accepts.

Durations are seconds as floats (rendered as whole milliseconds), sizes are
bytes, and paths are paths inside wherever the proxy runs (the container, or a
test's temporary directory).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from microstack_common import contract

# Names end up unquoted in both config languages (upstream/backend names,
# server names), so they are restricted rather than escaped.
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")
# A host is an IPv4 address or a DNS name; IPv6 literals are not needed on
# Docker bridge networks or loopback and would complicate both syntaxes.
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
# Route prefixes become nginx locations and HAProxy `path_beg` patterns.
_PREFIX = re.compile(r"^/([A-Za-z0-9._~-]+/)*$")
# Paths are written unquoted into both configs; whitespace, quotes, `;`, `#`
# and braces would change the meaning of the line.
_PATH = re.compile(r"^/[A-Za-z0-9._/@+-]*$")


class ModelError(ValueError):
    """A proxy model value that no config could express; the message names it."""


class ProxyKind(StrEnum):
    """Which proxy renders the model (`proxy.kind` in the stack config)."""

    NGINX = "nginx"
    HAPROXY = "haproxy"


def _check_name(what: str, value: str) -> None:
    if not _NAME.match(value):
        raise ModelError(
            f"{what} {value!r} must start with a letter and contain only "
            "letters, digits, '-' and '_' (at most 63 characters)"
        )


def _check_host(what: str, value: str) -> None:
    if not _HOST.match(value):
        raise ModelError(f"{what} {value!r} is not an IPv4 address or a DNS name")


def _check_port(what: str, value: int) -> None:
    if not 1 <= value <= 65535:
        raise ModelError(f"{what} {value} is not a TCP port (1-65535)")


def _check_path(what: str, value: str) -> None:
    if not _PATH.match(value):
        raise ModelError(
            f"{what} {value!r} must be an absolute path of letters, digits and '._/@+-' (no spaces or quotes)"
        )


def _check_positive(what: str, value: float) -> None:
    if value <= 0:
        raise ModelError(f"{what} must be greater than 0, got {value}")


@dataclass(frozen=True)
class Server:
    """One upstream address, e.g. an API replica's network alias and port."""

    host: str
    port: int

    def __post_init__(self) -> None:
        _check_host("server host", self.host)
        _check_port(f"server {self.host} port", self.port)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def is_name(self) -> bool:
        """True for a DNS name, which a replaced container may answer from a new IP."""
        return not _IPV4.match(self.host)


@dataclass(frozen=True)
class DnsDiscovery:
    """Find servers by resolving `name` at run time, through `ProxyModel.dns_resolver`.

    Docker's embedded DNS answers one A record per replica: on Swarm, for a
    service with `endpoint_mode: dnsrr`, `tasks.<service>` (and the service
    name) lists its running tasks; on a plain network, an alias shared by N
    containers lists N addresses. So the proxy follows scaling and
    rescheduling without a config change. HAProxy keeps `max_servers` slots
    (`server-template`; more replicas than that are ignored) and health-checks
    each one; nginx resolves the name per request from an answer it caches
    for `dns_valid_seconds` and has no per-replica state (docs/proxy.md, "On
    Swarm").
    """

    name: str
    port: int
    max_servers: int = 16

    def __post_init__(self) -> None:
        _check_host("discovery name", self.name)
        _check_port("discovery port", self.port)
        if not 1 <= self.max_servers <= 1024:
            raise ModelError(f"discovery max_servers {self.max_servers} must be within 1-1024")


@dataclass(frozen=True)
class UpstreamGroup:
    """A pool of equivalent replicas: a static list of servers or DNS discovery."""

    name: str
    servers: tuple[Server, ...] = ()
    discovery: DnsDiscovery | None = None

    def __post_init__(self) -> None:
        _check_name("upstream name", self.name)
        if bool(self.servers) == (self.discovery is not None):
            raise ModelError(f"upstream {self.name!r} needs either servers or discovery, exactly one of them")
        addresses = [server.address for server in self.servers]
        if len(set(addresses)) != len(addresses):
            raise ModelError(f"upstream {self.name!r} lists a server twice: {addresses}")


@dataclass(frozen=True)
class Route:
    """Requests whose path starts with `prefix` go to the upstream group `upstream`."""

    prefix: str
    upstream: str

    def __post_init__(self) -> None:
        if not _PREFIX.match(self.prefix) or self.prefix == "/":
            raise ModelError(
                f"route prefix {self.prefix!r} must look like '/api/': a non-root "
                "path of letters, digits and '._~-' ending in '/'"
            )


@dataclass(frozen=True)
class RateLimit:
    """Per-client-address limit on routed requests (not on the proxy's /health).

    `burst` requests above the rate are admitted at once; beyond that the
    proxy answers `status` with a JSON body and `Retry-After`.
    """

    requests_per_second: int = 50
    burst: int = 100
    status: int = 429

    def __post_init__(self) -> None:
        _check_positive("rate limit requests_per_second", self.requests_per_second)
        if self.burst < 0:
            raise ModelError(f"rate limit burst must be 0 or more, got {self.burst}")
        if self.status not in (429, 503):
            raise ModelError(f"rate limit status {self.status} must be 429 or 503")


@dataclass(frozen=True)
class Cache:
    """The response cache for GET reads (nginx only; see docs/proxy.md for HAProxy).

    Only paths under `prefixes` are cached: caching `/api/instance` would hide
    which replica answers. Stale entries are served while every upstream fails.
    """

    enabled: bool = True
    ttl_seconds: int = 30
    directory: str = "/var/cache/nginx/microstack"
    max_size_mb: int = 256
    prefixes: tuple[str, ...] = ("/api/items/",)

    def __post_init__(self) -> None:
        _check_positive("cache ttl_seconds", self.ttl_seconds)
        _check_positive("cache max_size_mb", self.max_size_mb)
        _check_path("cache directory", self.directory)
        for prefix in self.prefixes:
            if not _PREFIX.match(prefix):
                raise ModelError(f"cache prefix {prefix!r} must look like '/api/items/'")


@dataclass(frozen=True)
class HealthCheck:
    """Active health checks (HAProxy) on each server's `contract.HEALTH_PATH`.

    `timeout_seconds` and `fast_interval_seconds` default to a quarter of the
    interval: a server whose checks fail (refused, or 503 while draining) is
    then marked down within `interval × fall` (for fall ≥ 2) even when it
    failed just after a check. One that accepts and never answers takes
    longer, see `Timeouts`.
    """

    interval_seconds: float = 2.0
    fall: int = 3
    rise: int = 2
    timeout_seconds: float | None = None
    fast_interval_seconds: float | None = None
    # Consecutive failed live connections (refused, reset, timed out) after
    # which the checks run at the fast interval; `fall` failed checks still
    # take the server out (HAProxy `observe layer4 ... on-error fastinter`).
    # 0, the default, leaves live traffic out of it: under an overload the
    # extra checks meet the same full accept queue, and three failing in a
    # row took healthy replicas out in the overload bench.
    error_limit: int = 0

    def __post_init__(self) -> None:
        _check_positive("health check interval_seconds", self.interval_seconds)
        if self.fall < 1 or self.rise < 1 or self.error_limit < 0:
            raise ModelError(
                "health check fall and rise must be at least 1 and error_limit at least 0, got "
                f"{self.fall}, {self.rise}, {self.error_limit}"
            )
        for what, value in (
            ("timeout_seconds", self.timeout_seconds),
            ("fast_interval_seconds", self.fast_interval_seconds),
        ):
            if value is not None:
                _check_positive(f"health check {what}", value)

    @property
    def timeout(self) -> float:
        return self.timeout_seconds or self.interval_seconds / 4

    @property
    def fast_interval(self) -> float:
        return self.fast_interval_seconds or self.interval_seconds / 4


@dataclass(frozen=True)
class PassiveCheck:
    """nginx's only failure detection: errors on live traffic.

    One failed attempt (`max_fails`) takes a server out for `fail_timeout`;
    then nginx lets a single request probe it again. `max_fails` 0 never
    takes a server out.
    """

    max_fails: int = 1
    # Whole seconds: nginx parses this server parameter without units below 1s.
    fail_timeout_seconds: int = 10

    def __post_init__(self) -> None:
        if self.max_fails < 0:
            raise ModelError(f"max_fails must be at least 0, got {self.max_fails}")
        _check_positive("fail_timeout_seconds", self.fail_timeout_seconds)


@dataclass(frozen=True)
class Timeouts:
    """How long the proxy waits, and how often it retries another replica.

    `connect_seconds` outlasts two of Linux's SYN retransmissions (after 1 s,
    then 2 s more): a busy replica with a full accept queue drops SYNs and
    accepts a retry later, which is load, not a failure (with 1.5 s, nginx
    disabled replicas and HAProxy answered 503 in the overload bench).
    HAProxy's checks share it: a check on a replica that accepts but never
    answers (frozen) fails only after min(check interval, connect) however
    short `timeout check` is, so HAProxy marks a frozen replica down within
    interval + c + (fall - 1) x (fast interval + c), c = min(interval,
    connect): 9 s with the defaults (a killed, refusing or draining replica
    within interval x fall as before). `read_seconds` is the longest
    an upstream may take to answer; it is also how long a frozen replica can
    hold a request before an idempotent request moves on to the next one.
    `retries` counts extra attempts after the first, for every kind of
    failure, a 500 included: two retries step around a sick or dead replica
    even while a second one is going (a scale-down, a crashed node: with one
    retry both Swarm system tests lost a request), and a 500 that every
    replica gives reaches the client after retries + 1 = 3 attempts, however
    many replicas there are.
    """

    connect_seconds: float = 3.5
    read_seconds: float = 5.0
    client_seconds: float = 30.0
    keepalive_seconds: float = 15.0
    retries: int = 2

    def __post_init__(self) -> None:
        for what, value in (
            ("connect_seconds", self.connect_seconds),
            ("read_seconds", self.read_seconds),
            ("client_seconds", self.client_seconds),
            ("keepalive_seconds", self.keepalive_seconds),
        ):
            _check_positive(f"timeouts {what}", value)
        if not 0 <= self.retries <= 10:
            raise ModelError(f"timeouts retries {self.retries} must be within 0-10")


@dataclass(frozen=True)
class Tls:
    """TLS on the HTTPS port with TLSv1.2 and TLSv1.3 only; HTTP redirects to it.

    nginx reads `certificate_path` and `key_path`; HAProxy reads `bundle_path`,
    one PEM holding the certificate chain followed by the key (build it with
    `pem_bundle`). The component uploads whichever files its proxy kind reads.
    """

    certificate_path: str = "/etc/microstack/tls/cert.pem"
    key_path: str = "/etc/microstack/tls/key.pem"
    bundle_path: str = "/etc/microstack/tls/bundle.pem"

    def __post_init__(self) -> None:
        _check_path("tls certificate_path", self.certificate_path)
        _check_path("tls key_path", self.key_path)
        _check_path("tls bundle_path", self.bundle_path)


def pem_bundle(certificate_pem: str, key_pem: str) -> str:
    """The single PEM HAProxy loads: certificate (chain) first, then the key."""
    return certificate_pem.rstrip("\n") + "\n" + key_pem.rstrip("\n") + "\n"


@dataclass(frozen=True)
class Paths:
    """Files the proxy writes; defaults suit the official nginx and HAProxy images.

    Logs go to the container's stdout/stderr so Docker's log driver (GELF to
    Logstash, or json-file) picks them up. HAProxy always logs to stdout and
    runs in the foreground without a pid file; the other paths apply to
    nginx, except `stats_socket`.
    """

    pid_file: str = "/var/run/nginx.pid"
    access_log: str = "/dev/stdout"
    error_log: str = "/dev/stderr"
    # nginx buffers request and response bodies in subdirectories it creates
    # here (the directory itself must exist) instead of its compiled-in
    # directories, which differ between Debian and the image.
    temp_dir: str = "/var/cache/nginx"
    # HAProxy's runtime API, where operators and tests read server states.
    # The official image runs HAProxy as `haproxy`, who owns /var/lib/haproxy.
    stats_socket: str | None = "/var/lib/haproxy/admin.sock"

    def __post_init__(self) -> None:
        for what, value in (
            ("pid_file", self.pid_file),
            ("access_log", self.access_log),
            ("error_log", self.error_log),
            ("temp_dir", self.temp_dir),
        ):
            _check_path(f"paths {what}", value)
        if self.stats_socket is not None:
            _check_path("paths stats_socket", self.stats_socket)


@dataclass(frozen=True)
class Listen:
    """Where the proxy accepts clients (inside its container: all addresses)."""

    bind_address: str = "0.0.0.0"
    http_port: int = 80
    https_port: int = 443

    def __post_init__(self) -> None:
        _check_host("listen bind_address", self.bind_address)
        _check_port("listen http_port", self.http_port)
        _check_port("listen https_port", self.https_port)
        if self.http_port == self.https_port:
            raise ModelError(f"listen http_port and https_port are both {self.http_port}")


def _default_routes() -> tuple[Route, ...]:
    return (
        Route(contract.API_PREFIX + "/", contract.Alias.API),
        Route(contract.AUTH_PREFIX + "/", contract.Alias.AUTH),
    )


@dataclass(frozen=True)
class ProxyModel:
    """Everything either proxy needs to render its configuration.

    `upstreams` and `routes` must agree: each route names a group. `user` is
    the account worker processes run as (None keeps the binary's default),
    `workers` the number of nginx worker processes or HAProxy threads.
    `retry_after_seconds` is what the fallback answer tells clients.
    """

    upstreams: tuple[UpstreamGroup, ...]
    routes: tuple[Route, ...] = field(default_factory=_default_routes)
    listen: Listen = Listen()
    rate_limit: RateLimit = RateLimit()
    cache: Cache = Cache()
    health_check: HealthCheck = HealthCheck()
    passive_check: PassiveCheck = PassiveCheck()
    slow_start_seconds: float = 30.0
    timeouts: Timeouts = Timeouts()
    tls: Tls | None = None
    max_body_bytes: int = contract.MAX_BODY_BYTES
    paths: Paths = Paths()
    user: str | None = None
    workers: int = 2
    retry_after_seconds: int = 5
    # Docker's embedded DNS: both proxies resolve discovery names through it,
    # HAProxy also server names.
    dns_resolver: Server = Server("127.0.0.11", 53)
    # How long an answer is used before the name is asked again (nginx
    # `valid=`, whatever the record's TTL) and how long HAProxy keeps a
    # server whose address left the answer (`hold obsolete`, with `hold
    # valid` and the error holds). Whole seconds: nginx accepts nothing finer.
    dns_valid_seconds: int = 10
    # How long one DNS query may take (nginx `resolver_timeout`, HAProxy
    # `timeout retry` before it asks again).
    dns_timeout_seconds: float = 1.0

    def __post_init__(self) -> None:
        names = [group.name for group in self.upstreams]
        if not names:
            raise ModelError("the proxy needs at least one upstream group")
        if len(set(names)) != len(names):
            raise ModelError(f"upstream names must be unique, got {names}")
        if not self.routes:
            raise ModelError("the proxy needs at least one route")
        prefixes = [route.prefix for route in self.routes]
        if len(set(prefixes)) != len(prefixes):
            raise ModelError(f"route prefixes must be unique, got {prefixes}")
        for route in self.routes:
            if route.upstream not in names:
                raise ModelError(
                    f"route {route.prefix!r} names upstream {route.upstream!r}, which is not one of {names}"
                )
        if self.slow_start_seconds < 0:
            raise ModelError(f"slow_start_seconds must be 0 or more, got {self.slow_start_seconds}")
        _check_positive("max_body_bytes", self.max_body_bytes)
        _check_positive("retry_after_seconds", self.retry_after_seconds)
        if not 1 <= self.workers <= 64:
            raise ModelError(f"workers {self.workers} must be within 1-64")
        if self.user is not None:
            _check_name("user", self.user)
        if isinstance(self.dns_valid_seconds, bool) or not isinstance(self.dns_valid_seconds, int):
            raise ModelError(f"dns_valid_seconds must be whole seconds, got {self.dns_valid_seconds!r}")
        _check_positive("dns_valid_seconds", self.dns_valid_seconds)
        _check_positive("dns_timeout_seconds", self.dns_timeout_seconds)

    def upstream(self, name: str) -> UpstreamGroup:
        """The group called `name` (a route's target)."""
        for group in self.upstreams:
            if group.name == name:
                return group
        raise KeyError(name)

    @property
    def discovery_used(self) -> bool:
        return any(group.discovery is not None for group in self.upstreams)

    @property
    def resolves_names(self) -> bool:
        """Whether any upstream is found by DNS at run time (discovery or a server name)."""
        return self.discovery_used or any(server.is_name for group in self.upstreams for server in group.servers)


def milliseconds(seconds: float) -> int:
    """Whole milliseconds, never 0: both proxies treat 0 as 'no timeout'."""
    return max(1, round(seconds * 1000))
