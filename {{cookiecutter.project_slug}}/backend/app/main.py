{%- set yes = cookiecutter.include_observability == "yes" -%}
{%- set postgres = cookiecutter.database == "postgres" -%}
{%- set worker = cookiecutter.worker == "taskiq" -%}
"""The application factory: every part of the service is made and wired together here, and
only here. Tests hand in their own parts."""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import health
from app.api import v1
{%- if postgres %}
from app.db.engine import Database, database_state
from app.db.errors import add_database_error_handlers
{%- else %}
from app.api.v1.items import ItemStore, item_store_state
{%- endif %}
from app.errors import add_validation_error_logging
from app.http_client import create_http_client, http_client_state
{%- if worker %}
from app.jobs.broker import JobBroker, create_broker
from app.jobs.errors import add_job_queue_error_handlers
from app.jobs.queue import JobQueue, job_queue_state
from app.jobs.request_ids import RequestIdLabels
{%- endif %}
from app.logging import configure_logging
{%- if yes %}
from app.observability import (
    NATIVE_TELEMETRY_OFF,
    Telemetry,
    create_telemetry,
    instrument,
{%- if worker %}
    observe_sends,
{%- endif %}
    refreshing_readiness,
)
{%- endif %}
from app.pipeline import RequestPipeline
from app.settings import Settings


def create_app(
    settings: Settings | None = None,
    *,
    readiness: health.ReadinessChecks | None = None,
{%- if postgres %}
    database: Database | None = None,
{%- endif %}
{%- if worker %}
    broker: JobBroker | None = None,
{%- endif %}
{%- if yes %}
    telemetry: Telemetry | None = None,
{%- endif %}
) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings)
    readiness = readiness or health.ReadinessChecks()
{%- if yes %}
    telemetry = telemetry or create_telemetry(settings)
{%- endif %}
{%- if postgres %}
    # The engine connects on first use: the service starts, and answers /health/live, while
    # the database is still down.
    database = database or Database(settings{% if yes %}, checkout_waits=telemetry.database_metrics{% endif %})
    readiness.register("database", database.ping)
{%- else %}
    item_store = ItemStore()
{%- endif %}
{%- if worker %}
    # The API only sends jobs: it connects on the first one, and serves while Redis is down
    # (only sending a job, or reading one, is a 503 then).
    broker = broker or create_broker(settings)
    broker.add_middlewares(RequestIdLabels())
    job_queue = JobQueue(broker{% if yes %}, observer=observe_sends(telemetry, settings){% endif %})
{%- endif %}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, object]]:
        # Starlette hands what is yielded to every request (request.state), and only once
        # startup has completed; the shared HTTP client is closed on shutdown.
{%- if yes %}
        async with (
            create_http_client() as http_client,
            refreshing_readiness(readiness, telemetry.readiness_gauges),
        ):
{%- else %}
        async with create_http_client() as http_client:
{%- endif %}
            yield {
                **health.health_state(readiness),
                **http_client_state(http_client),
{%- if postgres %}
                **database_state(database),
{%- else %}
                **item_store_state(item_store),
{%- endif %}
{%- if worker %}
                **job_queue_state(job_queue),
{%- endif %}
            }
{%- if worker %}
        await broker.shutdown()
{%- endif %}
{%- if postgres %}
        await database.dispose()
{%- endif %}

    app = FastAPI(
        title={{ cookiecutter.project_name | tojson }},
        description={{ cookiecutter.description | tojson }},
        version=settings.service_version,
        lifespan=lifespan,
{%- if yes %}
        # app.observability instruments every request itself; FastAPI's native telemetry
        # would add more spans and metrics per request as soon as a tracer provider exists.
        telemetry=NATIVE_TELEMETRY_OFF,
{%- endif %}
    )
{%- if postgres %}
    add_database_error_handlers(app)
{%- endif %}
{%- if worker %}
    add_job_queue_error_handlers(app)
{%- endif %}
    add_validation_error_logging(app)
    app.include_router(health.router)
    app.include_router(v1.router)
{%- if yes %}
    observers = instrument(app, telemetry{% if postgres %}, settings, database{% endif %})
    app.add_middleware(RequestPipeline, observers=observers)
{%- else %}
    app.add_middleware(RequestPipeline)
{%- endif %}
    return app


app = create_app()
# What exists now (the modules, the application) lives as long as the process. Frozen, it is
# no longer walked by each full garbage collection, which runs more often the more a request
# allocates: less CPU per request and a lower p99 (bench/README.md).
gc.freeze()
