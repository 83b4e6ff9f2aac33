"""Request and correlation ids.

`X-Request-ID` and `X-Correlation-ID` are taken from the request when well formed and
generated otherwise (`app.pipeline` reads them once per request and echoes them on the
response), and visible to every log line written while the request is handled, and to every
call the service makes meanwhile, through a context variable.
"""

import re
import uuid
from contextvars import ContextVar
from typing import NamedTuple

from starlette.types import Scope

REQUEST_ID_HEADER = b"x-request-id"
CORRELATION_ID_HEADER = b"x-correlation-id"
_WELL_FORMED_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


class RequestIds(NamedTuple):
    request_id: str
    correlation_id: str


current_request_ids: ContextVar[RequestIds | None] = ContextVar("request_ids", default=None)


def _accepted_id(value: bytes) -> str | None:
    return value.decode("ascii") if _WELL_FORMED_ID.fullmatch(value) else None


def request_ids(scope: Scope) -> RequestIds:
    """The request's ids: its headers' when well formed, new ones otherwise."""
    request_id = correlation_id = None
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            request_id = _accepted_id(value)
        elif name == CORRELATION_ID_HEADER:
            correlation_id = _accepted_id(value)
    return RequestIds(request_id or uuid.uuid4().hex, correlation_id or uuid.uuid4().hex)
