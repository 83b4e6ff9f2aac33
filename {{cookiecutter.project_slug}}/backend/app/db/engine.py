{%- set yes = cookiecutter.include_observability == "yes" -%}
"""The engine and its sessions: one per process, made by the application factory and disposed
when the application stops.

A read is one round trip to the server: it runs without a transaction (autocommit, no BEGIN
and no ROLLBACK around it), on a pooled connection that is not pinged first. A connection the
server closed is replaced when it is checked out; one found closed only as a read runs makes
that read run once more (`read_retried_once`)."""

import asyncio
import logging
{%- if yes %}
import time
{%- endif %}
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any, {% if yes %}Protocol, {% endif %}TypeVar

from fastapi import Depends, Request
from sqlalchemy import URL, event, text
from sqlalchemy.engine import AdaptedConnection, Dialect
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.settings import Settings

logger = logging.getLogger("app.db")

T = TypeVar("T")


def database_url(settings: Settings) -> URL:
    """The connection URL, built from its parts so that no password has to be escaped."""
    return URL.create(
        "postgresql+asyncpg",
        username=settings.postgres_user,
        password=settings.postgres_password.get_secret_value(),
        host=settings.postgres_host,
        port=settings.postgres_port,
        database=settings.postgres_db,
    )


def create_engine(settings: Settings) -> AsyncEngine:
    """An engine with a bounded pool; it connects on first use, not here."""
    statement_timeout_ms = round(settings.database_statement_timeout * 1000)
    engine = create_async_engine(
        database_url(settings),
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_timeout=settings.database_pool_timeout,
        # No pool_pre_ping: it would cost every checkout a round trip (three on asyncpg:
        # BEGIN, the ping, ROLLBACK). A closed connection is replaced at checkout instead.
        connect_args={
            "timeout": settings.database_connect_timeout,
            "server_settings": {
                "statement_timeout": str(statement_timeout_ms),
                "application_name": settings.service_name,
            },
        },
    )
    event.listen(engine.sync_engine, "do_connect", connect_or_fail_as_the_driver)
    event.listen(engine.sync_engine, "checkout", replace_if_closed)
    return engine


def replace_if_closed(
    dbapi_connection: AdaptedConnection, connection_record: object, connection_proxy: object
) -> None:
    """A pooled connection the server closed (a restart, a failover, a terminated backend) is
    not handed out: the pool replaces it with a new one, so the service recovers by itself
    once the database is back.

    The driver knows without asking the server (the same test SQLAlchemy's asyncpg dialect
    makes to recognise a disconnect), so this costs no round trip, unlike `pool_pre_ping`.
    """
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def connect_or_fail_as_the_driver(
    dialect: Dialect, connection_record: object, cargs: Any, cparams: Any
) -> Any:
    """Connect; a refused or timed-out connection raises what the driver's errors arrive as.

    The driver lets those out as plain OSError and TimeoutError, which any other code raises
    too: as an OperationalError, the API can tell a database that is down from a bug.
    """
    try:
        return dialect.connect(*cargs, **cparams)
    except (OSError, TimeoutError) as error:
        raise OperationalError("connect", None, error) from error


{% if yes -%}
class CheckoutWaits(Protocol):
    """Told how long each request waited for its pooled connection, and whether it gave up
    after the pool timeout (the metrics of `app.observability`)."""

    def observe_checkout(self, seconds: float, gave_up: bool) -> None: ...


{% endif -%}
class Database:
    """The service's engine and its two kinds of session, on the same pool of connections.

    As in SQLAlchemy's "Setting Isolation For A Sessionmaker / Engine Wide": writes get a
    session in a transaction (`session`: BEGIN, then COMMIT or ROLLBACK); reads get one in
    autocommit (`read_session`): the server runs each statement on its own, so reading an
    item is the SELECT alone, one round trip.
    """

    def __init__(self, settings: Settings{% if yes %}, checkout_waits: CheckoutWaits | None = None{% endif %}) -> None:
        self.engine = create_engine(settings)
        self.autocommit_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        # Objects stay readable after commit: responses are built from them afterwards.
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.read_sessions = async_sessionmaker(self.autocommit_engine)
        # The most connections the pool opens: its size plus its overflow.
        self.max_connections = settings.database_pool_size + settings.database_max_overflow
        # As many turns as the pool has connections (see `_turn`).
        self._turns = asyncio.Semaphore(self.max_connections)
        self._pool_timeout = settings.database_pool_timeout
{%- if yes %}
        self.checkout_waits = checkout_waits
{%- endif %}

    def session(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A session in a transaction, for writes: commit it, or it is rolled back."""
        return self._checked_out(self.sessions)

    def read_session(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A session without a transaction, for reads: each statement is on its own, with
        nothing to commit or roll back. Never for a write that needs another statement to
        succeed with it."""
        return self._checked_out(self.read_sessions)

    @asynccontextmanager
    async def _checked_out(
        self, sessions: async_sessionmaker[AsyncSession]
    ) -> AsyncIterator[AsyncSession]:
        """A session with its pooled connection checked out, in its turn: a request that cannot
        get one within the pool timeout fails here, before its handler runs."""
{%- if yes %}
        # Timed here, since the pool has no event before a checkout.
        started, waiting = time.perf_counter(), True
        try:
            async with self._turn(), sessions() as session:
                await session.connection()
                waiting = False
                self._observe_checkout(started, gave_up=False)
                yield session
        except Exception as error:
            if waiting:
                self._observe_checkout(started, gave_up=isinstance(error, PoolTimeoutError))
            raise

    def _observe_checkout(self, started: float, gave_up: bool) -> None:
        if self.checkout_waits is not None:
            self.checkout_waits.observe_checkout(time.perf_counter() - started, gave_up)
{%- else %}
        async with self._turn(), sessions() as session:
            await session.connection()
            yield session
{%- endif %}

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """One of the pool's connections to use, first come, first served.

        The pool hands a connection given back to whichever request asks first, even one that
        has just arrived: when more requests want a connection than the pool has, one that
        waits can lose it to newer ones again and again (at 16 clients on 10 connections, a
        p99 of over a second against 62 ms with as many connections as clients). Requests
        queue here instead, in order, and never wait in the pool.
        """
        try:
            async with asyncio.timeout(self._pool_timeout):
                await self._turns.acquire()
        except TimeoutError as error:
            message = f"no database connection free within {self._pool_timeout} s"
            raise PoolTimeoutError(message) from error
        try:
            yield
        finally:
            self._turns.release()

    async def ping(self) -> bool:
        """The readiness check: the database answers a trivial statement (one round trip)."""
        async with self._turn(), self.autocommit_engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return True

    async def dispose(self) -> None:
        await self.engine.dispose()


# The lifespan state key of the database: Starlette copies the lifespan's state into every
# request.
DATABASE = "database"


def database_state(database: Database) -> dict[str, Database]:
    return {DATABASE: database}


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session in a transaction (for writes), closed when the request ends:
    rolled back unless committed, its connection back in the pool."""
    database: Database = getattr(request.state, DATABASE)
    async with database.session() as session:
        yield session


async def get_read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session without a transaction (for reads), closed when it ends."""
    database: Database = getattr(request.state, DATABASE)
    async with database.read_session() as session:
        yield session


Session = Annotated[AsyncSession, Depends(get_session)]
ReadSession = Annotated[AsyncSession, Depends(get_read_session)]


async def read_retried_once(session: AsyncSession, read: Callable[[], Awaitable[T]]) -> T:
    """`read()`, run once more if its connection turns out to be closed as it runs (the server
    went away without the driver seeing it yet, or as the statement was sent).

    SQLAlchemy then marks that connection, and every other one the pool had before, as
    invalid (`DBAPIError.connection_invalidated`); the session's rollback gives it back, and
    the second try checks out a new one. Only on a `read_session`: in a transaction, that
    rollback would lose the statements before the read. A failure to connect is not retried.
    """
    try:
        return await read()
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
        logger.warning(
            "database connection lost, read retried", extra={"error_type": type(error).__name__}
        )
    await session.rollback()
    return await read()
