"""Each policy of the pack, with a resource that complies and one that violates it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
import yaml

from tests.policy.builders import (
    JOB_LABELS,
    UNKNOWN_STRING,
    PolicyInput,
    container,
    network,
    password,
    remote_image,
)
from tests.policy.pack import POLICY_DIR, VENV, Finding, PackReport

Check = Callable[[Sequence[PolicyInput]], list[Finding]]
Serve = Callable[[Sequence[PolicyInput]], PackReport]

ALL_POLICIES = {
    "container-memory-limit",
    "container-healthcheck",
    "container-restart-policy",
    "image-pinned",
    "backend-isolation",
    "no-secrets-in-env",
}


def policies_of(findings: list[Finding]) -> list[tuple[str, str]]:
    return sorted((finding.policy, finding.resource) for finding in findings)


def test_compliant_resources_pass_every_policy(check_policies: Check) -> None:
    resources = [
        network("frontend", internal=False),
        network("backend", internal=True),
        container("api-1", networks=("frontend", "backend")),
        container("proxy", networks=("frontend",), ports=[{"internal": 80, "external": 8080, "ip": "0.0.0.0"}]),
        password("postgres-password", "s3cr3t-generated-value-0123456789"),
        remote_image("postgres-image", "postgres:16.4-bookworm"),
    ]
    assert check_policies(resources) == []


# --- container-memory-limit ---


@pytest.mark.parametrize("memory", [None, 0, -1])
def test_container_without_positive_memory_limit_is_a_violation(check_policies: Check, memory: int | None) -> None:
    findings = check_policies([container("api-1", memory=memory)])
    assert policies_of(findings) == [("container-memory-limit", "api-1")]
    assert "memory" in findings[0].message


# --- container-healthcheck ---


@pytest.mark.parametrize(
    "healthcheck",
    [None, {"tests": []}, {"interval": "5s"}, {"tests": ["NONE"]}],
    ids=["absent", "empty-tests", "no-tests", "disabled"],
)
def test_container_without_healthcheck_test_is_a_violation(check_policies: Check, healthcheck: object) -> None:
    findings = check_policies([container("auth-1", healthcheck=healthcheck)])
    assert policies_of(findings) == [("container-healthcheck", "auth-1")]


def test_job_container_needs_no_healthcheck(check_policies: Check) -> None:
    job = container("kibana-setup", healthcheck=None, restart="no", labels=JOB_LABELS)
    assert check_policies([job]) == []


# --- container-restart-policy ---


@pytest.mark.parametrize("restart", [None, "no"])
def test_container_that_does_not_restart_is_a_violation(check_policies: Check, restart: str | None) -> None:
    findings = check_policies([container("redis", restart=restart)])
    assert policies_of(findings) == [("container-restart-policy", "redis")]


@pytest.mark.parametrize("restart", ["always", "unless-stopped", "on-failure"])
def test_container_that_restarts_complies(check_policies: Check, restart: str) -> None:
    assert check_policies([container("redis", restart=restart)]) == []


def test_job_label_with_another_value_does_not_exempt(check_policies: Check) -> None:
    not_a_job = container("redis", restart="no", labels=[{"label": "microstack.role", "value": "cache"}])
    assert policies_of(check_policies([not_a_job])) == [("container-restart-policy", "redis")]


def test_job_container_still_needs_a_memory_limit(check_policies: Check) -> None:
    job = container("kibana-setup", restart="no", labels=JOB_LABELS, memory=None)
    assert policies_of(check_policies([job])) == [("container-memory-limit", "kibana-setup")]


# --- image-pinned ---

PINNED = [
    "postgres:16.4",
    "docker.elastic.co/elasticsearch/elasticsearch:8.15.3",
    "registry.internal:5000/team/api:2024-06-01",
    "nginx@sha256:" + "a" * 64,
    "nginx:1.27@sha256:" + "b" * 64,
    "sha256:" + "c" * 64,
]
UNPINNED = [
    "postgres",
    "postgres:latest",
    "registry.internal:5000/team/api",
    "registry.internal:5000/team/api:latest",
]


@pytest.mark.parametrize("reference", PINNED)
def test_pinned_image_references_comply(check_policies: Check, reference: str) -> None:
    assert check_policies([remote_image("image", reference), container("api-1", image=reference)]) == []


@pytest.mark.parametrize("reference", UNPINNED)
def test_unpinned_image_references_are_violations(check_policies: Check, reference: str) -> None:
    findings = check_policies([remote_image("image", reference), container("api-1", image=reference)])
    assert policies_of(findings) == [("image-pinned", "api-1"), ("image-pinned", "image")]
    assert all(reference in finding.message for finding in findings)


# --- backend-isolation ---


def test_internal_network_container_publishing_a_port_is_a_violation(check_policies: Check) -> None:
    postgres = container("postgres", networks=("backend",), ports=[{"internal": 5432, "external": 5432}])
    findings = check_policies([network("backend", internal=True), postgres])
    assert policies_of(findings) == [("backend-isolation", "postgres")]
    assert "0.0.0.0" in findings[0].message


def test_internal_network_is_matched_by_its_docker_name(check_policies: Check) -> None:
    backend = network("backend", internal=True, docker_name="microstack-prod-backend")
    api = container(
        "api-1",
        networks=("microstack-prod-backend",),
        ports=[{"internal": 8000, "external": 8000, "ip": "192.0.2.10"}],
    )
    assert policies_of(check_policies([backend, api])) == [("backend-isolation", "api-1")]


def test_internal_network_container_may_publish_on_loopback(check_policies: Check) -> None:
    logstash = container(
        "logstash",
        networks=("logging",),
        ports=[{"internal": 12201, "external": 12201, "ip": "127.0.0.1", "protocol": "udp"}],
    )
    assert check_policies([network("logging", internal=True), logstash]) == []


def test_container_on_a_bridge_network_may_publish_ports(check_policies: Check) -> None:
    proxy = container("proxy", networks=("frontend",), ports=[{"internal": 443, "external": 443}])
    assert check_policies([network("frontend", internal=False), proxy]) == []


# --- no-secrets-in-env ---

GENERATED = "Zq8vB1nT4kLm7pR2sW9xC3dF6gH0jK5a"


@pytest.mark.parametrize(
    "entry",
    [f"CACHE_AUTH={GENERATED}", f"DATABASE_URL=postgresql://app:{GENERATED}@postgres:5432/app"],
    ids=["value", "inside-url"],
)
def test_generated_password_in_env_is_a_violation(check_policies: Check, entry: str) -> None:
    api = container("api-1", envs=["SERVICE_NAME=api", entry])
    findings = check_policies([password("postgres-password", GENERATED), api])
    assert policies_of(findings) == [("no-secrets-in-env", "api-1")]
    assert GENERATED not in findings[0].message


@pytest.mark.parametrize(
    "entry",
    ["POSTGRES_PASSWORD=hunter2", "JWT_SIGNING_KEY=abc", "ELASTIC_SECRET=x", "API_TOKEN=y", "api_key=z"],
)
def test_credential_named_env_var_is_a_violation(check_policies: Check, entry: str) -> None:
    findings = check_policies([container("auth-1", envs=[entry])])
    assert policies_of(findings) == [("no-secrets-in-env", "auth-1")]


@pytest.mark.parametrize(
    "entry",
    [
        "POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password",
        "JWT_SIGNING_KEY_FILE=/run/secrets/jwt_signing_key",
        "KEYSPACE=sessions",
        "JWT_TTL_SECONDS=900",
    ],
)
def test_file_paths_and_harmless_names_comply(check_policies: Check, entry: str) -> None:
    assert check_policies([password("p", GENERATED), container("auth-1", envs=[entry])]) == []


# --- the pack as the CLI runs it ---


def test_tests_use_the_virtualenv_the_cli_uses() -> None:
    settings = yaml.safe_load((POLICY_DIR / "PulumiPolicy.yaml").read_text())
    assert settings["runtime"]["name"] == "python"
    assert POLICY_DIR / settings["runtime"]["options"]["virtualenv"] == VENV


def test_served_pack_offers_every_policy_as_mandatory(serve_pack: Serve) -> None:
    report = serve_pack([])
    assert report.pack == "microstack"
    assert report.policies == dict.fromkeys(ALL_POLICIES, "MANDATORY")


def test_served_pack_blocks_a_container_without_memory_limit(serve_pack: Serve) -> None:
    report = serve_pack([container("api-1", memory=None)])
    assert policies_of(report.violations) == [("container-memory-limit", "api-1")]


def test_values_unknown_during_preview_are_skipped_not_failed(serve_pack: Serve) -> None:
    # During preview, an image ID from another resource and a password not yet
    # generated are unknown: the rules must neither flag them nor give up.
    api = container("api-1", image=UNKNOWN_STRING, envs=["SERVICE_NAME=api", UNKNOWN_STRING])
    secret = password("postgres-password", GENERATED)
    secret["outputs"]["result"] = UNKNOWN_STRING
    report = serve_pack([network("backend", internal=True), api, secret])
    assert report.violations == []
    assert report.advisories == []
