"""Generated credentials, each overridable from secret stack config."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_random as random


@dataclass(frozen=True)
class SecretOverrides:
    """Values a stack set with `pulumi config set --secret`; None means generate one."""

    postgres_password: pulumi.Output[str] | None = None
    redis_password: pulumi.Output[str] | None = None
    jwt_signing_key: pulumi.Output[str] | None = None
    elastic_password: pulumi.Output[str] | None = None
    kibana_system_password: pulumi.Output[str] | None = None


@dataclass(frozen=True)
class SecretsArgs:
    overrides: SecretOverrides
    logging_enabled: bool


class Secrets(pulumi.ComponentResource):
    """The Postgres and Redis passwords, the JWT signing key and the Elasticsearch users' passwords.

    Generated with pulumi-random, so they are stored encrypted in the stack's
    state and stable across updates. Only letters and digits: they end up in
    connection strings and config files where quoting rules differ.
    """

    postgres_password: pulumi.Output[str]
    redis_password: pulumi.Output[str]
    jwt_signing_key: pulumi.Output[str]
    elastic_password: pulumi.Output[str] | None
    kibana_system_password: pulumi.Output[str] | None

    def __init__(self, name: str, args: SecretsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("microstack:secrets:Secrets", name, None, opts)
        o = args.overrides
        self.postgres_password = self._secret(name, "postgres-password", 32, o.postgres_password)
        self.redis_password = self._secret(name, "redis-password", 32, o.redis_password)
        # 64 characters of [A-Za-z0-9] is about 380 bits, above HS256's 256.
        self.jwt_signing_key = self._secret(name, "jwt-signing-key", 64, o.jwt_signing_key)
        if args.logging_enabled:
            self.elastic_password = self._secret(name, "elastic-password", 32, o.elastic_password)
            self.kibana_system_password = self._secret(name, "kibana-system-password", 32, o.kibana_system_password)
        else:
            self.elastic_password = None
            self.kibana_system_password = None
        self.register_outputs({})

    def _secret(self, name: str, role: str, length: int, override: pulumi.Output[str] | None) -> pulumi.Output[str]:
        if override is not None:
            return pulumi.Output.secret(override)
        password = random.RandomPassword(
            f"{name}-{role}",
            length=length,
            special=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return pulumi.Output.secret(password.result)
