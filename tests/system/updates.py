"""A stack taken through a sequence of `pulumi up`s under load: shared by the day-2 and Swarm system tests.

Each `up` is planned and applied the way the Pulumi engine does (rollout.py)
while a client sends steady requests through the proxy's published port; its
duration, requests, failures and the longest time a replica that should have
been in rotation answered nothing go to the terminal summary.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pulumi

from tests.support.program import run_program
from tests.system.load import Load, steady_load
from tests.system.releases import Release, SourceTree
from tests.system.rollout import Applied, State, Step, UpError, apply, changes, plan
from tests.system.stack import TABLES, Stack

REJOIN_SECONDS = 60
WARM_UP_SECONDS = 2
SUMMARY = "day 2: updates under load"


@dataclass
class Up:
    """One `up` under load: what was planned, what ran, what the client saw."""

    release: str
    steps: list[Step]
    done: list[Applied]
    error: UpError | None
    load: Load
    started: float
    ended: float
    rejoined: float

    def applied(self, op: str, name: str) -> Applied:
        return next(a for a in self.done if (a.step.op, a.step.name) == (op, name))


@dataclass
class Day2:
    """A realized stack and the state of its last `up`."""

    kind: str
    replicas: int
    stack: Stack
    tree: SourceTree
    config: dict[str, Any]
    stack_name: str
    state: State
    token: str
    transformations: tuple[pulumi.ResourceTransformation, ...] = ()
    secrets: dict[str, str] = field(default_factory=dict)
    """Secret config values (`pulumi config set --secret`) for the next `up`."""
    ups: dict[str, Up] = field(default_factory=dict)
    item_with_column: int | None = None
    """An item written with the new column by the release that added it."""

    @property
    def label(self) -> str:
        return f"{self.kind} x{self.replicas}"

    @property
    def replica_names(self) -> list[str]:
        return [f"api-{i}" for i in range(1, self.replicas + 1)]

    def container_id(self, name: str) -> str:
        return self.stack.realizer.realized.containers[name]

    def up(self, scenario: str, release: Release, *, in_rotation: list[str] | None = None) -> Up:
        """Deploy `release` under load: plan against the state, apply, wait for the replicas to answer again."""
        self.tree.deploy(release)
        program = run_program(
            self.config, stack=self.stack_name, secrets=self.secrets, transformations=self.transformations
        )
        steps = plan(self.state, program)
        expected = [f"api-{i}" for i in range(1, self.replicas + 1)] if in_rotation is None else in_rotation
        error: UpError | None = None
        with steady_load(self.stack.base_url, token=self.token) as load:
            time.sleep(WARM_UP_SECONDS)
            started = time.monotonic()
            try:
                done = apply(self.stack.realizer, steps, program, self.state)
            except UpError as failed:
                error, done = failed, failed.done
            ended = time.monotonic()
            rejoined = until_all_answer(load, expected, after=ended)
        self.stack.program = program
        result = Up(release.name, steps, done, error, load, started, ended, rejoined)
        self.ups[scenario] = result
        report(self, scenario, result, expected)
        return result


def until_all_answer(load: Load, instances: list[str], *, after: float) -> float:
    """When every replica in `instances` has answered since `after` (they are all back in rotation)."""
    deadline = time.monotonic() + REJOIN_SECONDS
    while time.monotonic() < deadline:
        answered = {a.instance: a.at for a in load.answers if a.at >= after}
        if set(instances) <= answered.keys():
            return max(answered[i] for i in instances)
        time.sleep(0.2)
    answered_any = {a.instance for a in load.answers if a.at >= after}
    raise AssertionError(f"within {REJOIN_SECONDS}s of the up, only {sorted(answered_any)} of {instances} answered")


def report(day2: Day2, scenario: str, up: Up, in_rotation: list[str]) -> None:
    worst, longest = up.load.longest_silence(in_rotation, up.started, up.rejoined)
    row = {
        "stack": day2.label,
        "up": scenario,
        "release": up.release,
        "steps planned": str(len(changes(up.steps))),
        "steps done": str(len(changes(a.step for a in up.done))),
        "result": f"failed at {up.error.step.name}" if up.error else "ok",
        "rollout s": f"{up.ended - up.started:.1f}",
        "requests": str(up.load.requests),
        "failed": str(len(up.load.failures)),
        "longest out of rotation s": f"{longest:.1f} ({worst})",
    }
    TABLES.setdefault(SUMMARY, []).append(row)
    print(" | ".join(f"{k}: {v}" for k, v in row.items()))
