"""The proxy configs the program renders for each stack file pass the real binaries' checks.

The model is built exactly as the component builds it from the stack's typed
config; only file locations move into a temporary directory (and nginx's
worker user to the one running the tests), since the container paths do not
exist on the test machine.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from components.config import StackConfig, parse_config
from components.network import default_frontend_subnet
from components.proxy.component import Upstream, build_model
from components.proxy.model import ProxyKind, ProxyModel
from components.service import replica_address
from microstack_common import contract
from tests.integration.proxy.harness import (
    check_config,
    private_dir,
    proxy_paths,
    self_signed_tls,
    worker_user,
    write_config,
)
from tests.support.program import stack_file_config

SUBNET = default_frontend_subnet("microstack-test")


def _model_for(config: StackConfig, root: Path) -> ProxyModel:
    api = Upstream(
        contract.Alias.API,
        config.api.port,
        [replica_address(SUBNET, "api", i) for i in range(1, config.api.replicas + 1)],
        config.proxy.discovery_slots,
    )
    auth = Upstream(
        contract.Alias.AUTH,
        contract.AUTH_PORT,
        [replica_address(SUBNET, "auth", i) for i in range(1, config.auth.replicas + 1)],
        config.proxy.discovery_slots,
    )
    model = build_model(config.proxy, api, auth)
    (root / "cache").mkdir(exist_ok=True)
    return dataclasses.replace(
        model,
        paths=proxy_paths(root),
        user=worker_user() if config.proxy.kind == "nginx" else None,
        cache=dataclasses.replace(model.cache, directory=str(root / "cache")),
        tls=self_signed_tls(root) if model.tls else None,
    )


def _check(config: StackConfig) -> None:
    root = private_dir("microstack-stackcfg-")
    try:
        kind = ProxyKind(config.proxy.kind)
        result = check_config(kind, write_config(_model_for(config, root), kind, root))
        assert result.returncode == 0, result.stderr
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_each_stack_files_proxy_config_passes_the_binary_check(stack: str) -> None:
    values, _ = stack_file_config(stack)
    present = set(values) | ({"tlsCertificate", "tlsPrivateKey"} if stack == "prod" else set())
    _check(parse_config(values, present))


@pytest.mark.parametrize("kind", ["nginx", "haproxy"])
@pytest.mark.parametrize("replicas", [1, 10])
@pytest.mark.parametrize("tls", ["off", "self-signed"])
def test_edge_configs_pass_the_binary_check(kind: str, replicas: int, tls: str) -> None:
    _check(parse_config({"proxy": {"kind": kind, "tls": {"mode": tls}}, "api": {"replicas": replicas}}))
