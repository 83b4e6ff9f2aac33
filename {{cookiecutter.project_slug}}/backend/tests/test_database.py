"""Items in PostgreSQL: what the database adds to the API (migrations, persistence), and
what a failing database makes of a request. The resource's conventions: tests/test_items.py."""

import asyncio
import inspect
import itertools
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx2
import pytest
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.pool import QueuePool
from starlette.types import Receive, Scope, Send

from app.db.engine import Database, ReadSession, Session, database_url, read_retried_once
from app.db.models import MIGRATION_LOCK_KEY
from app.main import create_app
from app.settings import Settings
from tests.conftest import BACKEND_DIR, capture_json_logs
from tests.test_items import post


def test_the_migrations_create_exactly_the_models(test_database: str) -> None:
    """`alembic check`: autogenerate finds nothing between the models and the migrated
    database, so every model change comes with its revision."""
    command.check(Config(str(BACKEND_DIR / "alembic.ini")))


def test_a_migration_run_waits_for_the_one_under_way(test_database: str) -> None:
    """Two deploys at once: while one run holds the migration lock, another waits for it."""

    async def upgrade_beside_a_lock_holder() -> tuple[bool, bool]:
        engine = create_async_engine(database_url(Settings()))
        try:
            async with engine.connect() as holder:
                await holder.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
                config = Config(str(BACKEND_DIR / "alembic.ini"))
                upgrade = asyncio.ensure_future(asyncio.to_thread(command.upgrade, config, "head"))
                await asyncio.sleep(1)
                waited = not upgrade.done()
                await holder.rollback()
            await asyncio.wait_for(upgrade, timeout=30)
            return waited, upgrade.done()
        finally:
            await engine.dispose()

    assert asyncio.run(upgrade_beside_a_lock_holder()) == (True, True)


def test_items_outlive_the_application(settings: Settings) -> None:
    with TestClient(create_app(settings)) as first:
        item = post(first).json()
    with TestClient(create_app(settings)) as second:
        assert second.get(f"/api/v1/items/{item['id']}").json() == item


def test_the_engine_is_disposed_when_the_application_stops(
    app: FastAPI, database: Database
) -> None:
    pool = database.engine.pool
    assert isinstance(pool, QueuePool)
    with TestClient(app) as client:
        client.get("/api/v1/items")
        assert pool.checkedin() == 1
    assert pool.checkedin() == 0


def unreachable(settings: Settings, unused_port: int) -> Settings:
    return settings.model_copy(
        update={"postgres_port": unused_port, "postgres_password": SecretStr("s3cr3t")}
    )


def test_without_a_database_the_service_lives_but_is_not_ready(
    settings: Settings, unused_port: int
) -> None:
    with TestClient(create_app(unreachable(settings, unused_port))) as client:
        assert client.get("/health/live").status_code == 200
        ready = client.get("/health/ready")

    assert ready.status_code == 503
    assert ready.json()["checks"] == {"database": "fail"}


def test_a_request_needing_the_database_is_503_with_its_request_id_and_no_secret(
    settings: Settings, unused_port: int
) -> None:
    app = create_app(unreachable(settings, unused_port))
    log_lines = capture_json_logs()
    with TestClient(app) as client:
        # The startup's lines go: the readiness check's failure, logged with its cause for
        # the operator, is not this request's.
        log_lines()
        response = client.get("/api/v1/items")

    assert response.status_code == 503
    assert response.json() == {
        "detail": "Service Unavailable: the database did not answer",
        "request_id": response.headers["x-request-id"],
    }
    lines = log_lines()
    failures = [line for line in lines if line["message"] == "database unavailable"]
    assert len(failures) == 1
    everything = response.text + "".join(map(str, lines))
    for secret in ("s3cr3t", "postgresql+asyncpg://", str(unused_port)):
        assert secret not in everything


def test_an_os_error_of_other_code_stays_a_500(app: FastAPI) -> None:
    """Only the database's failures are 503s: a file missing elsewhere is a bug."""

    async def reads_a_file() -> None:
        raise FileNotFoundError("no such file")

    app.add_api_route("/test/file", reads_a_file)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/test/file").status_code == 500


Scenario = Callable[[httpx2.AsyncClient], Awaitable[None]]


def run_in_one_loop(app: FastAPI, scenario: Scenario) -> None:
    """`scenario` with `app` served in this test's own event loop, its lifespan run as a
    server runs it, so that the test can hold the app's database connections itself."""
    asyncio.run(serve_in_this_loop(app, scenario))


async def serve_in_this_loop(app: FastAPI, scenario: Scenario) -> None:
    async with app.router.lifespan_context(app) as state:

        async def serve(scope: Scope, receive: Receive, send: Send) -> None:
            await app({**scope, "state": dict(state or {})}, receive, send)

        transport = httpx2.ASGITransport(app=serve)
        async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
            await scenario(client)


@pytest.mark.parametrize("holder", ["another request", "a connection outside the sessions"])
def test_an_exhausted_pool_is_a_503_in_bounded_time_and_recovers(
    settings: Settings, holder: str
) -> None:
    """Whether the one connection is held by a request (this one then waits in line) or by
    code that took it from the engine directly (this one then waits in the pool)."""
    small_pool = settings.model_copy(
        update={"database_pool_size": 1, "database_max_overflow": 0, "database_pool_timeout": 0.2}
    )
    database = Database(small_pool)

    async def scenario(client: httpx2.AsyncClient) -> None:
        held: AbstractAsyncContextManager[object] = (
            database.session() if holder == "another request" else database.engine.connect()
        )
        async with held:
            started = asyncio.get_running_loop().time()
            response = await client.get("/api/v1/items")
            waited = asyncio.get_running_loop().time() - started
        assert response.status_code == 503
        assert response.json()["request_id"] == response.headers["x-request-id"]
        assert 0.2 <= waited < 2
        assert (await client.get("/api/v1/items")).status_code == 200

    run_in_one_loop(create_app(small_pool, database=database), scenario)


def test_connections_go_to_requests_in_the_order_they_asked(settings: Settings) -> None:
    """The pool alone hands a connection given back to whichever request runs first, even one
    that has just arrived: under load, a waiting request could be passed again and again.
    Here 16 clients read through 2 connections; a read may be passed only by the one other
    read whose turn came with its own."""
    two_connections = settings.model_copy(
        update={"database_pool_size": 2, "database_max_overflow": 0, "database_pool_timeout": 30}
    )
    database = Database(two_connections)
    tickets = itertools.count()
    served: list[int] = []

    async def client() -> None:
        for _ in range(50):
            ticket = next(tickets)
            async with database.read_session() as session:
                served.append(ticket)
                await session.execute(text("SELECT 1"))

    async def scenario() -> None:
        try:
            await asyncio.gather(*(client() for _ in range(16)))
        finally:
            await database.dispose()

    asyncio.run(scenario())
    passed_by = [sum(later > ticket for later in served[:i]) for i, ticket in enumerate(served)]
    assert max(passed_by) <= 1


def test_a_statement_past_its_timeout_is_a_503_logged_once(settings: Settings) -> None:
    impatient = settings.model_copy(update={"database_statement_timeout": 0.1})
    app = create_app(impatient)

    async def slow(session: Session) -> None:
        await session.execute(text("SELECT pg_sleep(2)"))

    app.add_api_route("/test/slow", slow)

    async def scenario(client: httpx2.AsyncClient) -> None:
        log_lines = capture_json_logs()

        response = await client.get("/test/slow")

        assert response.status_code == 503
        failures = [line for line in log_lines() if line["message"] == "database unavailable"]
        assert [line["error_type"] for line in failures] == ["DBAPIError"]

    run_in_one_loop(app, scenario)


async def eventually(condition: Callable[[], bool | Awaitable[bool]], what: str) -> None:
    """Wait up to 5 s for `condition`, a state with no event to await (a check of the
    process's own state, or a query to ask the server)."""
    for _ in range(500):
        met = condition()
        if await met if inspect.isawaitable(met) else met:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


# PostgreSQL's wire protocol, as much as counting round trips needs. A connection opens with
# untyped messages (a request for TLS or GSS encryption, then the startup message); after that
# each message is a type byte, then its length (which counts itself), then its body.
ENCRYPTION_REQUESTS = {80877103, 80877104}


class RoundTrips:
    """A proxy in front of the test database that counts the round trips the service makes.

    A round trip ends with the server's ReadyForQuery ('Z'): after a simple query ('Q', how
    asyncpg sends BEGIN, COMMIT and ROLLBACK), after an extended query's Sync (a Parse of a new
    statement, or a Bind and Execute of a prepared one), and once at the end of the startup.
    Each is named by the statements the client sent in it: their text, "prepare " and the text
    for a Parse. It declines encryption itself, so that it can read the messages."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.sent: list[str] = []
        self.completed: list[list[str]] = []

    def take(self) -> list[list[str]]:
        """The round trips completed since the last call."""
        taken, self.completed = self.completed, []
        return taken

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        server = await asyncio.start_server(self._relay, sock=self.listener)
        async with server:
            yield

    async def _relay(self, client: asyncio.StreamReader, to_client: asyncio.StreamWriter) -> None:
        server, to_server = await asyncio.open_connection(*self.upstream)
        while True:
            length, code = struct.unpack("!ii", await client.readexactly(8))
            body = await client.readexactly(length - 8)
            if code not in ENCRYPTION_REQUESTS:
                to_server.write(struct.pack("!ii", length, code) + body)
                break
            to_client.write(b"N")
        statements: dict[bytes, str] = {}

        def sent(kind: bytes, body: bytes) -> None:
            fields = body.split(b"\0")
            if kind == b"Q":
                self.sent.append(" ".join(fields[0].decode().split()))
            elif kind == b"P":
                statements[fields[0]] = " ".join(fields[1].decode().split())
                self.sent.append(f"prepare {statements[fields[0]]}")
            elif kind == b"B":
                self.sent.append(statements.get(fields[1], "an unnamed statement"))

        def received(kind: bytes, body: bytes) -> None:
            if kind == b"Z":
                self.completed.append(self.sent or ["startup"])
                self.sent = []

        await asyncio.gather(
            self._pump(client, to_server, sent), self._pump(server, to_client, received)
        )

    @staticmethod
    async def _pump(
        source: asyncio.StreamReader,
        destination: asyncio.StreamWriter,
        seen: Callable[[bytes, bytes], None],
    ) -> None:
        try:
            while True:
                header = await source.readexactly(5)
                body = await source.readexactly(struct.unpack("!i", header[1:])[0] - 4)
                seen(header[:1], body)
                destination.write(header + body)
                await destination.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            destination.close()


def first_words(round_trips: list[list[str]]) -> list[list[str]]:
    return [[statement.split()[0].rstrip(";") for statement in trip] for trip in round_trips]


def test_an_item_read_is_one_round_trip_and_a_write_one_transaction(settings: Settings) -> None:
    """Counted at the wire, once the connection has been used (its startup, and asyncpg's
    Parse of each statement new to it, happen once per connection): a read is its SELECT
    alone (no ping, no BEGIN, no ROLLBACK); a write is still BEGIN, INSERT, COMMIT."""
    proxy = RoundTrips(settings.postgres_host, settings.postgres_port)
    one_connection = settings.model_copy(
        update={
            "postgres_host": "127.0.0.1",
            "postgres_port": proxy.port,
            "database_pool_size": 1,
            "database_max_overflow": 0,
        }
    )
    database = Database(one_connection)
    pool = database.engine.pool
    assert isinstance(pool, QueuePool)
    app = create_app(one_connection, database=database)

    async def ok(response: Awaitable[httpx2.Response]) -> httpx2.Response:
        done = await response
        assert done.is_success, done.text
        # The session's end (a ROLLBACK, when there is one) is part of the request.
        await eventually(lambda: pool.checkedout() == 0, "the connection back in the pool")
        return done

    async def scenario(client: httpx2.AsyncClient) -> None:
        item = {"name": "counted", "price": "1.00"}
        location = (await ok(client.post("/api/v1/items", json=item))).headers["location"]
        await ok(client.get(location))
        await ok(client.get("/api/v1/items"))
        await ok(client.post("/api/v1/items", json={**item, "name": "counted 2"}))
        proxy.take()

        await ok(client.get(location))
        assert first_words(proxy.take()) == [["SELECT"]]
        await ok(client.get("/api/v1/items"))
        assert first_words(proxy.take()) == [["SELECT"]]
        await ok(client.post("/api/v1/items", json={**item, "name": "counted 3"}))
        assert first_words(proxy.take()) == [["BEGIN"], ["INSERT"], ["COMMIT"]]

    async def main() -> None:
        async with proxy.serving():
            await serve_in_this_loop(app, scenario)

    asyncio.run(main())


async def asyncpg_connection(session: AsyncSession) -> Any:
    """The driver's own connection under the session's."""
    connection = await (await session.connection()).get_raw_connection()
    assert connection.driver_connection is not None
    return connection.driver_connection


async def backend_pid(session: AsyncSession) -> int:
    """The server process behind the session's connection, as the driver knows it."""
    pid: int = (await asyncpg_connection(session)).get_server_pid()
    return pid


async def terminated(database: Database, pid: int, after: float = 0.0) -> None:
    """The server ends the session of `pid` (pg_terminate_backend), as a restart would."""
    await asyncio.sleep(after)
    async with database.autocommit_engine.connect() as other:
        await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


async def driver_saw_it_close(session: AsyncSession) -> None:
    connection = await asyncpg_connection(session)
    await eventually(connection.is_closed, "the driver to see it closed")


@pytest.mark.parametrize("closed", ["before the read", "during the read"])
def test_a_read_whose_connection_the_server_closed_runs_again_on_a_new_one(
    app: FastAPI, database: Database, closed: str
) -> None:
    """Closed after the checkout, so the pool could not replace it: the read fails as a
    disconnect (SQLAlchemy's asyncpg dialect finds the connection closed) and runs once more,
    on a new connection; the request succeeds."""

    async def read(session: ReadSession) -> list[int]:
        before = await backend_pid(session)
        if closed == "before the read":
            await terminated(database, before)
            await driver_saw_it_close(session)
            statement = text("SELECT pg_backend_pid()")
        else:
            asyncio.get_running_loop().create_task(terminated(database, before, after=0.2))
            statement = text("SELECT pg_backend_pid() FROM pg_sleep(0.6)")
        after = await read_retried_once(session, lambda: session.scalar(statement))
        return [before, after]

    app.add_api_route("/test/read", read)

    async def scenario(client: httpx2.AsyncClient) -> None:
        log_lines = capture_json_logs()

        response = await client.get("/test/read")

        assert response.status_code == 200, response.text
        before, after = response.json()
        assert before != after
        messages = [line["message"] for line in log_lines() if line["logger"] == "app.db"]
        assert messages == ["database connection lost, read retried"]

    run_in_one_loop(app, scenario)


def test_a_write_whose_connection_the_server_closed_is_a_503_not_run_again(
    app: FastAPI, database: Database
) -> None:
    """A transaction is never run again for the service: its client decides."""

    async def write(session: Session) -> None:
        await terminated(database, await backend_pid(session))
        await driver_saw_it_close(session)
        await session.execute(text("SELECT 1"))

    app.add_api_route("/test/write", write, methods=["POST"])

    async def scenario(client: httpx2.AsyncClient) -> None:
        response = await client.post("/test/write")

        assert response.status_code == 503
        assert response.json()["request_id"] == response.headers["x-request-id"]
        assert (await client.get("/api/v1/items")).status_code == 200

    run_in_one_loop(app, scenario)


async def end_the_service_sessions(settings: Settings) -> None:
    """The server ends every session of the service (pg_terminate_backend), as a restart or
    a failover would, and the service's event loop reads that their sockets closed."""
    # Autocommit: in a transaction, pg_stat_activity would stay the same snapshot.
    engine = create_async_engine(database_url(settings), isolation_level="AUTOCOMMIT")
    of_the_service = "FROM pg_stat_activity WHERE application_name = :name"
    name = {"name": settings.service_name}
    try:
        async with engine.connect() as admin:
            ending = text(f"SELECT count(pg_terminate_backend(pid)) {of_the_service}")
            assert await admin.scalar(ending, name)
            remaining = text(f"SELECT count(*) {of_the_service}")

            async def none_left() -> bool:
                return not await admin.scalar(remaining, name)

            await eventually(none_left, "the service's sessions to end")
    finally:
        await engine.dispose()
    await asyncio.sleep(0.1)


def test_a_pooled_connection_the_server_closed_is_replaced_at_checkout(
    app: FastAPI, settings: Settings
) -> None:
    """Without a round trip to find out: even a write, which is never run again, succeeds."""

    async def scenario(client: httpx2.AsyncClient) -> None:
        assert (await client.get("/api/v1/items")).status_code == 200
        await end_the_service_sessions(settings)

        created = await client.post("/api/v1/items", json={"name": "after", "price": "1"})

        assert created.status_code == 201, created.text

    run_in_one_loop(app, scenario)
