"""Each attempt of a job: its state, its time limit, and what follows a failure.

A failed attempt is sent again, with the same job id and labels, after a pause that doubles
each time (JOB_RETRY_BACKOFF_SECONDS, then twice that, ...), until JOB_ATTEMPTS ran; then the
job is failed and kept in the dead letters (the `<queue>:dead` stream), where an operator can
read and send it again. A job that raises `JobFailed` is failed at once, without a retry.

The pause is taken before the failed attempt ends, so its message stays unacknowledged: a
worker that dies meanwhile loses nothing, the message is delivered again.
"""

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from taskiq import TaskiqMessage, TaskiqMiddleware, TaskiqResult
from taskiq.exceptions import NoResultError
from taskiq.kicker import AsyncKicker

from app.jobs.broker import JobBroker
from app.jobs.states import JobState, record_state
from app.settings import Settings

ATTEMPT_LABEL = "attempt"
# taskiq's own label: the seconds an attempt may run before it fails with a TimeoutError.
TIMEOUT_LABEL = "timeout"

logger = logging.getLogger("app.jobs")


class JobFailed(Exception):
    """Raised by a job that cannot succeed however often it runs (its input is wrong)."""


class AttemptOutcomes(Protocol):
    """Told what follows each failed attempt (the metrics of `app.observability`)."""

    def attempt_retried(self, message: TaskiqMessage) -> None: ...

    def job_dead_lettered(self, message: TaskiqMessage) -> None: ...


def attempt_of(labels: Mapping[str, Any]) -> int:
    """The attempt a message's (or a saved result's) labels name, from 1."""
    return int(labels.get(ATTEMPT_LABEL, 1))


class JobLifecycle(TaskiqMiddleware):
    def __init__(
        self, broker: JobBroker, settings: Settings, outcomes: AttemptOutcomes | None = None
    ) -> None:
        super().__init__()
        self._broker = broker
        self._attempts = settings.job_attempts
        self._pause_seconds = settings.job_retry_pause_seconds
        self._timeout_seconds = settings.job_timeout_seconds
        self._outcomes = outcomes

    async def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        message.labels[TIMEOUT_LABEL] = self._timeout_seconds
        await record_state(
            self._broker.result_backend,
            message.task_id,
            JobState.RUNNING,
            attempt_of(message.labels),
        )
        return message

    async def on_error(
        self, message: TaskiqMessage, result: TaskiqResult[Any], exception: BaseException
    ) -> None:
        attempt = attempt_of(message.labels)
        # The message alone: the error's may carry the job's data.
        context = {"task": message.task_name, "job_id": message.task_id, "attempt": attempt}
        error_type = type(exception).__name__
        if isinstance(exception, JobFailed):
            logger.warning("job failed", extra={**context, "error_type": error_type})
            return
        if attempt >= self._attempts:
            logger.error(
                "job failed after its last attempt", extra={**context, "error_type": error_type}
            )
            await self._broker.dead_letter(message, error_type)
            if self._outcomes is not None:
                self._outcomes.job_dead_lettered(message)
            return
        pause = self._pause_seconds(attempt)
        logger.warning(
            "job attempt failed, retrying",
            extra={**context, "error_type": error_type, "retry_in_seconds": pause},
        )
        await asyncio.sleep(pause)
        next_attempt = attempt + 1
        await record_state(
            self._broker.result_backend, message.task_id, JobState.QUEUED, next_attempt
        )
        kicker: AsyncKicker[Any, Any] = AsyncKicker(
            message.task_name, self._broker, labels={**message.labels, ATTEMPT_LABEL: next_attempt}
        )
        await kicker.with_task_id(message.task_id).kiq(*message.args, **message.kwargs)
        if self._outcomes is not None:
            self._outcomes.attempt_retried(message)
        # Not a result: the job goes on, so none is saved.
        result.error = NoResultError()
