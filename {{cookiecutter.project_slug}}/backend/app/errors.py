"""Failed requests. An unhandled exception is logged once with its stack and answered with a
500 JSON body that carries the request id and nothing about the failure itself
(`app.pipeline` does both). A request that fails validation: one line naming the route and
the fields that failed, never what was sent, and FastAPI's 422.
"""

import logging

from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from starlette.responses import JSONResponse, Response

from app.routing import route_template

logger = logging.getLogger("app.errors")


def log_unhandled_exception(error: Exception) -> None:
    logger.error("unhandled exception", exc_info=error)


def internal_error_response(request_id: str) -> JSONResponse:
    return JSONResponse(
        {"detail": "Internal Server Error", "request_id": request_id}, status_code=500
    )


async def log_rejected_request(request: Request, error: Exception) -> Response:
    """Log a request that validation refused, then answer as FastAPI does (422). The fields
    are named by where they are (`body.price`, `path.item_id`); their values may be secrets."""
    if not isinstance(error, RequestValidationError):  # registered for that type alone
        raise error
    fields = sorted({".".join(str(part) for part in failure["loc"]) for failure in error.errors()})
    logger.info(
        "request rejected",
        extra={"route": route_template(request.scope), "invalid_fields": fields},
    )
    return await request_validation_exception_handler(request, error)


def add_validation_error_logging(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, log_rejected_request)
