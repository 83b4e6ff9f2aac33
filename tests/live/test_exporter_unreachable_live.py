"""Issue 3, proof 5: with the trace exporter's endpoint down the service keeps serving.

Two ways to be down: a port that refuses connections, and one that accepts them and never
answers (the exporter then waits out its own timeout). Export runs in the batch processor's
thread, so neither may reach the requests.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator

import pytest

from harness.backend import BackendProcess
from harness.processes import closed_port, wait_until

from .traffic import mixed_calls, send_all, unexpected

pytestmark = pytest.mark.slow

# Generous, per batch of ~100 requests: well under a second each when export is off the
# request path; one export timeout (10 s) per request on it would take a quarter of an hour.
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
            {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}"},
        )
        try:
            first = send_all(backend.url, mixed_calls(repeat=15), 8, SANITY_BOUND_SECONDS)
            # Proof the exporter is on and failing (a silent port takes its 10 s timeout);
            # its complaints are JSON log lines like any other.
            wait_until(
                lambda: [
                    line
                    for line in backend.log_lines()
                    if line["logger"].startswith("opentelemetry.exporter")
                    and line["level"] in ("warning", "error")
                ],
                30,
                "the exporter to log that it cannot export",
            )
            second = send_all(backend.url, mixed_calls(repeat=15), 8, SANITY_BOUND_SECONDS)
            assert unexpected(first + second) == []
            assert backend.get("/health/live").status_code == 200
            backend.process.assert_running()
            request_ids = {answer.request_id for answer in first + second}
            logged = backend.access_lines_of(request_ids)
            assert len(logged) == len(request_ids) == len(first) + len(second)
        finally:
            backend.stop()
