"""A job queue that does not answer makes the request a 503 with its request id, logged once
without the server's address or password."""

import logging

from fastapi import FastAPI, Request
from starlette.responses import JSONResponse

from app.jobs.queue import QueueUnavailable
from app.request_context import current_request_ids

logger = logging.getLogger("app.jobs")


async def queue_unavailable(request: Request, error: Exception) -> JSONResponse:
    cause = error.__cause__
    logger.error(
        "job queue unavailable",
        extra={"cause_type": type(cause).__name__ if cause is not None else None},
    )
    ids = current_request_ids.get()
    return JSONResponse(
        {
            "detail": "Service Unavailable: the job queue did not answer",
            "request_id": ids.request_id if ids is not None else None,
        },
        status_code=503,
    )


def add_job_queue_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(QueueUnavailable, queue_unavailable)
