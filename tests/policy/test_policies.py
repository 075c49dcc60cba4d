"""Each policy of the pack, with a resource that complies and one that violates it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
import yaml

from tests.policy.builders import (
    DIGEST,
    JOB_LABELS,
    UNKNOWN_STRING,
    PolicyInput,
    built_image,
    container,
    network,
    network_id,
    password,
    remote_image,
    service,
    swarm_config,
    swarm_secret,
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
    "published-on-every-interface",
    "no-secrets-in-env",
    "swarm-secrets",
    "service-networks-by-id",
    "service-failure-ratio",
    "service-image-digest",
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


def test_compliant_swarm_resources_pass_every_policy(check_policies: Check) -> None:
    resources = [
        network("frontend", internal=False),
        network("backend", internal=True),
        swarm_secret("secret-jwt-signing-key", "jwt-secret-id"),
        swarm_config("proxy-conf", "global\n    maxconn 4096\n"),
        password("jwt-signing-key", GENERATED),
        built_image("api-image", "registry.example.com/microstack/api:1.4.2", pushed=True),
        service("api", networks=(network_id("frontend"), network_id("backend")), secrets=["jwt-secret-id"]),
        service(
            "proxy",
            image="haproxy:2.8.11" + DIGEST,
            ports=[{"targetPort": 443, "publishedPort": 443, "publishMode": "host"}],
        ),
    ]
    assert check_policies(resources) == []


# --- container-memory-limit ---


@pytest.mark.parametrize("memory", [None, 0, -1])
def test_container_without_positive_memory_limit_is_a_violation(check_policies: Check, memory: int | None) -> None:
    findings = check_policies([container("api-1", memory=memory)])
    assert policies_of(findings) == [("container-memory-limit", "api-1")]
    assert "memory" in findings[0].message


@pytest.mark.parametrize("memory_bytes", [None, 0])
def test_service_without_positive_memory_limit_is_a_violation(check_policies: Check, memory_bytes: int | None) -> None:
    findings = check_policies([service("api", memory_bytes=memory_bytes)])
    assert policies_of(findings) == [("container-memory-limit", "api")]
    assert "taskSpec.resources.limits.memoryBytes" in findings[0].message


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


@pytest.mark.parametrize(
    "healthcheck",
    [{"tests": []}, {"interval": "5s"}, {"tests": ["NONE"]}],
    ids=["empty-tests", "no-tests", "disabled"],
)
def test_service_without_healthcheck_test_is_a_violation(check_policies: Check, healthcheck: dict[str, object]) -> None:
    findings = check_policies([service("auth", healthcheck=healthcheck)])
    assert policies_of(findings) == [("container-healthcheck", "auth")]
    assert "taskSpec.containerSpec.healthcheck.tests" in findings[0].message


def test_job_label_does_not_exempt_a_service(check_policies: Check) -> None:
    # A replicated service restarts a finished task forever: jobs are containers.
    job = service("setup", healthcheck={"tests": ["NONE"]}, restart_condition="none", labels=JOB_LABELS)
    assert policies_of(check_policies([job])) == [
        ("container-healthcheck", "setup"),
        ("container-restart-policy", "setup"),
    ]


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


@pytest.mark.parametrize("condition", [None, "none"])
def test_service_whose_tasks_do_not_restart_is_a_violation(check_policies: Check, condition: str | None) -> None:
    findings = check_policies([service("redis", restart_condition=condition)])
    assert policies_of(findings) == [("container-restart-policy", "redis")]


@pytest.mark.parametrize("condition", ["any", "on-failure"])
def test_service_whose_tasks_restart_complies(check_policies: Check, condition: str) -> None:
    assert check_policies([service("redis", restart_condition=condition)]) == []


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


@pytest.mark.parametrize("reference", ["postgres", "postgres:latest"])
def test_unpinned_service_image_is_a_violation(check_policies: Check, reference: str) -> None:
    findings = check_policies([service("postgres", image=reference)])
    assert ("image-pinned", "postgres") in policies_of(findings)
    assert all(reference in finding.message for finding in findings)


# --- service-image-digest ---


@pytest.mark.parametrize(
    "reference",
    ["postgres:15.8-bookworm", "registry.example.com/microstack/api:1.4.2", "registry.internal:5000/team/api:2"],
)
def test_service_image_by_tag_alone_is_a_violation(check_policies: Check, reference: str) -> None:
    findings = check_policies([service("api", image=reference)])
    assert policies_of(findings) == [("service-image-digest", "api")]
    assert reference in findings[0].message


@pytest.mark.parametrize("reference", ["postgres:15.8-bookworm" + DIGEST, "registry.internal:5000/team/api:2" + DIGEST])
def test_service_image_by_digest_complies(check_policies: Check, reference: str) -> None:
    assert check_policies([service("api", image=reference)]) == []


def test_service_image_built_on_the_host_and_not_pushed_may_go_by_tag(check_policies: Check) -> None:
    local = built_image("api-image", "microstack-swarm/api:86add6ff9d37f9ab", pushed=False)
    assert check_policies([local, service("api", image="microstack-swarm/api:86add6ff9d37f9ab")]) == []


def test_pushed_image_does_not_excuse_a_tag(check_policies: Check) -> None:
    pushed = built_image("api-image", "registry.example.com/microstack/api:1.4.2", pushed=True)
    findings = check_policies([pushed, service("api", image="registry.example.com/microstack/api:1.4.2")])
    assert policies_of(findings) == [("service-image-digest", "api")]


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


GELF_PORT = {"targetPort": 12201, "publishedPort": 12201, "publishMode": "host", "protocol": "udp"}


def test_internal_network_service_publishing_a_port_is_a_violation(check_policies: Check) -> None:
    # Swarm binds a published port on every interface; there is no loopback-only publish.
    logstash = service("logstash", networks=(network_id("logging"),), ports=[GELF_PORT])
    findings = check_policies([network("logging", internal=True), logstash])
    assert policies_of(findings) == [("backend-isolation", "logstash")]
    assert "every interface" in findings[0].message


EXPOSURE = {"label": "microstack.exposure", "value": "GELF from each node's own daemon; firewall it in DOCKER-USER"}


def test_a_service_saying_why_it_publishes_is_reported_as_advisory_not_blocked(serve_pack: Serve) -> None:
    logstash = service("logstash", networks=(network_id("logging"),), ports=[GELF_PORT], labels=[EXPOSURE])
    report = serve_pack([network("logging", internal=True), logstash])
    assert report.violations == []
    assert policies_of(report.advisories) == [("published-on-every-interface", "logstash")]
    assert "DOCKER-USER" in report.advisories[0].message and "12201" in report.advisories[0].message


def test_an_empty_exposure_reason_does_not_exempt(check_policies: Check) -> None:
    logstash = service(
        "logstash", networks=(network_id("logging"),), ports=[GELF_PORT], labels=[{**EXPOSURE, "value": " "}]
    )
    findings = check_policies([network("logging", internal=True), logstash])
    assert policies_of(findings) == [("backend-isolation", "logstash")]


def test_an_exposure_label_exempts_no_container(check_policies: Check) -> None:
    # Containers can bind 127.0.0.1, so they have no reason to publish beyond it.
    logstash = container(
        "logstash", networks=("logging",), ports=[{"internal": 12201, "external": 12201}], labels=[EXPOSURE]
    )
    findings = check_policies([network("logging", internal=True), logstash])
    assert policies_of(findings) == [("backend-isolation", "logstash")]


def test_internal_network_service_without_ports_complies(check_policies: Check) -> None:
    postgres = service("postgres", networks=(network_id("backend"),))
    assert check_policies([network("backend", internal=True), postgres]) == []


def test_service_on_an_overlay_that_is_not_internal_may_publish_ports(check_policies: Check) -> None:
    proxy = service("proxy", networks=(network_id("frontend"),), ports=[{"targetPort": 80, "publishedPort": 80}])
    assert check_policies([network("frontend", internal=False), proxy]) == []


# --- service-networks-by-id ---


def test_service_joining_a_network_by_name_is_a_violation(check_policies: Check) -> None:
    backend = network("backend", internal=True, docker_name="microstack-swarm-backend")
    postgres = service("postgres", networks=("microstack-swarm-backend",))
    findings = check_policies([backend, postgres])
    assert policies_of(findings) == [("service-networks-by-id", "postgres")]
    assert "#648" in findings[0].message


def test_service_attached_by_name_to_an_internal_network_is_still_isolated(check_policies: Check) -> None:
    backend = network("backend", internal=True, docker_name="microstack-swarm-backend")
    postgres = service("postgres", networks=("microstack-swarm-backend",), ports=[{"targetPort": 5432}])
    findings = check_policies([backend, postgres])
    assert policies_of(findings) == [("backend-isolation", "postgres"), ("service-networks-by-id", "postgres")]


# --- service-failure-ratio ---


@pytest.mark.parametrize("ratio", ["0.0", "0.1", "1.0", None])
def test_failure_ratio_with_one_decimal_complies(check_policies: Check, ratio: str | None) -> None:
    assert check_policies([service("api", max_failure_ratio=ratio)]) == []


@pytest.mark.parametrize("ratio", ["0", "0.25", "0.10", "1.5", "0,1"])
def test_failure_ratio_the_provider_reads_back_otherwise_is_a_violation(check_policies: Check, ratio: str) -> None:
    findings = check_policies([service("api", max_failure_ratio=ratio)])
    assert policies_of(findings) == [("service-failure-ratio", "api")] * 2
    assert sorted(finding.message.split(".maxFailureRatio")[0] for finding in findings) == [
        "service 'api': rollbackConfig",
        "service 'api': updateConfig",
    ]


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


def test_generated_password_in_service_env_is_a_violation(check_policies: Check) -> None:
    api = service("api", env={"SERVICE_NAME": "api", "DATABASE_URL": f"postgresql://app:{GENERATED}@postgres/app"})
    findings = check_policies([password("postgres-password", GENERATED), api])
    assert policies_of(findings) == [("no-secrets-in-env", "api")]
    assert GENERATED not in findings[0].message


@pytest.mark.parametrize("name", ["POSTGRES_PASSWORD", "JWT_SIGNING_KEY", "api_token"])
def test_credential_named_service_env_var_is_a_violation(check_policies: Check, name: str) -> None:
    findings = check_policies([service("auth", env={name: "x"})])
    assert policies_of(findings) == [("no-secrets-in-env", "auth")]


def test_service_env_with_file_paths_complies(check_policies: Check) -> None:
    env = {"JWT_SIGNING_KEY_FILE": "/run/secrets/jwt_signing_key", "KEYSPACE": "sessions"}
    assert check_policies([password("p", GENERATED), service("auth", env=env)]) == []


# --- swarm-secrets ---


def test_service_mounting_a_secret_of_the_stack_complies(check_policies: Check) -> None:
    resources = [swarm_secret("secret-postgres-password", "pg-secret-id"), service("api", secrets=["pg-secret-id"])]
    assert check_policies(resources) == []


def test_service_mounting_a_secret_the_stack_does_not_manage_is_a_violation(check_policies: Check) -> None:
    resources = [swarm_secret("secret-postgres-password", "pg-secret-id"), service("api", secrets=["made-by-hand"])]
    findings = check_policies(resources)
    assert policies_of(findings) == [("swarm-secrets", "api")]
    assert "made-by-hand" in findings[0].message


def test_generated_password_in_a_swarm_config_is_a_violation(check_policies: Check) -> None:
    resources = [password("kibana-system-password", GENERATED), swarm_config("kibana-yml", f"password: {GENERATED}\n")]
    findings = check_policies(resources)
    assert policies_of(findings) == [("swarm-secrets", "kibana-yml")]
    assert GENERATED not in findings[0].message


def test_generated_password_in_a_swarm_secret_complies(check_policies: Check) -> None:
    resources = [
        password("kibana-system-password", GENERATED),
        swarm_secret("secret-kibana-yml", "kibana-secret-id", f"password: {GENERATED}\n"),
    ]
    assert check_policies(resources) == []


# --- the pack as the CLI runs it ---


def test_tests_use_the_virtualenv_the_cli_uses() -> None:
    settings = yaml.safe_load((POLICY_DIR / "PulumiPolicy.yaml").read_text())
    assert settings["runtime"]["name"] == "python"
    assert POLICY_DIR / settings["runtime"]["options"]["virtualenv"] == VENV


def test_served_pack_offers_every_policy_as_mandatory(serve_pack: Serve) -> None:
    report = serve_pack([])
    assert report.pack == "microstack"
    assert report.policies == {
        **dict.fromkeys(ALL_POLICIES, "MANDATORY"),
        # Reported on every preview, never blocking: the stack says why it publishes.
        "published-on-every-interface": "ADVISORY",
    }


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


def test_served_pack_blocks_a_service_without_memory_limit(serve_pack: Serve) -> None:
    report = serve_pack([service("api", memory_bytes=None)])
    assert policies_of(report.violations) == [("container-memory-limit", "api")]


def test_service_values_unknown_during_preview_are_skipped_not_failed(serve_pack: Serve) -> None:
    # During preview a new network's and secret's IDs, an image's digest and a
    # password are unknown: neither the services' references nor the stack's
    # own resources can be judged yet.
    backend = network("backend", internal=True)
    backend["outputs"]["id"] = UNKNOWN_STRING
    jwt = swarm_secret("secret-jwt-signing-key", UNKNOWN_STRING)
    api = service(
        "api",
        image=UNKNOWN_STRING,
        networks=(UNKNOWN_STRING,),
        secrets=[UNKNOWN_STRING],
        env={"SERVICE_NAME": "api", "INSTANCE_NAME": UNKNOWN_STRING},
        max_failure_ratio=UNKNOWN_STRING,
    )
    edge = service("logstash", networks=(UNKNOWN_STRING,), ports=[GELF_PORT], secrets=["pipeline-secret-id"])
    secret = password("postgres-password", GENERATED)
    secret["outputs"]["result"] = UNKNOWN_STRING
    report = serve_pack([backend, jwt, api, edge, secret, swarm_config("proxy-conf", "global\n")])
    assert report.violations == []
    assert report.advisories == []
