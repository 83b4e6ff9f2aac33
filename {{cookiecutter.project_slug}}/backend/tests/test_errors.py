from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient

from tests.conftest import LogLines, access_lines


class PaymentGatewayError(Exception):
    pass


@pytest.fixture
def failing_app(app: FastAPI) -> FastAPI:
    @app.get("/test/fail")
    async def fail() -> None:
        raise PaymentGatewayError("card 4111-1111 declined by upstream")

    return app


def test_unhandled_error_is_a_500_with_the_request_id_only(
    failing_app: FastAPI, client: TestClient
) -> None:
    response = client.get("/test/fail", headers={"X-Request-ID": "req-500"})

    assert response.status_code == 500
    assert response.json() == {"detail": "Internal Server Error", "request_id": "req-500"}
    assert response.headers["x-request-id"] == "req-500"
    assert "4111" not in response.text
    assert "Traceback" not in response.text


def test_unhandled_error_is_logged_once_with_its_stack(
    failing_app: FastAPI, client: TestClient, log_lines: LogLines
) -> None:
    log_lines()
    client.get("/test/fail", headers={"X-Request-ID": "req-500"})

    lines = log_lines()
    (error,) = [line for line in lines if line["level"] == "error"]
    assert error["logger"] == "app.errors"
    assert error["request_id"] == "req-500"
    assert error["error"]["type"] == "tests.test_errors.PaymentGatewayError"
    assert error["error"]["message"] == "card 4111-1111 declined by upstream"
    assert 'raise PaymentGatewayError("card' in error["error"]["stack"]
    (access,) = access_lines(lines)
    assert (access["status"], access["outcome"], access["route"]) == (500, "error", "/test/fail")


def test_error_after_the_response_started_reaches_the_server(
    app: FastAPI, client: TestClient, log_lines: LogLines
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"partial"
        raise PaymentGatewayError("stream broke")

    @app.get("/test/stream")
    async def stream() -> StreamingResponse:
        return StreamingResponse(chunks())

    log_lines()
    with pytest.raises(PaymentGatewayError):
        client.get("/test/stream")

    lines = log_lines()
    assert [line["error"]["message"] for line in lines if "error" in line] == ["stream broke"]
    (access,) = access_lines(lines)
    assert (access["status"], access["outcome"]) == (500, "error")
