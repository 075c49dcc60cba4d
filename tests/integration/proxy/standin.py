"""A stand-in API replica with a fixed capacity, for overload and sick-replica runs.

`workers` threads share one listening socket with a small accept queue
(`backlog`), each serving one connection at a time, as a synchronous worker
pool does: at most `workers` requests are in progress, `backlog` more wait
in the kernel's accept queue, and beyond that Linux drops the client's SYN
(it is retransmitted after 1 s, then 3 s). Requests under the API prefix
take `delay` seconds; `/health` is answered at once, so a busy replica still
passes its health check once its connection is accepted.

`--status 500` makes a sick replica: it keeps accepting and answers every
request, `/health` included, with 500; SIGUSR1 makes a healthy one sick. Paths under `BROKEN_PREFIX` answer
500 on every replica: a request that fails everywhere. `STATS_PATH` answers
the counts of API requests and health checks served (not itself counted),
so a test can tell how many attempts the proxy made.

Run as `python -m tests.integration.proxy.standin --port P [options]`.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import threading
import time
from collections.abc import Mapping

from microstack_common import contract

BROKEN_PREFIX = contract.API_PREFIX + "/broken"
STATS_PATH = "/_standin/stats"
_REASONS = {200: "OK", 500: "Internal Server Error"}


class Counters:
    """Requests served, by kind, and whether the replica is sick; shared by the workers."""

    def __init__(self, status: int) -> None:
        self._lock = threading.Lock()
        self.api = 0
        self.health = 0
        self.status = status

    def count(self, path: str) -> None:
        with self._lock:
            if path == contract.HEALTH_PATH:
                self.health += 1
            else:
                self.api += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {"api": self.api, "health": self.health}


def _read_path(conn: socket.socket) -> str | None:
    """The request target of the request head on `conn`, None if the peer closed first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return None
        data += chunk
    return data.split(b" ", 2)[1].decode("latin-1")


def _answer(conn: socket.socket, status: int, body: Mapping[str, object], instance: str) -> None:
    payload = json.dumps(body).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n{contract.INSTANCE_HEADER}: {instance}\r\nConnection: close\r\n\r\n"
    )
    conn.sendall(head.encode() + payload)


def serve(listener: socket.socket, args: argparse.Namespace, counters: Counters) -> None:
    """One worker: accept a connection, answer it, close it; forever."""
    while True:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(10.0)
            try:
                path = _read_path(conn)
                if path is None:
                    continue
                if path == STATS_PATH:
                    _answer(conn, 200, counters.snapshot(), args.instance)
                    continue
                counters.count(path)
                if counters.status != 200:
                    _answer(conn, counters.status, {"error": "sick replica"}, args.instance)
                elif path.startswith(BROKEN_PREFIX):
                    _answer(conn, 500, {"error": "fails on every replica"}, args.instance)
                elif path == contract.HEALTH_PATH:
                    _answer(conn, 200, {"status": "ok"}, args.instance)
                else:
                    time.sleep(args.delay)
                    _answer(conn, 200, {"instance": args.instance}, args.instance)
            except OSError:
                # The proxy gave up on this connection (its own timeout); the
                # next one is waiting.
                continue


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backlog", type=int, default=5)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--delay", type=float, default=0.1, help="seconds per API request")
    parser.add_argument("--status", type=int, default=200, choices=sorted(_REASONS))
    parser.add_argument("--instance", default="standin")
    args = parser.parse_args()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.host, args.port))
    listener.listen(args.backlog)
    counters = Counters(args.status)
    signal.signal(signal.SIGUSR1, lambda signum, frame: setattr(counters, "status", 500))
    threads = [
        threading.Thread(target=serve, args=(listener, args, counters), daemon=True) for _ in range(args.workers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
