"""Fixtures of the logging integration tests."""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Iterator, Mapping
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.integration.logging.fake_elasticsearch import Answers, FakeElasticsearch, handler
from tests.integration.logging.fake_kibana import FakeKibana
from tests.support.binaries import require_binary


def run_setup_script(
    script: Path, environment: Mapping[str, str], wait_seconds: int
) -> subprocess.CompletedProcess[str]:
    """The real setup.sh under bash, with curl on PATH and nothing else from the test's environment."""
    return subprocess.run(
        [require_binary("bash"), str(script)],
        env={"PATH": str(Path(require_binary("curl")).parent) + ":/usr/bin:/bin", **environment},
        capture_output=True,
        text=True,
        timeout=wait_seconds + 30,
    )


@contextlib.contextmanager
def _serve(fake: Answers) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(fake))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def fake_elasticsearch() -> Iterator[FakeElasticsearch]:
    fake = FakeElasticsearch()
    with _serve(fake) as url:
        fake.url = url
        yield fake


@pytest.fixture
def fake_kibana() -> Iterator[FakeKibana]:
    fake = FakeKibana()
    with _serve(fake) as url:
        fake.url = url
        yield fake
