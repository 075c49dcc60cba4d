"""How many lines a second the proxy's log wrapper (proxy-log.pl) converts.

Every line the proxy writes passes through the wrapper; if the proxy wrote
faster than this, its writes to the pipe would block. Feeds the wrapper's
`--convert` mode a stream of access-log lines captured from nginx 1.22 and
HAProxy 2.6 (tests/unit/data), with every replica up (the common case) and
with one reported down (each nginx access line is then searched for it),
and prints lines per second and CPU time.

    python bench/bench_proxy_log.py [lines]
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "services/common")]

from components.proxy import events  # noqa: E402
from components.proxy.model import ProxyKind  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "tests/unit/data"
CAPTURES = {ProxyKind.NGINX: "nginx-refused.log", ProxyKind.HAPROXY: "haproxy-refused.log"}


def access_lines(kind: ProxyKind) -> list[str]:
    return [line for line in (DATA / CAPTURES[kind]).read_text().splitlines() if line.startswith("{")]


def run(kind: ProxyKind, count: int, one_down: bool) -> tuple[float, float]:
    """Wall and CPU seconds to convert `count` access lines."""
    lines = access_lines(kind)
    body = "".join(lines[i % len(lines)] + "\n" for i in range(count))
    if one_down:
        disabled = next(
            line
            for line in (DATA / CAPTURES[ProxyKind.NGINX]).read_text().splitlines()
            if "temporarily disabled" in line
        )
        # An address no access line answers from: it stays down all along.
        body = disabled.replace("127.0.0.1:", "127.0.0.9:") + "\n" + body
    command = ["perl", str(events.SCRIPT), "--proxy", kind.value, "--route", "/api/=api", "--convert"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, input=body.encode(), stdout=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    print(f"{'proxy':8} {'replicas':14} {'lines':>8} {'wall s':>7} {'cpu s':>6} {'lines/s':>9}")
    for kind in ProxyKind:
        for one_down in (False, True) if kind is ProxyKind.NGINX else (False,):
            wall, cpu = run(kind, count, one_down)
            state = "one down" if one_down else "all up"
            print(f"{kind.value:8} {state:14} {count:8} {wall:7.2f} {cpu:6.2f} {count / wall:9.0f}")


if __name__ == "__main__":
    main()
