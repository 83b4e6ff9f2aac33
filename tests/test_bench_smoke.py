"""The benchmark's machinery: its wrk scripts against a real server, its target rules, and a
smoke run of `bench/bench.py` on both rendered backends producing a well-formed report.

No timing is asserted here: speed is judged by `make bench`, side by side in one run."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TEMPLATE_DIR, require_tool

sys.path.insert(0, str(TEMPLATE_DIR / "bench"))
import bench

SCENARIOS = {
    "no",
    "yes_100",
    "yes_10",
    "yes_unreachable",
    "db_no",
    "db_yes_100",
    "db_yes_10",
    "db_reference",
    "enqueue_no",
    "enqueue_yes_100",
    "enqueue_yes_10",
}


class _OkOnRoot(http.server.BaseHTTPRequestHandler):
    """200 on "/", 404 elsewhere, like an API with one route."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # the handler's method name
        status = b"200 OK" if self.path == "/" else b"404 Not Found"
        # One write per response: headers and body in separate segments meet delayed ACKs.
        self.wfile.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\nok")

    def log_message(self, format: str, *args: object) -> None:
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # wrk resets its connections when it stops


@pytest.fixture(scope="module")
def tiny_server() -> Iterator[bench.Backend]:
    server = _QuietServer(("127.0.0.1", 0), _OkOnRoot)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    backend = bench.Backend("tiny", lambda port: [], Path("."), {}, Path("."))
    backend.port = server.server_address[1]
    yield backend
    server.shutdown()


def test_wrk_report_counts_requests_and_status_errors(tiny_server: bench.Backend) -> None:
    require_tool("wrk", "Debian package `wrk`")
    settings = bench.Settings(connections=2, path="/")
    ok = bench.run_for(tiny_server, settings, 1)
    assert ok.requests > 0 and ok.seconds > 0.9
    assert ok.errors == 0 and 0 < ok.p50_ms <= ok.p99_ms

    missing = bench.run_for(tiny_server, bench.Settings(connections=2, path="/absent"), 1)
    assert missing.requests > 0 and missing.status_errors == missing.requests


def test_wrk_counted_run_stops_after_the_count_on_distinct_paths(
    tiny_server: bench.Backend,
) -> None:
    require_tool("wrk", "Debian package `wrk`")
    settings = bench.Settings(connections=2, path="/")
    before = tiny_server.requests_sent
    result = bench.run_count(tiny_server, settings, 300, "random")
    # Every random path is a 404 here. wrk stops within its 100 ms check of the stop flag after
    # the count, not at the end of its 3600 s duration.
    assert result.requests >= 300
    assert result.status_errors == result.requests
    assert result.seconds < 30, "SIGINT did not stop wrk"
    assert tiny_server.requests_sent == before + result.requests


def test_parse_wrk_report_rejects_output_without_the_result_line() -> None:
    with pytest.raises(ValueError, match="no BENCH_RESULT line"):
        bench.parse_wrk_report("Running 1s test @ http://127.0.0.1:1/\n")


@pytest.mark.parametrize(
    ("figures", "unmet"),
    [
        (
            {
                "yes_100_over_no": 0.8,
                "yes_10_over_no": 0.95,
                "db_yes_100_over_db_no": 0.75,
                "db_yes_10_over_db_no": 0.9,
                "db_no_over_reference": 0.6,
                "enqueue_yes_100_over_no": 0.75,
                "enqueue_yes_10_over_no": 0.9,
                "unreachable_over_reachable": 0.95,
                "unreachable_errors": 0,
                "memory_growth_mb": 4.9,
                "startup_yes_over_no": 1.49,
            },
            set(),
        ),
        (
            {
                "yes_100_over_no": 0.79,
                "yes_10_over_no": 0.94,
                "db_yes_100_over_db_no": 0.74,
                "db_yes_10_over_db_no": 0.89,
                "db_no_over_reference": 0.59,
                "enqueue_yes_100_over_no": 0.74,
                "enqueue_yes_10_over_no": 0.89,
                "unreachable_over_reachable": 0.94,
                "unreachable_errors": 1,
                "memory_growth_mb": 5.0,
                "startup_yes_over_no": 1.5,
            },
            {
                "yes-100% / no, requests/s",
                "yes-10% / no, requests/s",
                "database: yes-100% / no, requests/s",
                "database: yes-10% / no, requests/s",
                "database: no / reference, requests/s",
                "enqueue: yes-100% / no, requests/s",
                "enqueue: yes-10% / no, requests/s",
                "exporter down / reachable, requests/s",
                "error responses while the exporter is down",
                "memory growth, MB",
                "start-up yes / no",
            },
        ),
    ],
    ids=["on-every-threshold", "just-past-every-threshold"],
)
def test_targets_of_the_issue_at_their_boundaries(
    figures: dict[str, float], unmet: set[str]
) -> None:
    targets = bench.evaluate_targets(figures)
    assert len(targets) == len(bench.TARGETS)
    assert {target["target"] for target in targets if not target["met"]} == unmet


@pytest.mark.slow
def test_smoke_run_writes_a_well_formed_report(tmp_path: Path) -> None:
    require_tool("wrk", "Debian package `wrk`")
    environment = {
        **os.environ,
        "BENCH_SECONDS": "1",
        "BENCH_ROUNDS": "1",
        "BENCH_WARMUP_SECONDS": "1",
        "BENCH_CONNECTIONS": "8",
        "BENCH_MEMORY_REQUESTS": "500",
        "BENCH_STARTUP_RUNS": "1",
        "BENCH_RENDER_RUNS": "1",
        "BENCH_RESULTS_DIR": str(tmp_path / "results"),
        # Its own folder, so a `make bench` running meanwhile keeps its renders; venvs cached.
        "BENCH_BUILD_DIR": str(TEMPLATE_DIR / "build" / "bench-smoke"),
    }
    completed = subprocess.run(
        [sys.executable, str(TEMPLATE_DIR / "bench" / "bench.py")],
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]

    report = json.loads((tmp_path / "results" / "latest.json").read_text())
    history = (tmp_path / "results" / "history.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in history] == [report]
    assert report["schema"] == bench.SCHEMA_VERSION
    assert report["settings"]["path"] == "/api/v1/items/1"

    scenarios = report["scenarios"]
    assert set(scenarios) == SCENARIOS
    for key, result in scenarios.items():
        assert result["requests_per_second"] > 0, key
        assert 0 < result["p50_ms"] <= result["p99_ms"], key
        assert result["cpu_us_per_request"] > 0, key
        assert result["rss_mb"] > 0, key
        # Every scenario, the exporter-down one included, must answer every request with 2xx.
        assert result["errors"] == 0, f"{key}: {result['errors']} error responses"
    assert scenarios["yes_100"]["spans_per_request"] > 0, "the OTLP receiver got no span"
    assert scenarios["yes_10"]["spans_per_request"] < scenarios["yes_100"]["spans_per_request"]
    assert scenarios["no"]["spans_per_request"] is None

    # Two spans per sampled read (the request's and the statement's) in a full run; in these
    # one-second runs the batch exporter may drop some from its full queue, as it is meant to.
    assert scenarios["db_yes_100"]["spans_per_request"] > 0, "the OTLP receiver got no span"
    assert (
        scenarios["db_yes_10"]["spans_per_request"] < scenarios["db_yes_100"]["spans_per_request"]
    )
    assert scenarios["db_no"]["vs_no"] == 1.0
    # The database reference (bench checks it answers the same JSON) exports nothing; its
    # "vs no" is against "database: no", and the target's figure is the inverse view.
    assert scenarios["db_reference"]["spans_per_request"] is None
    assert scenarios["db_reference"]["vs_no"] > 0
    assert report["figures"]["db_no_over_reference"] > 0
    # The enqueue rows: every import answered 202 (no error) with the job sent to Redis; the
    # sampled requests export the server span and the send's PRODUCER span, so more than one
    # span per request at 100% unless the exporter dropped some in these one-second runs.
    assert scenarios["enqueue_no"]["vs_no"] == 1.0
    assert scenarios["enqueue_no"]["spans_per_request"] is None
    assert scenarios["enqueue_yes_100"]["spans_per_request"] > 0, "the OTLP receiver got no span"
    assert (
        scenarios["enqueue_yes_10"]["spans_per_request"]
        < scenarios["enqueue_yes_100"]["spans_per_request"]
    )
    for key in ("enqueue_yes_100", "enqueue_yes_10"):
        assert scenarios[key]["vs_no"] > 0, key
        assert report["figures"][f"{key}_over_no"] == scenarios[key]["vs_no"]
    telemetry_costs = {"db_telemetry_cpu_us_per_request_100", "db_telemetry_cpu_us_per_request_10"}
    assert set(report["figures"]) == {key for _, key, _, _ in bench.TARGETS} | telemetry_costs
    assert [target["target"] for target in report["targets"]] == [t[0] for t in bench.TARGETS]
    assert all(isinstance(target["met"], bool) for target in report["targets"])
    memory = report["memory"]
    assert memory["random_paths_requests"] >= 500 and memory["normal_requests"] >= 500
    assert memory["normal_errors"] == 0
    assert memory["warm_mb"] > 0 and memory["after_normal_mb"] > 0
    for variant in ("no", "yes"):
        assert report["startup_ms"][variant] > 0 and report["render_ms"][variant] > 0

    table = completed.stdout
    assert table.startswith("| scenario | requests/s |")
    assert scenarios["no"]["vs_no"] == 1.0
    for result in scenarios.values():
        row = f"| {result['title']} | {result['requests_per_second']:.0f} | {result['vs_no']:.2f} |"
        assert row in table
    for target in report["targets"]:
        assert f"| {target['target']} |" in table
