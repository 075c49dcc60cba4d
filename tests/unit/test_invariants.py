"""Invariants that hold for every stack file: isolation, limits, health, restart, secrets."""

from __future__ import annotations

from components.common import LABEL_ROLE, ROLE_JOB
from microstack_common import contract
from tests.support.program import NETWORK, VOLUME, Program


def _network_names(program: Program, *, internal: bool) -> set[str]:
    return {n.inputs["name"] for n in program.of_type(NETWORK) if bool(n.inputs.get("internal")) == internal}


def _networks_of(container_inputs: dict) -> set[str]:
    return {n["name"] for n in container_inputs.get("networksAdvanced", [])}


def test_backend_network_is_internal(stack_program: Program) -> None:
    backend = stack_program.named("networks-backend")
    assert backend.inputs["internal"] is True


def test_frontend_network_is_not_internal(stack_program: Program) -> None:
    assert not stack_program.named("networks-frontend").inputs.get("internal")


def test_postgres_and_redis_are_only_on_the_backend_and_publish_nothing(stack_program: Program) -> None:
    backend = stack_program.named("networks-backend").inputs["name"]
    for name in ("postgres-container", "redis-container"):
        inputs = stack_program.container(name).inputs
        assert _networks_of(inputs) == {backend}, name
        assert not inputs.get("ports"), f"{name} publishes {inputs.get('ports')}"


def test_no_container_on_an_internal_network_publishes_ports_beyond_loopback(stack_program: Program) -> None:
    internal = _network_names(stack_program, internal=True)
    for container in stack_program.containers:
        networks = _networks_of(container.inputs)
        if networks and networks <= internal:
            for port in container.inputs.get("ports", []):
                assert port.get("ip") == "127.0.0.1", f"{container.name} publishes {port}"


def test_every_container_has_healthcheck_limits_restart_and_graceful_stop(stack_program: Program) -> None:
    assert stack_program.containers
    for container in stack_program.containers:
        inputs = container.inputs
        # A one-shot job (the ELK setup) runs to completion: no health to check, no restart.
        assert inputs.get("healthcheck", {}).get("tests") or _is_job(inputs), f"{container.name} has no healthcheck"
        assert inputs.get("memory", 0) > 0, f"{container.name} has no memory limit"
        assert float(inputs.get("cpus", 0)) > 0, f"{container.name} has no CPU limit"
        assert inputs.get("restart") in {"unless-stopped", "always", "on-failure"} or _is_job(inputs), (
            f"{container.name} restart={inputs.get('restart')}"
        )
        assert inputs.get("stopTimeout", 0) > 0, f"{container.name} has no stop timeout"


def _is_job(inputs: dict) -> bool:
    return {"label": LABEL_ROLE, "value": ROLE_JOB} in inputs.get("labels", [])


def test_no_env_var_holds_a_generated_secret(stack_program: Program) -> None:
    secrets = stack_program.secret_values()
    assert secrets, "the program generated no secrets"
    for container in stack_program.containers:
        for env in container.inputs.get("envs", []):
            for secret in secrets:
                assert secret not in env, f"{container.name} has a secret in env {env.split('=')[0]}"


def test_secrets_reach_containers_as_files(stack_program: Program) -> None:
    postgres = stack_program.container("postgres-container").inputs
    password = stack_program.named("secrets-postgres-password").outputs["result"]
    uploads = {u["file"]: u for u in postgres["uploads"]}
    assert uploads[contract.POSTGRES_PASSWORD_FILE]["content"] == password
    assert f"POSTGRES_PASSWORD_FILE={contract.POSTGRES_PASSWORD_FILE}" in postgres["envs"]


def test_outputs_carrying_credentials_are_secret(stack_program: Program) -> None:
    secrets = stack_program.secret_values()
    for name, output in stack_program.outputs.items():
        if any(secret in repr(output.value) for secret in secrets):
            assert output.secret, f"stack output {name} carries a credential but is not secret"
    assert stack_program.outputs["postgresPassword"].secret


def test_data_lives_in_named_volumes_separate_from_the_containers(stack_program: Program) -> None:
    volumes = {v.inputs["name"]: v for v in stack_program.of_type(VOLUME)}
    for container, path in (("postgres-container", "/var/lib/postgresql/data"), ("redis-container", "/data")):
        mounts = stack_program.container(container).inputs["volumes"]
        [mount] = [m for m in mounts if m["containerPath"] == path]
        assert mount["volumeName"] in volumes, f"{container} data is not in a named volume resource"
