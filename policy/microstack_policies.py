"""The rules of the microstack policy pack, apart from the pack that serves them.

`__main__.py` hands `POLICIES` to a `PolicyPack`, which starts the analyzer
server the Pulumi CLI talks to; keeping the rules here lets tests call them
directly, the way pulumi-policy's own tests do.

Two facts about the engine shape the code:
- During `pulumi preview` some values are unknown (outputs of resources not
  yet created). A rule skips what it cannot know instead of failing the
  preview; stack rules run again after `pulumi up` with every output known.
- Resource rules see inputs; stack rules see outputs, which for Docker
  resources include the inputs. Property names are camelCase, as in the schema.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from pulumi_policy import (
    EnforcementLevel,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import (
    UNKNOWN_ARRAY_VALUE,
    UNKNOWN_BOOLEAN_VALUE,
    UNKNOWN_NUMBER_VALUE,
    UNKNOWN_OBJECT_VALUE,
    UNKNOWN_STRING_VALUE,
    UnknownValueError,
)

CONTAINER: Final = "docker:index/container:Container"
REMOTE_IMAGE: Final = "docker:index/remoteImage:RemoteImage"
NETWORK: Final = "docker:index/network:Network"
RANDOM_PASSWORD: Final = "random:index/randomPassword:RandomPassword"

# A one-shot container (e.g. the setup job that sets Kibana's password) says
# so with this label; it runs once and exits, so it needs neither a restart
# policy nor a healthcheck. Every other rule still applies to it.
ROLE_LABEL: Final = "microstack.role"
JOB_ROLE: Final = "job"

RESTART_POLICIES: Final = frozenset({"always", "unless-stopped", "on-failure"})

# Parts of an env var name that say its value is a credential. KEY counts only
# as a whole word (API_KEY, JWT_SIGNING_KEY), not inside one (KEYSPACE). A name
# ending in _FILE carries the path of a secret file, which is what we want.
SECRET_NAME_PARTS: Final = ("PASSWORD", "PASSWD", "SECRET", "TOKEN")
SECRET_NAME_WORD: Final = "KEY"
SECRET_FILE_SUFFIX: Final = "_FILE"

LOOPBACK_ADDRESSES: Final = frozenset({"127.0.0.1", "::1", "localhost"})

_UNKNOWN_SENTINELS: Final = frozenset(
    {
        UNKNOWN_ARRAY_VALUE,
        UNKNOWN_BOOLEAN_VALUE,
        UNKNOWN_NUMBER_VALUE,
        UNKNOWN_OBJECT_VALUE,
        UNKNOWN_STRING_VALUE,
    }
)


class _Unknown:
    """The value of a property that `pulumi preview` cannot know yet."""


UNKNOWN: Final = _Unknown()


def lookup(props: Mapping[str, Any], key: str) -> Any:
    """Return `props[key]`, None when absent, or UNKNOWN during preview.

    The engine hands stack rules proxies that raise on unknown values and
    resource rules plain sentinel strings; both come out as UNKNOWN here.
    """
    try:
        value = props.get(key)
    except UnknownValueError:
        return UNKNOWN
    if isinstance(value, str) and value in _UNKNOWN_SENTINELS:
        return UNKNOWN
    return value


def known_items(values: Any) -> Iterator[Any]:
    """Yield the known elements of a list property; nothing when it is unknown."""
    if not isinstance(values, Sequence) or isinstance(values, str):
        return
    for index in range(len(values)):
        try:
            item = values[index]
        except UnknownValueError:
            continue
        if isinstance(item, str) and item in _UNKNOWN_SENTINELS:
            continue
        yield item


def is_job(props: Mapping[str, Any]) -> bool:
    """Whether a container carries the one-shot job label."""
    for label in known_items(lookup(props, "labels")):
        if isinstance(label, Mapping) and (lookup(label, "label") == ROLE_LABEL and lookup(label, "value") == JOB_ROLE):
            return True
    return False


def image_pin_problem(reference: str) -> str | None:
    """Say why an image reference is not pinned, or None when it is.

    An image ID (`sha256:...`) and a digest (`name@sha256:...`) are immutable;
    a tag other than `latest` is pinned by convention. A colon before the last
    slash belongs to a registry port (`registry:5000/app`), not to a tag.
    """
    if reference.startswith("sha256:"):
        return None
    name, _, digest = reference.partition("@")
    if digest:
        return None
    last_component = name.rsplit("/", 1)[-1]
    if ":" not in last_component:
        return f"image {reference!r} has no tag, so Docker pulls 'latest'; pin a version tag or a digest"
    tag = last_component.rsplit(":", 1)[1]
    if tag == "latest":
        return f"image {reference!r} uses the moving tag 'latest'; pin a version tag or a digest"
    return None


def _validate_memory_limit(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Without a limit one leaking container can push the whole host into the OOM killer."""
    if args.resource_type != CONTAINER:
        return
    memory = lookup(args.props, "memory")
    if memory is UNKNOWN:
        return
    if memory is None:
        report_violation(
            f"container {args.name!r} has no memory limit; set `memory` (MB) so one container cannot starve the host",
            None,
        )
    elif not isinstance(memory, (int, float)) or memory <= 0:
        report_violation(
            f"container {args.name!r} has memory limit {memory!r}; it must be a positive number of MB",
            None,
        )


def _validate_healthcheck(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Rolling updates wait for `healthy`; without a check Docker calls a container healthy at once."""
    if args.resource_type != CONTAINER or is_job(args.props):
        return
    healthcheck = lookup(args.props, "healthcheck")
    if healthcheck is UNKNOWN:
        return
    tests = [] if not isinstance(healthcheck, Mapping) else list(known_items(lookup(healthcheck, "tests")))
    # An image's own HEALTHCHECK is invisible to the engine, so it is required
    # here explicitly; ["NONE"] is Docker's way of switching a check off.
    if not tests or tests[0] == "NONE":
        report_violation(
            f"container {args.name!r} has no healthcheck; set `healthcheck.tests` (e.g. "
            "['CMD', 'python', '-c', '...']) so Docker and the proxy know when it is ready "
            f"(a one-shot job is exempt with the label {ROLE_LABEL}={JOB_ROLE})",
            None,
        )


def _validate_restart_policy(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """A crashed or rebooted service must come back without an operator."""
    if args.resource_type != CONTAINER or is_job(args.props):
        return
    restart = lookup(args.props, "restart")
    if restart is UNKNOWN:
        return
    if restart not in RESTART_POLICIES:
        report_violation(
            f"container {args.name!r} has restart policy {restart or 'no'!r}; use one of "
            f"{sorted(RESTART_POLICIES)} so it comes back after a crash or a reboot "
            f"(a one-shot job is exempt with the label {ROLE_LABEL}={JOB_ROLE})",
            None,
        )


def _validate_image_pinned(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """A moving tag deploys whatever was pushed last, and two hosts may run different code."""
    key = {REMOTE_IMAGE: "name", CONTAINER: "image"}.get(args.resource_type)
    if key is None:
        return
    reference = lookup(args.props, key)
    # A container's image is usually another resource's output (an image ID);
    # only a literal reference can be judged here.
    if not isinstance(reference, str):
        return
    problem = image_pin_problem(reference)
    if problem is not None:
        report_violation(f"{args.name!r}: {problem}", None)


def _internal_network_names(resources: Sequence[PolicyResource]) -> set[str]:
    names = set()
    for resource in resources:
        if resource.resource_type == NETWORK and lookup(resource.props, "internal") is True:
            name = lookup(resource.props, "name")
            if isinstance(name, str):
                names.add(name)
    return names


def _validate_backend_isolation(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """A stack rule: a container cannot tell on its own whether a network it joins is internal."""
    internal_networks = _internal_network_names(args.resources)
    for resource in args.resources:
        if resource.resource_type != CONTAINER:
            continue
        attached = {
            lookup(network, "name")
            for network in known_items(lookup(resource.props, "networksAdvanced"))
            if isinstance(network, Mapping)
        }
        internal = sorted(attached & internal_networks)
        if not internal:
            continue
        for port in known_items(lookup(resource.props, "ports")):
            if not isinstance(port, Mapping):
                continue
            # Docker binds 0.0.0.0 when no address is given.
            address = lookup(port, "ip") or "0.0.0.0"
            if address is UNKNOWN or address in LOOPBACK_ADDRESSES:
                continue
            report_violation(
                f"container {resource.name!r} is on the internal network(s) {internal} and publishes "
                f"port {lookup(port, 'internal')} on {address}; an internal-network container must not "
                "be reachable from outside the host (publish on 127.0.0.1 or not at all)",
                resource.urn,
            )


def _generated_secrets(resources: Sequence[PolicyResource]) -> list[str]:
    secrets = []
    for resource in resources:
        if resource.resource_type == RANDOM_PASSWORD:
            result = lookup(resource.props, "result")
            if isinstance(result, str) and result:
                secrets.append(result)
    return secrets


def secret_like_name(name: str) -> bool:
    """Whether an env var name says its value is a credential (and is not a *_FILE path)."""
    upper = name.upper()
    if upper.endswith(SECRET_FILE_SUFFIX):
        return False
    return SECRET_NAME_WORD in upper.split("_") or any(part in upper for part in SECRET_NAME_PARTS)


def _validate_no_secrets_in_env(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """A stack rule: only the stack shows the generated passwords next to the containers' env."""
    secrets = _generated_secrets(args.resources)
    for resource in args.resources:
        if resource.resource_type != CONTAINER:
            continue
        for entry in known_items(lookup(resource.props, "envs")):
            if not isinstance(entry, str):
                continue
            name, _, value = entry.partition("=")
            if any(secret in value for secret in secrets):
                report_violation(
                    f"container {resource.name!r}: env var {name} carries a generated password; "
                    "`docker inspect` shows every env var, so upload the secret as a file and pass "
                    f"its path in {name}{SECRET_FILE_SUFFIX}",
                    resource.urn,
                )
            elif secret_like_name(name):
                report_violation(
                    f"container {resource.name!r}: env var {name} looks like a credential; pass it as a "
                    f"file and its path in {name}{SECRET_FILE_SUFFIX} instead",
                    resource.urn,
                )


POLICIES: Final = [
    ResourceValidationPolicy(
        name="container-memory-limit",
        description="Every container has a positive memory limit.",
        validate=_validate_memory_limit,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name="container-healthcheck",
        description="Every long-running container declares a healthcheck with a test.",
        validate=_validate_healthcheck,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name="container-restart-policy",
        description="Every long-running container restarts after a crash (restart is not 'no').",
        validate=_validate_restart_policy,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name="image-pinned",
        description="Images are pinned by a version tag or a digest, never 'latest' or no tag.",
        validate=_validate_image_pinned,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    StackValidationPolicy(
        name="backend-isolation",
        description="Containers on an internal network publish no host ports beyond loopback.",
        validate=_validate_backend_isolation,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    StackValidationPolicy(
        name="no-secrets-in-env",
        description="No generated password and no credential-named variable in a container's env.",
        validate=_validate_no_secrets_in_env,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
]
