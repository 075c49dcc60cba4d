"""One view of what runs, whether the program declared containers or Swarm services.

The invariants (limits, health, restart, isolation, secrets as files) are the
same on both platforms; this module reads them out of either resource type so
that one test checks both graphs. Field names follow the provider's inputs
(camelCase), as recorded under mocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from components.common import LABEL_ROLE, ROLE_JOB
from tests.support.program import CONTAINER, NETWORK, SERVICE, Program, Resource
from tests.support.readback_service import parse_go_duration

_MIB = 1024 * 1024


@dataclass(frozen=True)
class Published:
    port: int
    host_ip: str | None
    """None: every interface of the node (Swarm's host mode)."""


@dataclass(frozen=True)
class WorkloadView:
    resource: Resource
    role: str
    memory_mb: float
    cpus: float
    health_test: list[str]
    restart: str
    stop_seconds: int
    networks: set[str] = field(default_factory=set)
    """Network resource names (`networks-backend`), resolved from names or IDs."""
    ports: list[Published] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    secret_files: set[str] = field(default_factory=set)
    """Files that carry a generated secret: uploads on containers, Swarm secrets on services."""
    replicas: int = 1

    @property
    def is_job(self) -> bool:
        return self.role == ROLE_JOB


def _label(labels: list[dict[str, str]], key: str) -> str:
    return next((item["value"] for item in labels if item["label"] == key), "")


def workloads(program: Program) -> list[WorkloadView]:
    """Every container and service of the program, as one view."""
    networks = program.of_type(NETWORK)
    by_docker_name = {n.inputs["name"]: n.name for n in networks}
    by_id = {n.outputs.get("id", f"{n.name}-id"): n.name for n in networks}
    secrets = program.secret_values()
    views = []
    for container in program.of_type(CONTAINER):
        inputs = container.inputs
        views.append(
            WorkloadView(
                resource=container,
                role=_label(inputs.get("labels", []), LABEL_ROLE),
                memory_mb=inputs.get("memory", 0),
                cpus=float(inputs.get("cpus", 0)),
                health_test=list(inputs.get("healthcheck", {}).get("tests", [])),
                restart=inputs.get("restart", ""),
                stop_seconds=inputs.get("stopTimeout", 0),
                networks={by_docker_name.get(n["name"], n["name"]) for n in inputs.get("networksAdvanced", [])},
                ports=[Published(p["external"], p.get("ip")) for p in inputs.get("ports", [])],
                env=dict(e.split("=", 1) for e in inputs.get("envs", [])),
                secret_files={
                    u["file"] for u in inputs.get("uploads", []) if any(v in str(u["content"]) for v in secrets)
                },
            )
        )
    for service in program.of_type(SERVICE):
        inputs = service.inputs
        task = inputs["taskSpec"]
        spec = task["containerSpec"]
        limits = task.get("resources", {}).get("limits", {})
        restart = task.get("restartPolicy", {}).get("condition", "")
        views.append(
            WorkloadView(
                resource=service,
                role=_label(inputs.get("labels", []), LABEL_ROLE),
                memory_mb=limits.get("memoryBytes", 0) / _MIB,
                cpus=limits.get("nanoCpus", 0) / 1e9,
                health_test=list(spec.get("healthcheck", {}).get("tests", [])),
                restart=restart,
                stop_seconds=parse_go_duration(spec.get("stopGracePeriod", "0s")) // 10**9,
                networks={by_id.get(n["name"], n["name"]) for n in task.get("networksAdvanceds", [])},
                ports=[Published(p["publishedPort"], None) for p in inputs.get("endpointSpec", {}).get("ports", [])],
                env=dict(spec.get("env", {})),
                secret_files={s["fileName"] for s in spec.get("secrets", [])},
                replicas=inputs.get("mode", {}).get("replicated", {}).get("replicas", 0),
            )
        )
    return views


def of_role(program: Program, role: str) -> list[WorkloadView]:
    """The workloads of `role`: one service, or one container per replica."""
    return [w for w in workloads(program) if w.role == role]


def by_role(program: Program, role: str) -> WorkloadView:
    [view] = of_role(program, role)
    return view
