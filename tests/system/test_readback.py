"""Day 2, first question: does a second `pulumi up` change nothing?

The real provider reads every resource back from the engine after create and
on each refresh, and Pulumi diffs the program's inputs against what it read.
Here each stack file (dev, staging, prod) is realized in the real engine, every
container, network and volume is read back with the provider's own rules
(tests/support/readback.py, a port of kreuzwerker/terraform-provider-docker
v3.9.0) and diffed against what the program declared: it must say "no
changes", and again after the Docker daemon restarted (a host reboot). Both
times the engine model the unit tests judge stack files with
(tests/support/engine_state.py) must read back exactly as this engine does.

What differs from a real deployment, and why it does not touch the fields read
back: the images are the local stand-ins; ports, subnets and the stack name
are the test's own (so stacks can share the engine); the provider's
`docker:host` is the test's engine; TLS uses a real self-signed pair given as
`provided`, since mock PEMs would keep the proxy from starting. The Elastic
containers run the Python stand-in with a sleeping command (their images
cannot be built here), so their `image` and `command` are the only fields not
compared, and their readiness gates are left out.

The second half reintroduces each read-back defect the program was fixed for
into one real container or network and shows that the check catches it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import docker
import pytest

from components.common import LABEL_ROLE
from tests.integration.proxy.harness import self_signed_pem
from tests.support.binaries import binaries_required
from tests.support.drift import Drift, describe
from tests.support.engine_state import DAEMON_LOG_OPTS, Daemon
from tests.support.program import (
    CONTAINER,
    NETWORK,
    READY_GATE,
    REMOTE_IMAGE,
    ROOT,
    Program,
    Resource,
    run_program,
    stack_file_config,
)
from tests.support.readback import Change, diff, read_container, read_network
from tests.system.engine import owns_engine, restart_engine
from tests.system.images import BuiltImages, build_context_image
from tests.system.readback_check import model_differences, readback_changes
from tests.system.realizer import SESSION_LABEL, Realized, Realizer
from tests.system.stack import free_port, free_subnet, unique_stack_name
from tests.system.timing import no_settle

pytestmark = pytest.mark.slow

ELK_ROLES = {"elasticsearch", "logstash", "kibana", "job"}
# What the stand-in for an Elastic image changes, and so is not compared.
STAND_IN_FIELDS = {"image", "command"}
# The fields a probe container declares and compares.
PROBED_FIELDS = {"memory", "memorySwap", "cpus", "mustRun", "logDriver", "logOpts", "healthcheck"}
SLEEP = ["python3", "-c", "import time; time.sleep(10**9)"]
# Containers with a restart policy come back after the daemon restarts.
BACK_AFTER_RESTART_SECONDS = 120


def _role(resource: Resource) -> str | None:
    for label in resource.inputs.get("labels") or []:
        if label.get("label") == LABEL_ROLE:
            return str(label.get("value"))
    return None


def stack_file_program(
    client: docker.DockerClient, images: BuiltImages, stack: str, scratch: Path
) -> tuple[Program, str]:
    """configs/Pulumi.<stack>.yaml under mocks, with the test's images, ports, subnet and stack name.

    A host directory the stack names (prod's backup repository) becomes one under `scratch`.
    """
    project, _provider = stack_file_config(stack)
    config: dict[str, Any] = {k: v for k, v in project.items() if not (isinstance(v, dict) and set(v) == {"secure"})}
    proxy = dict(config.get("proxy", {}))
    tls = proxy.get("tls", {}).get("mode", "off")
    proxy.update({"bindAddress": "127.0.0.1", "httpPort": free_port(), "httpsPort": free_port()})
    if tls != "off":
        proxy["tls"] = {"mode": "provided"}
    config["proxy"] = proxy
    if config.get("logging", {}).get("enabled"):
        config["logging"] = {
            **config["logging"],
            "kibanaPort": free_port(),
            "gelfPort": free_port(),
        }
    backup = config.get("postgres", {}).get("backup", {})
    if backup.get("repository", {}).get("kind") == "hostPath":
        # prod's NAS mount does not exist here: a directory of the test's own
        # takes its place (Docker refuses a bind volume whose source is missing).
        repository = scratch / "backups"
        repository.mkdir()
        repository.chmod(0o777)
        config["postgres"] = {
            **config["postgres"],
            "backup": {**backup, "repository": {**backup["repository"], "path": str(repository)}},
        }
    config["network"] = {"frontendSubnet": free_subnet(client)}
    config["images"] = {
        "postgres": images.postgres,
        "redis": images.redis,
        "nginx": images.nginx,
        "haproxy": images.haproxy,
        "serviceBaseImage": images.python,
    }
    secrets: dict[str, str] = {}
    if tls != "off":
        secrets["tlsCertificate"], secrets["tlsPrivateKey"] = self_signed_pem()
    name = unique_stack_name(f"readback-{stack}")
    # No settle time in the gates: nothing is rolled here (tests/system/timing.py).
    program = run_program(config, stack=name, secrets=secrets, transformations=[no_settle])
    return program, name


def with_elastic_stand_ins(program: Program, python_image: str) -> tuple[Program, set[str]]:
    """The Elastic containers on the Python stand-in, sleeping; their gates left out."""
    elastic = {r.name for r in program.of_type(CONTAINER) if _role(r) in ELK_ROLES}
    elastic_images = {r.inputs.get("image") for r in program.of_type(CONTAINER) if r.name in elastic}
    resources: list[Resource] = []
    for resource in program.resources:
        if resource.type == READY_GATE and resource.inputs.get("containerId") in {f"{n}-id" for n in elastic}:
            continue
        if resource.type == REMOTE_IMAGE and resource.outputs.get("imageId") in elastic_images:
            resource = replace(resource, inputs={**resource.inputs, "name": python_image})
        elif resource.name in elastic:
            attach = bool(resource.inputs.get("attach"))
            resource = replace(resource, inputs={**resource.inputs, "command": ["true"] if attach else SLEEP})
        resources.append(resource)
    return Program(resources=resources, outputs=program.outputs), elastic


def significant(drifts: list[Drift], stand_ins: set[str]) -> list[Drift]:
    return [d for d in drifts if not (d.resource in stand_ins and d.path.split(".")[0] in STAND_IN_FIELDS)]


def engine_daemon(client: docker.DockerClient, *, restarted: bool) -> Daemon:
    """The engine model's view of the session's engine: its log options, swap accounting, default runtime."""
    info = client.info()
    return Daemon(
        log_driver=info.get("LoggingDriver") or "json-file",
        log_opts=DAEMON_LOG_OPTS,
        swap_limit=bool(info.get("SwapLimit")),
        default_runtime=info.get("DefaultRuntime") or "runc",
        restarted=restarted,
    )


def assert_model_holds(
    program: Program, client: docker.DockerClient, realized: Realized, stand_ins: set[str], *, restarted: bool
) -> None:
    """The engine model the unit tests judge stack files with reads back as this engine does."""
    differences = [
        d
        for d in model_differences(program, client, realized, engine_daemon(client, restarted=restarted))
        if not (d.resource in stand_ins and d.path in STAND_IN_FIELDS)
    ]
    assert not differences, "the engine model (tests/support/engine_state.py) is wrong here:\n" + "\n".join(
        f"  {d}" for d in differences
    )


@pytest.fixture(scope="module")
def engine(docker_client: docker.DockerClient) -> docker.DockerClient:
    if not owns_engine():
        message = (
            "the read-back test restarts the Docker engine, as a host reboot would, so it needs an engine "
            "this test session started; stop your own dockerd to run it"
        )
        if binaries_required():
            pytest.fail(message)
        pytest.skip(message)
    return docker_client


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_a_second_up_changes_nothing_also_after_a_daemon_restart(
    engine: docker.DockerClient, test_images: BuiltImages, stack: str, tmp_path: Path
) -> None:
    program, name = stack_file_program(engine, test_images, stack, tmp_path)
    program, stand_ins = with_elastic_stand_ins(program, test_images.python)
    realizer = Realizer(engine, program, session=name, project_root=ROOT, build_image=build_image(engine))
    try:
        realized = realizer.realize()
        assert realized.containers, "nothing was realized"
        _assert_reads_back_unchanged(program, engine, realized, stand_ins, restarted=False)

        # One stack at a time: the daemon stops and starts every container it runs.
        client = restart_engine()
        realizer.client, realizer.api = client, client.api
        _wait_running(client, name, expected=len(realized.containers) - _jobs(program))
        _assert_reads_back_unchanged(program, client, realized, stand_ins, restarted=True)
    finally:
        realizer.destroy()


def _assert_reads_back_unchanged(
    program: Program, client: docker.DockerClient, realized: Realized, stand_ins: set[str], *, restarted: bool
) -> None:
    when = "after a daemon restart, " if restarted else ""
    changes = significant(readback_changes(program, client, realized), stand_ins)
    assert not changes, f"{when}a second `pulumi up` would change:\n{describe(changes)}"
    assert_model_holds(program, client, realized, stand_ins, restarted=restarted)


def _jobs(program: Program) -> int:
    return sum(1 for r in program.of_type(CONTAINER) if r.inputs.get("attach"))


def _wait_running(client: docker.DockerClient, session: str, expected: int) -> None:
    deadline = time.monotonic() + BACK_AFTER_RESTART_SECONDS
    running = 0
    while time.monotonic() < deadline:
        running = len(client.api.containers(filters={"label": f"{SESSION_LABEL}={session}", "status": "running"}))
        if running >= expected:
            return
        time.sleep(1)
    raise AssertionError(f"{running} of {expected} containers running {BACK_AFTER_RESTART_SECONDS}s after the restart")


def build_image(client: docker.DockerClient) -> Callable[[Resource, Path, str, Mapping[str, str]], str]:
    def build(resource: Resource, context: Path, dockerfile: str, args: Mapping[str, str]) -> str:
        return build_context_image(client, resource.name, context, dockerfile=dockerfile, buildargs=args)

    return build


# --- each fixed defect, reintroduced, is caught ---------------------------------


@pytest.fixture
def probe(docker_client: docker.DockerClient, test_images: BuiltImages) -> Iterator[dict[str, Any]]:
    """Creates containers and networks for one check and removes them after."""
    made: dict[str, Any] = {"containers": [], "networks": [], "image": test_images.python}
    yield made
    for container_id in made["containers"]:
        docker_client.api.remove_container(container_id, force=True)
    for network_id in made["networks"]:
        docker_client.api.remove_network(network_id)


def _container_read_back(client: docker.DockerClient, probe: dict[str, Any], declared: dict[str, Any]) -> list[Change]:
    """Create a container as the provider would from `declared`, read it back, diff."""
    api = client.api
    host = api.create_host_config(
        mem_limit=f"{declared['memory']}m",
        memswap_limit=(
            f"{declared['memorySwap']}m" if declared.get("memorySwap", -1) > 0 else declared.get("memorySwap")
        ),
        nano_cpus=int(float(declared["cpus"]) * 1e9),
        log_config=docker.types.LogConfig(type=declared["logDriver"], config=declared["logOpts"]),
    )
    health = declared["healthcheck"]
    created = api.create_container(
        probe["image"],
        command=SLEEP,
        host_config=host,
        labels={SESSION_LABEL: "readback-probe"},
        healthcheck={
            "test": health["tests"],
            "interval": _ns(health["interval"]),
            "timeout": _ns(health["timeout"]),
            "start_period": _ns(health["startPeriod"]),
            "retries": health["retries"],
        },
    )
    probe["containers"].append(created["Id"])
    api.start(created["Id"])
    state = read_container(api.inspect_container(created["Id"]), declared)
    # Only the fields under test: the probe declares no name, image, networks, ...
    return [c for c in diff(CONTAINER, declared, state) if c.path.split(".")[0] in PROBED_FIELDS]


def _ns(text: str) -> int:
    units = {"h": 3600, "m": 60, "s": 1}
    total, number = 0, ""
    for char in text:
        if char.isdigit():
            number += char
        else:
            total += int(number) * units[char]
            number = ""
    return total * 10**9


def _declared(**overrides: Any) -> dict[str, Any]:
    """A container declared the way components/common.py declares one now."""
    from components.common import Runtime, healthcheck, log_driver
    from components.config import LoggingConfig

    runtime = Runtime(
        memory_mb=64,
        cpus=1.0,
        healthcheck=healthcheck(["CMD", "true"], start_period_seconds=120),
        logs=log_driver(LoggingConfig()),
        labels={},
    )
    args = runtime.container_args()
    check = args["healthcheck"]
    declared = {
        "memory": args["memory"],
        "memorySwap": args["memory_swap"],
        "cpus": args["cpus"],
        "mustRun": args["must_run"],
        "logDriver": args["log_driver"],
        "logOpts": dict(args["log_opts"]),
        "healthcheck": {
            "tests": check.tests,
            "interval": check.interval,
            "timeout": check.timeout,
            "startPeriod": check.start_period,
            "retries": check.retries,
        },
    }
    declared.update(overrides)
    return declared


def test_the_fixed_declarations_read_back_unchanged(docker_client: docker.DockerClient, probe: dict[str, Any]) -> None:
    assert _container_read_back(docker_client, probe, _declared()) == []


@pytest.mark.parametrize(
    ("defect", "overrides", "field", "replaces"),
    [
        ("1: cpus written as '1'", {"cpus": "1"}, "cpus", True),
        ("3: memory_swap left to Docker", {"memorySwap": None}, "memorySwap", False),
        (
            "4: a start period of '120s'",
            {"healthcheck": {**_declared()["healthcheck"], "startPeriod": "120s"}},
            "healthcheck",
            False,
        ),
        ("6: json-file with the daemon's log-opts", {"logDriver": "json-file"}, "logOpts", True),
    ],
)
def test_a_reintroduced_container_defect_is_a_change(
    engine: docker.DockerClient,
    probe: dict[str, Any],
    defect: str,
    overrides: dict[str, Any],
    field: str,
    replaces: bool,
) -> None:
    declared = {k: v for k, v in _declared(**overrides).items() if v is not None}
    if field == "logOpts":
        declared["logOpts"] = {"max-size": "10m", "max-file": "3"}
    # The engine this session started has daemon-wide log-opts (engine.DAEMON_LOG_OPTS).
    changes = _container_read_back(engine, probe, declared)
    hits = [c for c in changes if c.path.split(".")[0] == field]
    assert hits, f"defect {defect} was not caught: changes {changes}"
    assert any(c.replaces for c in hits) == replaces, f"{defect}: {hits}"


def test_a_reintroduced_network_gateway_defect_is_a_replacement_after_a_restart(
    engine: docker.DockerClient, probe: dict[str, Any]
) -> None:
    subnet = free_subnet(engine)
    declared = {
        "name": f"readback-probe-{subnet.split('.')[2]}",
        "driver": "bridge",
        "ipamConfigs": [{"subnet": subnet}],
    }
    created = engine.api.create_network(
        declared["name"],
        driver="bridge",
        ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)]),
        labels={SESSION_LABEL: "readback-probe"},
    )
    probe["networks"].append(created["Id"])
    client = restart_engine()
    state = read_network(client.api.inspect_network(created["Id"]), declared)
    changes = diff(NETWORK, declared, state)
    assert any("gateway" in c.path and c.replaces for c in changes), json.dumps([c.path for c in changes])
