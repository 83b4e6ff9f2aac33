"""Unhandled exceptions: logged once with their stack, answered with a 500 JSON body that
carries the request id and nothing about the failure itself. Requests that fail validation:
one line naming the route and the fields that failed, never what was sent, and FastAPI's 422.
"""

import logging

from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
{% if cookiecutter.include_observability == "yes" -%}
from opentelemetry import trace
{% endif -%}
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.request_context import current_request_ids
from app.routing import route_template

logger = logging.getLogger("app.errors")


class UnhandledErrorMiddleware:
    """Pure ASGI middleware placed inside `RequestContextMiddleware`, so its 500 carries the
    request's ids and is counted in the access line like any other response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        response_started = False

        async def send_tracking_start(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking_start)
        except Exception as exc:
            logger.error("unhandled exception", exc_info=exc)
{%- if cookiecutter.include_observability == "yes" %}
            trace.get_current_span().record_exception(exc)
{%- endif %}
            if response_started:
                # Too late for a 500: let the server close the half-sent response.
                raise
            ids = current_request_ids.get()
            response = JSONResponse(
                {
                    "detail": "Internal Server Error",
                    "request_id": ids.request_id if ids is not None else None,
                },
                status_code=500,
            )
            await response(scope, receive, send)


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
