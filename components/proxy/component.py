"""The reverse proxy container: nginx or HAProxy, configured from the typed model."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker
import pulumi_tls as tls

from components.common import LogDriver, labels, pulled_image
from components.config import ProxyConfig
from components.platform import Deployment, Platform
from components.platform.workload import Attach, ConfigFile, Health, Image, Kind, Publish, SecretFile, Workload
from components.proxy import events
from components.proxy.haproxy import render_haproxy
from components.proxy.model import (
    Cache,
    DnsDiscovery,
    HealthCheck,
    Listen,
    PassiveCheck,
    Paths,
    ProxyKind,
    ProxyModel,
    RateLimit,
    Server,
    Tls,
    UpstreamGroup,
    pem_bundle,
)
from components.proxy.nginx import render_nginx
from microstack_common import contract

NGINX_CONF = "/etc/nginx/nginx.conf"
HAPROXY_CFG = "/usr/local/etc/haproxy/haproxy.cfg"
# HAProxy's official image runs as the unprivileged `haproxy` user, which owns this directory.
HAPROXY_RUN_DIR = "/var/lib/haproxy"


@dataclass(frozen=True)
class Upstream:
    """A replicated service as the proxy sees it."""

    alias: str
    port: int
    addresses: list[str]
    """Fixed frontend addresses of the replicas, where the platform pins them (containers)."""
    max_servers: int
    dns_name: str | None = None
    """A name that resolves to every running replica; None: the alias (`tasks.<service>` on Swarm)."""


@dataclass(frozen=True)
class ProxyArgs:
    config: ProxyConfig
    image: str
    prefix: str
    stack: str
    network: docker.Network
    api: Upstream
    auth: Upstream
    logs: LogDriver
    platform: Platform
    tls_certificate: pulumi.Input[str] | None = None
    tls_private_key: pulumi.Input[str] | None = None


def build_model(config: ProxyConfig, api: Upstream, auth: Upstream) -> ProxyModel:
    """Translate the stack's proxy config into the render model.

    nginx gets the replicas' fixed addresses: open-source nginx resolves names
    once at start, and the addresses survive a replica's replacement. HAProxy
    discovers replicas through Docker's DNS, so scaling needs no config change.
    The proxy listens inside its container on the same ports it publishes, so
    the HTTP→HTTPS redirect names the port the client uses.
    """
    haproxy = config.kind == "haproxy"

    def group(upstream: Upstream) -> UpstreamGroup:
        if haproxy or not upstream.addresses:
            return UpstreamGroup(
                upstream.alias,
                discovery=DnsDiscovery(upstream.dns_name or upstream.alias, upstream.port, upstream.max_servers),
            )
        return UpstreamGroup(upstream.alias, servers=tuple(Server(a, upstream.port) for a in upstream.addresses))

    hc = config.health_check
    return ProxyModel(
        upstreams=(group(api), group(auth)),
        listen=Listen("0.0.0.0", config.http_port, config.https_port),
        rate_limit=RateLimit(config.rate_limit.requests_per_second, config.rate_limit.burst, config.rate_limit.status),
        cache=Cache(enabled=config.cache.enabled, ttl_seconds=config.cache.ttl_seconds),
        health_check=HealthCheck(interval_seconds=hc.interval_seconds, fall=hc.fall, rise=hc.rise),
        slow_start_seconds=config.slow_start_seconds,
        tls=Tls() if config.tls.mode != "off" else None,
        paths=Paths(pid_file=f"{HAPROXY_RUN_DIR}/haproxy.pid", stats_socket=f"{HAPROXY_RUN_DIR}/admin.sock")
        if haproxy
        else Paths(),
        user=None if haproxy else "nginx",
    )


def rejoin_seconds(config: ProxyConfig) -> int:
    """How long after a replaced replica is healthy until the proxy routes to it again.

    HAProxy puts a server back after `rise` passed checks, one `interval`
    apart (and re-resolves its name within a second or two). nginx checks
    only passively: a replica that failed a request while it was being
    replaced stays out for `fail_timeout`. The rollout waits this long before
    it takes the next replica out (ReplicatedService), so that two replicas
    are never out of rotation at once. Slow start is not waited for: a server
    ramping up is in rotation.
    """
    if config.kind == "haproxy":
        return config.health_check.rise * config.health_check.interval_seconds + 2
    return PassiveCheck().fail_timeout_seconds + 1


def _probe(port: int) -> list[str]:
    # Neither official image is guaranteed to have curl; bash's /dev/tcp is
    # enough to ask the proxy's own /health.
    script = (
        f"exec 3<>/dev/tcp/127.0.0.1/{port} && "
        f"printf 'GET {contract.HEALTH_PATH} HTTP/1.0\\r\\n\\r\\n' >&3 && "
        "head -n1 <&3 | grep -q ' 200 '"
    )
    return ["CMD", "bash", "-c", script]


class Proxy(pulumi.ComponentResource):
    """The only container that publishes ports beyond loopback: nginx or HAProxy per `proxy.kind`.

    Its configuration is rendered from the typed model (components/proxy/) and
    uploaded into the official image's config path; a change replaces the
    container. Limit: the proxy is a single container, so replacing it (a new
    config or image) is a short outage — a few seconds — unlike the services,
    whose replicas roll one at a time.
    """

    deployment: Deployment
    url: str

    def __init__(self, name: str, args: ProxyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("microstack:proxy:Proxy", name, None, opts)
        cfg = args.config
        model = build_model(cfg, args.api, args.auth)
        haproxy = cfg.kind == "haproxy"
        text = render_haproxy(model) if haproxy else render_nginx(model)
        configs = [
            ConfigFile("proxy-conf", HAPROXY_CFG if haproxy else NGINX_CONF, text),
            ConfigFile("proxy-log", events.CONTAINER_SCRIPT, events.script_text()),
        ]
        secrets = []
        if model.tls is not None:
            certificate, key = self._tls_pair(name, args)
            if haproxy:
                bundle = pulumi.Output.all(certificate, key).apply(lambda pair: pem_bundle(pair[0], pair[1]))
                secrets.append(SecretFile("tls-bundle", model.tls.bundle_path, pulumi.Output.secret(bundle)))
            else:
                configs.append(ConfigFile("tls-certificate", model.tls.certificate_path, certificate))
                secrets.append(SecretFile("tls-key", model.tls.key_path, key))

        # The image's own command, run under the log wrapper (components/proxy/events.py),
        # which makes the wrapper PID 1: the image entrypoints exec any command that
        # is not the proxy's name unchanged.
        proxy_command = ["haproxy", "-W", "-db", "-f", HAPROXY_CFG] if haproxy else ["nginx", "-g", "daemon off;"]
        docker_name = f"{args.prefix}-proxy"
        replicas = [
            (upstream.alias, f"{upstream.alias}-{index}", f"{address}:{upstream.port}")
            for upstream in (args.api, args.auth)
            for index, address in enumerate(upstream.addresses, 1)
        ]
        command = events.wrapped_command(
            model, ProxyKind(cfg.kind), proxy_command, instance=docker_name, replicas=replicas
        )
        image = pulled_image(self, name, args.image)
        ports = [Publish(cfg.http_port, cfg.http_port, cfg.bind_address)]
        if model.tls is not None:
            ports.append(Publish(cfg.https_port, cfg.https_port, cfg.bind_address))
        self.deployment = args.platform.run(
            self,
            Workload(
                name=name,
                docker_name=docker_name,
                role="proxy",
                kind=Kind.EDGE,
                image=Image(local_id=image.image_id, pinned=image.repo_digest),
                command=command,
                memory_mb=cfg.memory_mb,
                cpus=cfg.cpus,
                health=Health(_probe(cfg.http_port), start_period_seconds=10),
                logs=args.logs,
                labels=labels(args.stack, "proxy"),
                networks=(Attach(args.network, (contract.Alias.PROXY,)),),
                configs=tuple(configs),
                secrets=tuple(secrets),
                ports=tuple(ports),
                # Lets the unprivileged HAProxy user bind ports below 1024 in its
                # own network namespace only; harmless for nginx.
                sysctls={"net.ipv4.ip_unprivileged_port_start": "0"},
                # Both finish in-flight requests on these: nginx's graceful quit, HAProxy's soft
                # stop. The wrapper passes them on and exits with the proxy's status.
                stop_signal="SIGUSR1" if haproxy else "SIGQUIT",
            ),
            container_resource=f"{name}-container",
        )
        self.ready = self.deployment.ready
        host = "127.0.0.1" if cfg.bind_address in ("0.0.0.0", "127.0.0.1") else cfg.bind_address
        self.url = f"https://{host}:{cfg.https_port}" if model.tls else f"http://{host}:{cfg.http_port}"
        self.register_outputs({"url": self.url, "name": self.deployment.name})

    def _tls_pair(self, name: str, args: ProxyArgs) -> tuple[pulumi.Input[str], pulumi.Output[str]]:
        if args.config.tls.mode == "provided":
            assert args.tls_certificate is not None and args.tls_private_key is not None
            return args.tls_certificate, pulumi.Output.secret(args.tls_private_key)
        child = pulumi.ResourceOptions(parent=self)
        key = tls.PrivateKey(f"{name}-tls-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        certificate = tls.SelfSignedCert(
            f"{name}-tls-certificate",
            private_key_pem=key.private_key_pem,
            subject=tls.SelfSignedCertSubjectArgs(common_name=f"{args.prefix}.local", organization="microstack"),
            dns_names=["localhost", f"{args.prefix}.local"],
            ip_addresses=["127.0.0.1"],
            validity_period_hours=24 * 365,
            early_renewal_hours=24 * 30,
            allowed_uses=["key_encipherment", "digital_signature", "server_auth"],
            opts=child,
        )
        return certificate.cert_pem, pulumi.Output.secret(key.private_key_pem)
