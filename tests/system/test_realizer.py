"""The realizer on its own, against hand-written resource lists.

The stack tests trust the realizer to create what the program declares;
these tests check that trust: each field lands in the engine as the provider
would apply it, unknown fields and types fail loudly, containers start in
dependency order and everything is removed afterwards.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.support.program import CONTAINER, IMAGE, NETWORK, REMOTE_IMAGE, VOLUME, Program, Resource
from tests.system.images import BuiltImages
from tests.system.realizer import (
    OWNER_LABEL,
    SESSION_LABEL,
    RealizeError,
    Realizer,
    UnhandledField,
    go_duration_ns,
    remove_abandoned,
    remove_labelled,
)
from tests.system.stack import free_port, free_subnet

PASSWORD = "unitpassword0123456789"


def _no_build(*_args: Any) -> str:
    raise AssertionError("these resource lists declare no Image to build")


def _realizer(client: docker.DockerClient, resources: list[Resource], session: str) -> Realizer:
    return Realizer(
        client,
        Program(resources=resources, outputs={}),
        session=session,
        project_root=Path("."),
        build_image=_no_build,
    )


def _image(images: BuiltImages) -> Resource:
    return Resource(
        REMOTE_IMAGE,
        "redis-image",
        {"name": images.redis, "keepLocally": True},
        {"imageId": f"{images.redis}@sha256:0", "name": images.redis},
    )


def _container(name: str, images: BuiltImages, **inputs: Any) -> Resource:
    base: dict[str, Any] = {
        "name": name,
        "image": f"{images.redis}@sha256:0",
        "networksAdvanced": [{"name": "unused", "aliases": []}],
    }
    base.update(inputs)
    return Resource(CONTAINER, name, base, {})


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [("5s", 5 * 10**9), ("1m30s", 90 * 10**9), ("250ms", 250 * 10**6), ("1.5s", 1_500_000_000)],
)
def test_go_durations_are_parsed_like_the_provider(text: str, nanoseconds: int) -> None:
    resource = Resource(CONTAINER, "c", {}, {})
    assert go_duration_ns(resource, "interval", text) == nanoseconds


@pytest.mark.parametrize("text", ["5", "5 s", "", "s5", "5sx"])
def test_malformed_durations_are_rejected(text: str) -> None:
    with pytest.raises(RealizeError, match="Go duration"):
        go_duration_ns(Resource(CONTAINER, "c", {}, {}), "interval", text)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("inputs", "field"),
    [
        ({"fooBar": 1}, "fooBar"),
        ({"healthcheck": {"tests": ["CMD", "true"], "startInterval": "1s"}}, "healthcheck.startInterval"),
        ({"uploads": [{"file": "/x", "content": "y", "source": "/etc/passwd"}]}, "uploads[0].source"),
        ({"networksAdvanced": [{"name": "n", "ipv6Address": "fd00::9"}]}, "networksAdvanced[0].ipv6Address"),
    ],
)
def test_a_field_the_realizer_does_not_apply_fails_loudly(
    docker_client: docker.DockerClient, test_images: BuiltImages, inputs: dict[str, Any], field: str
) -> None:
    realizer = _realizer(
        docker_client, [_image(test_images), _container("c", test_images, **inputs)], f"unit-{uuid.uuid4().hex[:8]}"
    )
    with pytest.raises(UnhandledField, match=re.escape(f"'{field}'")):
        realizer.realize()
    assert docker_client.api.containers(all=True, filters={"label": f"{SESSION_LABEL}={realizer.session}"}) == []


@pytest.mark.slow
def test_an_unknown_resource_type_fails_loudly(docker_client: docker.DockerClient) -> None:
    plugin = Resource("docker:index/plugin:Plugin", "plugin", {"name": "x"}, {})
    with pytest.raises(RealizeError, match=r"docker:index/plugin:Plugin"):
        _realizer(docker_client, [plugin], "unit-type").realize()


@pytest.mark.slow
def test_an_image_that_is_not_local_fails_with_what_to_do(docker_client: docker.DockerClient) -> None:
    missing = Resource(REMOTE_IMAGE, "img", {"name": "microstack-test/absent:none"}, {})
    with pytest.raises(RealizeError, match="nothing can be pulled"):
        _realizer(docker_client, [missing], "unit-image").realize()


@pytest.mark.slow
def test_containers_naming_each_others_aliases_are_a_cycle(
    docker_client: docker.DockerClient, test_images: BuiltImages
) -> None:
    one = _container("one", test_images, envs=["PEER=two"], networksAdvanced=[{"name": "n", "aliases": ["one"]}])
    two = _container("two", test_images, envs=["PEER=one"], networksAdvanced=[{"name": "n", "aliases": ["two"]}])
    with pytest.raises(RealizeError, match="cycle"):
        _realizer(docker_client, [_image(test_images), one, two], "unit-cycle").realize()


@pytest.fixture(scope="module")
def realized_pair(docker_client: docker.DockerClient, test_images: BuiltImages) -> Iterator[tuple[Realizer, int, str]]:
    """A Redis with every commonly used field set, and a client that reaches it by alias."""
    session = f"unit-{uuid.uuid4().hex[:8]}"
    port = free_port()
    front, back = f"{session}-front", f"{session}-back"
    subnet = ipaddress.ip_network(free_subnet(docker_client))
    fixed_address = str(subnet.network_address + 10)
    conf = f"port 6379\nrequirepass {PASSWORD}\ndir /data\nappendonly yes\n"
    cache = _container(
        f"{session}-cache",
        test_images,
        command=["redis-server", "/usr/local/etc/redis/redis.conf"],
        uploads=[
            {"file": "/usr/local/etc/redis/redis.conf", "content": conf, "permissions": "0444"},
            {"file": "/run/secrets/redis_password", "content": PASSWORD, "permissions": "0400"},
        ],
        volumes=[{"volumeName": f"{session}-data", "containerPath": "/data"}],
        networksAdvanced=[{"name": back, "aliases": ["unit-cache"]}, {"name": front, "ipv4Address": fixed_address}],
        ports=[{"internal": 6379, "external": port, "ip": "127.0.0.1", "protocol": "tcp"}],
        memory=64.0,
        memorySwap=64.0,
        cpus="0.5",
        shmSize=32.0,
        healthcheck={
            "tests": ["CMD-SHELL", 'redis-cli -a "$(cat /run/secrets/redis_password)" ping | grep -q PONG'],
            "interval": "1s",
            "timeout": "2s",
            "retries": 5.0,
            "startPeriod": "5s",
        },
        restart="unless-stopped",
        stopSignal="SIGTERM",
        stopTimeout=7.0,
        destroyGraceSeconds=7.0,
        # Not json-file: the engine the tests start merges its daemon-wide
        # json-file options in (engine.DAEMON_LOG_OPTS), as the program avoids.
        logDriver="local",
        logOpts={"max-size": "1m", "max-file": "2"},
        labels=[{"label": "microstack.role", "value": "cache"}],
        wait=True,
        waitTimeout=60.0,
    )
    client = _container(
        f"{session}-client",
        test_images,
        entrypoints=["sleep"],
        command=["infinity"],
        envs=["CACHE_HOST=unit-cache"],
        networksAdvanced=[{"name": back, "aliases": ["unit-client"]}],
        stopSignal="SIGKILL",
        user="redis",
        workingDir="/tmp",
        hostname="unit-client-host",
        readOnly=True,
        tmpfs={"/scratch": "size=1m"},
        capabilities={"drops": ["NET_RAW"]},
        ulimits=[{"name": "nofile", "soft": 1024.0, "hard": 2048.0}],
        hosts=[{"host": "example.internal", "ip": "10.9.8.7"}],
        securityOpts=["no-new-privileges"],
        sysctls={"net.ipv4.ip_unprivileged_port_start": "0"},
        init=True,
        cpuShares=512.0,
        restart="on-failure",
        maxRetryCount=2.0,
    )
    resources = [
        _image(test_images),
        Resource(NETWORK, "front", {"name": front, "driver": "bridge", "ipamConfigs": [{"subnet": str(subnet)}]}, {}),
        Resource(NETWORK, "back", {"name": back, "driver": "bridge", "internal": True}, {}),
        Resource(VOLUME, "data", {"name": f"{session}-data"}, {}),
        client,
        cache,
    ]
    realizer = _realizer(docker_client, resources, session)
    try:
        realizer.realize()
        yield realizer, port, fixed_address
    finally:
        realizer.destroy()


@pytest.mark.slow
def test_container_fields_reach_the_engine(
    docker_client: docker.DockerClient, realized_pair: tuple[Realizer, int, str]
) -> None:
    realizer, port, fixed_address = realized_pair
    details = docker_client.api.inspect_container(realizer.realized.containers[f"{realizer.session}-cache"])
    host, config = details["HostConfig"], details["Config"]
    assert host["Memory"] == 64 * 1024 * 1024
    assert host["MemorySwap"] == 64 * 1024 * 1024
    assert host["NanoCpus"] == 500_000_000
    assert host["ShmSize"] == 32 * 1024 * 1024
    assert host["RestartPolicy"]["Name"] == "unless-stopped"
    assert host["LogConfig"] == {"Type": "local", "Config": {"max-size": "1m", "max-file": "2"}}
    assert host["PortBindings"] == {"6379/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    assert config["StopSignal"] == "SIGTERM"
    assert config["StopTimeout"] == 7
    assert config["Healthcheck"]["Interval"] == 10**9
    assert config["Healthcheck"]["StartPeriod"] == 5 * 10**9
    assert config["Labels"]["microstack.role"] == "cache"
    assert config["Labels"][SESSION_LABEL] == realizer.session
    assert details["State"]["Health"]["Status"] == "healthy"
    assert "unit-cache" in details["NetworkSettings"]["Networks"][f"{realizer.session}-back"]["Aliases"]
    assert details["NetworkSettings"]["Networks"][f"{realizer.session}-front"]["IPAddress"] == fixed_address


@pytest.mark.slow
def test_less_common_container_fields_reach_the_engine(
    docker_client: docker.DockerClient, realized_pair: tuple[Realizer, int, str]
) -> None:
    realizer, *_ = realized_pair
    details = docker_client.api.inspect_container(realizer.realized.containers[f"{realizer.session}-client"])
    host, config = details["HostConfig"], details["Config"]
    assert (config["Entrypoint"], config["Cmd"]) == (["sleep"], ["infinity"])
    assert (config["User"], config["WorkingDir"], config["Hostname"]) == ("redis", "/tmp", "unit-client-host")
    assert host["ReadonlyRootfs"] is True
    assert host["Tmpfs"] == {"/scratch": "size=1m"}
    assert host["CapDrop"] == ["NET_RAW"]
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]
    assert host["ExtraHosts"] == ["example.internal:10.9.8.7"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["Sysctls"] == {"net.ipv4.ip_unprivileged_port_start": "0"}
    assert host["Init"] is True
    assert host["CpuShares"] == 512
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert config["StopSignal"] == "SIGKILL"


@pytest.mark.slow
def test_uploads_are_root_owned_with_the_declared_mode(
    docker_client: docker.DockerClient, realized_pair: tuple[Realizer, int, str]
) -> None:
    realizer, *_ = realized_pair
    container = docker_client.containers.get(realizer.realized.containers[f"{realizer.session}-cache"])
    result = container.exec_run(
        ["stat", "-c", "%a %u", "/run/secrets/redis_password", "/usr/local/etc/redis/redis.conf"]
    )
    assert result.exit_code == 0
    assert result.output.decode().split("\n")[:2] == ["400 0", "444 0"]


@pytest.mark.slow
def test_uploaded_config_is_what_the_server_runs_with(realized_pair: tuple[Realizer, int, str]) -> None:
    _, port, _ = realized_pair
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(f"AUTH {PASSWORD}\r\nCONFIG GET appendonly\r\n".encode())
        reply = b""
        while b"appendonly\r\n$3\r\nyes" not in reply:
            chunk = connection.recv(4096)
            assert chunk, f"connection closed after {reply!r}"
            reply += chunk
    assert reply.startswith(b"+OK\r\n")


@pytest.mark.slow
def test_a_container_naming_an_alias_starts_after_it_and_reaches_it(
    docker_client: docker.DockerClient, realized_pair: tuple[Realizer, int, str]
) -> None:
    realizer, *_ = realized_pair
    cache, client = f"{realizer.session}-cache", f"{realizer.session}-client"
    assert realizer.levels() == [[cache], [client]]
    container = docker_client.containers.get(realizer.realized.containers[client])
    result = container.exec_run(["redis-cli", "-h", "unit-cache", "-a", PASSWORD, "--no-auth-warning", "ping"])
    assert result.output.strip() == b"PONG"


@pytest.mark.slow
def test_destroy_removes_everything_it_created(docker_client: docker.DockerClient, test_images: BuiltImages) -> None:
    session = f"unit-{uuid.uuid4().hex[:8]}"
    resources = [
        _image(test_images),
        Resource(NETWORK, "net", {"name": f"{session}-net", "driver": "bridge"}, {}),
        Resource(VOLUME, "vol", {"name": f"{session}-vol"}, {}),
        _container(f"{session}-c", test_images, networksAdvanced=[{"name": f"{session}-net"}]),
    ]
    realizer = _realizer(docker_client, resources, session)
    realized = realizer.realize()
    assert set(realized.networks) == {"net"}
    assert realized.volumes == {"vol": f"{session}-vol"}
    assert realized.images == {"redis-image": test_images.redis}
    label = {"label": f"{SESSION_LABEL}={session}"}
    (container,) = docker_client.api.containers(all=True, filters=label)
    # The redis image declares VOLUME /data: an anonymous volume the container owns.
    anonymous = {m["Name"] for m in docker_client.api.inspect_container(container["Id"])["Mounts"]}
    assert anonymous
    realizer.destroy()
    remaining = {v["Name"] for v in docker_client.api.volumes().get("Volumes") or []}
    assert not anonymous & remaining
    assert docker_client.api.containers(all=True, filters=label) == []
    assert docker_client.api.networks(filters=label) == []
    assert not docker_client.api.volumes(filters=label).get("Volumes")


@pytest.mark.slow
def test_only_objects_of_finished_sessions_are_swept(docker_client: docker.DockerClient) -> None:
    finished = subprocess.Popen(["true"])
    finished.wait()
    dead_pid = str(finished.pid)
    session = f"unit-{uuid.uuid4().hex[:8]}"
    names = {"ours": f"{session}-ours", "abandoned": f"{session}-abandoned"}
    owners = {"ours": str(os.getpid()), "abandoned": dead_pid}
    for role, name in names.items():
        docker_client.api.create_network(name, labels={SESSION_LABEL: session, OWNER_LABEL: owners[role]})
    try:
        remove_abandoned(docker_client)
        remaining = {n["Name"] for n in docker_client.api.networks(filters={"label": f"{SESSION_LABEL}={session}"})}
        assert remaining == {names["ours"]}
    finally:
        remove_labelled(docker_client, f"{SESSION_LABEL}={session}")


def _declared_image(platform: str | None = None) -> Resource:
    build: dict[str, Any] = {
        "context": "services",
        "dockerfile": "services/api/Dockerfile",
        "args": {"BASE_IMAGE": "base:1"},
    }
    if platform is not None:
        build["platform"] = platform
    return Resource(
        IMAGE,
        "api-image",
        {"imageName": "stack/api:abc", "skipPush": True, "buildOnPreview": False, "build": build},
        {"imageName": "stack/api:abc", "repoDigest": "stack/api:abc@sha256:0"},
    )


@pytest.mark.slow
def test_a_declared_image_is_built_from_its_context_and_used_by_containers(
    docker_client: docker.DockerClient, test_images: BuiltImages
) -> None:
    calls: list[tuple[str, Path, str, dict[str, str]]] = []

    def build(resource: Resource, context: Path, dockerfile: str, args: Any) -> str:
        calls.append((resource.name, context, dockerfile, dict(args)))
        return test_images.redis

    container = _container("api", test_images, image="stack/api:abc@sha256:0", networksAdvanced=[{"name": "n"}])
    realizer = Realizer(
        docker_client,
        Program(resources=[_declared_image(), container], outputs={}),
        session="unit-build",
        project_root=Path("/project"),
        build_image=build,
    )
    realizer._image(_declared_image())
    assert calls == [("api-image", Path("/project/services"), "api/Dockerfile", {"BASE_IMAGE": "base:1"})]
    assert realizer._container_spec(container).image == test_images.redis


@pytest.mark.slow
def test_an_image_for_another_platform_is_refused(docker_client: docker.DockerClient) -> None:
    realizer = _realizer(docker_client, [_declared_image("linux/s390x")], "unit-platform")
    with pytest.raises(RealizeError, match="linux/s390x"):
        realizer.realize()
