{%- set postgres = cookiecutter.database == "postgres" -%}
"""The jobs' spans, metrics and log lines: one trace from the request to each attempt, the
counters of every outcome, and the gauges of the queue, against the real Redis of REDIS_*."""

import asyncio
import re
import time

from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from app.jobs.broker import JobBroker, create_broker
from app.main import create_app
from app.observability import Telemetry, create_telemetry
from app.observability.job_metrics import QueueGauges
from app.settings import Settings
from app.worker import create_worker
from tests.conftest import LogLines, capture_json_logs
from tests.test_jobs import flaky, kick, left_running_by, send, wait_for_job

JOB = "items.import"


class Worker:
    """A worker application with its own telemetry, its spans kept in memory."""

    def __init__(self, settings: Settings, broker: JobBroker | None = None) -> None:
        self.telemetry = create_telemetry(settings)
        self.spans = InMemorySpanExporter()
        self.telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.broker = broker or create_broker(settings, consumer_name=settings.worker_name)
        self.app: FastAPI = create_worker(settings, broker=self.broker, telemetry=self.telemetry)

    def value(self, name: str, **labels: str) -> float | None:
        return self.telemetry.registry.get_sample_value(name, labels)


def by_kind(spans: InMemorySpanExporter, kind: SpanKind) -> list[ReadableSpan]:
    return [span for span in spans.get_finished_spans() if span.kind is kind]


def test_a_job_joins_the_trace_of_the_request_that_sent_it(
    settings: Settings, client: TestClient, spans: InMemorySpanExporter
) -> None:
    worker = Worker(settings)
    response = send(client, "lamp")
    with TestClient(worker.app):
        wait_for_job(client, response.headers["location"], "succeeded")

    (request,) = [span for span in by_kind(spans, SpanKind.SERVER) if "imports" in span.name]
    (producer,) = by_kind(spans, SpanKind.PRODUCER)
    (consumer,) = by_kind(worker.spans, SpanKind.CONSUMER)
    job_id = response.json()["id"]
    assert producer.name == f"send {settings.job_queue}"
    assert producer.parent is not None
    assert producer.parent.span_id == request.context.span_id
    assert producer.attributes == {
        "messaging.system": "redis",
        "messaging.operation.name": "send",
        "messaging.operation.type": "send",
        "messaging.destination.name": settings.job_queue,
        "messaging.message.id": job_id,
        "job.name": JOB,
    }
    assert consumer.name == f"process {settings.job_queue}"
    assert consumer.context.trace_id == request.context.trace_id
    assert consumer.parent is not None
    assert consumer.parent.span_id == producer.context.span_id
    assert consumer.attributes is not None
    assert consumer.attributes["messaging.operation.type"] == "process"
    assert (consumer.attributes["job.name"], consumer.attributes["job.attempt"]) == (JOB, 1)
    assert consumer.status.status_code is StatusCode.UNSET
{%- if postgres %}
    # The job's statements are children of its attempt.
    statements = by_kind(worker.spans, SpanKind.CLIENT)
    assert statements
    assert {span.parent.span_id for span in statements if span.parent} == {consumer.context.span_id}
{%- endif %}


def test_each_attempt_is_a_span_and_a_failed_one_is_an_error(
    settings: Settings, app: FastAPI
) -> None:
    worker = Worker(settings)
    worker.broker.register_task(flaky(failures=1), task_name="test.flaky")
    job_id = kick(settings, "test.flaky")
    with TestClient(worker.app), TestClient(app) as client:
        wait_for_job(client, f"/api/v1/jobs/{job_id}", "succeeded")

    attempts = {
        (span.attributes or {})["job.attempt"]: span
        for span in by_kind(worker.spans, SpanKind.CONSUMER)
    }
    failed, succeeded = attempts[1], attempts[2]
    assert failed.status.status_code is StatusCode.ERROR
    assert (failed.attributes or {})["error.type"] == "ConnectionError"
    assert succeeded.status.status_code is StatusCode.UNSET
    assert failed.context.trace_id == succeeded.context.trace_id


def test_every_outcome_is_counted_by_queue_and_job(settings: Settings, app: FastAPI) -> None:
    worker = Worker(settings)
    worker.broker.register_task(flaky(failures=1), task_name="test.flaky")
    worker.broker.register_task(flaky(failures=99), task_name="test.broken")
    jobs = {name: kick(settings, name) for name in ("test.flaky", "test.broken")}
    with TestClient(worker.app), TestClient(app) as client:
        wait_for_job(client, f"/api/v1/jobs/{jobs['test.flaky']}", "succeeded")
        wait_for_job(client, f"/api/v1/jobs/{jobs['test.broken']}", "failed")

    queue = settings.job_queue
    attempts = settings.job_attempts
    expected = {
        ("test.flaky", "jobs_started_total"): 2,
        ("test.flaky", "jobs_retried_total"): 1,
        ("test.flaky", "jobs_succeeded_total"): 1,
        ("test.flaky", "jobs_failed_total"): None,
        ("test.flaky", "jobs_dead_lettered_total"): None,
        ("test.flaky", "job_duration_seconds_count"): 2,
        ("test.flaky", "jobs_in_progress"): 0,
        ("test.broken", "jobs_started_total"): attempts,
        ("test.broken", "jobs_retried_total"): attempts - 1,
        ("test.broken", "jobs_succeeded_total"): None,
        ("test.broken", "jobs_failed_total"): 1,
        ("test.broken", "jobs_dead_lettered_total"): 1,
    }
    measured = {(task, name): worker.value(name, queue=queue, task=task) for task, name in expected}
    assert measured == expected


def test_the_workers_probes_and_scrapes_make_no_span(settings: Settings) -> None:
    worker = Worker(settings)
    with TestClient(worker.app) as worker_client:
        for path in ("/health/live", "/health/ready", "/metrics"):
            worker_client.get(path)
    assert worker.spans.get_finished_spans() == ()


def test_the_workers_job_series_start_at_0(settings: Settings) -> None:
    worker = Worker(settings)
    labels = {"queue": settings.job_queue, "task": JOB}
    for name in ("jobs_started_total", "jobs_failed_total", "jobs_dead_lettered_total"):
        assert worker.value(name, **labels) == 0, name


def test_the_api_counts_what_it_sends(
    settings: Settings, client: TestClient, telemetry: Telemetry
) -> None:
    for name in ("lamp", "desk"):
        assert send(client, name).status_code == 202
    sent = telemetry.registry.get_sample_value(
        "jobs_enqueued_total", {"queue": settings.job_queue, "task": JOB}
    )
    assert sent == 2


def test_a_request_left_out_of_its_trace_sends_a_job_that_stays_out(
    settings: Settings, client: TestClient, spans: InMemorySpanExporter
) -> None:
    """The caller did not sample its trace, so neither does the request, and its send makes no
    span; the context it gives the job keeps the attempts out too (a job sent without one
    would start a trace of its own, sampled in this environment)."""
    worker = Worker(settings)
    not_sampled = f"00-{'ab' * 16}-{'cd' * 8}-00"
    response = send(client, "lamp", traceparent=not_sampled)
    with TestClient(worker.app):
        wait_for_job(client, response.headers["location"], "succeeded")
    assert by_kind(spans, SpanKind.PRODUCER) == []
    assert by_kind(worker.spans, SpanKind.CONSUMER) == []


def test_a_send_that_fails_is_an_error_span_and_not_counted(
    settings: Settings, unused_port: int
) -> None:
    unreachable = settings.model_copy(update={"redis_port": unused_port})
    telemetry = create_telemetry(unreachable)
    spans = InMemorySpanExporter()
    telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    with TestClient(create_app(unreachable, telemetry=telemetry)) as client:
        assert send(client, "lamp").status_code == 503
    (producer,) = by_kind(spans, SpanKind.PRODUCER)
    assert producer.status.status_code is StatusCode.ERROR
    assert (producer.attributes or {})["error.type"] == "ConnectionError"
    sent = telemetry.registry.get_sample_value(
        "jobs_enqueued_total", {"queue": settings.job_queue, "task": JOB}
    )
    assert sent is None


def test_the_duration_carries_the_attempts_trace_as_exemplar_and_logs_its_ids(
    settings: Settings, client: TestClient
) -> None:
    worker = Worker(settings)
    log_lines: LogLines = capture_json_logs()
    response = send(client, "lamp")
    with TestClient(worker.app) as worker_client:
        wait_for_job(client, response.headers["location"], "succeeded")
        exposition = worker_client.get(
            "/metrics", headers={"Accept": "application/openmetrics-text"}
        ).text
    (consumer,) = by_kind(worker.spans, SpanKind.CONSUMER)
    trace_id = format(consumer.context.trace_id, "032x")
    exemplars = re.findall(
        r'job_duration_seconds_bucket\{[^}]*\} 1\.0 # \{trace_id="(\w+)"\}', exposition
    )
    assert set(exemplars) == {trace_id}
    started = [line for line in log_lines() if line["message"].startswith("Executing task")]
    assert [(line["trace_id"], line["span_id"]) for line in started] == [
        (trace_id, format(consumer.context.span_id, "016x"))
    ]


def read_gauges(settings: Settings) -> dict[str, float | None]:
    """The queue's gauges after one refresh, as the worker's background loop does it."""
    registry = create_telemetry(settings).registry
    gauges = QueueGauges(registry, settings.job_queue)

    async def refresh() -> None:
        broker = create_broker(settings)
        try:
            await gauges.refresh(broker)
        finally:
            await broker.shutdown()

    asyncio.run(refresh())
    labels = {"queue": settings.job_queue}
    return {
        "backlog": registry.get_sample_value("job_queue_backlog", labels),
        "oldest_age": registry.get_sample_value("job_queue_oldest_age_seconds", labels),
        "redis_up": registry.get_sample_value("redis_up"),
    }


def test_the_queue_gauges_count_the_jobs_no_worker_has_read_and_the_oldest_ones_age(
    settings: Settings, client: TestClient
) -> None:
    assert read_gauges(settings) == {"backlog": 0, "oldest_age": 0, "redis_up": 1}
    for name in ("lamp", "desk"):
        send(client, name)
    time.sleep(0.05)
    before_any_worker = read_gauges(settings)
    assert before_any_worker["backlog"] == 2
    assert 0.05 <= (before_any_worker["oldest_age"] or 0) < 60
    # A worker read both and died: running (pending), no longer waiting.
    left_running_by(settings, "a-dead-worker")
    send(client, "chair")
    read = read_gauges(settings)
    assert (read["backlog"], read["redis_up"]) == (1, 1)
    assert 0 <= (read["oldest_age"] or 0) < (before_any_worker["oldest_age"] or 0)


def test_a_redis_that_does_not_answer_is_redis_up_0(settings: Settings, unused_port: int) -> None:
    unreachable = settings.model_copy(update={"redis_port": unused_port})
    assert read_gauges(unreachable)["redis_up"] == 0
    worker = Worker(unreachable)
    with TestClient(worker.app):
        pass
    # The readiness gauges, refreshed once the lifespan starts.
    assert worker.value("app_ready") == 0
    assert worker.value("app_readiness_check", check="redis") == 0
