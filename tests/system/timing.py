"""Health checks on a test's clock: the same rollouts, without waiting out whole 5 s intervals.

The program checks every container's and task's health every
`HEALTH_INTERVAL_SECONDS` (5 s, components/common.py), and Swarm watches each
updated task for the whole health window before it calls an update complete
(`update_config.monitor`, components/platform/swarm.py). Under a rollout the
tests wait on exactly those: a replacement counts as healthy at its first
passing probe, one interval after it started, and a Swarm update ends a
monitor window after its last task. `fast_health` takes the day-2 and Swarm
sequences through a 1 s interval and a 10 s start period, with the monitor
computed by the program's own formula for them, as the day-2 test already
shortens the proxy's checks.

What the tests prove does not change: a replica still has to pass its own
health check before the rollout moves on, a release that never gets healthy
still fails (sooner), and Swarm still rolls back a task that fails within the
window it watches.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_docker as docker

from components import provider_values
from components.platform.swarm import health_window_seconds
from tests.support.program import CONTAINER, READY_GATE, SERVICE

INTERVAL_SECONDS = 1
START_PERIOD_SECONDS = 10


def fast_health(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
    """A stack transformation: every container's and service's health check every second (see the module)."""
    # The platforms pass plain argument objects (components/platform/), never Outputs.
    props: dict[str, Any] = dict(args.props)
    if args.type_ == CONTAINER and props.get("healthcheck") is not None:
        check = props["healthcheck"]
        faster = docker.ContainerHealthcheckArgs(
            tests=check.tests,
            interval=provider_values.duration(INTERVAL_SECONDS),
            timeout=check.timeout,
            retries=check.retries,
            start_period=check.start_period,
        )
        return pulumi.ResourceTransformationResult({**props, "healthcheck": faster}, args.opts)
    if args.type_ == SERVICE:
        container_spec = props["task_spec"].container_spec
        check = container_spec.healthcheck
        if check is None:
            return None
        check.interval = provider_values.short_duration(INTERVAL_SECONDS)
        check.start_period = provider_values.short_duration(START_PERIOD_SECONDS)
        monitor = provider_values.short_duration(health_window_seconds(START_PERIOD_SECONDS, INTERVAL_SECONDS))
        for key in ("update_config", "rollback_config"):
            policy = props.get(key)
            if policy is not None:
                policy.monitor = monitor
        return pulumi.ResourceTransformationResult(props, args.opts)
    return None


def no_settle(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
    """A stack transformation: readiness gates do not wait out the proxy's rejoin time after health.

    The settle time keeps two replicas from being out of rotation at once
    during a rolling update (components/gate.py). A stack realized for the
    first time has no rotation to protect, and a test that never rolls its
    replicas (read-back, the shared stacks, backups) only waits it out at
    every replica of the chain: 11 s each behind nginx. Gates are not read
    back; what the tests check of the containers does not change.
    """
    if args.type_ == READY_GATE and args.props.get("settleSeconds"):
        return pulumi.ResourceTransformationResult({**args.props, "settleSeconds": 0}, args.opts)
    return None
