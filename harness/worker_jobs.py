"""The rendered worker plus the jobs only the live tests need: a slow one, to kill a worker
in the middle of, and one that fails its first two attempts.

Served by uvicorn as compose serves the worker (`--factory`, this folder on `--app-dir`);
the tests send these jobs straight into the stream, as the API would. The rendered backend
is imported by the factory only: the tests import this module for its names. No
`from __future__ import annotations`: taskiq reads the jobs' annotations at registration.
"""

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

SLOW_JOB = "test.slow"
FLAKY_JOB = "test.flaky"
# The attempt that succeeds: the ones before it fail.
FLAKY_SUCCEEDS_AT = 3


def create_worker_with_test_jobs() -> "FastAPI":
    from app.jobs.broker import create_broker
    from app.settings import Settings
    from app.worker import create_worker
    from taskiq import Context, TaskiqDepends

    async def slow(seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "slept"

    async def flaky(context: Context = TaskiqDepends()) -> int:  # noqa: B008  (taskiq's injection)
        attempt = int(context.message.labels.get("attempt", 1))
        if attempt < FLAKY_SUCCEEDS_AT:
            raise ConnectionError("failed on purpose by the live tests")
        return attempt

    settings = Settings()
    broker = create_broker(settings, consumer_name=settings.worker_name)
    application = create_worker(settings, broker=broker)
    broker.register_task(slow, task_name=SLOW_JOB)
    broker.register_task(flaky, task_name=FLAKY_JOB)
    return application
