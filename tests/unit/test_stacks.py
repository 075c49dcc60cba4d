"""How the stack files differ, and what only some of them do."""

from __future__ import annotations

import pytest

from tests.support.program import VOLUME
from tests.unit.conftest import evaluate_stack


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_data_volumes_survive_destroy_in_staging_and_prod(stack: str) -> None:
    program = evaluate_stack(stack)
    for volume in program.of_type(VOLUME):
        if volume.name in {"postgres-data", "redis-data"}:
            assert volume.options["retain_on_delete"], f"{stack}: {volume.name} would be deleted with the stack"


def test_dev_data_volumes_are_removed_with_the_stack() -> None:
    program = evaluate_stack("dev")
    assert not program.named("postgres-data").options["retain_on_delete"]


def test_docker_resources_are_named_per_stack_so_stacks_can_share_a_host() -> None:
    dev, staging = evaluate_stack("dev"), evaluate_stack("staging")
    dev_names = {r.inputs.get("name") for r in dev.resources if r.type.startswith("docker:")}
    staging_names = {r.inputs.get("name") for r in staging.resources if r.type.startswith("docker:")}
    shared = (dev_names & staging_names) - {None}
    # Image references are shared on purpose; containers, networks and volumes are not.
    assert all(":" in name for name in shared), shared


def test_prod_targets_a_remote_docker_host_over_ssh() -> None:
    from tests.support.program import stack_file_config

    _, provider = stack_file_config("prod")
    assert provider["docker:host"].startswith("ssh://")
