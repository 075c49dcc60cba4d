"""The proxy as the program declares it: kind, ports, uploaded config, TLS."""

from __future__ import annotations

import pytest

from components.proxy import events
from components.proxy.component import HAPROXY_CFG, NGINX_CONF
from microstack_common import contract
from tests.support.program import Program, run_program


def _uploads(program: Program) -> dict[str, dict]:
    return {u["file"]: u for u in program.container("proxy-container").inputs["uploads"]}


def test_only_the_proxy_publishes_ports_and_on_the_bind_address() -> None:
    program = run_program({"proxy": {"bindAddress": "0.0.0.0", "httpPort": 80}})
    publishing = [c for c in program.containers if c.inputs.get("ports")]
    assert [c.name for c in publishing] == ["proxy-container"]
    [port] = publishing[0].inputs["ports"]
    assert (port["ip"], port["external"], port["internal"]) == ("0.0.0.0", 80, 80)


def test_nginx_routes_to_every_replica_at_its_fixed_address() -> None:
    program = run_program({"api": {"replicas": 3}})
    conf = _uploads(program)[NGINX_CONF]["content"]
    frontend = program.named("networks-frontend").inputs["name"]
    for index in (1, 2, 3):
        [address] = [
            n["ipv4Address"]
            for n in program.container(f"api-{index}").inputs["networksAdvanced"]
            if n["name"] == frontend
        ]
        assert f"server {address}:{contract.API_PORT}" in conf
    assert "least_conn" in conf


def test_haproxy_discovers_replicas_through_docker_dns() -> None:
    program = run_program({"proxy": {"kind": "haproxy", "discoverySlots": 12}, "api": {"replicas": 3}})
    cfg = _uploads(program)[HAPROXY_CFG]["content"]
    assert "nameserver docker 127.0.0.11:53" in cfg
    assert f"server-template api- 12 {contract.Alias.API}:{contract.API_PORT} resolvers docker" in cfg


def test_haproxy_config_does_not_change_with_the_replica_count() -> None:
    def cfg(replicas: int) -> str:
        program = run_program({"proxy": {"kind": "haproxy"}, "api": {"replicas": replicas}})
        return _uploads(program)[HAPROXY_CFG]["content"]

    assert cfg(2) == cfg(5)


@pytest.mark.parametrize("kind", ["nginx", "haproxy"])
def test_self_signed_tls_publishes_https_and_uploads_the_key_as_a_secret_file(kind: str) -> None:
    program = run_program({"proxy": {"kind": kind, "tls": {"mode": "self-signed"}}})
    ports = {p["internal"] for p in program.container("proxy-container").inputs["ports"]}
    assert ports == {8080, 8443}
    key = program.named("proxy-tls-key").outputs["privateKeyPem"]
    uploads = _uploads(program)
    assert any(key.strip() in u["content"] for u in uploads.values())
    for env in program.container("proxy-container").inputs.get("envs", []):
        assert "PRIVATE KEY" not in env


def test_provided_tls_uses_the_secret_config_pair() -> None:
    program = run_program(
        {"proxy": {"kind": "haproxy", "tls": {"mode": "provided"}}},
        secrets={"tlsCertificate": "-----BEGIN CERTIFICATE-----\nX\n", "tlsPrivateKey": "-----BEGIN KEY-----\nY\n"},
    )
    bundle = _uploads(program)["/etc/microstack/tls/bundle.pem"]["content"]
    assert bundle.startswith("-----BEGIN CERTIFICATE-----\nX\n") and "-----BEGIN KEY-----\nY" in bundle
    assert not program.of_type("tls:index/selfSignedCert:SelfSignedCert")


def test_tls_off_publishes_http_only() -> None:
    program = run_program({})
    assert [p["internal"] for p in program.container("proxy-container").inputs["ports"]] == [8080]
    assert program.outputs["url"].value == "http://127.0.0.1:8080"


def test_proxy_starts_after_every_replica() -> None:
    program = run_program({"api": {"replicas": 2}})
    # The service components: every replica and its readiness gate.
    depends = {getattr(d, "_name", None) for d in program.named("proxy").options["depends_on"]}
    assert {"api", "auth"} <= depends
    children = {r.name for r in program.resources if r.options.get("parent") in {"api", "auth"}}
    assert {"api-1", "api-2", "auth-1", "api-1-ready", "api-2-ready", "auth-1-ready"} <= children


@pytest.mark.parametrize(
    ("kind", "proxy_command"),
    [("nginx", ["nginx", "-g", "daemon off;"]), ("haproxy", ["haproxy", "-W", "-db", "-f", HAPROXY_CFG])],
)
def test_the_proxy_runs_under_its_uploaded_log_wrapper(kind: str, proxy_command: list[str]) -> None:
    program = run_program({"proxy": {"kind": kind}})
    container = program.container("proxy-container")
    command = container.inputs["command"]
    assert command[:2] == ["perl", events.CONTAINER_SCRIPT]
    assert command[command.index("--") + 1 :] == proxy_command
    assert command[command.index("--proxy") + 1] == kind
    assert command[command.index("--instance") + 1] == container.inputs["name"]
    assert _uploads(program)[events.CONTAINER_SCRIPT]["content"] == events.script_text()


def test_nginx_log_wrapper_knows_each_replica_by_its_instance_name() -> None:
    program = run_program({"api": {"replicas": 2}})
    command = program.container("proxy-container").inputs["command"]
    replicas = [command[i + 1] for i, arg in enumerate(command) if arg == "--replica"]
    frontend = program.named("networks-frontend").inputs["name"]
    expected = []
    for name in ("api-1", "api-2", "auth-1"):
        container = program.container(name)
        [address] = [n["ipv4Address"] for n in container.inputs["networksAdvanced"] if n["name"] == frontend]
        env = dict(e.split("=", 1) for e in container.inputs["envs"])
        assert env[contract.Env.INSTANCE_NAME] == name
        port = contract.API_PORT if name.startswith("api") else contract.AUTH_PORT
        expected.append(f"{name.split('-')[0]}/{name}={address}:{port}")
    assert replicas == expected
