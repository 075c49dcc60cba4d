"""Images for the system test, built on this machine without any registry.

Nothing can be pulled here, so every image starts from a Debian bookworm
root file system made by debootstrap from the machine's own Debian mirror.
On top of it sit a Python base (the `serviceBaseImage` the services'
Dockerfiles build FROM) and stand-ins for the official postgres, redis,
nginx and haproxy images made from Debian's packages.

Each image is tagged with a digest of everything that goes into it (its
Dockerfile directory, build arguments, the parent's tag, files copied from
this machine), and a build is skipped when that tag exists: the second run
of the suite builds nothing unless an input changed.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.errors import APIError, BuildError, ImageNotFound

REPOSITORY = "microstack-test"
IMAGES_DIR = Path(__file__).parent / "dockerfiles"
DEBIAN_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
SUITE = "bookworm"
STAND_INS = ("postgres", "redis", "nginx", "haproxy")

# Files added to the debootstrapped tree before import. policy-rc.d stops
# package scripts from starting daemons inside a build, as in Debian's
# official images.
_ROOTFS_FILES: Mapping[str, tuple[str, int]] = {
    "usr/sbin/policy-rc.d": ("#!/bin/sh\nexit 101\n", 0o755),
}
# pip options that are safe to carry into a container: index locations and
# network behaviour. Paths on this machine (find-links, constraints,
# file:// indexes) mean nothing inside an image and are left out.
_PIP_OPTIONS = {
    "index-url": "index-url",
    "extra-index-url": "extra-index-url",
    "trusted-host": "trusted-host",
    "timeout": "timeout",
    "default-timeout": "timeout",
    "retries": "retries",
}
_URL_OPTIONS = {"index-url", "extra-index-url"}


@dataclass(frozen=True)
class BuiltImages:
    """Tags of the images one test session uses."""

    debian: str
    python: str
    postgres: str
    redis: str
    nginx: str
    haproxy: str


def debian_mirror(sources: Path = DEBIAN_SOURCES) -> str:
    """The first `URIs:` of the machine's deb822 sources: the mirror it trusts."""
    if not sources.is_file():
        raise RuntimeError(
            f"{sources} does not exist; the system test builds its images from the Debian mirror named there "
            "(Debian 12 writes it on installation)"
        )
    for line in sources.read_text().splitlines():
        if line.startswith("URIs:"):
            return line.split(":", 1)[1].split()[0]
    raise RuntimeError(f"{sources} has no 'URIs:' line; cannot tell which Debian mirror to use")


def _digest(*parts: bytes) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(len(part).to_bytes(8, "big"))
        hasher.update(part)
    return hasher.hexdigest()[:16]


def tree_digest(root: Path) -> str:
    """Digest of every file's relative path, mode and content under `root`."""
    parts: list[bytes] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        parts.append(str(path.relative_to(root)).encode())
        parts.append(oct(path.stat().st_mode & 0o777).encode())
        parts.append(path.read_bytes())
    return _digest(*parts)


def image_exists(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
    except ImageNotFound:
        return False
    return True


def build_debian_base(client: docker.DockerClient, debootstrap: str) -> str:
    """`debootstrap --variant=minbase bookworm` imported as an image.

    The machine's deb822 sources replace debootstrap's single-suite
    sources.list, so images get the same updates and security suites (and
    package versions) as the machine's own binaries the other test levels use.
    """
    mirror = debian_mirror()
    sources = DEBIAN_SOURCES.read_bytes()
    extras = repr(sorted(_ROOTFS_FILES.items())).encode()
    tag = f"{REPOSITORY}/debian:{SUITE}-" + _digest(b"minbase", SUITE.encode(), mirror.encode(), sources, extras)
    if image_exists(client, tag):
        return tag
    with tempfile.TemporaryDirectory(prefix="microstack-rootfs-") as work:
        rootfs = Path(work) / "rootfs"
        _run([debootstrap, "--variant=minbase", SUITE, str(rootfs), mirror], "debootstrap")
        (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
        (rootfs / "etc/apt/sources.list.d/debian.sources").write_bytes(sources)
        for relative, (content, mode) in _ROOTFS_FILES.items():
            target = rootfs / relative
            target.write_text(content)
            target.chmod(mode)
        for leftover in (rootfs / "var/cache/apt/archives").glob("*.deb"):
            leftover.unlink()
        shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
        archive = Path(work) / "rootfs.tar"
        _run(["tar", "-C", str(rootfs), "-cf", str(archive), "."], "tar")
        repository, _, version = tag.partition(":")
        client.api.import_image_from_file(str(archive), repository=repository, tag=version)
    if not image_exists(client, tag):
        raise RuntimeError(f"docker import of the debootstrapped tree did not produce {tag}")
    drop_stale_tags(client, tag)
    return tag


def _run(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"{what} failed with status {result.returncode}: {' '.join(argv)}\n"
            f"{(result.stdout + result.stderr)[-4000:]}"
        )


def pip_conf_for_images() -> str:
    """A pip.conf carrying this machine's index and network settings.

    Read through `pip config list`, which merges files and PIP_* variables
    the way pip itself does.
    """
    listing = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    options: dict[str, str] = {}
    for line in listing.splitlines():
        key, sep, raw = line.partition("=")
        if not sep:
            continue
        option = _PIP_OPTIONS.get(key.rsplit(".", 1)[-1])
        if option is None:
            continue
        value = raw.strip().strip("'\"")
        if option in _URL_OPTIONS:
            value = " ".join(u for u in value.split() if u.startswith(("http://", "https://")))
        if value:
            options[option] = value
    lines = ["[global]", f"cert = {HOST_CA_BUNDLE}"]
    lines += [f"{key} = {value}" for key, value in sorted(options.items())]
    return "\n".join(lines) + "\n"


def build_context_image(
    client: docker.DockerClient,
    name: str,
    context: Path,
    *,
    dockerfile: str = "Dockerfile",
    buildargs: Mapping[str, str] | None = None,
    extra_files: Mapping[str, bytes] | None = None,
    tag: str | None = None,
) -> str:
    """Build `context` (plus `extra_files`) unless an image of the same inputs exists.

    The classic builder is used (what the SDK drives), so Dockerfiles must
    not rely on BuildKit-only syntax such as `RUN --mount`.
    """
    args = dict(sorted((buildargs or {}).items()))
    files = dict(sorted((extra_files or {}).items()))
    digest = _digest(
        tree_digest(context).encode(),
        dockerfile.encode(),
        repr(args).encode(),
        *(name.encode() + content for name, content in files.items()),
    )
    tag = tag or f"{REPOSITORY}/{name}:{digest}"
    if ":" not in tag.rsplit("/", 1)[-1]:
        tag = f"{tag}:{digest}"
    if image_exists(client, tag):
        return tag
    with tempfile.TemporaryDirectory(prefix=f"microstack-{name}-") as work:
        staged = Path(work) / "context"
        shutil.copytree(context, staged, symlinks=True)
        for relative, content in files.items():
            (staged / relative).write_bytes(content)
        try:
            client.images.build(
                path=str(staged),
                dockerfile=dockerfile,
                tag=tag,
                buildargs=args,
                rm=True,
                forcerm=True,
                pull=False,
            )
        except BuildError as error:
            log = "".join(str(chunk.get("stream", chunk.get("error", ""))) for chunk in error.build_log)
            raise RuntimeError(f"building {name} from {context} failed: {error}\n{log[-6000:]}") from error
    drop_stale_tags(client, tag)
    return tag


def drop_stale_tags(client: docker.DockerClient, keep: str) -> None:
    """Untag earlier builds of the same repository, so changed inputs do not pile up images.

    Layers still used by the new image stay; an image a container still uses
    keeps its tag until the next build.
    """
    repository = keep.rsplit(":", 1)[0]
    for image in client.images.list(name=repository):
        for stale in image.tags:
            if stale != keep and stale.rsplit(":", 1)[0] == repository:
                try:
                    client.images.remove(stale)
                except APIError:
                    continue


def build_test_images(debootstrap: str) -> BuiltImages:
    """Build (or reuse) every image the session needs, stand-ins in parallel."""
    client = docker.from_env(timeout=900)
    try:
        debian = build_debian_base(client, debootstrap)
    finally:
        client.close()
    base_args = {"DEBIAN_IMAGE": debian}

    def build(name: str) -> str:
        worker = docker.from_env(timeout=900)
        try:
            extra: dict[str, bytes] = {}
            if name == "python":
                extra = {
                    "ca-certificates.crt": HOST_CA_BUNDLE.read_bytes(),
                    "pip.conf": pip_conf_for_images().encode(),
                }
            return build_context_image(worker, name, IMAGES_DIR / name, buildargs=base_args, extra_files=extra)
        finally:
            worker.close()

    names = ("python", *STAND_INS)
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        tags = dict(zip(names, pool.map(build, names), strict=True))
    return BuiltImages(debian=debian, **tags)
