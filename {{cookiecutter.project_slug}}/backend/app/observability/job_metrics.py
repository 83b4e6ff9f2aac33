"""Prometheus metrics of the background jobs, their queue and its Redis server.

Their names and labels are shared with the Worker dashboard and the alert rules; `queue`
is `JOB_QUEUE` and `task` a registered job's name (not `job`: Prometheus's own label for the
scrape job), so both are bounded:
- `jobs_enqueued_total{queue, task}` (the API's), `jobs_started_total`, `jobs_succeeded_total`,
  `jobs_failed_total` (failed for good), `jobs_retried_total` (attempts failed and sent
  again), `jobs_dead_lettered_total` (failed their last attempt), `jobs_in_progress`, all
  `{queue, task}`
- `job_duration_seconds{queue, task}`, an attempt's run time, observations carrying a
  `trace_id` exemplar when its span is sampled
- `job_queue_backlog{queue}` (jobs waiting, not yet read by a worker),
  `job_queue_oldest_age_seconds{queue}` (how long the oldest of them has waited, 0 when none
  waits), `redis_up` and `redis_ping_duration_seconds`, read by the worker every
  `QUEUE_REFRESH_SECONDS` in the background, never by a scrape.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from redis.asyncio import Redis
from taskiq import TaskiqMessage

from app.jobs.broker import JobBroker
from app.observability.metrics import trace_exemplar

JOB_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
PING_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
QUEUE_REFRESH_SECONDS = 5.0


class JobMetrics:
    """Counts and times the jobs; also the `AttemptOutcomes` of `app.jobs.lifecycle`."""

    def __init__(self, registry: CollectorRegistry, queue: str) -> None:
        self._queue = queue
        labels = ["queue", "task"]

        def counter(name: str, documentation: str) -> Counter:
            return Counter(name, documentation, labels, registry=registry)

        self.enqueued = counter("jobs_enqueued_total", "Jobs sent to the queue.")
        self.started = counter("jobs_started_total", "Job attempts started by a worker.")
        self.succeeded = counter("jobs_succeeded_total", "Jobs that succeeded.")
        self.failed = counter("jobs_failed_total", "Jobs failed for good (no attempt left).")
        self.retried = counter("jobs_retried_total", "Failed attempts sent again.")
        self.dead_lettered = counter(
            "jobs_dead_lettered_total", "Jobs that failed their last attempt (dead letters)."
        )
        self.in_progress = Gauge(
            "jobs_in_progress", "Job attempts running right now.", labels, registry=registry
        )
        self.duration = Histogram(
            "job_duration_seconds",
            "Run time of one attempt of a job.",
            labels,
            buckets=JOB_DURATION_BUCKETS,
            registry=registry,
        )

    def start_series(self, job_names: Iterable[str]) -> None:
        """Every series of the worker's jobs, at 0 before the first job: a rate or a ratio of
        them is 0 from the start, not missing until a first failure."""
        for job_name in job_names:
            for metric in (
                self.started,
                self.succeeded,
                self.failed,
                self.retried,
                self.dead_lettered,
                self.in_progress,
                self.duration,
            ):
                metric.labels(self._queue, job_name)

    def sent(self, job_name: str) -> None:
        self.enqueued.labels(self._queue, job_name).inc()

    def attempt_started(self, job_name: str) -> None:
        self.started.labels(self._queue, job_name).inc()
        self.in_progress.labels(self._queue, job_name).inc()

    def attempt_finished(self, job_name: str, seconds: float, succeeded: bool | None) -> None:
        """`succeeded`: True or False for a job's last attempt, None for one retried."""
        self.in_progress.labels(self._queue, job_name).dec()
        self.duration.labels(self._queue, job_name).observe(seconds, trace_exemplar())
        if succeeded is not None:
            (self.succeeded if succeeded else self.failed).labels(self._queue, job_name).inc()

    def attempt_retried(self, message: TaskiqMessage) -> None:
        self.retried.labels(self._queue, message.task_name).inc()

    def job_dead_lettered(self, message: TaskiqMessage) -> None:
        self.dead_lettered.labels(self._queue, message.task_name).inc()


class QueueGauges:
    def __init__(self, registry: CollectorRegistry, queue: str) -> None:
        self.backlog = Gauge(
            "job_queue_backlog", "Jobs waiting for a worker.", ["queue"], registry=registry
        ).labels(queue)
        self.oldest_age = Gauge(
            "job_queue_oldest_age_seconds",
            "How long the oldest waiting job has waited (0 when none waits).",
            ["queue"],
            registry=registry,
        ).labels(queue)
        self.redis_up = Gauge(
            "redis_up", "1 when Redis answered the last ping, else 0.", registry=registry
        )
        self.ping_duration = Histogram(
            "redis_ping_duration_seconds",
            "Time for Redis to answer a ping.",
            buckets=PING_BUCKETS,
            registry=registry,
        )

    async def refresh(self, broker: JobBroker) -> None:
        try:
            async with Redis(connection_pool=broker.connection_pool) as redis:
                started = time.perf_counter()
                await redis.ping()
                self.ping_duration.observe(time.perf_counter() - started)
                waiting, oldest_sent_at = await _waiting_jobs(redis, broker)
        except Exception:  # Redis down or busy: the gauges say so, the worker goes on
            self.redis_up.set(0)
            return
        self.redis_up.set(1)
        self.backlog.set(waiting)
        self.oldest_age.set(0 if oldest_sent_at is None else max(time.time() - oldest_sent_at, 0))


async def _waiting_jobs(redis: Redis, broker: JobBroker) -> tuple[int, float | None]:
    """How many jobs no worker has read yet, and when the oldest was sent (the time in its
    message id). The stream holds only waiting and running jobs (acknowledged ones are
    deleted), so the waiting ones are its length less the group's pending."""
    queue, group = broker.queue_name, broker.consumer_group_name
    if not await redis.exists(queue):
        return 0, None
    groups: list[dict[str, Any]] = await redis.xinfo_groups(queue)
    ours = next((info for info in groups if info["name"] == group.encode()), None)
    length: int = await redis.xlen(queue)
    if ours is None:  # no worker has joined yet: every job waits
        waiting, first = length, await redis.xrange(queue, count=1)
    else:
        waiting = length - int(ours["pending"])
        after_last_read = b"(" + ours["last-delivered-id"]
        first = await redis.xrange(queue, min=after_last_read, count=1)
    return waiting, _sent_at(cast(bytes, first[0][0])) if first else None


def _sent_at(message_id: bytes) -> float:
    """A stream message id starts with the milliseconds since the epoch it was added at."""
    return int(message_id.split(b"-")[0]) / 1000


@contextlib.asynccontextmanager
async def refreshing_queue_gauges(broker: JobBroker, gauges: QueueGauges) -> AsyncIterator[None]:
    """Read the queue into `gauges` now and every `QUEUE_REFRESH_SECONDS` while the block
    lasts (the worker's lifespan)."""

    async def refresh() -> None:
        while True:
            await gauges.refresh(broker)
            await asyncio.sleep(QUEUE_REFRESH_SECONDS)

    task = asyncio.create_task(refresh())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
