"""worker=taskiq, live: the rendered API and real worker processes (uvicorn, as compose runs
them) on a throwaway Redis and PostgreSQL, exporting to a real OTLP receiver and scraped by
the pinned Prometheus. A job sent through the API runs in the worker in the request's trace;
a worker killed in the middle of a job, and a Redis that stops, lose nothing; every query of
the Worker dashboard returns data."""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import resolved_compose, running
from dashboard_queries import WORKER_DASHBOARD, dashboard_queries

from harness.backend import (
    FAST_BATCH_EXPORT,
    BackendProcess,
    backend_venv,
    compose_environment,
    run_in_venv,
)
from harness.processes import ManagedProcess, free_port, wait_until
from harness.redis_server import RedisServer
from harness.worker_jobs import FLAKY_JOB, FLAKY_SUCCEEDS_AT, SLOW_JOB

from .otlp_receiver import OtlpTraceReceiver, ReceivedSpan
from .prometheus_server import running_prometheus

pytestmark = pytest.mark.slow

HARNESS_DIR = Path(__file__).resolve().parents[2] / "harness"
WORKER_FACTORY = "worker_jobs:create_worker_with_test_jobs"
WORKER_NAME = "live-worker"
DATABASE = "worker_live"
JOB_WAIT_SECONDS = 30
SPAN_KIND = {"server": 2, "client": 3, "producer": 4, "consumer": 5}


@pytest.fixture(scope="module")
def project(render_once: Callable[..., Path]) -> Path:
    return render_once(worker="taskiq", include_observability="yes", python_version="3.11")


@pytest.fixture(scope="module")
def venv(project: Path, venv_cache: Path) -> Path:
    return backend_venv(project / "backend", venv_cache)


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    """A Redis of this module's own: the tests stop and restart it."""
    with running(RedisServer) as server:
        yield server


@pytest.fixture(scope="module")
def environment(
    project: Path, venv: Path, postgres: Any, redis: RedisServer, otlp_receiver: OtlpTraceReceiver
) -> dict[str, str]:
    """The settings the API and the worker share: a database of their own on the session's
    server, migrated as compose's migrate service does, this module's Redis, the receiver."""
    postgres.psql("postgres", f"CREATE DATABASE {DATABASE}")
    database = {**postgres.environment, "POSTGRES_DB": DATABASE}
    command = resolved_compose(project)["services"]["migrate"]["command"]
    run_in_venv(venv, command, project / "backend", database)
    return {
        **database,
        **redis.environment,
        **FAST_BATCH_EXPORT,
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.endpoint,
        # Retries in a second, not the default's pause.
        "JOB_RETRY_BACKOFF_SECONDS": "0.2",
    }


@pytest.fixture(scope="module")
def api(
    project: Path, venv: Path, environment: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BackendProcess]:
    settings = {**compose_environment(project, "backend"), **environment}
    backend = BackendProcess(
        "api", project / "backend", venv, tmp_path_factory.mktemp("api"), settings
    )
    backend.wait_live()
    yield backend
    backend.stop()


class Worker:
    """One worker process as compose's `worker` service runs it, on a port of 127.0.0.1."""

    def __init__(self, project: Path, venv: Path, environment: dict[str, str], workdir: Path):
        service = resolved_compose(project)["services"]["worker"]
        command = service["command"]
        assert command[:2] == ["uvicorn", "app.worker:app"], command
        self.port = free_port()
        local = [
            str(venv / "bin/uvicorn"),
            "--factory",
            "--app-dir",
            str(HARNESS_DIR),
            WORKER_FACTORY,
            *["--host", "127.0.0.1", "--port", str(self.port)],
        ]
        settings = {
            **{k: v for k, v in service["environment"].items() if v is not None},
            **environment,
            "WORKER_NAME": WORKER_NAME,
            "PYTHONUNBUFFERED": "1",
            "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        }
        workdir.mkdir(parents=True, exist_ok=True)
        name = f"worker-{uuid.uuid4().hex[:6]}"
        self.process = ManagedProcess(name, local, workdir, cwd=project / "backend", env=settings)
        wait_until(self._live, 60, f"{name} /health/live")

    def _live(self) -> bool:
        self.process.assert_running()
        return self.get("/health/live").status_code == 200

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)

    def ready(self) -> bool:
        return self.get("/health/ready").status_code == 200

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.process.stdout().split("\n")[:-1]]

    def kill(self) -> None:
        self.process.popen.kill()
        self.process.popen.wait(timeout=10)
        self.process.stop()


@pytest.fixture(scope="module")
def start_worker(
    project: Path, venv: Path, environment: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[], Worker]]:
    started: list[Worker] = []

    def start() -> Worker:
        worker = Worker(project, venv, environment, tmp_path_factory.mktemp("worker"))
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.process.stop()


@pytest.fixture(scope="module")
def worker(start_worker: Callable[[], Worker]) -> Worker:
    worker = start_worker()
    wait_until(worker.ready, 30, "the worker to join the queue")
    return worker


def wait_for_job(api: BackendProcess, job_id: str, status: str) -> dict[str, Any]:
    def settled() -> dict[str, Any] | None:
        response = api.get(f"/api/v1/jobs/{job_id}")
        job: dict[str, Any] = response.json() if response.status_code == 200 else {}
        return job if job.get("status") == status else None

    return wait_until(settled, JOB_WAIT_SECONDS, f"job {job_id} to be {status}")


def send_directly(redis: RedisServer, task: str, **labels: str) -> str:
    """A job put into the stream as the API's send does (taskiq's JSON message)."""
    job_id = uuid.uuid4().hex
    kwargs = {"seconds": 4} if task == SLOW_JOB else {}
    message = {
        "task_id": job_id,
        "task_name": task,
        "labels": labels,
        "labels_types": {},
        "args": [],
        "kwargs": kwargs,
    }
    assert redis.command("XADD", "jobs", "*", "data", json.dumps(message)).startswith("$")
    return job_id


def spans_of(receiver: OtlpTraceReceiver, trace_id: str) -> list[ReceivedSpan]:
    return [span for span in receiver.spans() if span.trace_id == trace_id]


def test_a_job_sent_through_the_api_runs_in_the_worker_in_the_requests_trace(
    api: BackendProcess, worker: Worker, otlp_receiver: OtlpTraceReceiver
) -> None:
    items = [{"name": f"lamp {n}", "price": "9.99"} for n in range(3)]
    sent = httpx.post(
        f"{api.url}/api/v1/items/imports",
        json={"items": items},
        headers={"X-Correlation-ID": "live-correlation"},
        timeout=10,
    )
    assert sent.status_code == 202, sent.text
    job = wait_for_job(api, sent.json()["id"], "succeeded")
    assert job["result"] == {"created": 3, "skipped": []}
    assert {item["name"] for item in api.get("/api/v1/items").json()} >= {i["name"] for i in items}

    def the_requests_span() -> list[ReceivedSpan] | None:
        spans = [
            span
            for span in otlp_receiver.spans()
            if span.kind == SPAN_KIND["server"]
            and span.attributes.get("http.route") == "/api/v1/items/imports"
        ]
        return spans or None

    (request_span,) = wait_until(the_requests_span, 15, "the request's span")

    def trace_complete() -> list[ReceivedSpan] | None:
        spans = spans_of(otlp_receiver, request_span.trace_id)
        kinds = {span.kind for span in spans}
        return spans if {SPAN_KIND["producer"], SPAN_KIND["consumer"]} <= kinds else None

    spans = wait_until(trace_complete, 15, "the producer and consumer spans")
    (producer,) = [span for span in spans if span.kind == SPAN_KIND["producer"]]
    (consumer,) = [span for span in spans if span.kind == SPAN_KIND["consumer"]]
    assert producer.parent_span_id == request_span.span_id
    assert consumer.parent_span_id == producer.span_id
    assert (producer.resource["service.name"], consumer.resource["service.name"]) == (
        "backend",
        "worker",
    )
    statements = [span for span in spans if span.kind == SPAN_KIND["client"]]
    assert statements and {span.parent_span_id for span in statements} == {consumer.span_id}

    executing = [
        line
        for line in worker.log_lines()
        if line["message"] == f"Executing task items.import with ID: {job['id']}"
    ]
    request_id = sent.headers["x-request-id"]
    assert [
        (line["source"], line["service"], line["request_id"], line["correlation_id"])
        for line in executing
    ] == [("worker", "worker", request_id, "live-correlation")]
    assert (executing[0]["trace_id"], executing[0]["span_id"]) == (
        consumer.trace_id,
        consumer.span_id,
    )


def test_a_job_failing_twice_keeps_its_ids_in_every_attempt(
    api: BackendProcess, worker: Worker, redis: RedisServer, otlp_receiver: OtlpTraceReceiver
) -> None:
    ids = {"request_id": "live-request", "correlation_id": "live-flaky"}
    job_id = send_directly(redis, FLAKY_JOB, **ids)
    job = wait_for_job(api, job_id, "succeeded")
    assert (job["attempt"], job["result"]) == (FLAKY_SUCCEEDS_AT, FLAKY_SUCCEEDS_AT)
    attempts = [
        line
        for line in worker.log_lines()
        if line["message"] == f"Executing task {FLAKY_JOB} with ID: {job_id}"
    ]
    assert len(attempts) == FLAKY_SUCCEEDS_AT
    assert {(line["request_id"], line["correlation_id"]) for line in attempts} == {
        tuple(ids.values())
    }

    def every_attempts_span() -> list[ReceivedSpan] | None:
        spans = [
            span
            for span in otlp_receiver.spans()
            if span.kind == SPAN_KIND["consumer"]
            and span.attributes.get("messaging.message.id") == job_id
        ]
        return spans if len(spans) >= FLAKY_SUCCEEDS_AT else None

    consumers = wait_until(every_attempts_span, 15, "a span per attempt")
    by_attempt = {span.attributes["job.attempt"]: span for span in consumers}
    assert sorted(by_attempt) == list(range(1, FLAKY_SUCCEEDS_AT + 1))
    assert len({span.trace_id for span in consumers}) == 1
    assert [by_attempt[n].status_code for n in sorted(by_attempt)] == [2, 2, 0]  # ERROR, UNSET


def test_a_worker_killed_in_the_middle_of_a_job_loses_nothing(
    api: BackendProcess, start_worker: Callable[[], Worker], redis: RedisServer, worker: Worker
) -> None:
    worker.process.stop()  # the module's worker steps aside: this test kills its own
    victim = start_worker()
    wait_until(victim.ready, 30, "the worker to join the queue")
    job_id = send_directly(redis, SLOW_JOB)
    wait_for_job(api, job_id, "running")
    victim.kill()  # SIGKILL: no shutdown, the job is neither finished nor acknowledged
    assert api.get(f"/api/v1/jobs/{job_id}").json()["status"] == "running"
    successor = start_worker()  # same WORKER_NAME: takes back what its predecessor held
    job = wait_for_job(api, job_id, "succeeded")
    assert job["result"] == "slept"
    runs = [
        line
        for process in (victim, successor)
        for line in process.log_lines()
        if line["message"] == f"Executing task {SLOW_JOB} with ID: {job_id}"
    ]
    assert len(runs) == 2  # delivered again: at least once


def test_a_redis_that_stops_is_a_503_then_both_recover_without_a_restart(
    api: BackendProcess, start_worker: Callable[[], Worker], redis: RedisServer
) -> None:
    worker = start_worker()
    wait_until(worker.ready, 30, "the worker to join the queue")
    redis.stop()
    try:
        sent = httpx.post(
            f"{api.url}/api/v1/items/imports",
            json={"items": [{"name": "during the outage", "price": "1"}]},
            timeout=10,
        )
        assert sent.status_code == 503
        assert sent.json() == {
            "detail": "Service Unavailable: the job queue did not answer",
            "request_id": sent.headers["x-request-id"],
        }
        wait_until(lambda: not worker.ready(), 30, "the worker's readiness to fail")
        assert api.get("/health/ready").status_code == 200  # the API itself still serves
    finally:
        redis.start()
    wait_until(worker.ready, 30, "the worker's readiness to pass again")
    sent = httpx.post(
        f"{api.url}/api/v1/items/imports",
        json={"items": [{"name": "after the outage", "price": "1"}]},
        timeout=10,
    )
    assert sent.status_code == 202
    wait_for_job(api, sent.json()["id"], "succeeded")


def test_every_query_of_the_worker_dashboard_returns_data(
    project: Path,
    api: BackendProcess,
    start_worker: Callable[[], Worker],
    redis: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    worker = start_worker()
    wait_until(worker.ready, 30, "the worker to join the queue")
    targets = {"backend": f"127.0.0.1:{api.port}", "worker": f"127.0.0.1:{worker.port}"}
    with running_prometheus(project, targets, tmp_path_factory.mktemp("prometheus")) as server:
        promql = [
            q for q in dashboard_queries(project / WORKER_DASHBOARD) if q.language == "promql"
        ]
        assert promql

        def has_data(query: Any) -> bool:
            if query.source.startswith("variable "):
                return any(query.ref_id in s["metric"] for s in server.query(query.expr))
            return any(math.isfinite(float(s["value"][1])) for s in server.query(query.expr))

        empty = list(promql)
        deadline = time.monotonic() + 90
        while empty and time.monotonic() < deadline:
            # Jobs keep flowing, a failing one among them, as on a watched dashboard.
            httpx.post(
                f"{api.url}/api/v1/items/imports",
                json={"items": [{"name": f"dashboard {uuid.uuid4().hex[:8]}", "price": "1"}]},
                timeout=10,
            )
            send_directly(redis, FLAKY_JOB)
            time.sleep(2)
            empty = [query for query in empty if not has_data(query)]
        assert [f"{q.source}: {q.expr}" for q in empty] == []
