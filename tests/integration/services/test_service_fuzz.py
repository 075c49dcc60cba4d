"""Schema-driven fuzzing: every operation in each service's OpenAPI spec, with
generated valid and invalid input, never gets a 5xx answer.

The number of cases per operation is bounded (`FUZZ_EXAMPLES`, override with
MICROSTACK_FUZZ_EXAMPLES for a longer local run) to keep CI time predictable.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err

from tests.support.servers import PostgresServer, RedisServer, SecretFiles, ServiceProcess, service_env
from tests.support.service_stack import ServiceStack, bearer

FUZZ_EXAMPLES = int(os.environ.get("MICROSTACK_FUZZ_EXAMPLES", "30"))


@dataclass
class FuzzTarget:
    stack: ServiceStack
    token: str


@pytest.fixture(scope="module")
def fuzz_target(
    postgres_server: PostgresServer, redis_server: RedisServer, jwt_secrets: SecretFiles
) -> Iterator[FuzzTarget]:
    """One API and one auth process for the whole module, seeded with a user and items."""
    database = postgres_server.create_database(f"fuzz_{uuid.uuid4().hex[:10]}")
    with redis.Redis.from_url(redis_server.url()) as client:
        client.flushall()
    processes = [
        ServiceProcess(
            f"microstack_{service}",
            service_env(
                postgres_server,
                redis_server,
                jwt_secrets,
                service=service,
                instance=f"{service}-fuzz",
                database=database,
            ),
            wait_ready=False,
        ).start()
        for service in ("api", "auth")
    ]
    try:
        for process in processes:
            process.wait_healthy()
        stack = ServiceStack(processes[1], postgres_server, redis_server, database, api=processes[0])
        token = stack.login()
        for n in range(3):
            stack.api.request("POST", "/api/items", json_body={"name": f"seed-{n}"}, headers=bearer(token))
        yield FuzzTarget(stack, token)
    finally:
        for process in processes:
            process.cleanup()


def _fuzz(base_url: str, token: str) -> list[str]:
    """Run every operation of the spec at `base_url` with positive and negative
    generated cases; return the operations fuzzed. Hypothesis reports the
    smallest case that got a 5xx."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    fuzzed = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # an operation the spec defines but schemathesis cannot read
        operation = result.ok()
        for mode in schemathesis.GenerationMode:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
            def never_5xx(case: schemathesis.Case) -> None:
                # A valid token on every call, so generated bodies reach the
                # handlers behind authentication; 401 paths have their own tests.
                response = case.call(headers=bearer(token), timeout=10)
                case.validate_response(response, checks=[not_a_server_error])

            try:
                never_5xx()
            except Unsatisfiable:
                # An operation without parameters or body (GET /health) has no
                # invalid form to generate; positive cases still ran.
                if mode is not schemathesis.GenerationMode.NEGATIVE:
                    raise
        fuzzed.append(operation.label)
    return fuzzed


def _statuses(service: ServiceProcess) -> list[int]:
    return [record["status"] for record in service.log_records() if record.get("message") == "request"]


def test_api_never_answers_5xx_to_generated_requests(fuzz_target: FuzzTarget) -> None:
    before = len(_statuses(fuzz_target.stack.api))
    fuzzed = _fuzz(fuzz_target.stack.api.base_url, fuzz_target.token)
    assert "PUT /api/items/{item_id}" in fuzzed
    assert len(fuzzed) == 7
    # The run really reached the service, with valid and invalid requests.
    statuses = _statuses(fuzz_target.stack.api)[before:]
    assert len(statuses) >= 7 * 10
    assert 422 in statuses
    assert {200, 201} <= set(statuses)


def test_auth_never_answers_5xx_to_generated_requests(fuzz_target: FuzzTarget) -> None:
    before = len(_statuses(fuzz_target.stack.auth))
    fuzzed = _fuzz(fuzz_target.stack.auth.base_url, fuzz_target.token)
    assert "POST /auth/register" in fuzzed
    assert len(fuzzed) == 4
    statuses = _statuses(fuzz_target.stack.auth)[before:]
    assert len(statuses) >= 4 * 10
    assert 422 in statuses
