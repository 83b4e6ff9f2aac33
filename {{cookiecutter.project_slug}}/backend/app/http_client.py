"""One shared `httpx.AsyncClient` for calls to other services: opened by the application's
lifespan, closed when it stops, its connections pooled across requests.

Each call made inside a request carries that request's `X-Correlation-ID`, so the service
called logs the same id{% if cookiecutter.include_observability == "yes" %}; the trace context (`traceparent`) rides along too, added by the
OpenTelemetry httpx instrumentation{% endif %}. Take it in a route with the `HttpClient` dependency.
"""

from typing import Annotated

import httpx
from fastapi import Depends, Request

from app.request_context import CORRELATION_ID_HEADER, current_request_ids

# Connect, read, write and pool waits: a slow dependency fails the call, not the worker.
TIMEOUT_SECONDS = 5.0
CORRELATION_ID = CORRELATION_ID_HEADER.decode("ascii")


async def _add_correlation_id(request: httpx.Request) -> None:
    ids = current_request_ids.get()
    if ids is not None and CORRELATION_ID not in request.headers:
        request.headers[CORRELATION_ID] = ids.correlation_id


def create_http_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=TIMEOUT_SECONDS, event_hooks={"request": [_add_correlation_id]}
    )


# The lifespan state key of the client: Starlette copies the lifespan's state into every request.
HTTP_CLIENT = "http_client"


def http_client_state(client: httpx.AsyncClient) -> dict[str, httpx.AsyncClient]:
    return {HTTP_CLIENT: client}


async def get_http_client(request: Request) -> httpx.AsyncClient:
    client: httpx.AsyncClient = getattr(request.state, HTTP_CLIENT)
    return client


HttpClient = Annotated[httpx.AsyncClient, Depends(get_http_client)]
