"""Run the microstack policy pack on resources given as JSON; print the findings as JSON.

This script runs inside the policy pack's own virtualenv (policy/.venv), where
pulumi-policy is installed; the tests in this folder run in the program's
environment and call it with `python run_policies.py MODE < resources.json`.

Input: {"resources": [{"type": ..., "name": ..., "inputs": {...}, "outputs": {...}}, ...]}
with camelCase property names, as the engine sends them. Resource policies
see a resource's inputs and stack policies its outputs (which, for Docker
resources, include the inputs), as in the engine; `outputs` defaults to
`inputs`.

Modes (`serve` answers requests of either, one JSON line each, for a session):
- `direct`: build ResourceValidationArgs / StackValidationArgs the way the
  analyzer server does (unknown-checking proxies over deserialized
  properties) and call every policy's `validate`, as pulumi-policy's own tests
  do. Prints {"violations": [{"policy", "resource", "message"}, ...]}.
- `grpc`: start the pack the way the Pulumi CLI does (`python -m pulumi.policy`
  on the policy folder), then ask it over gRPC for its policies and for
  Analyze/AnalyzeStack on the resources. Prints {"policies": {name: level},
  "violations": [...], "advisories": [...]}.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from inspect import isawaitable
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import unknown_checking_proxy

POLICY_DIR = Path(__file__).resolve().parents[2] / "policy"
PACK_START_TIMEOUT_SECONDS = 60


def urn_of(resource: dict[str, Any]) -> str:
    """A URN shaped like the engine's, so findings can be traced to a resource."""
    return f"urn:pulumi:test::microstack::{resource['type']}::{resource['name']}"


def _options() -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=False,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
    )


def _outputs(resource: dict[str, Any]) -> dict[str, Any]:
    return resource.get("outputs") or resource["inputs"]


def _proxied(props: dict[str, Any]) -> Any:
    # What the analyzer server does with a request's properties.
    return unknown_checking_proxy(deserialize_properties(props))


def _reporter(
    sink: list[dict[str, str]], policy_name: str, resource_name: str, urn_to_name: dict[str, str]
) -> Callable[..., None]:
    def report(message: str, urn: str | None = None) -> None:
        name = urn_to_name.get(urn or "", resource_name)
        sink.append({"policy": policy_name, "resource": name, "message": message})

    return report


def _settle(result: Any) -> None:
    if isawaitable(result):
        loop = asyncio.new_event_loop()
        loop.run_until_complete(result)
        loop.close()


def run_direct(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """Call each policy's validate on the resources, as the analyzer would."""
    sys.path.insert(0, str(POLICY_DIR))
    from microstack_policies import POLICIES

    urn_to_name = {urn_of(resource): resource["name"] for resource in resources}
    violations: list[dict[str, str]] = []

    for policy in POLICIES:
        if isinstance(policy, ResourceValidationPolicy):
            for resource in resources:
                args = ResourceValidationArgs(
                    resource["type"],
                    _proxied(resource["inputs"]),
                    urn_of(resource),
                    resource["name"],
                    _options(),
                    None,
                )
                _settle(policy.validate(args, _reporter(violations, policy.name, resource["name"], urn_to_name)))
        elif isinstance(policy, StackValidationPolicy):
            stack = [
                PolicyResource(
                    resource["type"],
                    _proxied(_outputs(resource)),
                    urn_of(resource),
                    resource["name"],
                    _options(),
                    None,
                    None,
                    [],
                    {},
                )
                for resource in resources
            ]
            _settle(policy.validate(StackValidationArgs(stack), _reporter(violations, policy.name, "", urn_to_name)))
    return {"violations": violations}


def _struct(props: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(props)
    return struct


def run_grpc(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """Serve the pack as the CLI does and query it over gRPC."""
    pack = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:0", str(POLICY_DIR)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port_line = pack.stdout.readline() if pack.stdout else ""
        if not port_line.strip().isdigit():
            pack.kill()
            _, stderr = pack.communicate(timeout=PACK_START_TIMEOUT_SECONDS)
            raise SystemExit(f"policy pack did not start: {port_line!r}\n{stderr}")
        with grpc.insecure_channel(f"127.0.0.1:{port_line.strip()}") as channel:
            grpc.channel_ready_future(channel).result(timeout=PACK_START_TIMEOUT_SECONDS)
            analyzer = analyzer_pb2_grpc.AnalyzerStub(channel)
            info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
            diagnostics: list[tuple[Any, str]] = []
            for resource in resources:
                request = analyzer_pb2.AnalyzeRequest(
                    type=resource["type"],
                    name=resource["name"],
                    urn=urn_of(resource),
                    properties=_struct(resource["inputs"]),
                )
                diagnostics.extend((d, resource["name"]) for d in analyzer.Analyze(request).diagnostics)
            stack_request = analyzer_pb2.AnalyzeStackRequest(
                resources=[
                    analyzer_pb2.AnalyzerResource(
                        type=resource["type"],
                        name=resource["name"],
                        urn=urn_of(resource),
                        properties=_struct(_outputs(resource)),
                    )
                    for resource in resources
                ]
            )
            diagnostics.extend((d, "") for d in analyzer.AnalyzeStack(stack_request).diagnostics)
    finally:
        pack.kill()
        pack.wait()

    urn_to_name = {urn_of(resource): resource["name"] for resource in resources}
    levels = {policy.name: analyzer_pb2.EnforcementLevel.Name(policy.enforcementLevel) for policy in info.policies}
    findings: dict[str, list[dict[str, str]]] = {"MANDATORY": [], "ADVISORY": []}
    for diagnostic, resource_name in diagnostics:
        level = analyzer_pb2.EnforcementLevel.Name(diagnostic.enforcementLevel)
        findings.setdefault(level, []).append(
            {
                "policy": diagnostic.policyName,
                "resource": urn_to_name.get(diagnostic.urn, resource_name),
                "message": diagnostic.message,
            }
        )
    return {
        "pack": json_format.MessageToDict(info)["name"],
        "policies": levels,
        "violations": findings["MANDATORY"],
        "advisories": findings["ADVISORY"],
    }


RUNNERS = {"direct": run_direct, "grpc": run_grpc}


def serve() -> None:
    """One request per stdin line ({"mode", "resources"}), one JSON answer per stdout line, until stdin closes.

    Lets the tests pay for this interpreter and pulumi-policy's imports once
    per session rather than once per check.
    """
    for line in sys.stdin:
        request = json.loads(line)
        print(json.dumps(RUNNERS[request["mode"]](request["resources"])), flush=True)


def main() -> None:
    """Read resources from stdin, run the chosen mode, print JSON to stdout; or `serve` requests line by line."""
    mode = sys.argv[1]
    if mode == "serve":
        serve()
        return
    resources = json.load(sys.stdin)["resources"]
    json.dump(RUNNERS[mode](resources), sys.stdout)


if __name__ == "__main__":
    main()
