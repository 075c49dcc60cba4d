"""The Kibana setup job: the real setup.sh and curl against a strict stand-in for Kibana's API.

The stand-in (fake_kibana.py) refuses what Kibana 8.15 refuses (a missing
kbn-xsrf header, unknown keys, a duplicate without override or overwrite)
and keeps what was stored, so each test reads the data view and the saved
search as Kibana would hold them.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path
from typing import Any

import pytest

from components.elk import render
from tests.integration.logging.conftest import run_setup_script
from tests.integration.logging.fake_kibana import FakeKibana
from tests.support.binaries import require_binary

ELASTIC_PASSWORD = "elasticPw0rd"
DATA_VIEW_ID = "microstack-logs"
SAVED_SEARCH = ("search", "microstack-breaker-events")
BREAKER_EVENTS = {"replica_down", "replica_up", "health_check_failed", "pool_empty", "fallback", "health_state"}


@pytest.fixture
def job_files(tmp_path: Path) -> dict[str, Path]:
    files = {
        "elastic": tmp_path / "elastic_password",
        "data_view": tmp_path / "data-view.json",
        "saved_search": tmp_path / "saved-search.json",
        "script": tmp_path / "setup.sh",
    }
    files["elastic"].write_text(ELASTIC_PASSWORD)
    files["data_view"].write_text(render.render_data_view())
    files["saved_search"].write_text(render.render_saved_search())
    files["script"].write_text(render.setup_script())
    return files


@pytest.fixture
def kibana(fake_kibana: FakeKibana) -> FakeKibana:
    fake_kibana.users = {"elastic": ELASTIC_PASSWORD}
    return fake_kibana


def run_job(fake: FakeKibana, files: dict[str, Path], *, wait_seconds: int = 20) -> subprocess.CompletedProcess[str]:
    environment = render.kibana_setup_environment(
        kibana_url=fake.url,
        elastic_password_file=str(files["elastic"]),
        data_view_file=str(files["data_view"]),
        saved_search_file=str(files["saved_search"]),
        wait_seconds=wait_seconds,
    )
    return run_setup_script(files["script"], environment, wait_seconds)


def search_source(fake: FakeKibana) -> dict[str, Any]:
    attributes = fake.saved_objects[SAVED_SEARCH]["attributes"]
    source: dict[str, Any] = json.loads(attributes["kibanaSavedObjectMeta"]["searchSourceJSON"])
    return source


def test_job_creates_the_data_view_then_the_saved_search_of_the_breaker_events(
    kibana: FakeKibana, job_files: dict[str, Path]
) -> None:
    result = run_job(kibana, job_files)
    assert result.returncode == 0, result.stderr

    assert [(r.method, r.path) for r in kibana.changes()] == [
        ("POST", "/api/data_views/data_view"),
        ("POST", "/api/saved_objects/search/microstack-breaker-events?overwrite=true"),
    ]
    view = kibana.data_views[DATA_VIEW_ID]
    assert (view["title"], view["timeFieldName"]) == ("microstack-logs-*", "@timestamp")
    # Kibana makes the first data view the default, so Discover opens on it.
    assert kibana.default_data_view == DATA_VIEW_ID

    search = kibana.saved_objects[SAVED_SEARCH]
    assert search["references"] == [
        {"name": "kibanaSavedObjectMeta.searchSourceJSON.index", "type": "index-pattern", "id": DATA_VIEW_ID}
    ]
    source = search_source(kibana)
    assert source["indexRefName"] == "kibanaSavedObjectMeta.searchSourceJSON.index"
    assert source["query"]["language"] == "kuery"
    query = source["query"]["query"]
    assert query.startswith("event:(") and query.endswith(")")
    assert set(query[len("event:(") : -1].split(" or ")) == BREAKER_EVENTS
    columns = search["attributes"]["columns"]
    assert {"event", "proxy", "upstream", "replica", "reason", "detail", "instance"} <= set(columns)

    assert all((r.user, r.password) == ("elastic", ELASTIC_PASSWORD) for r in kibana.requests)
    assert all(r.headers.get("kbn-xsrf") for r in kibana.changes())
    assert result.stderr.rstrip().endswith("done")


def test_a_second_run_replaces_both_objects_instead_of_adding_copies(
    kibana: FakeKibana, job_files: dict[str, Path]
) -> None:
    assert run_job(kibana, job_files).returncode == 0
    first = [(r.method, r.path, r.body) for r in kibana.changes()]
    kibana.data_views[DATA_VIEW_ID]["timeFieldName"] = "changed by hand"
    kibana.saved_objects[SAVED_SEARCH]["attributes"]["title"] = "changed by hand"
    kibana.requests.clear()

    result = run_job(kibana, job_files)
    assert result.returncode == 0, result.stderr
    assert [(r.method, r.path, r.body) for r in kibana.changes()] == first
    assert list(kibana.data_views) == [DATA_VIEW_ID]
    assert list(kibana.saved_objects) == [SAVED_SEARCH]
    assert kibana.data_views[DATA_VIEW_ID]["timeFieldName"] == "@timestamp"
    assert kibana.saved_objects[SAVED_SEARCH]["attributes"]["title"] == render.SAVED_SEARCH_TITLE


def test_a_data_view_made_by_hand_for_the_same_pattern_is_left_alone(
    kibana: FakeKibana, job_files: dict[str, Path]
) -> None:
    # What the documentation told operators to click before the job existed.
    kibana.data_views["hand-made"] = {"id": "hand-made", "title": "microstack-logs-*", "name": "microstack-logs-*"}
    kibana.default_data_view = "hand-made"
    result = run_job(kibana, job_files)
    assert result.returncode == 0, result.stderr
    assert sorted(kibana.data_views) == ["hand-made", DATA_VIEW_ID]
    assert kibana.default_data_view == "hand-made"


def test_job_waits_until_kibana_is_available(kibana: FakeKibana, job_files: dict[str, Path]) -> None:
    kibana.not_ready_for = 3
    result = run_job(kibana, job_files)
    assert result.returncode == 0, result.stderr
    assert kibana.status_polls() == 4
    # Nothing is sent before Kibana answered available.
    assert kibana.requests.index(kibana.changes()[0]) == 4
    assert DATA_VIEW_ID in kibana.data_views


def test_job_gives_up_when_kibana_never_becomes_available(kibana: FakeKibana, job_files: dict[str, Path]) -> None:
    kibana.not_ready_for = 10_000
    started = time.monotonic()
    result = run_job(kibana, job_files, wait_seconds=3)
    assert result.returncode != 0
    assert time.monotonic() - started < 15
    assert "Kibana was not ready within 3s" in result.stderr
    assert "HTTP 503" in result.stderr
    assert kibana.changes() == []


def test_job_fails_with_kibanas_answer_when_a_step_is_rejected(kibana: FakeKibana, job_files: dict[str, Path]) -> None:
    kibana.failures = {
        "/api/saved_objects/": (403, {"statusCode": 403, "error": "Forbidden", "message": "Unable to create search"})
    }
    result = run_job(kibana, job_files)
    assert result.returncode != 0
    assert "POST /api/saved_objects/search/microstack-breaker-events?overwrite=true answered HTTP 403" in result.stderr
    assert "Unable to create search" in result.stderr
    assert not result.stderr.rstrip().endswith("done")


def test_job_stops_at_a_rejected_data_view(kibana: FakeKibana, job_files: dict[str, Path]) -> None:
    # A body Kibana would refuse: the job reports Kibana's reason and creates no search without its data view.
    job_files["data_view"].write_text(json.dumps({"data_view": {"title": "x", "timefield": "@timestamp"}}))
    result = run_job(kibana, job_files)
    assert result.returncode != 0
    assert "HTTP 400" in result.stderr
    assert "timefield" in result.stderr
    assert kibana.saved_objects == {}


def test_job_reports_a_wrong_elastic_password(kibana: FakeKibana, job_files: dict[str, Path]) -> None:
    kibana.users = {"elastic": "rotated"}
    result = run_job(kibana, job_files, wait_seconds=2)
    assert result.returncode != 0
    assert "HTTP 401" in result.stderr


def test_job_never_logs_the_password(kibana: FakeKibana, job_files: dict[str, Path]) -> None:
    result = run_job(kibana, job_files)
    assert result.returncode == 0
    assert ELASTIC_PASSWORD not in result.stdout + result.stderr


def test_script_refuses_an_unknown_target(kibana: FakeKibana, job_files: dict[str, Path]) -> None:
    result = subprocess.run(
        [require_binary("bash"), str(job_files["script"])],
        env={"PATH": "/usr/bin:/bin", "SETUP_TARGET": "logstash", "SETUP_ELASTIC_PASSWORD_FILE": "/dev/null"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "must be elasticsearch or kibana" in result.stderr
    assert kibana.requests == []


# --- The stand-in refuses what Kibana refuses, so a passing job proves its requests are right ---------


def _post(fake: FakeKibana, path: str, body: object, headers: dict[str, str] | None = None) -> int:
    credentials = b64encode(f"elastic:{ELASTIC_PASSWORD}".encode()).decode()
    request = urllib.request.Request(
        fake.url + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Basic {credentials}", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


JSON_XSRF = {"Content-Type": "application/json", "kbn-xsrf": "true"}


@pytest.mark.parametrize(
    ("path", "body", "headers", "status"),
    [
        ("/api/data_views/data_view", {"data_view": {"title": "a-*"}}, {"Content-Type": "application/json"}, 400),
        ("/api/data_views/data_view", {"data_view": {"title": "a-*"}}, {"kbn-xsrf": "true"}, 415),
        ("/api/data_views/data_view", {"data_view": {"title": "a-*", "timefield": "t"}}, JSON_XSRF, 400),
        ("/api/data_views/data_view", {"data_view": {"name": "no title"}}, JSON_XSRF, 400),
        ("/api/data_views/data_view", {"dataView": {"title": "a-*"}}, JSON_XSRF, 400),
        ("/api/data_views/data_view", {"data_view": {"title": "a-*"}, "override": "yes"}, JSON_XSRF, 400),
        ("/api/saved_objects/search/s1", {"attributes": {"title": "no search source"}}, JSON_XSRF, 400),
        (
            "/api/saved_objects/search/s1",
            {"attributes": {"title": "t", "kibanaSavedObjectMeta": {"searchSourceJSON": "{}"}, "colums": []}},
            JSON_XSRF,
            400,
        ),
        (
            "/api/saved_objects/search/s1",
            {"attributes": {"title": "t", "kibanaSavedObjectMeta": {"searchSourceJSON": "{}"}}, "references": [{}]},
            JSON_XSRF,
            400,
        ),
        ("/api/data_views/data_view", {"data_view": {"title": "a-*"}}, JSON_XSRF, 200),
    ],
    ids=[
        "no-xsrf",
        "not-json",
        "unknown-spec-key",
        "no-title",
        "no-data-view",
        "override-not-boolean",
        "search-without-source",
        "unknown-attribute",
        "malformed-reference",
        "valid",
    ],
)
def test_stand_in_refuses_what_kibana_refuses(
    kibana: FakeKibana, path: str, body: object, headers: dict[str, str], status: int
) -> None:
    assert _post(kibana, path, body, headers) == status


def test_stand_in_refuses_duplicates_without_override_or_overwrite(kibana: FakeKibana) -> None:
    view = {"data_view": {"id": "v", "title": "a-*"}}
    assert _post(kibana, "/api/data_views/data_view", view, JSON_XSRF) == 200
    assert _post(kibana, "/api/data_views/data_view", view, JSON_XSRF) == 400
    search = {"attributes": {"title": "t", "kibanaSavedObjectMeta": {"searchSourceJSON": "{}"}}}
    assert _post(kibana, "/api/saved_objects/search/s1", search, JSON_XSRF) == 200
    assert _post(kibana, "/api/saved_objects/search/s1", search, JSON_XSRF) == 409
    assert _post(kibana, "/api/saved_objects/search/s1?overwrite=true", search, JSON_XSRF) == 200
