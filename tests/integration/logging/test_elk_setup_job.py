"""The setup job's script and the ELK health checks, run with the real bash and curl.

They talk to a stand-in for Elasticsearch's HTTP API on loopback (see
conftest.py), so each test controls when the cluster is ready and which
request fails, and reads exactly what was sent.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from components.elk import render
from tests.integration.logging.conftest import run_setup_script
from tests.integration.logging.fake_elasticsearch import FakeElasticsearch
from tests.support.binaries import require_binary

ELASTIC_PASSWORD = "elasticPw0rd"
KIBANA_PASSWORD = "kibanaPw0rd"


@pytest.fixture
def setup_files(tmp_path: Path) -> dict[str, Path]:
    files = {
        "elastic": tmp_path / "elastic_password",
        "kibana": tmp_path / "kibana_system_password",
        "policy": tmp_path / "ilm-policy.json",
        "template": tmp_path / "index-template.json",
        "script": tmp_path / "setup.sh",
    }
    files["elastic"].write_text(ELASTIC_PASSWORD)
    files["kibana"].write_text(KIBANA_PASSWORD)
    files["policy"].write_text(render.render_ilm_policy(14))
    files["template"].write_text(render.render_index_template())
    files["script"].write_text(render.setup_script())
    return files


def run_setup(
    fake: FakeElasticsearch, files: dict[str, Path], *, wait_seconds: int = 20
) -> subprocess.CompletedProcess[str]:
    environment = render.setup_environment(
        elasticsearch_url=fake.url,
        elastic_password_file=str(files["elastic"]),
        kibana_system_password_file=str(files["kibana"]),
        ilm_policy_file=str(files["policy"]),
        index_template_file=str(files["template"]),
        wait_seconds=wait_seconds,
    )
    return run_setup_script(files["script"], environment, wait_seconds)


def test_setup_sets_kibana_password_then_installs_policy_and_template(
    fake_elasticsearch: FakeElasticsearch, setup_files: dict[str, Path]
) -> None:
    fake_elasticsearch.users = {"elastic": ELASTIC_PASSWORD}
    result = run_setup(fake_elasticsearch, setup_files)
    assert result.returncode == 0, result.stderr

    changes = fake_elasticsearch.changes()
    assert [(r.method, r.path) for r in changes] == [
        ("POST", "/_security/user/kibana_system/_password"),
        ("PUT", f"/_ilm/policy/{render.ILM_POLICY_NAME}"),
        ("PUT", f"/_index_template/{render.INDEX_TEMPLATE_NAME}"),
        ("PUT", f"/{render.INDEX_PATTERN}/_settings?allow_no_indices=true"),
    ]
    password_change, policy, template, existing = changes
    assert password_change.json() == {"password": KIBANA_PASSWORD}
    assert policy.json() == json.loads(setup_files["policy"].read_text())
    assert template.json() == json.loads(setup_files["template"].read_text())
    assert existing.json() == {"index.lifecycle.name": render.ILM_POLICY_NAME}
    assert all((r.user, r.password) == ("elastic", ELASTIC_PASSWORD) for r in fake_elasticsearch.requests)


def test_setup_waits_until_elasticsearch_is_ready(
    fake_elasticsearch: FakeElasticsearch, setup_files: dict[str, Path]
) -> None:
    fake_elasticsearch.users = {"elastic": ELASTIC_PASSWORD}
    fake_elasticsearch.not_ready_for = 3
    result = run_setup(fake_elasticsearch, setup_files)
    assert result.returncode == 0, result.stderr
    assert fake_elasticsearch.health_polls() == 4
    # Nothing is changed before the cluster answered ready.
    first_change = fake_elasticsearch.requests.index(fake_elasticsearch.changes()[0])
    assert first_change == 4


def test_setup_gives_up_when_elasticsearch_never_becomes_ready(
    fake_elasticsearch: FakeElasticsearch, setup_files: dict[str, Path]
) -> None:
    fake_elasticsearch.users = {"elastic": ELASTIC_PASSWORD}
    fake_elasticsearch.not_ready_for = 10_000
    started = time.monotonic()
    result = run_setup(fake_elasticsearch, setup_files, wait_seconds=3)
    assert result.returncode != 0
    assert time.monotonic() - started < 15
    assert "not ready within 3s" in result.stderr
    assert "503" in result.stderr
    assert fake_elasticsearch.changes() == []


def test_setup_fails_with_elasticsearchs_answer_when_a_step_is_rejected(
    fake_elasticsearch: FakeElasticsearch, setup_files: dict[str, Path]
) -> None:
    fake_elasticsearch.users = {"elastic": ELASTIC_PASSWORD}
    fake_elasticsearch.failures = {
        "/_ilm/policy/": (400, {"error": {"type": "x_content_parse_exception", "reason": "bad policy"}})
    }
    result = run_setup(fake_elasticsearch, setup_files)
    assert result.returncode != 0
    assert "HTTP 400" in result.stderr
    assert "bad policy" in result.stderr
    # It stops at the failed step: no template refers to a policy that is missing.
    assert not any(r.path.startswith("/_index_template/") for r in fake_elasticsearch.requests)


def test_setup_reports_a_wrong_elastic_password(
    fake_elasticsearch: FakeElasticsearch, setup_files: dict[str, Path]
) -> None:
    fake_elasticsearch.users = {"elastic": "another-password"}
    result = run_setup(fake_elasticsearch, setup_files, wait_seconds=2)
    assert result.returncode != 0
    assert "HTTP 401" in result.stderr


def test_setup_runs_again_with_the_same_requests(
    fake_elasticsearch: FakeElasticsearch, setup_files: dict[str, Path]
) -> None:
    fake_elasticsearch.users = {"elastic": ELASTIC_PASSWORD}
    assert run_setup(fake_elasticsearch, setup_files).returncode == 0
    first = [(r.method, r.path, r.body) for r in fake_elasticsearch.changes()]
    fake_elasticsearch.requests.clear()
    assert run_setup(fake_elasticsearch, setup_files).returncode == 0
    again = [(r.method, r.path, r.body) for r in fake_elasticsearch.changes()]
    assert again == first
    # Only requests that set a state: none creates-if-absent, which a second run would fail.
    assert all(method in ("PUT", "POST") and "create" not in path for method, path, _ in again)


@pytest.mark.parametrize("password", ['quo"te', "back\\slash", "sp ace$HOME`id`", "colon:inside"])
def test_setup_sends_passwords_with_special_characters_intact(
    fake_elasticsearch: FakeElasticsearch, setup_files: dict[str, Path], password: str
) -> None:
    setup_files["elastic"].write_text(password)
    setup_files["kibana"].write_text(password + "-kibana")
    fake_elasticsearch.users = {"elastic": password}
    result = run_setup(fake_elasticsearch, setup_files)
    assert result.returncode == 0, result.stderr
    assert fake_elasticsearch.changes()[0].json() == {"password": password + "-kibana"}


def test_setup_never_logs_a_password(fake_elasticsearch: FakeElasticsearch, setup_files: dict[str, Path]) -> None:
    fake_elasticsearch.users = {"elastic": ELASTIC_PASSWORD}
    result = run_setup(fake_elasticsearch, setup_files)
    assert result.returncode == 0
    assert ELASTIC_PASSWORD not in result.stdout + result.stderr
    assert KIBANA_PASSWORD not in result.stdout + result.stderr


# --- Health checks: the shell commands Docker runs with CMD-SHELL ------------


def run_check(command: str) -> int:
    sh = require_binary("sh")
    require_binary("curl")
    return subprocess.run([sh, "-c", command], capture_output=True, timeout=30).returncode


def test_elasticsearch_health_check_passes_only_when_authenticated_and_ready(
    fake_elasticsearch: FakeElasticsearch, tmp_path: Path
) -> None:
    password_file = tmp_path / "elastic_password"
    password_file.write_text(ELASTIC_PASSWORD)
    command = render.elasticsearch_health_command(str(password_file), fake_elasticsearch.url)

    fake_elasticsearch.users = {"elastic": ELASTIC_PASSWORD}
    fake_elasticsearch.not_ready_for = 1
    assert run_check(command) != 0
    assert run_check(command) == 0
    assert fake_elasticsearch.requests[-1].path.startswith("/_cluster/health?wait_for_status=yellow")

    fake_elasticsearch.users = {"elastic": "rotated"}
    assert run_check(command) != 0


class _StatusServer:
    """Answers every request with one status, which a test may change."""

    def __init__(self) -> None:
        self.status = 503
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                self.send_response(outer.status)
                if outer.status == 302:
                    self.send_header("Location", "/login")
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_HEAD = _serve

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def status_server() -> Iterator[_StatusServer]:
    server = _StatusServer()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()
        thread.join(timeout=5)


def test_kibana_health_check_passes_on_the_login_redirect_only(status_server: _StatusServer) -> None:
    command = render.kibana_health_command(status_server.url)
    status_server.status = 503  # "Kibana server is not ready yet"
    assert run_check(command) != 0
    status_server.status = 302
    assert run_check(command) == 0


def test_logstash_health_check_follows_its_api(status_server: _StatusServer) -> None:
    command = render.logstash_health_command(status_server.url)
    status_server.status = 503
    assert run_check(command) != 0
    status_server.status = 200
    assert run_check(command) == 0


# --- Static checks of the shell the containers run ---------------------------------


def test_setup_script_passes_shellcheck(tmp_path: Path) -> None:
    script = tmp_path / "setup.sh"
    script.write_text(render.setup_script())
    result = subprocess.run(
        [require_binary("shellcheck"), "--shell=bash", str(script)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(
    ("shell", "command"),
    [
        ("sh", render.elasticsearch_health_command("/run/secrets/elastic_password")),
        ("sh", render.logstash_health_command()),
        ("sh", render.kibana_health_command()),
        ("bash", render.elasticsearch_command("/run/secrets/elastic_password")[2]),
    ],
    ids=["elasticsearch-health", "logstash-health", "kibana-health", "elasticsearch-start"],
)
def test_container_shell_commands_pass_shellcheck(tmp_path: Path, shell: str, command: str) -> None:
    # Docker runs CMD-SHELL health checks with /bin/sh; the start command is bash -c.
    script = tmp_path / "command.sh"
    script.write_text(f"#!/bin/{shell}\n{command}\n")
    result = subprocess.run(
        [require_binary("shellcheck"), f"--shell={shell}", str(script)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout


def test_elasticsearch_start_command_hands_the_file_password_to_the_image_entrypoint(tmp_path: Path) -> None:
    password_file = tmp_path / "elastic_password"
    password_file.write_text("pass word$1")
    entrypoint = tmp_path / "docker-entrypoint.sh"
    report = tmp_path / "report"
    # The stand-in entrypoint records what the real one would receive.
    entrypoint.write_text(f'#!/bin/bash\nprintf "%s\\n" "$ELASTIC_PASSWORD" "$*" > {report}\n')
    entrypoint.chmod(0o755)
    command = render.elasticsearch_command(str(password_file), entrypoint=str(entrypoint))
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert report.read_text().splitlines() == ["pass word$1", "eswrapper"]


def test_elasticsearch_start_command_fails_without_its_password_file(tmp_path: Path) -> None:
    entrypoint = tmp_path / "docker-entrypoint.sh"
    started = tmp_path / "started"
    entrypoint.write_text(f"#!/bin/bash\ntouch {started}\n")
    entrypoint.chmod(0o755)
    command = render.elasticsearch_command(str(tmp_path / "missing"), entrypoint=str(entrypoint))
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode != 0
    assert not started.exists()
