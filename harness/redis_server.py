"""A throwaway Redis server from Debian's `redis-server` package: its own folder, on a free
port of 127.0.0.1, with a password and append-only persistence as compose runs its queue,
never the machine's system service.

It is a real server: stop it, kill it and start it again on the same data."""

from __future__ import annotations

import secrets
import shutil
import socket
import tempfile
from pathlib import Path

from harness.postgres import MissingTool
from harness.processes import ManagedProcess, ThrowawayServer, free_port, wait_until


class RedisServer(ThrowawayServer):
    """One server, started by `start()`, its data kept across restarts until `remove()`."""

    def __init__(self) -> None:
        found = shutil.which("redis-server")
        if found is None:
            raise MissingTool("redis-server is not installed (Debian package redis-server)")
        self.binary = found
        self.root = Path(tempfile.mkdtemp(prefix="redis-"))
        self.port = free_port()
        self.password = secrets.token_urlsafe(16)
        self._process: ManagedProcess | None = None
        self._starts = 0

    @property
    def environment(self) -> dict[str, str]:
        """The backend's and the worker's settings that reach this server."""
        return {
            "REDIS_HOST": "127.0.0.1",
            "REDIS_PORT": str(self.port),
            "REDIS_PASSWORD": self.password,
        }

    def start(self) -> None:
        # The password on the command line is this throwaway's: nothing else uses it.
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--dir", str(self.root), "--appendonly", "yes", "--save", ""]
        command += ["--requirepass", self.password]
        self._starts += 1
        self._process = ManagedProcess(f"redis-{self._starts}", command, self.root)
        wait_until(self.answers_ping, 30, "Redis to answer PING")

    def answers_ping(self) -> bool:
        assert self._process is not None
        self._process.assert_running()
        return self.command("PING") == "+PONG"

    def command(self, *words: str) -> str:
        """One command, after AUTH; the first line of its reply (`+PONG`, `$12`, ...)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as connection:
            connection.sendall(_encoded("AUTH", self.password) + _encoded(*words))
            replies = b""
            while replies.count(b"\r\n") < 2:
                chunk = connection.recv(65536)
                if not chunk:
                    break
                replies += chunk
        return replies.split(b"\r\n")[1].decode()


def _encoded(*words: str) -> bytes:
    """A command as Redis's protocol sends it: an array of bulk strings, any byte allowed."""
    parts = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = word.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)
