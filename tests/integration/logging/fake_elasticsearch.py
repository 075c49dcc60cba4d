"""A stand-in for Elasticsearch's HTTP API on a loopback port, for the setup job and health checks.

Elasticsearch cannot be installed here. What the setup script and the health
checks need from it is small and documented: answer each request with a status
and JSON, and require HTTP basic authentication. The stand-in records every
request (method, path, user, password, body), answers 503 to the cluster
health request until it is told it is ready, and answers a chosen status to
chosen paths, so the tests drive the real script and the real curl through
each situation.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Protocol


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    user: str | None
    password: str | None
    body: bytes
    # Header names in lower case.
    headers: Mapping[str, str] = field(default_factory=dict)

    def json(self) -> object:
        return json.loads(self.body)


class Answers(Protocol):
    def answer(self, request: Request) -> tuple[int, dict[str, object]]: ...


@dataclass
class FakeElasticsearch:
    """Behaviour knobs, set by a test before it runs the script."""

    users: dict[str, str] = field(default_factory=dict)
    # Cluster health answers 503 this many times before it answers 200.
    not_ready_for: int = 0
    # path prefix -> (status, body) for requests that must fail.
    failures: dict[str, tuple[int, dict[str, object]]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def changes(self) -> list[Request]:
        """The requests other than the readiness polls, in order."""
        return [r for r in self.requests if not r.path.startswith("/_cluster/health")]

    def health_polls(self) -> int:
        return sum(1 for r in self.requests if r.path.startswith("/_cluster/health"))

    def answer(self, request: Request) -> tuple[int, dict[str, object]]:
        with self._lock:
            self.requests.append(request)
            if self.users.get(request.user or "") != request.password or request.password is None:
                return 401, {"error": {"type": "security_exception", "reason": "unable to authenticate"}}
            for prefix, failure in self.failures.items():
                if request.path.startswith(prefix):
                    return failure
            if request.path.startswith("/_cluster/health"):
                if self.not_ready_for > 0:
                    self.not_ready_for -= 1
                    return 503, {"error": "cluster not ready"}
                return 200, {"status": "green"}
            return 200, {"acknowledged": True}


def handler(fake: Answers) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            user = password = None
            header = self.headers.get("Authorization", "")
            if header.startswith("Basic "):
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            headers = {name.lower(): value for name, value in self.headers.items()}
            status, payload = fake.answer(Request(self.command, self.path, user, password, body, headers))
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _serve

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler
