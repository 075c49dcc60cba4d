"""Fixtures of the logging integration tests."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest

from tests.integration.logging.fake_elasticsearch import Answers, FakeElasticsearch, handler
from tests.integration.logging.fake_kibana import FakeKibana


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
