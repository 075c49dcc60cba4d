"""A GELF (UDP) listener standing in for Logstash's GELF input.

Docker's gelf log driver sends each log line as one GELF message, usually
gzip- or zlib-compressed, split into chunks when it is larger than a
datagram. This listener undoes both and keeps the decoded messages, so a test
can check that the lines a container printed arrive whole.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import zlib
from collections.abc import Callable
from typing import Any

_CHUNK_MAGIC = b"\x1e\x0f"
_GZIP_MAGIC = b"\x1f\x8b"
_MAX_DATAGRAM = 65535


def decode_payload(payload: bytes) -> dict[str, Any]:
    """One complete (reassembled) GELF payload: gzip, zlib or plain JSON."""
    if payload.startswith(_GZIP_MAGIC):
        payload = gzip.decompress(payload)
    elif payload[:1] == b"\x78":
        payload = zlib.decompress(payload)
    message: dict[str, Any] = json.loads(payload)
    return message


class GelfListener:
    """Receives GELF datagrams on 127.0.0.1:`port` in a background thread."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.messages: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self._chunks: dict[bytes, dict[int, bytes]] = {}
        self._lock = threading.Lock()
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", port))
        self._socket.settimeout(0.5)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)

    def __enter__(self) -> GelfListener:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()

    def matching(self, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        with self._lock:
            return [m for m in self.messages if predicate(m)]

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                datagram = self._socket.recv(_MAX_DATAGRAM)
            except TimeoutError:
                continue
            payload = self._reassemble(datagram)
            if payload is None:
                continue
            try:
                message = decode_payload(payload)
            except (OSError, zlib.error, ValueError) as error:
                self.errors.append(f"{error!r} for {payload[:80]!r}")
                continue
            with self._lock:
                self.messages.append(message)

    def _reassemble(self, datagram: bytes) -> bytes | None:
        """The whole payload once every chunk of a message is in (GELF chunking: 12-byte header)."""
        if not datagram.startswith(_CHUNK_MAGIC):
            return datagram
        message_id, sequence, count = datagram[2:10], datagram[10], datagram[11]
        parts = self._chunks.setdefault(message_id, {})
        parts[sequence] = datagram[12:]
        if len(parts) < count:
            return None
        del self._chunks[message_id]
        return b"".join(parts[i] for i in range(count))
