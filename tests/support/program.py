"""Run the whole Pulumi program under Pulumi's mocks and record what it declares.

`run_program(config)` evaluates `__main__.py` exactly as `pulumi preview`
would (the same config keys, the same stack name) and returns every resource
it registered with its inputs as the provider would receive them (camelCase
keys; secrets unwrapped), plus the stack outputs with their secretness.

Used by the unit tests, the policy tests and the system test, which realizes
the recorded resources in a real Docker engine.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import runpy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import run_pulumi_func

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = ROOT / "__main__.py"
CONFIG_DIR = ROOT / "configs"
PROJECT = "microstack"


@dataclass(frozen=True)
class Resource:
    """One registered resource: its type token, logical name, inputs and (mock) outputs."""

    type: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    parent: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Output:
    value: Any
    secret: bool


@dataclass
class Program:
    """What one evaluation of the program declared."""

    resources: list[Resource]
    outputs: dict[str, Output]

    def of_type(self, type_token: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_token]

    def named(self, name: str) -> Resource:
        matches = [r for r in self.resources if r.name == name]
        if len(matches) != 1:
            raise KeyError(f"expected one resource named {name!r}, found {len(matches)}")
        return matches[0]

    @property
    def containers(self) -> list[Resource]:
        return self.of_type(CONTAINER)

    def container(self, name: str) -> Resource:
        return next(r for r in self.containers if r.name == name)

    def gate_of(self, container: Resource) -> Resource:
        """The readiness gate waiting on `container` (its input is the container's mock ID)."""
        gates = [g for g in self.of_type(READY_GATE) if g.inputs.get("containerId") == mock_id(container.name)]
        if len(gates) != 1:
            raise KeyError(f"expected one gate for {container.name}, found {len(gates)}")
        return gates[0]

    def secret_values(self) -> set[str]:
        """Every value the program generated or was given as a secret."""
        found = {r.outputs["result"] for r in self.of_type(RANDOM_PASSWORD)}
        found |= {r.outputs["privateKeyPem"] for r in self.of_type(TLS_PRIVATE_KEY)}
        return {v for v in found if v}


CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
IMAGE = "docker:index/image:Image"
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"
TLS_PRIVATE_KEY = "tls:index/privateKey:PrivateKey"
TLS_SELF_SIGNED_CERT = "tls:index/selfSignedCert:SelfSignedCert"
# Swarm platform: services, and the secrets and configs they mount as files.
SERVICE = "docker:index/service:Service"
SECRET = "docker:index/secret:Secret"
SERVICE_CONFIG = "docker:index/serviceConfig:ServiceConfig"
# components/gate.py: the dynamic resource that waits for a container to be ready.
READY_GATE = "pulumi-python:dynamic/microstack:ReadyGate"


_SECRET_SIG = "4dabf18193072939515e22adb298388d"
_SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270"


def unwrap_secrets(value: Any) -> Any:
    """Strip Pulumi's secret markers from mock inputs, leaving the plain values."""
    if isinstance(value, dict):
        if value.get(_SECRET_SIG) == _SECRET_VALUE:
            return unwrap_secrets(value.get("value"))
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    return value


def mock_id(name: str) -> str:
    """The ID RecordingMocks gives the resource `name`: what its dependents receive as its `id`."""
    return f"{name}-id"


def _fake_digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class RecordingMocks(pulumi.runtime.Mocks):
    """Fakes the few outputs the program reads, and records every registration."""

    def __init__(self) -> None:
        self.resources: list[Resource] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        inputs = unwrap_secrets(dict(args.inputs))
        outputs = dict(inputs)
        if args.typ == RANDOM_PASSWORD:
            # Deterministic, recognisable and unique per resource, so tests can
            # search for it anywhere a secret must not appear.
            length = int(inputs.get("length", 32))
            outputs["result"] = ("mocksecret" + hashlib.sha256(args.name.encode()).hexdigest())[:length]
        elif args.typ == REMOTE_IMAGE:
            outputs["imageId"] = f"{inputs['name']}@{_fake_digest(inputs['name'])}"
            outputs["repoDigest"] = outputs["imageId"]
        elif args.typ == IMAGE:
            outputs["imageName"] = inputs.get("imageName", args.name)
            outputs["repoDigest"] = f"{outputs['imageName']}@{_fake_digest(args.name)}"
        elif args.typ == TLS_PRIVATE_KEY:
            outputs["privateKeyPem"] = f"-----BEGIN PRIVATE KEY-----\nmockkey{args.name}\n-----END PRIVATE KEY-----\n"
            outputs["publicKeyPem"] = "-----BEGIN PUBLIC KEY-----\nmock\n-----END PUBLIC KEY-----\n"
        elif args.typ == TLS_SELF_SIGNED_CERT:
            outputs["certPem"] = f"-----BEGIN CERTIFICATE-----\nmockcert{args.name}\n-----END CERTIFICATE-----\n"
        elif args.typ == NETWORK:
            outputs.setdefault("name", args.name)
        self.resources.append(Resource(args.typ, args.name, inputs, outputs))
        return mock_id(args.name), outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None


def stack_file_config(stack: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The `microstack:` values and the provider (`docker:`) values of configs/Pulumi.<stack>.yaml."""
    document = yaml.safe_load((CONFIG_DIR / f"Pulumi.{stack}.yaml").read_text()) or {}
    values = document.get("config", {}) or {}
    project: dict[str, Any] = {}
    other: dict[str, Any] = {}
    for key, value in values.items():
        namespace, _, name = key.partition(":")
        (project if namespace == PROJECT else other)[name if namespace == PROJECT else key] = value
    return project, other


def _unwrap_secure(value: Any) -> Any:
    # A `secure:` value in a stack file is ciphertext; under mocks we stand in a
    # plain placeholder so the program sees the key as set.
    if isinstance(value, dict) and set(value) == {"secure"}:
        return "mock-secure-value"
    return value


def run_program(
    config: Mapping[str, Any] | None = None,
    *,
    stack: str = "dev",
    secrets: Mapping[str, str] | None = None,
    provider_config: Mapping[str, Any] | None = None,
    transformations: Sequence[pulumi.ResourceTransformation] = (),
) -> Program:
    """Evaluate the program with `microstack:<key>` = config[key] and the given secret keys.

    `transformations` are registered as stack transformations, as a user's
    own program could, to change what a test cannot set through config.
    Raises whatever the program raises (e.g. pulumi.RunError for invalid config).
    """
    mocks = RecordingMocks()
    pulumi_settings.reset_options(project=PROJECT, stack=stack)
    pulumi_settings.set_root_resource(None)  # type: ignore[arg-type]
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False)
        # Mocks do not see resource options, nor which resources' outputs an
        # input came from; a stack transformation (run in this process,
        # before registration) records both.
        options: dict[str, dict[str, Any]] = {}
        props: dict[str, Any] = {}
        for transformation in transformations:
            pulumi.runtime.register_stack_transformation(transformation)
        pulumi.runtime.register_stack_transformation(_option_recorder(options, props))
        all_config: dict[str, str] = {}
        for key, value in (config or {}).items():
            all_config[f"{PROJECT}:{key}"] = json.dumps(_unwrap_secure(value))
        for key, value in (provider_config or {}).items():
            value = _unwrap_secure(value)
            all_config[key] = value if isinstance(value, str) else json.dumps(value)
        secret_keys = []
        for key, value in (secrets or {}).items():
            all_config[f"{PROJECT}:{key}"] = value
            secret_keys.append(f"{PROJECT}:{key}")
        pulumi.runtime.set_all_config(all_config, secret_keys)
        loop.run_until_complete(run_pulumi_func(_execute_program))
        outputs = loop.run_until_complete(_stack_outputs())
        for key, value in props.items():
            options[key]["property_dependencies"] = loop.run_until_complete(_property_dependencies(value))
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    resources = [
        Resource(r.type, r.name, r.inputs, r.outputs, options=options.get(f"{r.type}::{r.name}", {}))
        for r in mocks.resources
    ]
    return Program(resources=resources, outputs=outputs)


def _execute_program() -> None:
    # run_pulumi_func awaits what its function returns; run_path returns the
    # program's globals, which are not for it.
    runpy.run_path(str(PROGRAM), run_name="__main__")


def _option_recorder(options: dict[str, dict[str, Any]], props: dict[str, Any]) -> Any:
    def record(args: pulumi.ResourceTransformationArgs) -> None:
        opts = args.opts
        props[f"{args.type_}::{args.name}"] = args.props
        options[f"{args.type_}::{args.name}"] = {
            "retain_on_delete": bool(opts.retain_on_delete),
            "protect": bool(opts.protect),
            "delete_before_replace": bool(opts.delete_before_replace),
            "ignore_changes": list(opts.ignore_changes or []),
            "replace_on_changes": list(opts.replace_on_changes or []),
            "depends_on": opts.depends_on,
            "parent": getattr(opts.parent, "_name", None) if opts.parent is not None else None,
        }
        return None

    return record


async def _property_dependencies(props: Any) -> list[str]:
    """Names of the resources whose outputs the inputs `props` take, as the engine's property dependencies."""
    resources = await pulumi.Output.from_input(props).resources()
    return sorted({name for name in (getattr(r, "_name", None) for r in resources) if name})


async def _stack_outputs() -> dict[str, Output]:
    root = pulumi_settings.get_root_resource()
    result: dict[str, Output] = {}
    for name, value in getattr(root, "outputs", {}).items():
        output = pulumi.Output.from_input(value)
        result[name] = Output(value=await output.future(), secret=await output.is_secret())
    return result


def run_stack_file(
    stack: str, *, secrets: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> Program:
    """Evaluate the program with configs/Pulumi.<stack>.yaml, as `pulumi preview -s <stack>` would.

    `secrets` stands in for values a user sets with `pulumi config set --secret`;
    `overrides` replaces whole top-level keys of the stack file.
    """
    project, provider = stack_file_config(stack)
    secret_values = {k: "mock-secure-value" for k, v in project.items() if isinstance(v, dict) and set(v) == {"secure"}}
    secret_values.update(secrets or {})
    plain = {k: v for k, v in project.items() if k not in secret_values}
    plain.update(overrides or {})
    return run_program(plain, stack=stack, secrets=secret_values, provider_config=provider)
