import asyncio

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.http_client import HttpClient, create_http_client
from tests.conftest import HeaderRecorder


def test_calls_carry_the_requests_correlation_id_and_the_client_closes_with_the_app(
    app: FastAPI, downstream: str
) -> None:
    used: list[httpx.AsyncClient] = []

    @app.get("/test/call-downstream")
    async def call_downstream(http: HttpClient) -> int:
        used.append(http)
        return (await http.get(downstream)).status_code

    with TestClient(app) as client:
        first = client.get("/test/call-downstream", headers={"X-Correlation-ID": "order-42"})
        second = client.get("/test/call-downstream")

    assert first.json() == second.json() == 204
    sent, generated = HeaderRecorder.received
    assert sent["x-correlation-id"] == "order-42"
    assert generated["x-correlation-id"] == second.headers["x-correlation-id"]
    # One pooled client for every request, closed when the application stopped.
    assert used[0] is used[1]
    assert used[0].is_closed


def test_a_call_outside_a_request_carries_no_correlation_id(downstream: str) -> None:
    async def call() -> None:
        async with create_http_client() as http:
            await http.get(downstream)

    asyncio.run(call())

    (headers,) = HeaderRecorder.received
    assert "x-correlation-id" not in headers
