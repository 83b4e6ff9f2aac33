"""The background jobs' telemetry: each send and each attempt, its span first, then its
metrics inside it (the duration's exemplar is the attempt's trace)."""

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from taskiq import TaskiqMessage, TaskiqMiddleware, TaskiqResult
from taskiq.exceptions import NoResultError

from app.observability.job_metrics import JobMetrics
from app.observability.job_tracing import AttemptSpan, JobSpans


class SentJobs:
    """A `SendObserver` of `app.jobs.queue`: the API's sends."""

    def __init__(self, spans: JobSpans, metrics: JobMetrics) -> None:
        self._spans = spans
        self._metrics = metrics

    @contextlib.contextmanager
    def sending(self, job_name: str, job_id: str, labels: dict[str, Any]) -> Iterator[None]:
        with self._spans.sending(job_name, job_id, labels):
            yield
        self._metrics.sent(job_name)


@dataclass
class _Attempt:
    span: AttemptSpan
    started: float
    finished: float | None = None
    error_type: str | None = None


# Each attempt runs in an asyncio task of its own: what its hooks share lives here.
_current_attempt: ContextVar[_Attempt | None] = ContextVar("job_attempt", default=None)


class ObservedAttempts(TaskiqMiddleware):
    """The worker's attempts. Added after `JobLifecycle`, so its span starts after the state
    is recorded, and its failure is seen before the lifecycle's pause before a retry."""

    def __init__(self, spans: JobSpans, metrics: JobMetrics) -> None:
        super().__init__()
        self._spans = spans
        self._metrics = metrics

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        attempt = _Attempt(self._spans.attempt_started(message), time.perf_counter())
        _current_attempt.set(attempt)
        self._metrics.attempt_started(message.task_name)
        return message

    def on_error(
        self, message: TaskiqMessage, result: TaskiqResult[Any], exception: BaseException
    ) -> None:
        attempt = _current_attempt.get()
        if attempt is not None:
            attempt.finished = time.perf_counter()
            attempt.error_type = type(exception).__qualname__

    def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        attempt = _current_attempt.get()
        if attempt is None:
            return
        _current_attempt.set(None)
        finished = attempt.finished or time.perf_counter()
        retried = isinstance(result.error, NoResultError)
        succeeded = None if retried else not result.is_err
        try:
            self._metrics.attempt_finished(message.task_name, finished - attempt.started, succeeded)
        finally:
            self._spans.attempt_finished(attempt.span, attempt.error_type)
