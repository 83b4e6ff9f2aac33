"""The application factory: every part of the service is wired together here, and only here."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import health
from app.api import v1
{%- if cookiecutter.database == "postgres" %}
from app.db.engine import Database
from app.db.errors import add_database_error_handlers
{%- else %}
from app.api.v1.items import ItemStore
{%- endif %}
from app.errors import UnhandledErrorMiddleware, add_validation_error_logging
from app.http_client import create_http_client, http_client_state
from app.logging import configure_logging
{%- if cookiecutter.include_observability == "yes" %}
from app.observability import NATIVE_TELEMETRY_OFF, setup_observability
{%- endif %}
from app.request_context import RequestContextMiddleware
from app.settings import Settings


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, object]]:
    # Starlette hands what is yielded to every request (request.state): the shared HTTP
    # client, closed on shutdown, and from then on GET /health/startup passes.
    async with create_http_client() as http_client:
        yield {**health.startup_state(), **http_client_state(http_client)}
{%- if cookiecutter.database == "postgres" %}
    database: Database = app.state.database
    await database.dispose()
{%- endif %}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings)

    app = FastAPI(
        title={{ cookiecutter.project_name | tojson }},
        description={{ cookiecutter.description | tojson }},
        version=settings.service_version,
        lifespan=lifespan,
{%- if cookiecutter.include_observability == "yes" %}
        # app.observability instruments every request itself; FastAPI's native telemetry
        # would add more spans and metrics per request as soon as a tracer provider exists.
        telemetry=NATIVE_TELEMETRY_OFF,
{%- endif %}
    )
    app.state.settings = settings
    app.state.readiness_checks = health.ReadinessChecks()
{%- if cookiecutter.database == "postgres" %}
    # The engine connects on first use: the service starts, and answers /health/live, while
    # the database is still down.
    app.state.database = Database(settings)
    app.state.readiness_checks.register("database", app.state.database.ping)
    add_database_error_handlers(app)
{%- else %}
    app.state.item_store = ItemStore()
{%- endif %}

    add_validation_error_logging(app)
    app.include_router(health.router)
    app.include_router(v1.router)

    # The last middleware added runs first: the request context wraps the error handler, so
    # the 500 it answers carries the request's ids and gets its access line.
    app.add_middleware(UnhandledErrorMiddleware)
    app.add_middleware(RequestContextMiddleware)
{%- if cookiecutter.include_observability == "yes" %}
    setup_observability(app)
{%- endif %}
    return app


app = create_app()
