"""Request and correlation ids, and the one access log line per request.

`X-Request-ID` and `X-Correlation-ID` are taken from the request when well formed and
generated otherwise, echoed on the response, and visible to every log line written while
the request is handled (through a context variable the log formatter reads).
"""

import logging
import re
import time
import uuid
from contextvars import ContextVar
from typing import NamedTuple

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.routing import route_template

REQUEST_ID_HEADER = b"x-request-id"
CORRELATION_ID_HEADER = b"x-correlation-id"
_WELL_FORMED_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")

access_logger = logging.getLogger("app.access")


class RequestIds(NamedTuple):
    request_id: str
    correlation_id: str


current_request_ids: ContextVar[RequestIds | None] = ContextVar("request_ids", default=None)


def _accepted_id(value: bytes) -> str | None:
    return value.decode("ascii") if _WELL_FORMED_ID.fullmatch(value) else None


def _request_ids(scope: Scope) -> RequestIds:
    request_id = correlation_id = None
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            request_id = _accepted_id(value)
        elif name == CORRELATION_ID_HEADER:
            correlation_id = _accepted_id(value)
    return RequestIds(request_id or uuid.uuid4().hex, correlation_id or uuid.uuid4().hex)


class RequestContextMiddleware:
    """Pure ASGI middleware: sets the request's ids, echoes them, logs the access line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        ids = _request_ids(scope)
        id_headers = [
            (REQUEST_ID_HEADER, ids.request_id.encode("ascii")),
            (CORRELATION_ID_HEADER, ids.correlation_id.encode("ascii")),
        ]
        status = 500

        async def send_with_ids(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *id_headers]
            await send(message)

        token = current_request_ids.set(ids)
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_ids)
        except BaseException:
            status = 500
            raise
        finally:
            client = scope.get("client")
            access_logger.info(
                "request completed",
                extra={
                    "method": scope["method"],
                    "route": route_template(scope),
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - start) * 1000, 3),
                    "client_ip": client[0] if client else None,
                    "outcome": "error" if status >= 500 else "success",
                },
            )
            current_request_ids.reset(token)
