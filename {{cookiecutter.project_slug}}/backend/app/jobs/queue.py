"""What the API sends jobs and reads their state through."""

import contextlib
import uuid
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request
from pydantic import BaseModel, JsonValue
from redis.exceptions import RedisError
from taskiq import AsyncBroker
from taskiq.exceptions import SendTaskError
from taskiq.kicker import AsyncKicker
from taskiq_redis.exceptions import ResultIsMissingError

from app.jobs.lifecycle import attempt_of
from app.jobs.states import JobState, record_state


class SendObserver(Protocol):
    """Told of every job sent, around the send (the telemetry of `app.observability`): it may
    add labels, which go with the job to the worker."""

    def sending(
        self, job_name: str, job_id: str, labels: dict[str, Any]
    ) -> contextlib.AbstractContextManager[None]: ...


class QueueUnavailable(Exception):
    """Redis did not answer: the job was not sent, or its state could not be read."""


class Job(BaseModel):
    id: str
    status: JobState
    # The attempt running or last run, from 1; a failed attempt is retried up to JOB_ATTEMPTS.
    attempt: int
    # What the job returned, once it succeeded.
    result: JsonValue = None
    # The type of the error that failed it, never its message (it may carry data).
    error: str | None = None


class JobQueue:
    def __init__(self, broker: AsyncBroker, observer: SendObserver | None = None) -> None:
        self._broker = broker
        self._observer = observer

    async def send(self, task_name: str, **arguments: Any) -> str:
        """The new job's id, once the job is in the queue."""
        job_id = uuid.uuid4().hex
        labels: dict[str, Any] = {}
        observed = (
            self._observer.sending(task_name, job_id, labels)
            if self._observer is not None
            else contextlib.nullcontext()
        )
        try:
            with observed:
                # Queued before it is sent: a worker fast enough to start it is not undone.
                await record_state(self._broker.result_backend, job_id, JobState.QUEUED, 1)
                kicker: AsyncKicker[Any, Any] = AsyncKicker(task_name, self._broker, labels)
                await kicker.with_task_id(job_id).kiq(**arguments)
        except (RedisError, SendTaskError) as error:
            raise QueueUnavailable from error
        return job_id

    async def job(self, job_id: str) -> Job | None:
        """The job's state, or None for an id never sent or whose result has expired."""
        try:
            return await self._job(job_id)
        except RedisError as error:
            raise QueueUnavailable from error

    async def _job(self, job_id: str) -> Job | None:
        results = self._broker.result_backend
        try:
            result = await results.get_result(job_id)
        except ResultIsMissingError:  # not finished, never sent, or expired
            progress = await results.get_progress(job_id)
            if progress is None:
                return None
            meta = progress.meta if isinstance(progress.meta, dict) else {}
            return Job(id=job_id, status=JobState(progress.state), attempt=meta.get("attempt", 1))
        return Job(
            id=job_id,
            status=JobState.FAILED if result.is_err else JobState.SUCCEEDED,
            attempt=attempt_of(result.labels),
            result=None if result.is_err else result.return_value,
            error=type(result.error).__name__ if result.error is not None else None,
        )


# The lifespan state key of the queue: Starlette copies the lifespan's state into every request.
JOB_QUEUE = "job_queue"


def job_queue_state(queue: JobQueue) -> dict[str, JobQueue]:
    return {JOB_QUEUE: queue}


async def get_job_queue(request: Request) -> JobQueue:
    queue: JobQueue = getattr(request.state, JOB_QUEUE)
    return queue


Jobs = Annotated[JobQueue, Depends(get_job_queue)]
