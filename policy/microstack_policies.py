"""The rules of the microstack policy pack, apart from the pack that serves them.

`__main__.py` hands `POLICIES` to a `PolicyPack`, which starts the analyzer
server the Pulumi CLI talks to; keeping the rules here lets tests call them
directly, the way pulumi-policy's own tests do.

Two facts about the engine shape the code:
- During `pulumi preview` some values are unknown (outputs of resources not
  yet created). A rule skips what it cannot know instead of failing the
  preview; stack rules run again after `pulumi up` with every output known.
- Resource rules see inputs; stack rules see outputs, which for Docker
  resources include the inputs and the resource's `id`. Property names are
  camelCase, as in the schema.

A Swarm service (`docker.Service`) is held to every rule a container is, read
from where its spec keeps the value (`taskSpec.containerSpec.…`). A few rules
are the service's own: the values the provider reads back differently from
how they were declared, which would replace or update a service on every
`pulumi up` (see components/platform/swarm.py).
"""

from __future__ import annotations

import base64
import binascii
import re
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
SERVICE: Final = "docker:index/service:Service"
SECRET: Final = "docker:index/secret:Secret"
SERVICE_CONFIG: Final = "docker:index/serviceConfig:ServiceConfig"
IMAGE: Final = "docker:index/image:Image"
REMOTE_IMAGE: Final = "docker:index/remoteImage:RemoteImage"
NETWORK: Final = "docker:index/network:Network"
RANDOM_PASSWORD: Final = "random:index/randomPassword:RandomPassword"

# A one-shot container (e.g. the setup job that sets Kibana's password) says
# so with this label; it runs once and exits, so it needs neither a restart
# policy nor a healthcheck. Every other rule still applies to it.
ROLE_LABEL: Final = "microstack.role"
# A Swarm service on an internal network that publishes a port says why with
# this label, and how to limit who reaches it (Swarm binds every interface of
# the node, moby/moby#26696): backend-isolation then leaves it to the advisory
# published-on-every-interface, which reports it on every preview.
EXPOSURE_LABEL: Final = "microstack.exposure"
JOB_ROLE: Final = "job"

RESTART_POLICIES: Final = frozenset({"always", "unless-stopped", "on-failure"})
# A Swarm task's restart conditions that bring it back ("none" does not).
SERVICE_RESTART_CONDITIONS: Final = frozenset({"any", "on-failure"})

# Where a service's spec keeps what a container has at its top level.
SERVICE_CONTAINER_SPEC: Final = ("taskSpec", "containerSpec")
SERVICE_MEMORY: Final = ("taskSpec", "resources", "limits", "memoryBytes")
SERVICE_RESTART_CONDITION: Final = ("taskSpec", "restartPolicy", "condition")
SERVICE_UPDATE_POLICIES: Final = ("updateConfig", "rollbackConfig")

# The provider reads max_failure_ratio back with one decimal
# (flattenServiceUpdateOrRollbackConfig: FormatFloat(…, 'f', 1, 64)).
FAILURE_RATIO: Final = re.compile(r"(0\.[0-9]|1\.0)")
DIGEST_MARKER: Final = "@sha256:"

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


def lookup_path(props: Mapping[str, Any], path: Sequence[str]) -> Any:
    """Follow `path` through nested objects: None when a step is absent, UNKNOWN when one is unknown."""
    value: Any = props
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = lookup(value, key)
        if value is UNKNOWN:
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


def _kind(resource_type: str) -> str:
    return "service" if resource_type == SERVICE else "container"


def _validate_memory_limit(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Without a limit one leaking container can push the whole host into the OOM killer."""
    if args.resource_type == CONTAINER:
        memory, setting, unit = lookup(args.props, "memory"), "`memory`", "MB"
    elif args.resource_type == SERVICE:
        memory, setting, unit = (
            lookup_path(args.props, SERVICE_MEMORY),
            "`taskSpec.resources.limits.memoryBytes`",
            "bytes",
        )
    else:
        return
    if memory is UNKNOWN:
        return
    kind = _kind(args.resource_type)
    if memory is None:
        report_violation(
            f"{kind} {args.name!r} has no memory limit; set {setting} ({unit}) so one {kind} cannot starve the host",
            None,
        )
    elif not isinstance(memory, (int, float)) or memory <= 0:
        report_violation(
            f"{kind} {args.name!r} has memory limit {memory!r}; {setting} must be a positive number of {unit}",
            None,
        )


def _healthcheck_of(args: ResourceValidationArgs) -> tuple[Any, str] | None:
    """A long-running workload's healthcheck and where it is set; None for what needs none.

    A service gets no job exemption: a replicated service restarts a finished
    task forever, so one-shot work runs as a container (swarm.py, run()).
    """
    if args.resource_type == CONTAINER and not is_job(args.props):
        return lookup(args.props, "healthcheck"), "`healthcheck.tests`"
    if args.resource_type == SERVICE:
        return lookup_path(args.props, (*SERVICE_CONTAINER_SPEC, "healthcheck")), (
            "`taskSpec.containerSpec.healthcheck.tests`"
        )
    return None


def _validate_healthcheck(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Rolling updates wait for `healthy`; without a check Docker calls a container healthy at once."""
    found = _healthcheck_of(args)
    if found is None:
        return
    healthcheck, setting = found
    if healthcheck is UNKNOWN:
        return
    tests = [] if not isinstance(healthcheck, Mapping) else list(known_items(lookup(healthcheck, "tests")))
    # An image's own HEALTHCHECK is invisible to the engine, so it is required
    # here explicitly; ["NONE"] is Docker's way of switching a check off.
    if not tests or tests[0] == "NONE":
        report_violation(
            f"{_kind(args.resource_type)} {args.name!r} has no healthcheck; set {setting} (e.g. "
            "['CMD', 'python', '-c', '...']) so Docker and the proxy know when it is ready "
            f"(a one-shot job container is exempt with the label {ROLE_LABEL}={JOB_ROLE})",
            None,
        )


def _validate_restart_policy(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """A crashed or rebooted service must come back without an operator."""
    if args.resource_type == CONTAINER and not is_job(args.props):
        restart = lookup(args.props, "restart")
        if restart is UNKNOWN or restart in RESTART_POLICIES:
            return
        report_violation(
            f"container {args.name!r} has restart policy {restart or 'no'!r}; use one of "
            f"{sorted(RESTART_POLICIES)} so it comes back after a crash or a reboot "
            f"(a one-shot job is exempt with the label {ROLE_LABEL}={JOB_ROLE})",
            None,
        )
    elif args.resource_type == SERVICE:
        # Swarm would default an absent condition to "any"; the rule asks for it
        # declared, as for a container, so the program says how its tasks restart.
        condition = lookup_path(args.props, SERVICE_RESTART_CONDITION)
        if condition is UNKNOWN or condition in SERVICE_RESTART_CONDITIONS:
            return
        report_violation(
            f"service {args.name!r} has restart condition {condition!r}; set "
            f"`taskSpec.restartPolicy.condition` to one of {sorted(SERVICE_RESTART_CONDITIONS)} "
            "so Swarm replaces a task that crashed",
            None,
        )


def _image_reference(resource_type: str, props: Mapping[str, Any]) -> Any:
    """The image a resource names, None for a resource that names none."""
    if resource_type == REMOTE_IMAGE:
        return lookup(props, "name")
    if resource_type == CONTAINER:
        return lookup(props, "image")
    if resource_type == SERVICE:
        return lookup_path(props, (*SERVICE_CONTAINER_SPEC, "image"))
    return None


def _validate_image_pinned(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """A moving tag deploys whatever was pushed last, and two hosts may run different code."""
    reference = _image_reference(args.resource_type, args.props)
    # A container's image is usually another resource's output (an image ID);
    # only a literal reference can be judged here.
    if not isinstance(reference, str):
        return
    problem = image_pin_problem(reference)
    if problem is not None:
        report_violation(f"{args.name!r}: {problem}", None)


def _validate_failure_ratio(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """The provider reads max_failure_ratio back with one decimal; any other spelling is an update on every `up`."""
    if args.resource_type != SERVICE:
        return
    for policy in SERVICE_UPDATE_POLICIES:
        ratio = lookup_path(args.props, (policy, "maxFailureRatio"))
        # Absent, the provider's default "0.0" is declared for us.
        if ratio is None or ratio is UNKNOWN:
            continue
        if not isinstance(ratio, str) or not FAILURE_RATIO.fullmatch(ratio):
            report_violation(
                f"service {args.name!r}: {policy}.maxFailureRatio is {ratio!r}; the provider reads it back "
                "with exactly one decimal, so anything else shows as a change on every `pulumi up`; "
                "use '0.0', '0.1', … '1.0' (components/provider_values.py, failure_ratio)",
                None,
            )


def _of_type(resources: Sequence[PolicyResource], resource_type: str) -> Iterator[PolicyResource]:
    return (resource for resource in resources if resource.resource_type == resource_type)


def _network_refs(resources: Sequence[PolicyResource], *, internal_only: bool) -> set[str]:
    """The names and IDs networks are known by (a container names a network, a service gives its ID)."""
    refs = set()
    for network in _of_type(resources, NETWORK):
        if internal_only and lookup(network.props, "internal") is not True:
            continue
        for key in ("name", "id"):
            ref = lookup(network.props, key)
            if isinstance(ref, str) and ref:
                refs.add(ref)
    return refs


def _attached_networks(resource: PolicyResource) -> set[Any]:
    """What a container's `networksAdvanced` or a service's `taskSpec.networksAdvanceds` name."""
    path = ("taskSpec", "networksAdvanceds") if resource.resource_type == SERVICE else ("networksAdvanced",)
    networks = lookup_path(resource.props, path)
    return {lookup(network, "name") for network in known_items(networks) if isinstance(network, Mapping)}


def _published_ports(resource: PolicyResource) -> Iterator[tuple[Any, str]]:
    """(port, address it is reachable on) of every port a container or service publishes beyond loopback."""
    if resource.resource_type == CONTAINER:
        for port in known_items(lookup(resource.props, "ports")):
            if not isinstance(port, Mapping):
                continue
            # Docker binds 0.0.0.0 when no address is given.
            address = lookup(port, "ip") or "0.0.0.0"
            if address is UNKNOWN or address in LOOPBACK_ADDRESSES:
                continue
            yield lookup(port, "internal"), address
    else:
        # Swarm publishes on every interface, in host mode as in ingress mode:
        # a service port cannot be bound to one address (moby/moby#26696).
        for port in known_items(lookup_path(resource.props, ("endpointSpec", "ports"))):
            if isinstance(port, Mapping):
                yield lookup(port, "targetPort"), "every interface of the node"


def _exposure(resource: PolicyResource) -> str | None:
    """The reason a Swarm service gives for publishing from an internal network, if any."""
    if resource.resource_type != SERVICE:
        return None
    for label in known_items(lookup(resource.props, "labels")):
        if isinstance(label, Mapping) and lookup(label, "label") == EXPOSURE_LABEL:
            value = lookup(label, "value")
            return value if isinstance(value, str) and value.strip() else None
    return None


def _validate_backend_isolation(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """A stack rule: a container cannot tell on its own whether a network it joins is internal."""
    internal_networks = _network_refs(args.resources, internal_only=True)
    for resource in args.resources:
        if resource.resource_type not in (CONTAINER, SERVICE):
            continue
        internal = sorted(_attached_networks(resource) & internal_networks)
        if not internal or _exposure(resource):
            continue
        kind = _kind(resource.resource_type)
        for port, address in _published_ports(resource):
            report_violation(
                f"{kind} {resource.name!r} is on the internal network(s) {internal} and publishes "
                f"port {port} on {address}; an internal-network {kind} must not be reachable from "
                "outside the host (publish on 127.0.0.1 or not at all; a Swarm service cannot bind "
                "127.0.0.1, so it publishes nothing)",
                resource.urn,
            )


def _validate_exposure(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Advisory: every Swarm service that publishes from an internal network, with the reason it gives."""
    internal_networks = _network_refs(args.resources, internal_only=True)
    for resource in args.resources:
        reason = _exposure(resource)
        if reason is None or not (_attached_networks(resource) & internal_networks):
            continue
        ports = sorted(str(port) for port, _address in _published_ports(resource))
        if ports:
            report_violation(
                f"service {resource.name!r} publishes port(s) {', '.join(ports)} on every interface of its node "
                f"from an internal network: {reason}",
                resource.urn,
            )


def _generated_secrets(resources: Sequence[PolicyResource]) -> list[str]:
    secrets = []
    for resource in _of_type(resources, RANDOM_PASSWORD):
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


def _env(resource: PolicyResource) -> Iterator[tuple[str, Any]]:
    """(name, value) of each known env var: a container's `NAME=value` list, a service's map."""
    if resource.resource_type == CONTAINER:
        for entry in known_items(lookup(resource.props, "envs")):
            if isinstance(entry, str):
                name, _, value = entry.partition("=")
                yield name, value
    elif resource.resource_type == SERVICE:
        env = lookup_path(resource.props, (*SERVICE_CONTAINER_SPEC, "env"))
        if isinstance(env, Mapping):
            for name in list(env):
                yield name, lookup(env, name)


def _validate_no_secrets_in_env(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """A stack rule: only the stack shows the generated passwords next to the containers' env."""
    secrets = _generated_secrets(args.resources)
    for resource in args.resources:
        kind = _kind(resource.resource_type)
        for name, value in _env(resource):
            if isinstance(value, str) and any(secret in value for secret in secrets):
                report_violation(
                    f"{kind} {resource.name!r}: env var {name} carries a generated password; "
                    "`docker inspect` shows every env var, so upload the secret as a file and pass "
                    f"its path in {name}{SECRET_FILE_SUFFIX}",
                    resource.urn,
                )
            elif secret_like_name(name):
                report_violation(
                    f"{kind} {resource.name!r}: env var {name} looks like a credential; pass it as a "
                    f"file and its path in {name}{SECRET_FILE_SUFFIX} instead",
                    resource.urn,
                )


def _decoded(data: Any) -> str:
    """A Swarm secret's or config's `data` (base64) as text; empty when it is not base64."""
    if not isinstance(data, str):
        return ""
    try:
        return base64.b64decode(data, validate=True).decode(errors="replace")
    except (binascii.Error, ValueError):
        return ""


def _validate_swarm_secrets(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """A stack rule: secrets reach services only as Swarm secrets of this stack.

    A secret a service mounts must be one the stack manages (or its rotation,
    create-then-delete, does not reach the service), and a generated password
    must not travel in a Swarm config, which any `docker config inspect` prints.
    """
    secret_ids = set()
    ids_complete = True
    for secret in _of_type(args.resources, SECRET):
        secret_id = lookup(secret.props, "id")
        if isinstance(secret_id, str):
            secret_ids.add(secret_id)
        else:
            # Not created yet (preview): a service's reference to it cannot be judged.
            ids_complete = False
    for service in _of_type(args.resources, SERVICE):
        mounted = known_items(lookup_path(service.props, (*SERVICE_CONTAINER_SPEC, "secrets")))
        for item in mounted:
            if not isinstance(item, Mapping):
                continue
            secret_id = lookup(item, "secretId")
            if not isinstance(secret_id, str) or secret_id in secret_ids or not ids_complete:
                continue
            report_violation(
                f"service {service.name!r} mounts the secret {secret_id!r} at {lookup(item, 'fileName')!r}, "
                "which is not a docker.Secret of this stack; declare the secret in the program and pass "
                "its `id` as `secretId`",
                service.urn,
            )
    generated = _generated_secrets(args.resources)
    for config in _of_type(args.resources, SERVICE_CONFIG):
        if any(secret in _decoded(lookup(config.props, "data")) for secret in generated):
            report_violation(
                f"Swarm config {config.name!r} carries a generated password; configs are stored and "
                "shown in clear (`docker config inspect`), so put the file in a docker.Secret instead",
                config.urn,
            )


def _validate_networks_by_id(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """A stack rule: a service joins networks by ID, since Swarm stores IDs whatever the spec said.

    `networks_advanced.name` is ForceNew and read back as the network's ID
    (flattenTaskNetworksAdvanced), so a name replaces the service on every
    `pulumi up` (kreuzwerker/terraform-provider-docker#648).
    """
    names = {
        name for network in _of_type(args.resources, NETWORK) if isinstance(name := lookup(network.props, "name"), str)
    }
    for service in _of_type(args.resources, SERVICE):
        for ref in sorted(ref for ref in _attached_networks(service) if ref in names):
            report_violation(
                f"service {service.name!r} joins the network {ref!r} by name; Swarm reads it back as the "
                "network's ID, so the service would be replaced on every `pulumi up` "
                "(kreuzwerker/terraform-provider-docker#648); pass the network's `id`",
                service.urn,
            )


def repository_of(reference: str) -> str:
    """An image reference without its digest and tag (a colon before the last slash is a registry port)."""
    name = reference.partition("@")[0]
    head, _, last = name.rpartition("/")
    last = last.partition(":")[0]
    return f"{head}/{last}" if head else last


def _local_repositories(resources: Sequence[PolicyResource]) -> set[str] | None:
    """Repositories of images built on the Docker host and never pushed; None while one is unknown."""
    local = set()
    for image in _of_type(resources, IMAGE):
        skip_push = lookup(image.props, "skipPush")
        if skip_push is False or skip_push is None:
            continue
        name = lookup(image.props, "imageName")
        if skip_push is UNKNOWN or not isinstance(name, str):
            return None
        local.add(repository_of(name))
    return local


def _validate_service_image_digest(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """A stack rule: a service names a registry image by digest.

    When Swarm creates a service it resolves the tag in the registry and the
    provider reads `repo:tag@sha256:…` back; its diff suppression for an added
    digest (suppressIfSHAwasAdded) understands only `host/name` references
    (splitImageName), so a tag alone updates the service on every `pulumi up`,
    and nodes pulling at different times may run different bytes. An image
    built on the manager and never pushed (`docker.Image` with `skipPush`) has
    no registry to resolve it and no digest to give: its tag is its pin, which
    is why the rule needs the stack and is not a resource rule.
    """
    local = _local_repositories(args.resources)
    if local is None:
        return
    for service in _of_type(args.resources, SERVICE):
        reference = _image_reference(SERVICE, service.props)
        if not isinstance(reference, str) or DIGEST_MARKER in reference or repository_of(reference) in local:
            continue
        report_violation(
            f"service {service.name!r} runs {reference!r} without a digest; Swarm pins it to the registry's "
            "digest and the provider reads that back, so it would change on every `pulumi up` and nodes may "
            "run different images; name it as `repo:tag@sha256:…` (a RemoteImage's or Image's `repoDigest`)",
            service.urn,
        )


POLICIES: Final = [
    ResourceValidationPolicy(
        name="container-memory-limit",
        description="Every container and service has a positive memory limit.",
        validate=_validate_memory_limit,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name="container-healthcheck",
        description="Every long-running container, and every service, declares a healthcheck with a test.",
        validate=_validate_healthcheck,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name="container-restart-policy",
        description="Every long-running container restarts after a crash (restart is not 'no'), "
        "every service's tasks too (condition 'any' or 'on-failure').",
        validate=_validate_restart_policy,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name="image-pinned",
        description="Images are pinned by a version tag or a digest, never 'latest' or no tag.",
        validate=_validate_image_pinned,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name="service-failure-ratio",
        description="A service's update and rollback maxFailureRatio have exactly one decimal, as read back.",
        validate=_validate_failure_ratio,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    StackValidationPolicy(
        name="backend-isolation",
        description="Containers and services on an internal network publish no host ports beyond loopback.",
        validate=_validate_backend_isolation,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    StackValidationPolicy(
        name="published-on-every-interface",
        description=f"A Swarm service on an internal network publishing with a `{EXPOSURE_LABEL}` reason (advisory).",
        validate=_validate_exposure,
        enforcement_level=EnforcementLevel.ADVISORY,
    ),
    StackValidationPolicy(
        name="no-secrets-in-env",
        description="No generated password and no credential-named variable in a container's or service's env.",
        validate=_validate_no_secrets_in_env,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    StackValidationPolicy(
        name="swarm-secrets",
        description="Services mount only the stack's Swarm secrets; no generated password in a Swarm config.",
        validate=_validate_swarm_secrets,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    StackValidationPolicy(
        name="service-networks-by-id",
        description="Services join networks by ID, never by name (read back as IDs: replaced on every up).",
        validate=_validate_networks_by_id,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    StackValidationPolicy(
        name="service-image-digest",
        description="A service names a registry image by digest; only an unpushed local build goes by tag.",
        validate=_validate_service_image_digest,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
]
