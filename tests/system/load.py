"""Steady client load through the proxy's published port, and what it saw.

One client, one request at a time, a fixed pause between requests: well under
the stack's default rate limit (50/s with a burst of 100 per client). Every
answer is recorded with the time it arrived and the replica (`X-Instance`)
and release (`X-Release`) that gave it; any other status than the expected
one, and any transport error, is a failure.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx

from microstack_common import contract
from tests.system.releases import FIRST_RELEASE, RELEASE_HEADER

ITEMS = f"{contract.API_PREFIX}/items"
INSTANCE = f"{contract.API_PREFIX}/instance"
INTERVAL_SECONDS = 0.05


@dataclass(frozen=True)
class Answer:
    at: float
    """time.monotonic() when the answer arrived."""
    method: str
    instance: str
    release: str


@dataclass
class Load:
    """Requests from a background thread until `stop` is set.

    Without a token: GETs of `path`. With `token`: every `write_every`-th
    request creates an item, and reads carry the token too, so no answer
    comes from the proxy's own cache (credentialed requests bypass it).
    """

    base_url: str
    path: str = INSTANCE
    token: str | None = None
    write_every: int = 5
    answers: list[Answer] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def instances(self) -> list[str]:
        """The replica of each successful read, in order."""
        return [a.instance for a in self.answers if a.method == "GET"]

    @property
    def requests(self) -> int:
        return len(self.answers) + len(self.failures)

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        with httpx.Client(base_url=self.base_url, timeout=10, headers=headers) as client:
            count = 0
            while not self.stop.is_set():
                count += 1
                write = self.token is not None and count % self.write_every == 0
                try:
                    response = client.post(ITEMS, json={"name": f"load-{count}"}) if write else client.get(self.path)
                    if response.status_code == (201 if write else 200):
                        self.answers.append(
                            Answer(
                                at=time.monotonic(),
                                method=response.request.method,
                                instance=response.headers.get(contract.INSTANCE_HEADER, ""),
                                release=response.headers.get(RELEASE_HEADER, FIRST_RELEASE),
                            )
                        )
                    else:
                        self.failures.append(f"{response.request.method} {response.status_code} {response.text[:200]}")
                except httpx.HTTPError as error:
                    self.failures.append(repr(error))
                time.sleep(INTERVAL_SECONDS)

    def between(self, start: float, end: float) -> list[Answer]:
        return [a for a in self.answers if start <= a.at <= end]

    def longest_silence(self, instances: Iterable[str], start: float, end: float) -> tuple[str, float]:
        """The replica that went longest without answering in [start, end], and for how long.

        A replica out of rotation answers nothing; one in rotation answers
        every few requests, so the longest gap between its answers (or to the
        window's edges) is how long it was out.
        """
        worst, longest = "", 0.0
        for instance in instances:
            times = [start] + [a.at for a in self.between(start, end) if a.instance == instance] + [end]
            gap = max(b - a for a, b in itertools.pairwise(times))
            if gap > longest:
                worst, longest = instance, gap
        return worst, longest


@contextmanager
def steady_load(base_url: str, *, token: str | None = None, path: str = INSTANCE) -> Iterator[Load]:
    load = Load(base_url, path=path, token=token)
    worker = threading.Thread(target=load.run, daemon=True)
    worker.start()
    try:
        yield load
    finally:
        load.stop.set()
        worker.join(timeout=30)


def register_and_login(client: httpx.Client) -> tuple[str, str]:
    """A new user through the proxy's auth routes: (username, access token)."""
    username = f"user-{uuid.uuid4().hex[:12]}"
    password = f"pw-{uuid.uuid4().hex}"
    registered = client.post(f"{contract.AUTH_PREFIX}/register", json={"username": username, "password": password})
    assert registered.status_code == 201, registered.text
    login = client.post(f"{contract.AUTH_PREFIX}/login", json={"username": username, "password": password})
    assert login.status_code == 200, login.text
    return username, str(login.json()["access_token"])
