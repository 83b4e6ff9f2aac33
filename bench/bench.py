"""`make bench`: what the telemetry of the "yes" variant costs, measured side by side with "no".

Renders both variants, installs each backend into a virtualenv cached under build/bench (the
live tests' recipe), starts every backend as its image does (the Dockerfile's uvicorn command,
one worker) pinned to one CPU, and drives it with wrk pinned to the other. Scenarios are
interleaved round by round, so a noisy machine hits every side alike; the table quotes medians
and the ratios of this one run. The figures go to <results>/latest.json and one line of
<results>/history.jsonl.

Settings (environment): BENCH_SECONDS per measured run, BENCH_ROUNDS, BENCH_WARMUP_SECONDS,
BENCH_CONNECTIONS, BENCH_MEMORY_REQUESTS (per memory phase), BENCH_STARTUP_RUNS,
BENCH_RENDER_RUNS, BENCH_PATH (the endpoint), BENCH_REFERENCE=1 (adds the reference app),
BENCH_RESULTS_DIR, BENCH_BUILD_DIR. The database scenarios always include the database
reference (database_reference_app.py): the same read with an asyncpg pool alone. The enqueue
scenarios (worker=taskiq) POST an import of one item, which sends a job to a throwaway Redis.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_DIR = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
REFERENCE_REQUIREMENTS = BENCH_DIR / "reference-requirements.txt"
sys.path.insert(0, str(REPO_DIR))

# The renderer and the recipe for installing and starting the rendered backend that the
# tests use (harness/), so the benchmark runs exactly what they prove.
from harness.backend import (  # noqa: E402
    LIVE_APPLICATION,
    backend_venv,
    dockerfile_command,
    local_command,
    run_in_venv,
)
from harness.postgres import PostgresServer  # noqa: E402
from harness.processes import ManagedProcess, closed_port, free_port  # noqa: E402
from harness.redis_server import RedisServer  # noqa: E402
from harness.rendering import render as render_template  # noqa: E402

WRK_REPORT = BENCH_DIR / "wrk" / "report.lua"
WRK_COUNTED = BENCH_DIR / "wrk" / "counted.lua"
SCHEMA_VERSION = 1
HOST = "127.0.0.1"
VARIANTS = ("no", "yes")
ALWAYS_ON = {"OTEL_TRACES_SAMPLER": "parentbased_always_on"}
TEN_PERCENT = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}

# Targets: (title, key among the report's "figures", comparison, threshold).
TARGETS: tuple[tuple[str, str, str, float], ...] = (
    ("yes-100% / no, requests/s", "yes_100_over_no", ">=", 0.8),
    ("yes-10% / no, requests/s", "yes_10_over_no", ">=", 0.95),
    ("database: yes-100% / no, requests/s", "db_yes_100_over_db_no", ">=", 0.75),
    ("database: yes-10% / no, requests/s", "db_yes_10_over_db_no", ">=", 0.9),
    ("database: no / reference, requests/s", "db_no_over_reference", ">=", 0.6),
    ("enqueue: yes-100% / no, requests/s", "enqueue_yes_100_over_no", ">=", 0.75),
    ("enqueue: yes-10% / no, requests/s", "enqueue_yes_10_over_no", ">=", 0.9),
    ("exporter down / reachable, requests/s", "unreachable_over_reachable", ">=", 0.95),
    ("error responses while the exporter is down", "unreachable_errors", "==", 0),
    ("memory growth, MB", "memory_growth_mb", "<", 5.0),
    ("start-up yes / no", "startup_yes_over_no", "<", 1.5),
)


@dataclass(frozen=True)
class Settings:
    seconds: int = 5
    rounds: int = 8
    warmup_seconds: int = 3
    connections: int = 16
    memory_requests: int = 50_000
    startup_runs: int = 5
    render_runs: int = 3
    path: str = ""
    reference: bool = False
    results_dir: str = str(BENCH_DIR / "results")
    build_dir: str = str(REPO_DIR / "build" / "bench")

    @classmethod
    def from_environment(cls) -> Settings:
        defaults = cls()
        values: dict[str, Any] = {}
        for name, default in asdict(defaults).items():
            raw = os.environ.get(f"BENCH_{name.upper()}")
            if raw is not None:
                values[name] = raw == "1" if isinstance(default, bool) else type(default)(raw)
        return replace(defaults, **values)


# --- CPU placement -------------------------------------------------------------------------


def cpu_plan() -> tuple[list[str], list[str]]:
    """taskset prefixes for (servers, load generator); none on a single-CPU machine."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or shutil.which("taskset") is None:
        return [], []
    return ["taskset", "-c", str(cpus[0])], ["taskset", "-c", str(cpus[1])]


SERVER_CPU, LOAD_CPU = cpu_plan()


# --- OTLP receiver ---------------------------------------------------------------------------


class SpanCounter:
    """A real OTLP/gRPC trace receiver that only counts spans.

    The live tests' receiver keeps every span; here it would cost memory and CPU on the
    load generator's side of the machine for hundreds of thousands of spans.
    """

    def __init__(self) -> None:
        import grpc
        from opentelemetry.proto.collector.trace.v1 import (
            trace_service_pb2,
            trace_service_pb2_grpc,
        )

        counter = self
        self.spans = 0
        self._lock = threading.Lock()

        class Collector(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:  # the gRPC method name
                received = sum(
                    len(scope.spans)
                    for resource in request.resource_spans
                    for scope in resource.scope_spans
                )
                with counter._lock:
                    counter.spans += received
                return trace_service_pb2.ExportTraceServiceResponse()

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Collector(), self._server)
        self.port = self._server.add_insecure_port(f"{HOST}:0")
        self._server.start()

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def stop(self) -> None:
        self._server.stop(grace=None)


# --- rendering and backend processes -----------------------------------------------------------


@contextlib.contextmanager
def stdout_silenced() -> Iterator[None]:
    """Send file descriptor 1 to /dev/null, child processes included: stdout is for the table."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def render(output_dir: Path, variant: str, database: str = "none", worker: str = "none") -> Path:
    """A backend of `variant`; database=none (the in-memory items) and worker=none unless
    told otherwise."""
    with stdout_silenced():  # the post-generation hook prints the next steps
        return render_template(
            output_dir,
            include_observability=variant,
            database=database,
            worker=worker,
            python_version="3.11",
        )


def render_variants(settings: Settings) -> tuple[dict[str, Path], dict[str, list[float]]]:
    """Render each variant `render_runs` times, interleaved; keep the last render of each."""
    root = Path(settings.build_dir) / "render"
    shutil.rmtree(root, ignore_errors=True)
    render(root / "warm-up", "no")  # imports and the template's first read are not render time
    projects: dict[str, Path] = {}
    timings: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    for _ in range(max(1, settings.render_runs)):
        for variant in VARIANTS:
            output = root / variant
            shutil.rmtree(output, ignore_errors=True)
            started = time.perf_counter()
            projects[variant] = render(output, variant)
            timings[variant].append(time.perf_counter() - started)
    return projects, timings


def server_environment(venv: Path, extra: dict[str, str]) -> dict[str, str]:
    """The same clean environment for every backend: nothing inherited but PATH and HOME."""
    return {
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "ENVIRONMENT": "bench",
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def http_response(port: int, path: str) -> tuple[int, bytes]:
    """The status and body of GET `path`."""
    connection = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def bench_app_command(dockerfile: Path, venv: Path, port: int, application: str) -> list[str]:
    """The image's uvicorn command line, made local as for the rendered backend, serving
    `application` ("module:attribute" in bench/) instead of the rendered app."""
    command = local_command(dockerfile_command(dockerfile), venv, port)
    start = command.index(LIVE_APPLICATION[0])
    end = start + len(LIVE_APPLICATION)
    assert command[start:end] == LIVE_APPLICATION, f"unexpected local command {command}"
    return [*command[:start], "--app-dir", str(BENCH_DIR), application, *command[end:]]


def http_status(port: int, path: str) -> int | None:
    connection = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    except OSError:
        return None
    finally:
        connection.close()


@dataclass
class Backend:
    """One backend process on SERVER_CPU; its stdout (the JSON log lines) goes to a file."""

    name: str
    command_for_port: Callable[[int], list[str]]
    backend_dir: Path
    environment: dict[str, str]
    log_dir: Path
    port: int = 0
    process: ManagedProcess | None = None
    requests_sent: int = 0

    def start(self) -> float:
        """Start the process; seconds from process start until /health/live answers 200."""
        self.port = free_port()
        command = [*SERVER_CPU, *self.command_for_port(self.port)]
        started = time.perf_counter()
        self.process = ManagedProcess(
            self.name, command, self.log_dir, cwd=self.backend_dir, env=self.environment
        )
        while http_status(self.port, "/health/live") != 200:
            self.process.assert_running()
            if time.perf_counter() - started > 60:
                self.stop()
                raise RuntimeError(f"{self.name} did not answer /health/live within 60 s")
            time.sleep(0.005)
        return time.perf_counter() - started

    def rss_mb(self) -> float:
        """Resident memory (VmRSS) of the server process, in MiB."""
        assert self.process is not None
        status = Path(f"/proc/{self.process.popen.pid}/status").read_text()
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        assert match, "VmRSS missing from /proc/<pid>/status"
        return int(match.group(1)) / 1024

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the server process so far, all its threads."""
        assert self.process is not None
        stat = Path(f"/proc/{self.process.popen.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()  # after the command name: state is field 3
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(grace=15)


# --- load generation -------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    status_errors: int  # responses with a status above 399
    socket_errors: int  # connect, read, write errors and timeouts
    p50_ms: float
    p99_ms: float

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def errors(self) -> int:
        return self.status_errors + self.socket_errors


def parse_wrk_report(output: str) -> WrkResult:
    """The BENCH_RESULT line that wrk/report.lua prints."""
    for line in output.splitlines():
        if line.startswith("BENCH_RESULT "):
            raw = json.loads(line.removeprefix("BENCH_RESULT "))
            return WrkResult(
                requests=raw["requests"],
                seconds=raw["duration_us"] / 1e6,
                status_errors=raw["status_errors"],
                socket_errors=raw["socket_errors"],
                p50_ms=raw["p50_us"] / 1000,
                p99_ms=raw["p99_us"] / 1000,
            )
    raise ValueError(f"no BENCH_RESULT line in the output of wrk:\n{output}")


def wrk_command(backend: Backend, settings: Settings, seconds: int, script: Path) -> list[str]:
    return [
        *LOAD_CPU,
        "wrk",
        "-t1",
        f"-c{settings.connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        backend.url(settings.path),
    ]


def run_for(
    backend: Backend, settings: Settings, seconds: int, script: Path = WRK_REPORT
) -> WrkResult:
    """A wrk run of `seconds`; `script` sets the request (GET by default) and prints the
    BENCH_RESULT line as wrk/report.lua does."""
    command = wrk_command(backend, settings, seconds, script)
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    result = parse_wrk_report(completed.stdout)
    backend.requests_sent += result.requests
    return result


def run_count(backend: Backend, settings: Settings, count: int, path: str) -> WrkResult:
    """`count` responses (plus the few in flight), then SIGINT makes wrk report and stop."""
    command = [*wrk_command(backend, settings, 3600, WRK_COUNTED), "--", str(count), path]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("BENCH_LIMIT_REACHED"):
            process.send_signal(signal.SIGINT)
            break
    output = process.stdout.read()
    if process.wait() != 0:
        raise RuntimeError(f"wrk failed:\n{output}")
    result = parse_wrk_report(output)
    backend.requests_sent += result.requests
    return result


# --- measurements ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    variant: str  # "no", "yes" or "reference" (the reference app of its phase)
    environment: dict[str, str]
    receiver: SpanCounter | None = None
    baseline: str = "no"  # the scenario its "vs no" ratio is taken against


def telemetry_scenarios(
    prefix: str, title: str, receivers: dict[str, SpanCounter]
) -> list[Scenario]:
    """A phase's "no", then "yes" at 100% and at 10% sampling, exporting to their receivers:
    keys `<prefix>no`, `<prefix>yes_100`, `<prefix>yes_10`, each compared with `<prefix>no`."""
    baseline = f"{prefix}no"
    scenarios = [Scenario(baseline, f"{title}no", "no", {}, baseline=baseline)]
    for share, sampler in ((100, ALWAYS_ON), (10, TEN_PERCENT)):
        receiver = receivers[f"{prefix}yes_{share}"]
        scenarios.append(
            Scenario(
                f"{prefix}yes_{share}",
                f"{title}yes, {share}% sampled",
                "yes",
                {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, **sampler},
                receiver,
                baseline=baseline,
            )
        )
    return scenarios


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


@dataclass
class ScenarioResult:
    title: str
    runs: list[dict[str, float]] = field(default_factory=list)
    requests_per_second: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    cpu_us_per_request: float = 0.0
    errors: int = 0
    rss_mb: float = 0.0
    spans_per_request: float | None = None
    vs_no: float = 0.0

    def add(self, result: WrkResult, cpu_seconds: float) -> None:
        self.runs.append(
            {
                "requests_per_second": round(result.requests_per_second, 1),
                "p50_ms": result.p50_ms,
                "p99_ms": result.p99_ms,
                "cpu_us_per_request": round(cpu_seconds / result.requests * 1e6, 1),
                "errors": result.errors,
            }
        )
        self.requests_per_second = round(median([r["requests_per_second"] for r in self.runs]), 1)
        self.p50_ms = round(median([r["p50_ms"] for r in self.runs]), 2)
        self.p99_ms = round(median([r["p99_ms"] for r in self.runs]), 2)
        self.cpu_us_per_request = round(median([r["cpu_us_per_request"] for r in self.runs]), 1)
        self.errors += result.errors


def create_item(backend: Backend) -> int:
    """Store one item through the example API, so GET /api/v1/items/{item_id} finds it."""
    connection = http.client.HTTPConnection(HOST, backend.port, timeout=5)
    try:
        # Named after the backend: names are unique where a database keeps the items.
        item = {"name": f"bench {backend.name}", "description": "benchmark item", "price": 1.5}
        body = json.dumps(item)
        connection.request("POST", "/api/v1/items", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.status == 201, f"POST /api/v1/items answered {response.status}"
        return int(json.loads(response.read())["id"])
    finally:
        connection.close()


def start_with_item(backend: Backend, settings: Settings) -> Settings:
    """Start `backend` and store the item; the settings' path defaults to that item."""
    backend.start()
    item_id = create_item(backend)
    return settings if settings.path else replace(settings, path=f"/api/v1/items/{item_id}")


def measure_throughput(
    settings: Settings,
    backends: dict[str, Backend],
    listed: list[Scenario],
    script: Path = WRK_REPORT,
    before_run: Callable[[], None] = lambda: None,
) -> dict[str, ScenarioResult]:
    """Warm-up, then the interleaved rounds; `before_run` is called before every run."""
    results = {scenario.key: ScenarioResult(scenario.title) for scenario in listed}
    for scenario in listed:
        before_run()
        run_for(backends[scenario.key], settings, settings.warmup_seconds, script)
    order = [scenario.key for scenario in listed]
    for round_index in range(settings.rounds):
        # Rotate the order each round so no scenario always follows the same neighbour.
        shift = round_index % len(order)
        for key in order[shift:] + order[:shift]:
            before_run()
            time.sleep(0.5)  # the previous backend's batch exporter settles
            # CPU time per request hardly moves when a neighbour takes CPU; requests/s does.
            cpu_before = backends[key].cpu_seconds()
            result = run_for(backends[key], settings, settings.seconds, script)
            results[key].add(result, backends[key].cpu_seconds() - cpu_before)
    for scenario in listed:
        results[scenario.key].rss_mb = round(backends[scenario.key].rss_mb(), 1)
    return results


def measure_startup(settings: Settings, backends: dict[str, Backend]) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    for _ in range(max(1, settings.startup_runs)):
        for variant in VARIANTS:
            try:
                timings[variant].append(backends[variant].start())
            finally:
                backends[variant].stop()
    return timings


def measure_memory(settings: Settings, backend: Backend) -> dict[str, float]:
    """RSS after a warm-up, after distinct random paths, and after as many normal requests."""
    settings = start_with_item(backend, settings)
    try:
        run_count(backend, settings, max(1000, settings.memory_requests // 10), settings.path)
        warm = backend.rss_mb()
        random_paths = run_count(backend, settings, settings.memory_requests, "random")
        after_random = backend.rss_mb()
        normal = run_count(backend, settings, settings.memory_requests, settings.path)
        after_normal = backend.rss_mb()
    finally:
        backend.stop()
    return {
        "warm_mb": round(warm, 1),
        "after_random_paths_mb": round(after_random, 1),
        "after_normal_mb": round(after_normal, 1),
        "growth_mb": round(after_normal - warm, 1),
        "random_paths_requests": random_paths.requests,
        "normal_requests": normal.requests,
        "normal_errors": normal.errors,
    }


def measure_database(
    settings: Settings, build_dir: Path, logs: Path, receivers: dict[str, SpanCounter]
) -> tuple[list[Scenario], dict[str, ScenarioResult], dict[str, Backend]]:
    """The same GET, the item read from PostgreSQL (a throwaway server of Debian's package):
    database=postgres rendered without and with telemetry, its spans and metrics included,
    and the database reference (database_reference_app.py: the same read with an asyncpg
    pool and one prepared statement, in the "database: no" backend's virtualenv)."""
    root = build_dir / "render-database"
    shutil.rmtree(root, ignore_errors=True)
    dirs = {
        variant: render(root / variant, variant, "postgres") / "backend" for variant in VARIANTS
    }
    venvs = {variant: backend_venv(dirs[variant], build_dir / "venvs") for variant in VARIANTS}
    # The reference runs in the "no" backend's folder and virtualenv (FastAPI, uvicorn and
    # asyncpg are its dependencies), under the image's uvicorn command line.
    dirs["reference"], venvs["reference"] = dirs["no"], venvs["no"]
    commands: dict[str, Callable[[int], list[str]]] = {
        variant: lambda port, variant=variant: local_command(  # type: ignore[misc]
            dockerfile_command(dirs[variant] / "Dockerfile"), venvs[variant], port
        )
        for variant in VARIANTS
    }
    commands["reference"] = lambda port: bench_app_command(
        dirs["no"] / "Dockerfile", venvs["no"], port, "database_reference_app:app"
    )
    postgres = PostgresServer()
    postgres.start()
    try:
        run_in_venv(venvs["no"], ["alembic", "upgrade", "head"], dirs["no"], postgres.environment)
        listed = [
            *telemetry_scenarios("db_", "database: ", receivers),
            Scenario(
                "db_reference",
                "database: reference (asyncpg, one prepared statement)",
                "reference",
                {},
                baseline="db_no",
            ),
        ]
        backends = {
            scenario.key: Backend(
                scenario.key,
                commands[scenario.variant],
                dirs[scenario.variant],
                server_environment(
                    venvs[scenario.variant], {**postgres.environment, **scenario.environment}
                ),
                logs,
            )
            for scenario in listed
        }
        try:
            for each in backends.values():
                each.start()
            path = settings.path or f"/api/v1/items/{create_item(backends['db_no'])}"
            # The reference must answer exactly what the template answers: same row, same JSON.
            answers = {
                key: http_response(backends[key].port, path) for key in ("db_no", "db_reference")
            }
            assert answers["db_reference"] == answers["db_no"], (
                f"the reference answers GET {path} with {answers['db_reference']}, "
                f'"database: no" with {answers["db_no"]}'
            )
            progress(f"database: {settings.rounds} rounds x {len(listed)} scenarios, GET {path}")
            results = measure_throughput(replace(settings, path=path), backends, listed)
        finally:
            for each in backends.values():
                each.stop()
    finally:
        postgres.remove()
    return listed, results, backends


ENQUEUE_PATH = "/api/v1/items/imports"
# One item's import: the API checks it and sends one job; only a worker would read the name,
# and no worker runs here, so one constant body serves every request.
ENQUEUE_BODY = json.dumps({"items": [{"name": "bench item", "price": "1.00"}]})


def enqueue_script(build_dir: Path) -> Path:
    """wrk/report.lua behind the lines that make every request POST the import."""
    script = build_dir / "enqueue.lua"
    request = (
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(ENQUEUE_BODY)}\n"  # a JSON string is a valid Lua string here
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    script.write_text(request + WRK_REPORT.read_text())
    return script


def measure_enqueue(
    settings: Settings, build_dir: Path, logs: Path, receivers: dict[str, SpanCounter]
) -> tuple[list[Scenario], dict[str, ScenarioResult], dict[str, Backend]]:
    """POST /api/v1/items/imports of one item: the API's send of a job to a Redis stream
    (worker=taskiq, database=none), without and with telemetry. No worker runs: the stream
    only grows, and the database is emptied before every run so each run finds it alike."""
    root = build_dir / "render-worker"
    shutil.rmtree(root, ignore_errors=True)
    dirs = {
        variant: render(root / variant, variant, worker="taskiq") / "backend"
        for variant in VARIANTS
    }
    venvs = {variant: backend_venv(dirs[variant], build_dir / "venvs") for variant in VARIANTS}
    listed = telemetry_scenarios("enqueue_", "enqueue: ", receivers)
    script = enqueue_script(build_dir)
    redis = RedisServer()
    redis.start()
    try:
        backends = {
            scenario.key: Backend(
                scenario.key,
                lambda port, variant=scenario.variant: local_command(  # type: ignore[misc]
                    dockerfile_command(dirs[variant] / "Dockerfile"), venvs[variant], port
                ),
                dirs[scenario.variant],
                server_environment(
                    venvs[scenario.variant], {**redis.environment, **scenario.environment}
                ),
                logs,
            )
            for scenario in listed
        }

        def flush() -> None:
            reply = redis.command("FLUSHDB")
            assert reply == "+OK", f"FLUSHDB answered {reply}"

        try:
            for each in backends.values():
                each.start()
            progress(
                f"enqueue: {settings.rounds} rounds x {len(listed)} scenarios, POST {ENQUEUE_PATH}"
            )
            results = measure_throughput(
                replace(settings, path=ENQUEUE_PATH), backends, listed, script, flush
            )
            jobs = redis.command("XLEN", "jobs")
            assert jobs.startswith(":") and int(jobs[1:]) > 0, f"no job in the stream: {jobs}"
        finally:
            for each in backends.values():
                each.stop()
    finally:
        redis.remove()
    return listed, results, backends


# --- report ----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": wrk.split(" [")[0].strip(),
        "pinned": bool(SERVER_CPU),
    }


def git_commit() -> str:
    """HEAD, marked "-dirty" when the template has changes not committed (they were measured)."""
    git = ["git", "-C", str(REPO_DIR)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    template = ["{{cookiecutter.project_slug}}", "hooks", "cookiecutter.json"]
    changes = subprocess.run(
        [*git, "status", "--porcelain", "--", *template], capture_output=True, text=True
    )
    return head.stdout.strip() + ("-dirty" if changes.stdout.strip() else "")


def ratio(numerator: float, denominator: float) -> float:
    return round(numerator / denominator, 3) if denominator else 0.0


def paired_ratio(result: ScenarioResult, baseline: ScenarioResult) -> float:
    """Median over the rounds of requests/s relative to `baseline` in the same round.

    Runs of one round are seconds apart, so a load change between rounds cancels out.
    """
    pairs = zip(result.runs, baseline.runs, strict=True)
    return round(
        median([ratio(a["requests_per_second"], b["requests_per_second"]) for a, b in pairs]), 3
    )


def evaluate_targets(figures: dict[str, float]) -> list[dict[str, Any]]:
    comparisons: dict[str, Callable[[float, float], bool]] = {
        ">=": lambda value, threshold: value >= threshold,
        "<": lambda value, threshold: value < threshold,
        "==": lambda value, threshold: value == threshold,
    }
    return [
        {
            "target": title,
            "value": figures[key],
            "rule": f"{comparison} {threshold:g}",
            "met": comparisons[comparison](figures[key], threshold),
        }
        for title, key, comparison, threshold in TARGETS
    ]


def format_table(report: dict[str, Any]) -> str:
    """The report as Markdown (the README's Benchmark section shows the same)."""
    lines = [
        "| scenario | requests/s | vs no | p50 ms | p99 ms | CPU µs/request | errors | RSS MB "
        "| spans/request |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for result in report["scenarios"].values():
        spans = result["spans_per_request"]
        lines.append(
            f"| {result['title']} | {result['requests_per_second']:.0f} | {result['vs_no']:.2f} "
            f"| {result['p50_ms']:.2f} | {result['p99_ms']:.2f} "
            f"| {result['cpu_us_per_request']:.0f} | {result['errors']} | {result['rss_mb']:.1f} "
            f"| {'' if spans is None else f'{spans:.2f}'} |"
        )
    memory, startup, render_ms = report["memory"], report["startup_ms"], report["render_ms"]
    figures = report["figures"]
    lines += [
        "",
        "| measure | no | yes |",
        "|---|---:|---:|",
        f"| start-up until /health/live answers, median ms | {startup['no']:.0f} "
        f"| {startup['yes']:.0f} |",
        f"| render, median ms | {render_ms['no']:.0f} | {render_ms['yes']:.0f} |",
        "",
        f"Memory of the yes backend (100% sampled, exporting): {memory['warm_mb']:.1f} MB warm, "
        f"{memory['after_random_paths_mb']:.1f} MB after {memory['random_paths_requests']:,} "
        f"requests to distinct random paths, {memory['after_normal_mb']:.1f} MB after "
        f"{memory['normal_requests']:,} more normal requests: growth {memory['growth_mb']:.1f} MB.",
        "",
        'The database rows read the item from PostgreSQL; their "vs no" is against '
        '"database: no". The database\'s spans and metrics add '
        f"{figures['db_telemetry_cpu_us_per_request_100']:.0f} µs of CPU per request at 100% "
        f"sampling and {figures['db_telemetry_cpu_us_per_request_10']:.0f} µs at 10%, on top "
        "of what the HTTP telemetry costs. The database reference reads the same row with an "
        "asyncpg pool and one prepared statement, one round trip, in a FastAPI app with "
        'nothing else: "database: no" reaches '
        f"{figures['db_no_over_reference']:.2f} of its requests/s.",
        "",
        "The enqueue rows (worker=taskiq) POST the import of one item to "
        f"{ENQUEUE_PATH}: the API checks it and sends one job to the stream of a throwaway "
        'Redis, with no worker reading it; their "vs no" is against "enqueue: no".',
        "",
        "| target | value | rule | met |",
        "|---|---:|---|---|",
    ]
    for target in report["targets"]:
        value = target["value"]
        shown = f"{value:.2f}" if isinstance(value, float) else str(value)
        met = "yes" if target["met"] else "**no**"
        lines.append(f"| {target['target']} | {shown} | {target['rule']} | {met} |")
    settings, host = report["settings"], report["machine"]
    lines += [
        "",
        f"{settings['rounds']} interleaved rounds of {settings['seconds']} s per scenario, "
        f"wrk (1 thread, {settings['connections']} connections) on GET {settings['path']}; "
        f"{host['cpus']} x {host['cpu']}, Python {host['python']}, "
        f"commit {report['commit']}, {report['timestamp']}.",
    ]
    return "\n".join(lines)


def write_results(report: dict[str, Any], results_dir: Path) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    latest = results_dir / "latest.json"
    partial = results_dir / "latest.json.tmp"
    partial.write_text(json.dumps(report, indent=2) + "\n")
    partial.replace(latest)
    with (results_dir / "history.jsonl").open("a") as history:
        history.write(json.dumps(report, separators=(",", ":")) + "\n")
    return latest


# --- main ------------------------------------------------------------------------------------


STARTED = time.monotonic()


def progress(message: str) -> None:
    print(f"bench [{time.monotonic() - STARTED:5.0f} s]: {message}", file=sys.stderr, flush=True)


def main() -> int:
    settings = Settings.from_environment()
    requested_path = settings.path  # empty: each phase reads the item it stores
    if shutil.which("wrk") is None:
        raise SystemExit("bench: wrk is not installed (Debian package `wrk`)")
    if LOAD_CPU:  # the receivers' threads run in this process: keep them off the servers' CPU
        os.sched_setaffinity(0, {int(LOAD_CPU[-1])})
    build_dir = Path(settings.build_dir)
    logs = build_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    progress("rendering both variants")
    projects, render_seconds = render_variants(settings)
    backend_dirs = {variant: project / "backend" for variant, project in projects.items()}
    progress(f"installing the backends (cached in {build_dir / 'venvs'})")
    venvs = {v: backend_venv(d, build_dir / "venvs") for v, d in backend_dirs.items()}
    commands: dict[str, Callable[[int], list[str]]] = {
        variant: lambda port, variant=variant: local_command(  # type: ignore[misc]
            dockerfile_command(backend_dirs[variant] / "Dockerfile"), venvs[variant], port
        )
        for variant in VARIANTS
    }
    if settings.reference:
        # The "no" app behind the usual add-ons, installed next to it.
        backend_dirs["reference"] = backend_dirs["no"]
        venvs["reference"] = backend_venv(
            backend_dirs["no"], build_dir / "venvs", REFERENCE_REQUIREMENTS
        )
        commands["reference"] = lambda port: [
            str(venvs["reference"] / "bin" / "python"), "-m", "uvicorn",
            "--app-dir", str(BENCH_DIR), "reference_app:app", "--host", HOST, "--port", str(port),
        ]  # fmt: skip

    def backend(name: str, variant: str, environment: dict[str, str]) -> Backend:
        return Backend(
            name,
            commands[variant],
            backend_dirs[variant],
            server_environment(venvs[variant], environment),
            logs,
        )

    receiver_keys = (
        *("yes_100", "yes_10", "reference", "other", "db_yes_100", "db_yes_10"),
        *("enqueue_yes_100", "enqueue_yes_10"),
    )
    receivers = {key: SpanCounter() for key in receiver_keys}
    try:
        with closed_port() as nothing_listens:
            listed = [
                *telemetry_scenarios("", "", receivers),
                Scenario(
                    "yes_unreachable",
                    "yes, 100% sampled, exporter down",
                    "yes",
                    {
                        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{HOST}:{nothing_listens}",
                        **ALWAYS_ON,
                    },
                ),
            ]
            if settings.reference:
                listed.append(
                    Scenario(
                        "reference",
                        "reference: BaseHTTPMiddleware metrics + default OTel instrumentation",
                        "reference",
                        {"OTEL_EXPORTER_OTLP_ENDPOINT": receivers["reference"].endpoint},
                        receivers["reference"],
                    )
                )
            backends = {s.key: backend(s.key, s.variant, s.environment) for s in listed}
            try:
                paths = {start_with_item(each, settings).path for each in backends.values()}
                assert len(paths) == 1, f"the backends disagree on the item's path: {paths}"
                settings = replace(settings, path=paths.pop())
                progress(
                    f"throughput: {settings.rounds} rounds x {len(listed)} scenarios "
                    f"x {settings.seconds} s, GET {settings.path}"
                )
                results = measure_throughput(settings, backends, listed)
            finally:
                for each in backends.values():
                    each.stop()  # SIGTERM: the batch exporters flush what they hold
        progress("the database scenarios")
        database_listed, database_results, database_backends = measure_database(
            replace(settings, path=requested_path), build_dir, logs, receivers
        )
        listed += database_listed
        results |= database_results
        backends |= database_backends
        progress("the enqueue scenarios")
        enqueue_listed, enqueue_results, enqueue_backends = measure_enqueue(
            settings, build_dir, logs, receivers
        )
        listed += enqueue_listed
        results |= enqueue_results
        backends |= enqueue_backends
        for scenario in listed:
            if scenario.receiver is not None:
                sent = backends[scenario.key].requests_sent
                results[scenario.key].spans_per_request = round(scenario.receiver.spans / sent, 3)

        progress("start-up times")
        exporting = {"OTEL_EXPORTER_OTLP_ENDPOINT": receivers["other"].endpoint, **ALWAYS_ON}
        startup_seconds = measure_startup(
            settings,
            {
                "no": backend("startup-no", "no", {}),
                "yes": backend("startup-yes", "yes", exporting),
            },
        )
        progress(f"memory: 2 x {settings.memory_requests:,} requests")
        memory = measure_memory(settings, backend("memory-yes", "yes", exporting))
    finally:
        for receiver in receivers.values():
            receiver.stop()

    for scenario in listed:
        results[scenario.key].vs_no = paired_ratio(
            results[scenario.key], results[scenario.baseline]
        )
    startup_ms = {v: round(median(s) * 1000, 1) for v, s in startup_seconds.items()}
    figures: dict[str, float] = {
        "yes_100_over_no": results["yes_100"].vs_no,
        "yes_10_over_no": results["yes_10"].vs_no,
        "unreachable_over_reachable": paired_ratio(results["yes_unreachable"], results["yes_100"]),
        "unreachable_errors": results["yes_unreachable"].errors,
        "db_yes_100_over_db_no": results["db_yes_100"].vs_no,
        "db_yes_10_over_db_no": results["db_yes_10"].vs_no,
        # The template's database read against the floor of this stack (the reference).
        "db_no_over_reference": paired_ratio(results["db_no"], results["db_reference"]),
        "enqueue_yes_100_over_no": results["enqueue_yes_100"].vs_no,
        "enqueue_yes_10_over_no": results["enqueue_yes_10"].vs_no,
        # What the database's spans and metrics add to a request, on top of the HTTP ones.
        "db_telemetry_cpu_us_per_request_100": round(
            (results["db_yes_100"].cpu_us_per_request - results["db_no"].cpu_us_per_request)
            - (results["yes_100"].cpu_us_per_request - results["no"].cpu_us_per_request),
            1,
        ),
        "db_telemetry_cpu_us_per_request_10": round(
            (results["db_yes_10"].cpu_us_per_request - results["db_no"].cpu_us_per_request)
            - (results["yes_10"].cpu_us_per_request - results["no"].cpu_us_per_request),
            1,
        ),
        "memory_growth_mb": memory["growth_mb"],
        "startup_yes_over_no": ratio(startup_ms["yes"], startup_ms["no"]),
    }
    if "reference" in results:
        figures["reference_over_no"] = results["reference"].vs_no
    report: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": git_commit(),
        "machine": machine(),
        "settings": {
            name: value
            for name, value in asdict(settings).items()
            if name not in ("results_dir", "build_dir")  # where, not how: left out
        },
        "scenarios": {key: asdict(result) for key, result in results.items()},
        "figures": figures,
        "memory": memory,
        "startup_ms": startup_ms,
        "startup_samples_ms": {
            variant: [round(s * 1000, 1) for s in samples]
            for variant, samples in startup_seconds.items()
        },
        "render_ms": {v: round(median(t) * 1000, 1) for v, t in render_seconds.items()},
        "targets": evaluate_targets(figures),
    }
    print(format_table(report), flush=True)
    progress(f"wrote {write_results(report, Path(settings.results_dir))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
