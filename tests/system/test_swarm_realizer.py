"""The realizer's Swarm resources on their own, against a hand-written resource list.

A service of two replicas on an overlay network, with a secret and a config
mounted as files, a health check, endpoint mode dnsrr and a host-mode port
(the only kinds that work without IPVS), on a single-node swarm. Checked:
the spec reaches Swarm as the provider would send it, the files and the port
work, unknown fields fail loudly, and an update whose tasks never become
healthy fails the converge wait while Swarm rolls it back and the tasks of
the previous spec keep serving.
"""

from __future__ import annotations

import base64
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from tests.support.program import NETWORK, SECRET, SERVICE, SERVICE_CONFIG, Program, Resource, mock_id
from tests.system.images import BuiltImages
from tests.system.realizer import SESSION_LABEL, RealizeError, Realizer, UnhandledField

TOKEN = "swarm-secret-0123456789"
PAGE = "served from a swarm config\n"
PORT = 8000
ALIAS = "unit-web"
_ROLLBACK_SECONDS = 60


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _no_build(*_args: Any) -> str:
    raise AssertionError("these resource lists declare no Image to build")


def _probe(url: str) -> list[str]:
    return ["CMD", "python3", "-c", f"import urllib.request; urllib.request.urlopen({url!r}, timeout=2)"]


def _service_inputs(session: str, image: str) -> dict[str, Any]:
    return {
        "name": f"{session}-web",
        "labels": [{"label": "microstack.role", "value": "web"}],
        "mode": {"replicated": {"replicas": 2.0}},
        "taskSpec": {
            "containerSpec": {
                "image": image,
                "command": ["python3", "-m", "http.server"],
                "args": [str(PORT), "--directory", "/srv"],
                "env": {"MICROSTACK_INSTANCE": "web", "TOKEN_FILE": "/run/secrets/token"},
                "labels": [{"label": "microstack.instance", "value": "web"}],
                "stopSignal": "SIGTERM",
                "stopGracePeriod": "5s",
                "sysctl": {"net.ipv4.ip_unprivileged_port_start": "0"},
                "healthcheck": {
                    "tests": _probe(f"http://127.0.0.1:{PORT}/"),
                    "interval": "1s",
                    "timeout": "2s",
                    "startPeriod": "2s",
                    "retries": 2.0,
                },
                "secrets": [
                    {
                        "secretId": mock_id("token"),
                        "secretName": f"{session}-token",
                        "fileName": "token",
                        "fileUid": "0",
                        "fileGid": "0",
                        "fileMode": 0o400,
                    }
                ],
                "configs": [
                    {
                        "configId": mock_id("page"),
                        "configName": f"{session}-page",
                        "fileName": "/srv/index.html",
                        "fileUid": "0",
                        "fileGid": "0",
                        "fileMode": 0o444,
                    }
                ],
            },
            "resources": {
                "limits": {"nanoCpus": 500_000_000.0, "memoryBytes": 128.0 * 1024 * 1024},
                "reservation": {"nanoCpus": 100_000_000.0, "memoryBytes": 16.0 * 1024 * 1024},
            },
            "restartPolicy": {"condition": "any", "delay": "1s", "maxAttempts": 0.0, "window": "0s"},
            "placement": {"constraints": ["node.labels.microstack.data==true"], "maxReplicas": 3.0},
            "networksAdvanceds": [{"name": mock_id("net"), "aliases": [ALIAS]}],
            "logDriver": {"name": "local", "options": {"max-size": "1m"}},
        },
        # start-first: a new task runs beside the one it replaces until it is healthy
        # (so placement must allow one more task per node than there are replicas).
        "updateConfig": {
            "parallelism": 1.0,
            "delay": "0s",
            "failureAction": "rollback",
            "monitor": "2s",
            "maxFailureRatio": "0.0",
            "order": "start-first",
        },
        "rollbackConfig": {
            "parallelism": 2.0,
            "delay": "0s",
            "failureAction": "pause",
            "monitor": "1s",
            "maxFailureRatio": "0.0",
            "order": "stop-first",
        },
        "convergeConfig": {"delay": "1s", "timeout": "60s"},
        # Two replicas on one node: a fixed host port would fit only one, so Swarm picks each task's.
        "endpointSpec": {
            "mode": "dnsrr",
            "ports": [{"name": "http", "targetPort": float(PORT), "publishMode": "host", "protocol": "tcp"}],
        },
    }


def _resources(session: str, image: str) -> list[Resource]:
    return [
        Resource(
            NETWORK,
            "net",
            {"name": f"{session}-net", "driver": "overlay", "attachable": True, "internal": False},
            {},
        ),
        Resource(
            SECRET,
            "token",
            {"name": f"{session}-token", "data": _b64(TOKEN), "labels": [{"label": "microstack.role", "value": "web"}]},
            {},
        ),
        Resource(SERVICE_CONFIG, "page", {"name": f"{session}-page", "data": _b64(PAGE)}, {}),
        Resource(SERVICE, "web", _service_inputs(session, image), {}),
    ]


def _realizer(client: docker.DockerClient, resources: list[Resource], session: str) -> Realizer:
    return Realizer(
        client,
        Program(resources=resources, outputs={}),
        session=session,
        project_root=Path("."),
        build_image=_no_build,
    )


@pytest.fixture(scope="module")
def web(docker_client: docker.DockerClient, test_images: BuiltImages, swarm_node: str) -> Iterator[Realizer]:
    session = f"unit-{uuid.uuid4().hex[:8]}"
    realizer = _realizer(docker_client, _resources(session, test_images.python), session)
    try:
        realizer.realize()
        yield realizer
    finally:
        realizer.destroy()
        label = {"label": f"{SESSION_LABEL}={session}"}
        api = docker_client.api
        assert (api.services(filters=label), api.secrets(filters=label), api.configs(filters=label)) == ([], [], [])
        assert api.networks(filters=label) == []


def _running_tasks(client: docker.DockerClient, service_id: str) -> list[dict[str, Any]]:
    tasks = client.api.tasks(filters={"service": service_id, "desired-state": "running"})
    return [t for t in tasks if t["Status"]["State"] == "running"]


def _update_state(client: docker.DockerClient, service_id: str) -> str | None:
    state: str | None = (client.api.inspect_service(service_id).get("UpdateStatus") or {}).get("State")
    return state


def _container_of(client: docker.DockerClient, task: dict[str, Any]) -> Any:
    return client.containers.get(task["Status"]["ContainerStatus"]["ContainerID"])


@pytest.mark.slow
def test_service_fields_reach_the_swarm(docker_client: docker.DockerClient, web: Realizer) -> None:
    spec = docker_client.api.inspect_service(web.realized.services["web"])["Spec"]
    task, container = spec["TaskTemplate"], spec["TaskTemplate"]["ContainerSpec"]
    assert spec["Mode"] == {"Replicated": {"Replicas": 2}}
    assert spec["Labels"]["microstack.role"] == "web"
    assert spec["EndpointSpec"]["Mode"] == "dnsrr"
    assert spec["EndpointSpec"]["Ports"] == [
        {"Name": "http", "Protocol": "tcp", "TargetPort": PORT, "PublishMode": "host"}
    ]
    assert spec["UpdateConfig"] == {
        "Parallelism": 1,
        "FailureAction": "rollback",
        "Monitor": 2 * 10**9,
        "MaxFailureRatio": 0,
        "Order": "start-first",
    }
    assert spec["RollbackConfig"]["Parallelism"] == 2
    assert spec["RollbackConfig"]["FailureAction"] == "pause"
    assert container["Args"] == [str(PORT), "--directory", "/srv"]
    assert sorted(container["Env"]) == ["MICROSTACK_INSTANCE=web", "TOKEN_FILE=/run/secrets/token"]
    assert container["StopGracePeriod"] == 5 * 10**9
    assert container["Sysctls"] == {"net.ipv4.ip_unprivileged_port_start": "0"}
    assert container["Healthcheck"]["Interval"] == 10**9
    assert container["Healthcheck"]["Retries"] == 2
    assert container["Secrets"][0]["SecretID"] == web.realized.secrets["token"]
    assert container["Secrets"][0]["File"] == {"Name": "token", "UID": "0", "GID": "0", "Mode": 0o400}
    assert container["Configs"][0]["ConfigID"] == web.realized.configs["page"]
    assert task["Resources"]["Limits"] == {"NanoCPUs": 500_000_000, "MemoryBytes": 128 * 1024 * 1024}
    assert task["RestartPolicy"] == {"Condition": "any", "Delay": 10**9, "MaxAttempts": 0, "Window": 0}
    assert task["Placement"]["Constraints"] == ["node.labels.microstack.data==true"]
    assert task["Placement"]["MaxReplicas"] == 3
    assert task["Networks"] == [{"Target": web.realized.networks["net"], "Aliases": [ALIAS]}]
    assert task["LogDriver"] == {"Name": "local", "Options": {"max-size": "1m"}}


@pytest.mark.slow
def test_both_replicas_run_healthy_with_the_secret_as_a_file(docker_client: docker.DockerClient, web: Realizer) -> None:
    tasks = _running_tasks(docker_client, web.realized.services["web"])
    assert len(tasks) == 2
    for task in tasks:
        container = _container_of(docker_client, task)
        assert container.attrs["State"]["Health"]["Status"] == "healthy"
        result = container.exec_run(["sh", "-c", "cat /run/secrets/token; echo; stat -c '%a %u' /run/secrets/token"])
        assert result.output.decode().split("\n")[:2] == [TOKEN, "400 0"]


@pytest.mark.slow
def test_the_service_alias_resolves_to_every_replica(docker_client: docker.DockerClient, web: Realizer) -> None:
    task, *_ = _running_tasks(docker_client, web.realized.services["web"])
    lookup = f"import socket; print(len({{a[4][0] for a in socket.getaddrinfo({ALIAS!r}, None)}}))"
    result = _container_of(docker_client, task).exec_run(["python3", "-c", lookup])
    assert result.output.decode().strip() == "2"


@pytest.mark.slow
def test_each_task_answers_on_its_host_mode_port(docker_client: docker.DockerClient, web: Realizer) -> None:
    tasks = _running_tasks(docker_client, web.realized.services["web"])
    ports = {p["PublishedPort"] for t in tasks for p in t["Status"]["PortStatus"]["Ports"]}
    assert len(ports) == 2
    for port in ports:
        response = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert (response.status_code, response.text) == (200, PAGE)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("taskSpec", "containerSpec", "dir"), "/tmp"),
        (("taskSpec", "forceUpdate"), 1.0),
        (("endpointSpec", "ports", 0, "extra"), True),
    ],
)
def test_a_service_field_the_realizer_does_not_apply_fails_loudly(
    docker_client: docker.DockerClient, test_images: BuiltImages, path: tuple[Any, ...], value: Any
) -> None:
    session = f"unit-{uuid.uuid4().hex[:8]}"
    inputs = _service_inputs(session, test_images.python)
    target: Any = inputs
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    resources = [*_resources(session, test_images.python)[:3], Resource(SERVICE, "web", inputs, {})]
    dotted = ".".join(str(k) for k in path).replace(".0.", "[0].")
    with pytest.raises(UnhandledField, match=re.escape(f"'{dotted}'")):
        _realizer(docker_client, resources, session).realize()
    assert docker_client.api.networks(filters={"label": f"{SESSION_LABEL}={session}"}) == []


@pytest.mark.slow
def test_an_update_that_never_gets_healthy_fails_and_swarm_rolls_it_back(
    docker_client: docker.DockerClient, web: Realizer
) -> None:
    service_id = web.realized.services["web"]
    before = {t["ID"] for t in _running_tasks(docker_client, service_id)}
    original = web.services["web"].resource
    broken = _service_inputs(web.session, original.inputs["taskSpec"]["containerSpec"]["image"])
    broken["taskSpec"]["containerSpec"]["healthcheck"]["tests"] = _probe(f"http://127.0.0.1:{PORT}/absent")
    with pytest.raises(RealizeError, match=r"(?s)rolled back.*last tasks:.*unhealthy"):
        web.update_service(Resource(SERVICE, "web", broken, {}))
    deadline = time.monotonic() + _ROLLBACK_SECONDS
    while _update_state(docker_client, service_id) != "rollback_completed":
        assert time.monotonic() < deadline, "Swarm did not finish rolling back"
        time.sleep(0.5)
    spec = docker_client.api.inspect_service(service_id)["Spec"]
    assert spec["TaskTemplate"]["ContainerSpec"]["Healthcheck"]["Test"] == _probe(f"http://127.0.0.1:{PORT}/")
    # start-first: the tasks of the previous spec never stopped.
    assert {t["ID"] for t in _running_tasks(docker_client, service_id)} == before
