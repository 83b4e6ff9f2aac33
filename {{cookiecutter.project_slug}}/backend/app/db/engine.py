{%- set yes = cookiecutter.include_observability == "yes" -%}
"""The engine and session factory: one per process, made by the application factory and
disposed when the application stops."""
{% if yes %}
import time
{%- endif %}
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any{% if yes %}, Protocol{% endif %}

from fastapi import Depends, Request
from sqlalchemy import URL, event, text
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import OperationalError
{%- if yes %}
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
{%- endif %}
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.settings import Settings


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
        # A connection the server closed (restart, failover) is replaced at checkout, so the
        # service recovers by itself once the database is back.
        pool_pre_ping=True,
        connect_args={
            "timeout": settings.database_connect_timeout,
            "server_settings": {
                "statement_timeout": str(statement_timeout_ms),
                "application_name": settings.service_name,
            },
        },
    )
    event.listen(engine.sync_engine, "do_connect", connect_or_fail_as_the_driver)
    return engine


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
    """The service's engine and its session factory."""

    def __init__(self, settings: Settings{% if yes %}, checkout_waits: CheckoutWaits | None = None{% endif %}) -> None:
        self.engine = create_engine(settings)
        # Objects stay readable after commit: responses are built from them afterwards.
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
{%- if yes %}
        self.checkout_waits = checkout_waits
{%- endif %}

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session with its pooled connection checked out: a request that cannot get one
        fails here, before its handler runs."""
        async with self.sessions() as session:
{%- if yes %}
            # Timed here, since the pool has no event before a checkout.
            started, gave_up = time.perf_counter(), False
            try:
                await session.connection()
            except PoolTimeoutError:
                gave_up = True
                raise
            finally:
                self._checked_out(started, gave_up)
{%- else %}
            await session.connection()
{%- endif %}
            yield session
{%- if yes %}

    def _checked_out(self, started: float, gave_up: bool) -> None:
        if self.checkout_waits is not None:
            self.checkout_waits.observe_checkout(time.perf_counter() - started, gave_up)
{%- endif %}

    async def ping(self) -> bool:
        """The readiness check: the database answers a trivial statement."""
        async with self.engine.connect() as connection:
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
    """One session per request, closed (its connection back in the pool) when it ends."""
    database: Database = getattr(request.state, DATABASE)
    async with database.session() as session:
        yield session


Session = Annotated[AsyncSession, Depends(get_session)]
