"""More Docker nodes on this one machine, for tests of a Swarm of several nodes.

A `DockerNode` is a dockerd (with the containerd it starts) in a network
namespace of its own, joined to the others by a `Link`: a bridge in a
namespace of its own that this machine's root namespace is attached to as
well, so tests reach published ports at a node's address. Each node has its
own data root, exec root, socket, hostname (a UTS namespace) and mount
namespace: nothing it does touches the session engine (engine.py), its data
root or the root namespace's iptables, and a node's mounts go away with its
processes. `two_node_swarm()` makes a manager and a worker of two such nodes.

`DockerNode.stop_engine()` models a node that fails as a host does when it
crashes or loses power: every process of the node is killed at once (dockerd,
containerd, the shims, the containers' processes) and its network interface
disappears, so the rest of the swarm hears nothing more from it. A graceful
stop would let dockerd stop its containers first, which is a maintenance
window (drain), not a failure. `start_engine()` boots it again on the same
data root with an empty exec root, as /run is after a reboot.

Nodes start with no images and have no route to a registry or the Debian
mirror: `node_image()` imports a debootstrapped tree with python3 into one
engine and `copy_image()` carries images from engine to engine.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import docker
import pytest
from docker.errors import DockerException

from components.config import SwarmConfig
from tests.support.binaries import REQUIRE_ENV, binaries_required, require_binary
from tests.system.images import DEBIAN_SOURCES, REPOSITORY, SUITE, debian_mirror, image_exists

# Link subnets are /24s taken from here; the root namespace gets the first address of its link.
LINK_RANGE = ipaddress.IPv4Network("10.213.0.0/16")
SWARM_PORT = 2377
_NETNS_DIR = Path("/run/netns")
_CGROUP_ROOT = Path("/sys/fs/cgroup")
# A fresh dockerd initialises its data root and iptables chains in a few seconds.
_START_TIMEOUT_SECONDS = 60
# Test containers stop on SIGTERM at once; a dockerd still running after this is killed.
_STOP_TIMEOUT_SECONDS = 30
_READY_TIMEOUT_SECONDS = 60
# The packages debootstrap adds to minbase for node_image(), and what is removed from the tree to halve it.
_NODE_IMAGE_PACKAGES = ("python3",)
_NODE_IMAGE_PRUNE = (
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/locale",
    "usr/share/man",
)


def require_node_support() -> dict[str, str]:
    """The binaries nodes need, by name; skip the test when not root or one is missing (fail under REQUIRE_ENV)."""
    if os.geteuid() != 0:
        message = "Docker nodes in network namespaces need root"
        if binaries_required():
            pytest.fail(f"{message}; {REQUIRE_ENV} is set, so this is a failure")
        pytest.skip(message)
    return {name: require_binary(name) for name in ("ip", "nsenter", "unshare", "dockerd", "debootstrap")}


def _run(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed with status {result.returncode}: {result.stderr.strip()}")
    return result.stdout


class Link:
    """A layer-2 segment: a bridge in namespace `ms-<token>-link`, the root namespace attached at `host_address`.

    Interface names carry the link's random token, so links of test sessions
    running side by side cannot clash; the subnet is a /24 of LINK_RANGE
    that no address of the root namespace is in.
    """

    def __init__(self, ip: str) -> None:
        self.ip = ip
        self.token = secrets.token_hex(3)
        self.netns = f"ms-{self.token}-link"
        self.subnet = _free_link_subnet(ip)
        self.host_address = str(self.subnet.network_address + 1)
        self._next_host = 2
        self._ports = 0

    def create(self) -> None:
        _run([self.ip, "netns", "add", self.netns])
        _run([self.ip, "-n", self.netns, "link", "add", "ms-br0", "type", "bridge"])
        _run([self.ip, "-n", self.netns, "link", "set", "ms-br0", "up"])
        root_end = f"ms{self.token}h"
        _run([self.ip, "link", "add", root_end, "type", "veth", "peer", "name", "port0", "netns", self.netns])
        _run([self.ip, "-n", self.netns, "link", "set", "port0", "master", "ms-br0", "up"])
        _run([self.ip, "addr", "add", f"{self.host_address}/{self.subnet.prefixlen}", "dev", root_end])
        _run([self.ip, "link", "set", root_end, "up"])

    def remove(self) -> None:
        """Deleting the namespace deletes the bridge and its ports, and with them their other ends."""
        subprocess.run([self.ip, "netns", "delete", self.netns], capture_output=True, check=False)

    def allocate(self) -> str:
        address = str(self.subnet.network_address + self._next_host)
        self._next_host += 1
        return address

    def plug(self, netns: str, address: str) -> None:
        """Give `netns` an `eth0` with `address` on this link (and bring its loopback up)."""
        self._ports += 1
        port = f"port{self._ports}"
        _run([self.ip, "-n", self.netns, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", netns])
        _run([self.ip, "-n", self.netns, "link", "set", port, "master", "ms-br0", "up"])
        _run([self.ip, "-n", netns, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0"])
        _run([self.ip, "-n", netns, "link", "set", "eth0", "up"])
        _run([self.ip, "-n", netns, "link", "set", "lo", "up"])


def _free_link_subnet(ip: str) -> ipaddress.IPv4Network:
    in_use = [
        ipaddress.ip_interface(f"{address['local']}/{address['prefixlen']}").network
        for interface in json.loads(_run([ip, "-json", "-4", "addr", "show"]))
        for address in interface.get("addr_info", [])
    ]
    free = [subnet for subnet in LINK_RANGE.subnets(new_prefix=24) if not any(subnet.overlaps(o) for o in in_use)]
    if free:
        # Chosen at random, so that sessions starting side by side are unlikely to take the same one.
        return secrets.choice(free)
    raise RuntimeError(f"every /24 of {LINK_RANGE} is in use on this machine; remove leftover ms* interfaces")


@contextmanager
def link(ip: str) -> Iterator[Link]:
    """A new Link, removed when the block ends."""
    segment = Link(ip)
    try:
        segment.create()
        yield segment
    finally:
        segment.remove()


class DockerNode:
    """A Docker engine in a network namespace of its own on `link`, with `address` on it.

    Use it as a context manager: entering starts the engine, leaving stops it
    (gracefully, then by force) and removes its namespace, cgroups and
    directories. `client` talks to its socket; `log` is its daemon's output.
    """

    def __init__(self, segment: Link, name: str, binaries: dict[str, str]) -> None:
        self.link = segment
        self.name = name
        self.address = segment.allocate()
        self.netns = f"ms-{segment.token}-{name}"
        self._binaries = binaries
        self.workdir = Path(tempfile.mkdtemp(prefix=f"ms-{segment.token}-{name}-"))
        self.socket = self.workdir / "docker.sock"
        self.log = self.workdir / "dockerd.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._client: docker.DockerClient | None = None

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            raise RuntimeError(f"the engine of node {self.name} is not running (start_engine() starts it)")
        return self._client

    def __enter__(self) -> DockerNode:
        try:
            self.start_engine()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def start_engine(self) -> None:
        """Boot the node: a new namespace on the link, then dockerd on the kept data root; wait until it answers."""
        if self._process is not None and self._process.poll() is None:
            raise RuntimeError(f"the engine of node {self.name} is already running")
        _run([self._binaries["ip"], "netns", "add", self.netns])
        self.link.plug(self.netns, self.address)
        shutil.rmtree(self.workdir / "exec", ignore_errors=True)
        argv = [
            self._binaries["nsenter"],
            f"--net={_NETNS_DIR / self.netns}",
            # A mount namespace of its own: the node's overlay and namespace
            # mounts never appear on the machine, and vanish with its processes.
            self._binaries["unshare"],
            "--mount",
            "--propagation",
            "slave",
            "--uts",
            "--",
            "sh",
            "-c",
            'hostname "$0" && exec "$@"',
            self.name,
            self._binaries["dockerd"],
            f"--data-root={self.workdir / 'data'}",
            f"--exec-root={self.workdir / 'exec'}",
            f"--pidfile={self.workdir / 'docker.pid'}",
            f"--host=unix://{self.socket}",
            f"--cgroup-parent={self.netns}",
        ]
        with self.log.open("ab") as log_file:
            # nsenter, unshare and sh exec one another: the child is dockerd itself.
            self._process = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        self._client = self._wait_for_engine(self._process)

    def stop_engine(self) -> None:
        """Fail the node as a crashed host fails: kill all its processes at once and take its interface away."""
        self._close_client()
        self._kill_processes()
        subprocess.run([self._binaries["ip"], "netns", "delete", self.netns], capture_output=True, check=False)
        self._process = None

    def close(self) -> None:
        """Stop dockerd gracefully (it stops containerd), kill what is left, remove everything the node made."""
        self._close_client()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=_STOP_TIMEOUT_SECONDS)
        self._kill_processes()
        subprocess.run([self._binaries["ip"], "netns", "delete", self.netns], capture_output=True, check=False)
        self._remove_cgroups()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _wait_for_engine(self, process: subprocess.Popen[bytes]) -> docker.DockerClient:
        deadline = time.monotonic() + _START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"dockerd of node {self.name} exited with status {process.returncode} while starting:\n"
                    f"{self.log.read_text(errors='replace')[-4000:]}"
                )
            # The socket of a crashed engine stays behind until the new one replaces it.
            with contextlib.suppress(DockerException, OSError):
                return docker.DockerClient(base_url=f"unix://{self.socket}", timeout=300)
            time.sleep(0.3)
        raise RuntimeError(
            f"dockerd of node {self.name} did not answer within {_START_TIMEOUT_SECONDS}s:\n"
            f"{self.log.read_text(errors='replace')[-4000:]}"
        )

    def _kill_processes(self) -> None:
        """SIGKILL every process in the node's namespace and their descendants (the containers), until none is left."""
        for _ in range(20):
            doomed = _processes_of(self.netns)
            if not doomed:
                break
            for pid in doomed:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=5)

    def _remove_cgroups(self) -> None:
        """Killed containers leave their (empty) cgroups under the node's --cgroup-parent; remove those trees."""
        for top in _CGROUP_ROOT.glob(f"*/{self.netns}"):
            for directory in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    directory.rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()


def _processes_of(netns: str) -> set[int]:
    """PIDs whose network namespace is `netns`, and all their descendants (containers have namespaces of their own)."""
    try:
        inode = (_NETNS_DIR / netns).stat().st_ino
    except FileNotFoundError:
        inode = -1
    members: set[int] = set()
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            if (entry / "ns/net").stat().st_ino == inode:
                members.add(pid)
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(pid)
    found, todo = set(members), list(members)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


@dataclass(frozen=True)
class TwoNodeSwarm:
    """A manager and a worker; the manager carries the program's data and edge labels."""

    manager: DockerNode
    worker: DockerNode

    def node_id(self, node: DockerNode) -> str:
        """The swarm's ID of `node` (looked up by the hostname the node's engine reports)."""
        for found in self.manager.client.nodes.list():
            if found.attrs["Description"]["Hostname"] == node.name:
                return str(found.id)
        raise LookupError(f"node {node.name} is not in the swarm")

    def node_state(self, node: DockerNode) -> str:
        """`ready`, `down`, `unknown` or `disconnected`, as the manager sees it."""
        return str(self.manager.client.nodes.get(self.node_id(node)).attrs["Status"]["State"])


def manager_labels() -> dict[str, str]:
    """The node labels the program's placement constraints select (components/config.py SwarmConfig)."""
    defaults = SwarmConfig()
    return {defaults.data_label: "true", defaults.edge_label: "true"}


@contextmanager
def two_node_swarm(binaries: dict[str, str]) -> Iterator[TwoNodeSwarm]:
    """A manager and a worker node on a new link, both Ready; everything removed when the block ends.

    Nobody leaves the swarm at the end: it exists only in the nodes' data
    roots, which are deleted.
    """
    with (
        link(binaries["ip"]) as segment,
        DockerNode(segment, "manager", binaries) as manager,
        DockerNode(segment, "worker", binaries) as worker,
    ):
        manager.client.swarm.init(advertise_addr=manager.address, listen_addr=f"{manager.address}:{SWARM_PORT}")
        cluster = TwoNodeSwarm(manager, worker)
        node = manager.client.nodes.get(cluster.node_id(manager))
        spec = dict(node.attrs["Spec"])
        spec["Labels"] = {**(spec.get("Labels") or {}), **manager_labels()}
        node.update(spec)
        worker.client.swarm.join(
            remote_addrs=[f"{manager.address}:{SWARM_PORT}"],
            join_token=manager.client.swarm.attrs["JoinTokens"]["Worker"],
            advertise_addr=worker.address,
            listen_addr=f"{worker.address}:{SWARM_PORT}",
        )
        wait_for_state(cluster, worker, "ready")
        yield cluster


def wait_for_state(
    cluster: TwoNodeSwarm, node: DockerNode, state: str, timeout: float = _READY_TIMEOUT_SECONDS
) -> float:
    """Wait until the manager sees `node` in `state`; return the seconds that took."""
    started = time.monotonic()
    seen = ""
    while time.monotonic() - started < timeout:
        with contextlib.suppress(LookupError):
            seen = cluster.node_state(node)
            if seen == state:
                return time.monotonic() - started
        time.sleep(0.2)
    raise TimeoutError(f"node {node.name} was not {state} after {timeout:.0f}s (last seen: {seen or 'not in swarm'})")


def copy_image(source: docker.DockerClient, target: docker.DockerClient, tag: str) -> None:
    """Copy image `tag` from one engine to another without a registry: `docker save` streamed into `docker load`."""
    # Named by `tag` itself: an image built from the same inputs under another name has several tags.
    target.images.load(source.images.get(tag).save(named=tag))
    if not image_exists(target, tag):
        raise RuntimeError(f"loading {tag} into the target engine did not produce that tag")


def node_image_cache() -> Path:
    """Where node_image() keeps its root file system between runs."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "microstack-test"


def node_image(client: docker.DockerClient, debootstrap: str) -> str:
    """Debian bookworm minbase with python3, imported into `client`; returns its tag.

    images.py builds its Python image with apt-get in a Dockerfile, which a
    node cannot do: its namespace has no route to the mirror. So debootstrap
    includes python3 here, on the machine. Its tree (as a tar, about 130 MB)
    is cached in node_image_cache() under a digest of the mirror, the
    sources and the packages, because debootstrap takes one and a half
    minutes and a node's engine starts empty every time.
    """
    mirror = debian_mirror()
    hasher = hashlib.sha256()
    for part in (mirror, DEBIAN_SOURCES.read_text(), SUITE, *_NODE_IMAGE_PACKAGES, *_NODE_IMAGE_PRUNE):
        hasher.update(part.encode() + b"\0")
    digest = hasher.hexdigest()[:16]
    tag = f"{REPOSITORY}/node-python:{SUITE}-{digest}"
    if image_exists(client, tag):
        return tag
    archive = node_image_cache() / f"node-python-{digest}.tar"
    if not archive.is_file():
        _debootstrap_archive(debootstrap, mirror, archive)
    repository, _, version = tag.partition(":")
    client.api.import_image_from_file(str(archive), repository=repository, tag=version)
    if not image_exists(client, tag):
        raise RuntimeError(f"docker import of {archive} did not produce {tag}")
    return tag


def _debootstrap_archive(debootstrap: str, mirror: str, archive: Path) -> None:
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="microstack-node-rootfs-") as work:
        rootfs = Path(work) / "rootfs"
        include = ",".join(_NODE_IMAGE_PACKAGES)
        _run([debootstrap, "--variant=minbase", f"--include={include}", SUITE, str(rootfs), mirror])
        for relative in _NODE_IMAGE_PRUNE:
            shutil.rmtree(rootfs / relative, ignore_errors=True)
        partial = archive.with_suffix(f".{os.getpid()}.partial")
        _run(["tar", "-C", str(rootfs), "-cf", str(partial), "."])
        # Another session may finish the same archive first; either copy is the same tree.
        partial.replace(archive)
