"""Issue 3, proof 5: with the trace exporter's endpoint down the service keeps serving.

Two ways to be down: a port that refuses connections, and one that accepts them and never
answers (the exporter then waits out its own timeout). Export runs in the batch processor's
thread, so neither may reach the requests.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from .backend import FAST_BATCH_EXPORT, BackendProcess
from .processes import closed_port
from .traffic import mixed_calls, send_all, unexpected

pytestmark = pytest.mark.slow

# Generous: the ~200 requests take well under a second each way when export is off the
# request path; one export timeout (10 s) per request on it would take half an hour.
SANITY_BOUND_SECONDS = 30


@contextlib.contextmanager
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel does) and never says a word."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield int(listener.getsockname()[1])


@pytest.mark.parametrize("down_port", [closed_port, silent_port], ids=["refused", "silent"])
def test_requests_succeed_quickly_while_the_exporter_is_down(
    start_backend: Callable[[str, dict[str, str]], BackendProcess],
    down_port: Callable[[], contextlib.AbstractContextManager[int]],
    request: pytest.FixtureRequest,
) -> None:
    with down_port() as port:
        backend = start_backend(
            f"backend-exporter-{request.node.callspec.id}",
            {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", **FAST_BATCH_EXPORT},
        )
        started = time.monotonic()
        first = send_all(backend.url, mixed_calls(repeat=15), concurrency=8)
        time.sleep(1)  # several failed export rounds in between
        second = send_all(backend.url, mixed_calls(repeat=15), concurrency=8)
        elapsed = time.monotonic() - started
        try:
            assert unexpected(first + second) == []
            assert elapsed < SANITY_BOUND_SECONDS
            assert backend.get("/health/live").status_code == 200
            backend.process.assert_running()
            # The exporter's complaints are log lines like any other: JSON on stdout.
            request_ids = {answer.request_id for answer in first + second}
            logged = [line for line in backend.access_lines() if line["request_id"] in request_ids]
            assert len(logged) == len(request_ids) == len(first) + len(second)
        finally:
            backend.stop()
