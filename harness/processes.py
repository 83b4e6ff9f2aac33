"""Ports, subprocesses and bounded waits shared by the live tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A port bound but never listened on: connections are refused for as long as we hold it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        yield int(holder.getsockname()[1])


def wait_until(
    probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2
) -> T:
    """Poll `probe` until it returns something truthy, and return that; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = probe()
        except Exception as error:  # the service may not be up yet; keep the cause for the message
            last_error = error
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            cause = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{cause}")
        time.sleep(interval)


def _dies_with_parent(command: Sequence[str]) -> list[str]:
    """`command` run so that it gets SIGTERM when the test process dies, even when that is
    killed before its fixtures tear down. setpriv (util-linux) sets the signal and execs the
    command; a preexec_fn would fork the test process, whose gRPC receiver does not survive
    being forked."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *command] if setpriv else list(command)


class ManagedProcess:
    """A child process writing stdout and stderr to files, stopped in bounded time."""

    def __init__(
        self,
        name: str,
        command: Sequence[str | os.PathLike[str]],
        log_dir: Path,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.stdout_path = log_dir / f"{name}.stdout"
        self.stderr_path = log_dir / f"{name}.stderr"
        self._stdout = self.stdout_path.open("wb")
        self._stderr = self.stderr_path.open("wb")
        self.popen = subprocess.Popen(
            _dies_with_parent([str(part) for part in command]),
            cwd=cwd,
            env=env,
            stdout=self._stdout,
            stderr=self._stderr,
            start_new_session=True,  # its own process group, so stop() reaches any children
        )

    def is_running(self) -> bool:
        return self.popen.poll() is None

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def assert_running(self) -> None:
        assert self.is_running(), (
            f"{self.name} exited with {self.popen.returncode}; stderr:\n{self.stderr()[-4000:]}"
            f"\nstdout:\n{self.stdout()[-2000:]}"
        )

    def stop(self, grace: float = 10.0) -> None:
        if self.is_running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=grace)
        self._stdout.close()
        self._stderr.close()


class ThrowawayServer:
    """A server of the tests' own, its files in `root`: `start()` it, stop or kill it and
    start it again on the same data, `remove()` it with its files."""

    root: Path
    _process: ManagedProcess | None

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        """A clean shutdown (SIGTERM)."""
        if self._process is not None:
            self._process.stop()
            self._process = None

    def kill(self) -> None:
        """The server dies at once, as on a crash; its data stays for the next start."""
        if self._process is not None:
            self._process.popen.kill()
            self._process.popen.wait(timeout=30)
            self._process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
