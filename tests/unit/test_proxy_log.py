"""proxy-log.pl, the proxy container's log wrapper, on lines the real binaries wrote.

tests/unit/data/*.log were captured from nginx 1.22 and HAProxy 2.6 running
the rendered configs on loopback (tests/integration/proxy/harness.py), with
nginx's error and access logs in one file and HAProxy's stdout and stderr in
one stream, in the order they were written: replicas refusing connections,
then answering 503 to everything, then hanging past every timeout, and the
fallback answering meanwhile. `--convert` runs the same conversion as the
wrapper without a child.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from components.proxy import events
from components.proxy.model import DnsDiscovery, ProxyKind, ProxyModel, Server, UpstreamGroup
from tests.support.binaries import require_binary

DATA = Path(__file__).parent / "data"
SHARED_FIELDS = ("timestamp", "level", "message", "service", "instance", "request_id")
LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
# The replicas' loopback ports when the nginx captures were made.
NGINX_REPLICAS = {
    "nginx-refused.log": {"api-1": 46407, "api-2": 43023, "auth-1": 52615},
    "nginx-503-and-timeout.log": {"api-1": 40743, "api-2": 48943, "auth-1": 45301},
}


def model_for(ports: dict[str, int]) -> ProxyModel:
    def servers(prefix: str) -> tuple[Server, ...]:
        return tuple(Server("127.0.0.1", port) for name, port in sorted(ports.items()) if name.startswith(prefix))

    return ProxyModel(upstreams=(UpstreamGroup("api", servers("api-")), UpstreamGroup("auth", servers("auth-"))))


def discovery_model() -> ProxyModel:
    """As on Swarm: no fixed replicas, so no names."""
    return ProxyModel(
        upstreams=(
            UpstreamGroup("api", discovery=DnsDiscovery("tasks.api", 8000)),
            UpstreamGroup("auth", discovery=DnsDiscovery("tasks.auth", 8000)),
        )
    )


def wrapper(
    kind: ProxyKind, ports: dict[str, int] | None = None, replicas: list[tuple[str, str, str]] | None = None
) -> list[str]:
    model = model_for(ports) if ports else discovery_model()
    script = str(events.SCRIPT)
    command = events.wrapped_command(model, kind, [], instance="test-proxy", script=script, replicas=replicas)
    command[0] = require_binary("perl")
    return command[: command.index("--")]


def convert(
    kind: ProxyKind,
    text: bytes,
    ports: dict[str, int] | None = None,
    replicas: list[tuple[str, str, str]] | None = None,
) -> list[dict[str, object]]:
    command = [*wrapper(kind, ports, replicas), "--convert"]
    done = subprocess.run(command, input=text, capture_output=True, timeout=30, check=True)
    assert done.stderr == b""
    records = []
    for line in done.stdout.decode("ascii").splitlines():
        record = json.loads(line)
        assert isinstance(record, dict), line
        records.append(record)
    return records


def breaker_events(records: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return [
        (r["event"], r.get("upstream"), r.get("replica"), r.get("reason"))
        for r in records
        if r.get("event") not in (None, "fallback")
    ]


def assert_shared_fields(record: dict[str, object], kind: ProxyKind) -> None:
    missing = [name for name in SHARED_FIELDS if name not in record]
    assert not missing, f"{missing} missing in {record}"
    assert record["level"] in LEVELS
    assert record["service"] == "proxy" and record["instance"] == "test-proxy"
    assert record["proxy"] == kind.value
    assert record["request_id"] is None
    assert isinstance(record["message"], str) and record["message"]
    assert str(record["timestamp"]).endswith("+00:00")


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        (ProxyKind.NGINX, "nginx-refused.log"),
        (ProxyKind.NGINX, "nginx-503-and-timeout.log"),
        (ProxyKind.HAPROXY, "haproxy-refused.log"),
        (ProxyKind.HAPROXY, "haproxy-503-and-timeout.log"),
    ],
)
def test_every_captured_line_becomes_one_json_object_and_access_lines_pass_unchanged(
    kind: ProxyKind, name: str
) -> None:
    text = (DATA / name).read_bytes()
    records = convert(kind, text, NGINX_REPLICAS.get(name))
    access_in = [json.loads(line) for line in text.decode().splitlines() if line.startswith("{")]
    access_out = [r for r in records if "status" in r]
    added = {"timestamp", "level", "message", "service", "instance"}
    # The same lines with the shared fields in front, and without the "-"
    # that stands for "no event".
    assert [{k: v for k, v in r.items() if k not in added} for r in access_out] == [
        {k: v for k, v in r.items() if (k, v) != ("event", "-")} for r in access_in
    ]
    assert all(list(r)[:5] == list(SHARED_FIELDS[:5]) and r["message"] == "request" for r in access_out)
    fallback_in = [r for r in access_in if r.get("event") == "fallback"]
    assert fallback_in and len([r for r in access_out if r.get("event") == "fallback"]) == len(fallback_in)
    for record in records:
        if "status" in record:
            assert record["level"] == "INFO" and record["instance"] == "test-proxy"
        else:
            assert_shared_fields(record, kind)


def test_nginx_refused_connections_take_replicas_out_and_answers_put_them_back() -> None:
    name = "nginx-refused.log"
    records = convert(ProxyKind.NGINX, (DATA / name).read_bytes(), NGINX_REPLICAS[name])
    assert breaker_events(records) == [
        ("replica_down", "api", "api-1", "connection refused"),
        ("replica_down", "api", "api-2", "connection refused"),
        ("pool_empty", "api", None, None),
        ("replica_up", "api", "api-2", "recovered"),
        ("replica_up", "api", "api-1", "recovered"),
    ]
    down = next(r for r in records if r.get("event") == "replica_down")
    assert down["address"] == "127.0.0.1:46407"
    assert "connect() failed" not in str(down["detail"]) and "temporarily disabled" in str(down["detail"])
    # Each worker disables a replica on its own; the pool's story is told once.
    text = (DATA / name).read_text()
    assert text.count("upstream server temporarily disabled") > 2


def test_nginx_tells_a_replica_answering_503_from_one_timing_out() -> None:
    name = "nginx-503-and-timeout.log"
    records = convert(ProxyKind.NGINX, (DATA / name).read_bytes(), NGINX_REPLICAS[name])
    assert breaker_events(records) == [
        ("replica_down", "api", "api-1", "layer-7 errors"),
        ("replica_down", "api", "api-2", "layer-7 errors"),
        ("replica_up", "api", "api-1", "recovered"),
        ("replica_up", "api", "api-2", "recovered"),
        ("replica_down", "api", "api-2", "timeout"),
        ("replica_down", "api", "api-1", "timeout"),
        ("replica_up", "api", "api-2", "recovered"),
        ("replica_up", "api", "api-1", "recovered"),
    ]


def test_nginx_without_names_reports_addresses_and_routes_give_the_upstream() -> None:
    name = "nginx-refused.log"
    records = convert(ProxyKind.NGINX, (DATA / name).read_bytes())
    down = [r for r in records if r.get("event") == "replica_down"]
    assert [(r["upstream"], r["replica"], r["address"]) for r in down] == [
        ("api", "127.0.0.1:46407", "127.0.0.1:46407"),
        ("api", "127.0.0.1:43023", "127.0.0.1:43023"),
    ]


def test_haproxy_state_changes_become_events_with_the_check_reason() -> None:
    records = convert(ProxyKind.HAPROXY, (DATA / "haproxy-503-and-timeout.log").read_bytes())
    assert breaker_events(records) == [
        ("replica_down", "api", "api-1", "check failed"),
        ("replica_down", "api", "api-2", "layer-7 errors"),
        ("pool_empty", "api", None, None),
        ("replica_down", "auth", "auth-1", "connection refused"),
        ("pool_empty", "auth", None, None),
        ("replica_up", "api", "api-2", "check passed"),
        ("replica_up", "api", "api-1", "check passed"),
        ("replica_down", "api", "api-1", "timeout"),
        ("replica_down", "api", "api-2", "timeout"),
        ("pool_empty", "api", None, None),
        ("replica_up", "api", "api-1", "check passed"),
        ("replica_up", "api", "api-2", "check passed"),
    ]
    down = next(r for r in records if r.get("event") == "replica_down")
    assert down["level"] == "WARNING"
    assert str(down["detail"]).startswith("Server api/api-1 is DOWN, reason: Layer7 wrong status, code: 503")
    notices = [r["message"] for r in records if r.get("level") == "INFO" and "event" not in r]
    assert "Loading success." in notices


def test_haproxy_discovery_slots_are_reported_as_the_replica_at_their_address() -> None:
    """Slot api-2 resolved to 127.0.0.3 (HAProxy logs the change), where the deployment has api-7."""
    text = (DATA / "haproxy-dns-discovery.log").read_bytes()
    records = convert(ProxyKind.HAPROXY, text, replicas=[("api", "api-7", "127.0.0.3:8000")])
    assert [(r["event"], r["replica"], r.get("address"), r["reason"]) for r in records if "event" in r] == [
        ("replica_up", "api-1", None, "resolved"),
        ("replica_up", "api-7", "127.0.0.3:8000", "resolved"),
        ("replica_up", "auth-1", None, "resolved"),
        ("replica_down", "api-7", "127.0.0.3:8000", "connection refused"),
        ("replica_up", "api-7", "127.0.0.3:8000", "resolved"),
    ]


@pytest.mark.parametrize(
    ("line", "event", "reason"),
    [
        (
            "Server api/api-3 is going DOWN for maintenance (No IP for server ). "
            "2 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.",
            "replica_down",
            "not resolved",
        ),
        ("Server api/api-2 ('tasks.api') is UP/READY (resolves again).", "replica_up", "resolved"),
        (
            "Server api/api-2 is going DOWN for maintenance. 1 active and 0 backup servers left.",
            "replica_down",
            "maintenance",
        ),
        (
            "Server auth/auth-1 is DOWN, reason: Layer4 timeout, check duration: 401ms. 0 active and 0 backup "
            "servers left. 0 sessions active, 0 requeued, 0 remaining in queue.",
            "replica_down",
            "timeout",
        ),
        (
            'Server api/api-1 is DOWN, reason: Layer4 connection problem, info: "Connection reset by peer", '
            "check duration: 0ms. 2 active and 0 backup servers left.",
            "replica_down",
            "connection reset",
        ),
    ],
)
def test_other_haproxy_state_lines(line: str, event: str, reason: str) -> None:
    (record,) = convert(ProxyKind.HAPROXY, f"[WARNING]  (8) : {line}\n".encode())
    assert (record["event"], record["reason"]) == (event, reason)


AWKWARD = [
    'quote " and backslash \\ and a tab\there',
    "control \x01\x02\x1b[31m and DEL \x7f",
    "UTF-8: café, 日本, emoji \U0001f600",
    "{not json at all",
    "x" * 100_000,
    "2026/12/01 06:04:58 [error] 12#12: *5 connect() failed (111: Connection refused) while connecting to "
    'upstream, client: 127.0.0.1, server: , request: "GET /api/\u00e9\\" HTTP/1.1", upstream: '
    '"http://127.0.0.1:8001/api/x", host: "\x01"',
]


@pytest.mark.parametrize("kind", list(ProxyKind))
def test_awkward_text_still_makes_valid_json_with_the_text_kept(kind: ProxyKind) -> None:
    text = "\n".join(AWKWARD).encode() + b"\nlatin-1 \xe9\xff bytes\n\n   \n"
    records = convert(kind, text)
    messages = [str(r["message"]) for r in records]
    for record in records:
        assert_shared_fields(record, kind)
    assert "".join(messages[:4]) == "".join(AWKWARD[:4])
    assert "x" * 100_000 in "".join(messages)
    assert messages[-1] == "latin-1 \xe9\xff bytes"


def test_the_wrapper_passes_on_signals_and_exits_with_the_proxy_status(tmp_path: Path) -> None:
    script = tmp_path / "proxy.sh"
    script.write_text(
        'trap \'echo "stopping on TERM" >&2; printf "no newline at the end"; exit 7\' TERM\n'
        "echo started\n"
        "while :; do sleep 0.05; done\n"
    )
    process = subprocess.Popen([*wrapper(ProxyKind.NGINX), "--", "sh", str(script)], stdout=subprocess.PIPE)
    assert process.stdout is not None
    first = process.stdout.readline()  # the trap is set by then
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=10)
    out = first + out
    assert process.returncode == 7
    records = [json.loads(line) for line in out.decode().splitlines()]
    assert [(r["level"], r["message"]) for r in records] == [
        ("INFO", "started"),
        ("WARNING", "stopping on TERM"),
        ("INFO", "no newline at the end"),
    ]


def test_a_proxy_killed_by_a_signal_ends_the_wrapper_with_128_plus_the_signal() -> None:
    done = subprocess.run([*wrapper(ProxyKind.HAPROXY), "--", "sh", "-c", "kill -KILL $$"], timeout=10, check=False)
    assert done.returncode == 128 + signal.SIGKILL


def test_a_missing_proxy_binary_fails_the_wrapper() -> None:
    done = subprocess.run(
        [*wrapper(ProxyKind.HAPROXY), "--", "/nonexistent/haproxy"], capture_output=True, timeout=10, check=False
    )
    assert done.returncode == 127
    (record,) = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert "cannot run /nonexistent/haproxy" in record["message"]
