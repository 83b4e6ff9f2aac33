"""A throwaway PostgreSQL server from Debian's `postgresql` package: its own cluster in a
temporary folder, on a free port of 127.0.0.1, never the machine's system service.

It is a real server: stop it, kill it and start it again on the same data."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from harness.processes import ManagedProcess, ThrowawayServer, free_port, wait_until

SERVER_USER = "postgres"  # Debian's account for the server; it refuses to run as root
AS_SERVER_USER = ["setpriv", f"--reuid={SERVER_USER}", f"--regid={SERVER_USER}", "--init-groups"]
DATABASE = "app"
ROLE = "app"


def server_binaries() -> Path:
    """The bin folder of the newest PostgreSQL installed."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3])
    )
    if candidates:
        return candidates[-1].parent
    found = shutil.which("postgres")
    if found:
        return Path(found).parent
    raise MissingTool("PostgreSQL is not installed (Debian package postgresql)")


class MissingTool(RuntimeError):
    """A program the server needs is not on this machine."""


class PostgresServer(ThrowawayServer):
    """One cluster with a password-protected role and database, started by `start()`."""

    def __init__(self) -> None:
        self.bin = server_binaries()
        if os.geteuid() == 0 and shutil.which("setpriv") is None:
            raise MissingTool(
                "setpriv is not installed (util-linux): root runs the server as postgres"
            )
        self.root = Path(tempfile.mkdtemp(prefix="pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.logs = self.root / "logs"
        for folder in (self.data, self.socket_dir, self.logs):
            folder.mkdir()
        self.port = free_port()
        self.password = secrets.token_urlsafe(16)
        self._process: ManagedProcess | None = None
        self._starts = 0
        if os.geteuid() == 0:
            shutil.chown(self.root, SERVER_USER)
            for folder in (self.data, self.socket_dir, self.logs):
                shutil.chown(folder, SERVER_USER)
        password_file = self.root / "password"
        password_file.write_text(self.password)
        if os.geteuid() == 0:
            shutil.chown(password_file, SERVER_USER)
        self._as_server_user(
            str(self.bin / "initdb"),
            f"--pgdata={self.data}",
            f"--username={ROLE}",
            f"--pwfile={password_file}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
        )
        password_file.unlink()

    def _as_server_user(self, *command: str) -> None:
        prefix = AS_SERVER_USER if os.geteuid() == 0 else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)

    @property
    def environment(self) -> dict[str, str]:
        """The backend's settings that reach this server."""
        return {
            "POSTGRES_HOST": "127.0.0.1",
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": ROLE,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_DB": DATABASE,
        }

    def start(self) -> None:
        command = [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port)]
        command += ["-c", "listen_addresses=127.0.0.1", "-k", str(self.socket_dir)]
        if os.geteuid() == 0:
            command = [*AS_SERVER_USER, *command]
        self._starts += 1
        self._process = ManagedProcess(f"postgres-{self._starts}", command, self.logs)
        wait_until(self._accepts_connections, 30, "PostgreSQL to accept connections")
        if self._starts == 1:
            self.psql("postgres", f"CREATE DATABASE {DATABASE}")

    def _accepts_connections(self) -> bool:
        assert self._process is not None
        self._process.assert_running()
        ready = subprocess.run(
            [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
            capture_output=True,
            timeout=10,
        )
        return ready.returncode == 0

    def psql(self, database: str, sql: str) -> str:
        connection = ["-h", "127.0.0.1", "-p", str(self.port), "-U", ROLE, "-d", database]
        result = subprocess.run(
            [str(self.bin / "psql"), *connection, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
            env={**os.environ, "PGPASSWORD": self.password},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()
