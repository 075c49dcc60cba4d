"""Images the stack builds itself: the services, and Postgres with pgBackRest."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

import pulumi
import pulumi_docker as docker

from components.common import pulled_image
from components.config import RegistryConfig
from components.platform.workload import Image


def source_digest(roots: Iterable[Path]) -> str:
    """A short digest of every source file under `roots`: the image tag changes exactly when the code does."""
    digest = hashlib.sha256()
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            if "__pycache__" in path.parts or path.suffix in {".pyc", ".pyo"} or ".egg-info" in str(path):
                continue
            digest.update(str(path.relative_to(root.parent)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def built_image(
    parent: pulumi.Resource,
    name: str,
    *,
    repository: str,
    tag: str,
    context: str,
    dockerfile: str,
    args: dict[str, str],
    registry: RegistryConfig | None,
    registry_password: pulumi.Input[str] | None,
    platform: str,
) -> Image:
    """Build `context` as `repository:tag` (pushed when there is a registry) and name the result both ways.

    `tag` must change exactly when the image's inputs do (a digest of them):
    it is what a registry and the platforms see.
    """
    image = docker.Image(
        f"{name}-image",
        image_name=f"{repository}:{tag}",
        # The provider diffs a digest of the build context; a
        # <Dockerfile>.dockerignore narrows it to what the image copies, so an
        # edit elsewhere does not rebuild (pulumi-docker v4.11
        # provider/provider.go, hashContext and getIgnorePatterns:
        # <Dockerfile>.dockerignore is preferred). The platform is pinned:
        # left out, it is the deploying machine's architecture, and deploying
        # from an arm64 laptop and an amd64 CI runner in turn would rebuild,
        # and replace, every time.
        build=docker.DockerBuildArgs(context=context, dockerfile=dockerfile, args=args, platform=platform),
        # Without a registry the image is built on the Docker host the
        # provider talks to, which is where the containers run.
        skip_push=registry is None,
        registry=docker.RegistryArgs(server=registry.server, username=registry.username, password=registry_password)
        if registry
        else None,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    # Containers name their image by ID: the provider reads a container's
    # image back as the engine's image ID, so a tag there would show as a
    # change on every preview and replace every replica. Looking the built
    # image up (pulled by digest when pushed, so every host runs the same
    # bytes) gives that ID, and a new ID exactly when the source changes.
    # Services (Swarm) name it by digest for the same reason: the
    # provider reads a service's image back as `repo:tag@sha256:…`.
    # Without a registry there is no digest; the tag, a digest of the
    # source, is then the pin (one node only: config validation).
    reference = image.repo_digest if registry else image.image_name
    return Image(local_id=pulled_image(parent, f"{name}-built", reference).image_id, pinned=reference)
