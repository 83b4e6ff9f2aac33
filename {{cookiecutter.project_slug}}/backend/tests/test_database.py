"""Items in PostgreSQL: what the database adds to the API (migrations, persistence), and
what a failing database makes of a request. The resource's conventions: tests/test_items.py."""

import asyncio
from collections.abc import Awaitable, Callable

import httpx2
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import QueuePool
from starlette.types import Receive, Scope, Send

from app.db.engine import Database, Session, database_url
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


def run_in_one_loop(
    app: FastAPI, scenario: Callable[[httpx2.AsyncClient], Awaitable[None]]
) -> None:
    """`scenario` with `app` served in this test's own event loop, its lifespan run as a
    server runs it, so that the test can hold the app's database connections itself."""

    async def main() -> None:
        async with app.router.lifespan_context(app) as state:

            async def serve(scope: Scope, receive: Receive, send: Send) -> None:
                await app({**scope, "state": dict(state or {})}, receive, send)

            transport = httpx2.ASGITransport(app=serve)
            async with httpx2.AsyncClient(transport=transport, base_url="http://test") as client:
                await scenario(client)

    asyncio.run(main())


def test_an_exhausted_pool_is_a_503_in_bounded_time_and_recovers(settings: Settings) -> None:
    small_pool = settings.model_copy(
        update={"database_pool_size": 1, "database_max_overflow": 0, "database_pool_timeout": 0.2}
    )
    database = Database(small_pool)

    async def scenario(client: httpx2.AsyncClient) -> None:
        held = await database.engine.connect()
        try:
            started = asyncio.get_running_loop().time()
            response = await client.get("/api/v1/items")
            waited = asyncio.get_running_loop().time() - started
        finally:
            await held.close()
        assert response.status_code == 503
        assert response.json()["request_id"] == response.headers["x-request-id"]
        assert 0.2 <= waited < 2
        assert (await client.get("/api/v1/items")).status_code == 200

    run_in_one_loop(create_app(small_pool, database=database), scenario)


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
