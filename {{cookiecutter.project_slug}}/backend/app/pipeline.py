{%- set yes = cookiecutter.include_observability == "yes" -%}
"""What happens to every request, in order: one pure ASGI middleware, `RequestPipeline`.

1. The request's facts are read once (`RequestFacts`): its ids (taken or generated), method,
   path, client address and start time{% if yes %}, its method as reported (`_OTHER` for one
   outside the known set) and whether it is traffic (scrapes of /metrics and health probes
   are not){% endif %}.
{%- if yes %}
2. For traffic, the observers start in the order given: the server span, then the HTTP
   metrics.
{%- endif %}
{% if yes %}3{% else %}2{% endif %}. The application handles the request; the response carries the request's ids.
{% if yes %}4{% else %}3{% endif %}. An exception the application lets out is logged once, with its stack, and answered with a
   500 that carries the request id; if the response had already begun, the connection is
   dropped instead. Either way the request counts as a 500.
{% if yes %}5{% else %}4{% endif %}. The route template, status, duration and outcome are settled, and the access line is
   written{% if yes %}; then the observers finish, in reverse order, so that the log line and the
   metrics' exemplar still belong to the request's span{% endif %}.
"""

import logging
import time
{%- if yes %}
from collections.abc import Callable, Sequence
{%- endif %}
from dataclasses import dataclass
{%- if yes %}
from typing import Protocol
{%- endif %}

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import internal_error_response, log_unhandled_exception
from app.request_context import (
    CORRELATION_ID_HEADER,
    REQUEST_ID_HEADER,
    RequestIds,
    current_request_ids,
    request_ids,
)
from app.routing import UNMATCHED_ROUTE, route_template

access_logger = logging.getLogger("app.access")
{%- if yes %}

# A method outside this set is reported as `_OTHER` (the HTTP semantic conventions' name), so
# invented methods cannot create metric series or span names.
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}
)
OTHER_METHOD = "_OTHER"
METRICS_PATH = "/metrics"
HEALTH_PATH_PREFIX = "/health/"
{%- endif %}


@dataclass(slots=True)
class RequestFacts:
    """One request, as every part of the pipeline reports it."""

    ids: RequestIds
    method: str
{%- if yes %}
    reported_method: str
    is_traffic: bool
{%- endif %}
    path: str
    client_ip: str | None
    start: float
    # Settled as the request goes: the response's status once it starts (500 when the
    # application fails), the exception it let out, then the rest once it is over.
    status: int | None = None
    exception: Exception | None = None
    route: str = UNMATCHED_ROUTE
    duration: float = 0.0
    outcome: str = ""

    @classmethod
    def read(cls, scope: Scope) -> "RequestFacts":
        method: str = scope["method"]
        path: str = scope["path"]
        client = scope.get("client")
        return cls(
            ids=request_ids(scope),
            method=method,
{%- if yes %}
            reported_method=method if method in KNOWN_METHODS else OTHER_METHOD,
            is_traffic=path != METRICS_PATH and not path.startswith(HEALTH_PATH_PREFIX),
{%- endif %}
            path=path,
            client_ip=client[0] if client else None,
            start=time.perf_counter(),
        )

    def settle(self, scope: Scope) -> None:
        """Complete the facts once the application is done: routing has filled the scope in."""
        self.duration = time.perf_counter() - self.start
        if self.status is None:  # the application never answered
            self.status = 500
        self.route = route_template(scope)
        # A 4xx is the server working as it should: the client asked for something wrong.
        self.outcome = "error" if self.status >= 500 else "success"
{%- if yes %}


RequestFinisher = Callable[[RequestFacts], None]


class RequestObserver(Protocol):
    def request_started(self, scope: Scope, facts: RequestFacts) -> RequestFinisher:
        """Called before the application handles a traffic request; returns what to call
        with the settled facts once it is over."""
        ...
{%- endif %}


class RequestPipeline:
    """Pure ASGI middleware around every HTTP request: see the module's docstring."""

    def __init__(self, app: ASGIApp{% if yes %}, observers: Sequence[RequestObserver] = (){% endif %}) -> None:
        self.app = app
{%- if yes %}
        self.observers = tuple(observers)
{%- endif %}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        facts = RequestFacts.read(scope)
        ids_token = current_request_ids.set(facts.ids)
{%- if yes %}
        finishers = (
            [observer.request_started(scope, facts) for observer in self.observers]
            if facts.is_traffic
            else []
        )
{%- endif %}
        id_headers = [
            (REQUEST_ID_HEADER, facts.ids.request_id.encode("ascii")),
            (CORRELATION_ID_HEADER, facts.ids.correlation_id.encode("ascii")),
        ]

        async def send_with_ids(message: Message) -> None:
            if message["type"] == "http.response.start":
                facts.status = message["status"]
                message["headers"] = [*message.get("headers", ()), *id_headers]
            await send(message)

        try:
            await self.app(scope, receive, send_with_ids)
        except Exception as exc:
            facts.exception = exc
            log_unhandled_exception(exc)
            if facts.status is not None:
                facts.status = 500
                raise  # too late for a 500: the server drops the half-sent response
            response = internal_error_response(facts.ids.request_id)
            await response(scope, receive, send_with_ids)
        except BaseException:
            facts.status = 500  # cancelled: the server gave up on the request
            raise
        finally:
            facts.settle(scope)
            access_logger.info(
                "request completed",
                extra={
                    "method": facts.method,
                    "route": facts.route,
                    "path": facts.path,
                    "status": facts.status,
                    "duration_ms": round(facts.duration * 1000, 3),
                    "client_ip": facts.client_ip,
                    "outcome": facts.outcome,
                },
            )
{%- if yes %}
            for finish in reversed(finishers):
                finish(facts)
{%- endif %}
            current_request_ids.reset(ids_token)
