"""How every container's logs leave it, with logging on and off."""

from __future__ import annotations

from tests.support.program import run_program

ELK_ROLES = ("logging-elasticsearch", "logging-logstash", "logging-kibana", "logging-setup", "logging-kibana-setup")


def test_with_logging_on_every_other_container_ships_gelf_to_logstash_on_loopback() -> None:
    program = run_program({"logging": {"enabled": True, "gelfPort": 12299}})
    names = {c.name for c in program.containers}
    assert set(ELK_ROLES) <= names
    others = [c for c in program.containers if c.name not in ELK_ROLES]
    assert {"postgres-container", "redis-container", "api-1", "auth-1", "proxy-container"} <= {c.name for c in others}
    for container in others:
        assert container.inputs["logDriver"] == "gelf", container.name
        assert container.inputs["logOpts"]["gelf-address"] == "udp://127.0.0.1:12299", container.name


def test_logstash_publishes_its_gelf_port_on_loopback_only() -> None:
    program = run_program({"logging": {"enabled": True, "gelfPort": 12299}})
    ports = program.container("logging-logstash").inputs["ports"]
    assert [(p["ip"], p["external"], p.get("protocol")) for p in ports] == [("127.0.0.1", 12299, "udp")]


def test_data_stores_start_after_logging_so_their_first_lines_are_kept() -> None:
    program = run_program({"logging": {"enabled": True}})
    depends = {getattr(d, "_name", None) for d in program.named("postgres").options["depends_on"]}
    assert "logging" in depends


def test_with_logging_off_no_elk_exists_and_every_container_rotates_local_logs() -> None:
    program = run_program({"logging": {"enabled": False, "jsonFileMaxSizeMb": 20, "jsonFileMaxFiles": 5}})
    assert not {c.name for c in program.containers} & set(ELK_ROLES)
    assert not [n for n in program.of_type("docker:index/network:Network") if n.name == "networks-logging"]
    for container in program.containers:
        # Not json-file, the daemon's usual default, whose daemon.json options
        # Docker would merge in (components/common.py, log_driver).
        assert container.inputs["logDriver"] == "local", container.name
        assert container.inputs["logOpts"] == {"max-size": "20m", "max-file": "5", "compress": "true"}, container.name


def test_elasticsearch_passwords_are_generated_only_with_logging_on() -> None:
    off = run_program({})
    on = run_program({"logging": {"enabled": True}})
    assert not [r for r in off.resources if r.name == "secrets-elastic-password"]
    assert on.named("secrets-elastic-password")
    assert on.outputs["elasticPassword"].secret
