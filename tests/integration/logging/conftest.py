"""Fixtures of the logging integration tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest

from tests.integration.logging.fake_elasticsearch import FakeElasticsearch, handler


@pytest.fixture
def fake_elasticsearch() -> Iterator[FakeElasticsearch]:
    fake = FakeElasticsearch()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(fake))
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
