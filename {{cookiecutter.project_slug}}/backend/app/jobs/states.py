"""A job's state as the API reports it, and where it is kept: next to the job's result, with
the result's time to live, written by whoever moves the job on."""

from enum import StrEnum
from typing import Any

from taskiq import AsyncResultBackend
from taskiq.depends.progress_tracker import TaskProgress


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


async def record_state(
    results: AsyncResultBackend[Any], job_id: str, state: JobState, attempt: int
) -> None:
    await results.set_progress(job_id, TaskProgress(state=state, meta={"attempt": attempt}))
