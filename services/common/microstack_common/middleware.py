"""Per-request plumbing as one pure ASGI middleware (no per-request task overhead).

For every HTTP request it:
- takes the caller's `X-Request-ID` when it is a sane token (the proxy sets
  one) or makes a new one, exposes it to the logs and echoes it back;
- adds `X-Instance`, so a client behind the proxy sees which replica answered;
- refuses bodies over `max_body_bytes` with 413, by `Content-Length` before
  reading anything and by counting for chunked bodies;
- writes one JSON access line with method, path, status and duration;
- while the instance drains after SIGTERM, answers GET and HEAD with 503 at
  once (see `_SHED_WHILE_DRAINING`).
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from microstack_common.contract import HEALTH_PATH, INSTANCE_HEADER, REQUEST_ID_HEADER
from microstack_common.lifecycle import Lifecycle
from microstack_common.logs import request_id_var

access_logger = logging.getLogger("microstack.access")
logger = logging.getLogger(__name__)

_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_REQUEST_ID_KEY = REQUEST_ID_HEADER.lower().encode()
_INSTANCE_KEY = INSTANCE_HEADER.lower().encode()
_DISCARD_FACTOR = 8
# Safe methods a draining instance refuses, so that a proxy moves them to
# another replica (nginx and HAProxy retry idempotent requests on a 503) and,
# seeing the failure, stops sending this replica anything before its listener
# closes. Without it a proxy that only checks passively (nginx) keeps sending
# until the close, and a POST caught in the closing listener's accept queue is
# reset after it left the proxy, which no proxy may safely repeat. Other
# methods are still served: a proxy would not retry them elsewhere.
_SHED_WHILE_DRAINING = frozenset({"GET", "HEAD"})


class BodyTooLargeError(HTTPException):
    """Raised while reading a chunked body that outgrows the limit.

    An HTTPException, so FastAPI's body parsing lets it through untouched and
    the client gets 413 rather than a generic 400.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, instance: str, max_body_bytes: int, lifecycle: Lifecycle | None = None) -> None:
        self.app = app
        self.instance = instance.encode("latin-1", "replace")
        self.max_body_bytes = max_body_bytes
        self.lifecycle = lifecycle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = self._request_id(scope)
        token = request_id_var.set(request_id)
        status = 500
        extra_headers = [
            (_INSTANCE_KEY, self.instance),
            (_REQUEST_ID_KEY, request_id.encode()),
        ]

        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", []), *extra_headers]
            await send(message)

        try:
            if (
                self.lifecycle is not None
                and self.lifecycle.draining
                and scope["method"] in _SHED_WHILE_DRAINING
                and scope["path"] != HEALTH_PATH
            ):
                await self._reply(
                    send_with_headers,
                    HTTPException(503, "this instance is shutting down; retry on another"),
                    close=True,
                    retry_after=1,
                )
                return
            declared = self._content_length(scope)
            if declared is not None and declared > self.max_body_bytes:
                drained = await self._discard_body(receive, declared)
                await self._reply(send_with_headers, BodyTooLargeError(self.max_body_bytes), close=not drained)
                return
            await self.app(scope, self._limited(receive), send_with_headers)
        except Exception:
            # Answered here rather than by Starlette's outer error middleware so
            # that a 500 still carries the request id and instance, in its
            # headers, its body and the log line with the traceback.
            logger.exception("unhandled error")
            if response_started:
                raise
            await self._reply(send_with_headers, HTTPException(500, "internal error"), close=True)
        finally:
            access_logger.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            request_id_var.reset(token)

    def _request_id(self, scope: Scope) -> str:
        for key, value in scope["headers"]:
            if key == _REQUEST_ID_KEY:
                candidate: str = value.decode("latin-1")
                if _VALID_REQUEST_ID.fullmatch(candidate):
                    return candidate
                break
        return uuid.uuid4().hex

    @staticmethod
    def _content_length(scope: Scope) -> int | None:
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return None
        return None

    async def _discard_body(self, receive: Receive, declared: int) -> bool:
        """Read and drop a refused body of moderate size before answering.

        Most clients (urllib, requests) send the whole body before reading the
        answer; closing on them mid-upload makes them see a broken pipe instead
        of the 413. Bodies beyond `_DISCARD_FACTOR` times the limit are not
        worth reading: those clients get the 413 and the connection is closed.
        Returns whether the whole body was read.
        """
        if declared > self.max_body_bytes * _DISCARD_FACTOR:
            return False
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return False
            if not message.get("more_body", False):
                return True

    def _limited(self, receive: Receive) -> Receive:
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLargeError(self.max_body_bytes)
            return message

        return limited_receive

    @staticmethod
    async def _reply(send: Send, error: HTTPException, *, close: bool, retry_after: int | None = None) -> None:
        body = json.dumps({"detail": error.detail, "request_id": request_id_var.get()}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if retry_after is not None:
            headers.append((b"retry-after", str(retry_after).encode()))
        if close:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": body})
