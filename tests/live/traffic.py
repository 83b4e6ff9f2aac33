"""Requests the live tests send, and what each is expected to be counted as."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

ITEMS = "/api/v1/items"
ITEM = "/api/v1/items/{item_id}"
UNMATCHED = "<unmatched>"
FAILING_ROUTE = "/test/fail"  # served by failing_route.py
HOLD_ROUTE = "/test/hold"  # served by failing_route.py with database=postgres
MISSING_ITEM_ID = 987654321
SEND_TIMEOUT = 120  # a whole batch of calls; the largest (5,000) takes seconds


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    endpoint: str  # the label value the backend must count it under
    status: int  # the status the backend must answer
    body: Any = None


@dataclass(frozen=True)
class Answer:
    call: Call
    status: int
    request_id: str

    @property
    def series(self) -> tuple[str, str, str]:
        return (self.call.method, self.call.endpoint, str(self.status))


@dataclass(frozen=True)
class Traffic:
    answers: list[Answer]
    started_at: float
    finished_at: float


def random_path() -> str:
    return f"/{secrets.token_hex(6)}/{secrets.token_hex(4)}"


def mixed_calls(repeat: int = 5) -> list[Call]:
    """Every kind of answer: 2xx, 404 (route and no route), 422, and a 500."""
    calls = [
        Call("GET", ITEMS, ITEMS, 200),
        Call("GET", f"{ITEMS}/{MISSING_ITEM_ID}", ITEM, 404),
        Call("DELETE", f"{ITEMS}/{MISSING_ITEM_ID}", ITEM, 404),
        Call("GET", f"{ITEMS}/not-a-number", ITEM, 422),
        Call("POST", ITEMS, ITEMS, 422, {"name": "", "price": -1}),
        Call("GET", FAILING_ROUTE, FAILING_ROUTE, 500),
    ]
    # A new name each time: item names are unique where a database keeps them.
    created = [
        Call("POST", ITEMS, ITEMS, 201, {"name": f"widget {secrets.token_hex(6)}", "price": 2.5})
        for _ in range(repeat)
    ]
    return [
        *(call for creation in created for call in (creation, *calls)),
        *(Call("GET", random_path(), UNMATCHED, 404) for _ in range(repeat)),
    ]


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, call: Call, host: str
) -> tuple[int, dict[str, str]]:
    """One HTTP/1.1 request and its response on a kept-alive connection."""
    body = b"" if call.body is None else json.dumps(call.body).encode()
    head = f"{call.method} {call.path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
    if body:
        head += "Content-Type: application/json\r\n"
    writer.write(f"{head}\r\n".encode() + body)
    status_line = await reader.readline()
    assert status_line.startswith(b"HTTP/1.1 "), f"{call.method} {call.path}: {status_line!r}"
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    assert "chunked" not in headers.get("transfer-encoding", ""), "chunked answers unsupported"
    await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers


async def _send_all(
    base_url: str, calls: list[Call], concurrency: int, timeout: float
) -> list[Answer]:
    """`calls` over `concurrency` kept-alive connections, each sending its next call as soon
    as the previous one is answered. A bare asyncio client: httpx's pool cannot keep up with
    the backend on two cores, and the load would measure the client instead."""
    url = urlsplit(base_url)
    assert url.hostname and url.port, base_url
    host, port = url.hostname, url.port
    pending = iter(enumerate(calls))
    answers: list[Answer | None] = [None] * len(calls)

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for index, call in pending:
                status, headers = await _exchange(reader, writer, call, f"{host}:{port}")
                answers[index] = Answer(call, status, headers.get("x-request-id", ""))
                if headers.get("connection", "").lower() == "close":
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
        finally:
            writer.close()

    try:
        await asyncio.wait_for(
            asyncio.gather(*(connection() for _ in range(min(concurrency, len(calls))))),
            timeout=timeout,
        )
    except TimeoutError:
        unanswered = sum(answer is None for answer in answers)
        raise AssertionError(
            f"{unanswered} of {len(calls)} calls unanswered after {timeout}s"
        ) from None
    return [answer for answer in answers if answer is not None]


def send_all(
    base_url: str, calls: list[Call], concurrency: int = 16, timeout: float = SEND_TIMEOUT
) -> list[Answer]:
    return asyncio.run(_send_all(base_url, calls, concurrency, timeout))


def unexpected(answers: list[Answer]) -> list[str]:
    return [
        f"{a.call.method} {a.call.path}: {a.status}, expected {a.call.status}"
        for a in answers
        if a.status != a.call.status
    ]


def expected_counts(answers: list[Answer]) -> Counter[tuple[str, str, str]]:
    return Counter(answer.series for answer in answers)
