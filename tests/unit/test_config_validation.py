"""Invalid stack configuration fails the program with the key, the value and what is allowed."""

from __future__ import annotations

import pulumi
import pytest

from components.config import StackConfig, parse_config
from tests.support.program import run_program

INVALID = [
    ({"api": {"replicas": 0}}, "microstack:api.replicas", "greater than or equal to 1"),
    ({"api": {"replicas": "three"}}, "microstack:api.replicas", "valid integer"),
    ({"api": {"replicas": "3"}}, "microstack:api.replicas", "valid integer"),
    ({"api": {"replicas": 51}}, "microstack:api.replicas", "less than or equal to 50"),
    ({"api": {"cpus": 0}}, "microstack:api.cpus", "greater than 0"),
    ({"api": {"memoryMb": "512m"}}, "microstack:api.memoryMb", "valid integer"),
    ({"api": {"memoryMb": 16}}, "microstack:api.memoryMb", "greater than or equal to 64"),
    ({"api": {"replica": 2}}, "microstack:api.replica", "not a known key"),
    ({"proxy": {"kind": "traefik"}}, "microstack:proxy.kind", "'nginx' or 'haproxy'"),
    ({"proxy": {"bindAddress": "localhost"}}, "microstack:proxy.bindAddress", "IP address"),
    # cpus is ForceNew and read back as "0.1": it would replace Postgres on every `up`.
    ({"postgres": {"cpus": 0.05}}, "microstack:postgres.cpus", "reads back as '0.1'"),
    ({"proxy": {"httpPort": 70000}}, "microstack:proxy.httpPort", "less than or equal to 65535"),
    ({"proxy": {"tls": {"mode": "on"}}}, "microstack:proxy.tls.mode", "'off', 'self-signed' or 'provided'"),
    ({"proxy": {"tls": {"mode": "provided"}}}, "microstack:proxy.tls.mode", "microstack:tlsCertificate"),
    ({"proxy": {"rateLimit": {"burst": -1}}}, "microstack:proxy.rateLimit.burst", "greater than or equal to 0"),
    ({"proxy": {"healthCheck": {"fall": 0}}}, "microstack:proxy.healthCheck.fall", "greater than or equal to 1"),
    (
        {"proxy": {"kind": "haproxy", "discoverySlots": 2}, "api": {"replicas": 3}},
        "microstack",
        "discoverySlots (2) must be at least api.replicas (3)",
    ),
    (
        {"api": {"replicas": 20}},
        "microstack",
        "postgres.maxConnections (200) must be at least 230 for api.replicas + auth.replicas = 21",
    ),
    ({"postgres": {"user": "Robert'); DROP"}}, "microstack:postgres.user", "SQL identifier"),
    ({"redis": {"maxmemoryPolicy": "lru"}}, "microstack:redis.maxmemoryPolicy", "'allkeys-lru'"),
    ({"logging": {"enabled": "yes"}}, "microstack:logging.enabled", "valid boolean"),
    (
        {"logging": {"elasticsearchHeapMb": 2048, "elasticsearchMemoryMb": 2048}},
        "microstack:logging",
        "at least elasticsearchHeapMb + 512",
    ),
    ({"images": {"postgres": "postgres"}}, "microstack:images.postgres", "pinned by tag or digest"),
    ({"images": {"redis": "redis:latest"}}, "microstack:images.redis", "pinned by tag or digest"),
    ({"postgres": {"backup": {"enabled": "yes"}}}, "microstack:postgres.backup.enabled", "valid boolean"),
    (
        {"postgres": {"backup": {"fullBackupIntervalHours": 0}}},
        "microstack:postgres.backup.fullBackupIntervalHours",
        "greater than or equal to 1",
    ),
    ({"postgres": {"backup": {"retentionDays": 0}}}, "microstack:postgres.backup.retentionDays", "greater than or"),
    (
        {"postgres": {"backup": {"archiveTimeoutSeconds": 5}}},
        "microstack:postgres.backup.archiveTimeoutSeconds",
        "greater than or equal to 10",
    ),
    ({"postgres": {"backup": {"cpus": 0.05}}}, "microstack:postgres.backup.cpus", "reads back as '0.1'"),
    ({"postgres": {"backup": {"memoryMb": 32}}}, "microstack:postgres.backup.memoryMb", "greater than or equal"),
    (
        {"postgres": {"backup": {"repository": {"kind": "nfs"}}}},
        "microstack:postgres.backup.repository.kind",
        "'volume', 'hostPath' or 's3'",
    ),
    (
        {"postgres": {"backup": {"repository": {"kind": "hostPath"}}}},
        "microstack:postgres.backup.repository",
        "kind 'hostPath' needs path",
    ),
    (
        {"postgres": {"backup": {"repository": {"kind": "hostPath", "path": "backups"}}}},
        "microstack:postgres.backup.repository",
        "must be an absolute directory",
    ),
    (
        {"postgres": {"backup": {"repository": {"kind": "hostPath", "path": "/srv/my backups"}}}},
        "microstack:postgres.backup.repository",
        "may hold only letters",
    ),
    (
        {"postgres": {"backup": {"repository": {"kind": "s3", "bucket": "b-k"}}}},
        "microstack:postgres.backup.repository",
        "kind 's3' needs endpoint, region",
    ),
    (
        {"postgres": {"backup": {"repository": {"bucket": "backups"}}}},
        "microstack:postgres.backup.repository",
        "bucket does not apply to kind 'volume'",
    ),
    (
        {
            "postgres": {
                "backup": {"repository": {"kind": "s3", "bucket": "b", "endpoint": "s3.example.com", "region": "eu-1"}}
            }
        },
        "microstack:postgres.backup.repository",
        "must be an S3 bucket name",
    ),
    (
        {
            "postgres": {
                "backup": {
                    "repository": {
                        "kind": "s3",
                        "bucket": "backups",
                        "endpoint": "https://s3.example.com",
                        "region": "eu-1",
                    }
                }
            }
        },
        "microstack:postgres.backup.repository",
        "host name with an optional :port, no scheme",
    ),
    (
        {
            "postgres": {
                "backup": {
                    "enabled": True,
                    "repository": {"kind": "s3", "bucket": "backups", "endpoint": "s3.example.com", "region": "eu-1"},
                }
            }
        },
        "microstack:postgres.backup.repository.kind",
        "'s3' needs the secret microstack:backupS3KeyId",
    ),
    ({"postgres": {"backup": {"schedule": "daily"}}}, "microstack:postgres.backup.schedule", "not a known key"),
    ({"api": 3}, "microstack:api", "must be an object"),
    ({"apii": {"replicas": 2}}, "microstack:apii", "not a known key"),
]


@pytest.mark.parametrize(("config", "key", "allowed"), INVALID, ids=[f"{c[1]}-{i}" for i, c in enumerate(INVALID)])
def test_invalid_config_fails_the_program_naming_the_key(config: dict, key: str, allowed: str) -> None:
    with pytest.raises(pulumi.RunError) as failure:
        run_program(config)
    message = str(failure.value)
    assert f"{key}:" in message or f"{key} " in message
    assert allowed in message


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(pulumi.RunError) as failure:
        run_program({"api": {"replicas": 0}, "proxy": {"kind": "caddy"}, "redis": {"memoryMb": "1g"}})
    message = str(failure.value)
    for key in ("microstack:api.replicas", "microstack:proxy.kind", "microstack:redis.memoryMb"):
        assert key in message


def test_the_message_shows_the_value_given() -> None:
    with pytest.raises(pulumi.RunError, match=r"got 'traefik'"):
        run_program({"proxy": {"kind": "traefik"}})


def test_defaults_make_an_empty_stack_file_valid() -> None:
    assert parse_config({}) == StackConfig()


def test_a_stack_file_holds_only_what_differs() -> None:
    config = parse_config({"api": {"replicas": 5}})
    assert config.api.replicas == 5
    assert config.api.memory_mb == StackConfig().api.memory_mb
