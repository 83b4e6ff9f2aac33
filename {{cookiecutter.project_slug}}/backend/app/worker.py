{%- set yes = cookiecutter.include_observability == "yes" -%}
{%- set postgres = cookiecutter.database == "postgres" -%}
"""The worker's factory: the process that runs the background jobs, made and wired here.

It is served by uvicorn like the API, on a port of its own, for its probes{% if yes %} and its metrics{% endif %}
(`GET /health/live`, `/health/ready`{% if yes %}, `/metrics`{% endif %}):

    uvicorn app.worker:app --host 0.0.0.0 --port 8001

Its lifespan runs the jobs; a stop (SIGTERM, Ctrl+C) ends it: no new job is read, running ones
get WORKER_SHUTDOWN_SECONDS to finish, and those still running are delivered again.
"""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import health
{%- if postgres %}
from app.db.engine import Database
{%- else %}
from app.api.v1.items import ItemStore
{%- endif %}
from app.jobs.broker import JobBroker, create_broker
from app.jobs.consumer import Consumer
from app.jobs.items import register_item_jobs
from app.jobs.lifecycle import JobLifecycle
from app.jobs.request_ids import RequestIdLabels
from app.logging import WORKER_SOURCE, configure_logging
{%- if yes %}
from app.observability import (
    NATIVE_TELEMETRY_OFF,
    Telemetry,
    create_telemetry,
    instrument_worker,
    observe_attempts,
    refreshing_queue_gauges,
    refreshing_readiness,
)
{%- endif %}
from app.settings import Settings


def create_worker(
    settings: Settings | None = None,
    *,
    readiness: health.ReadinessChecks | None = None,
    broker: JobBroker | None = None,
{%- if postgres %}
    database: Database | None = None,
{%- endif %}
{%- if yes %}
    telemetry: Telemetry | None = None,
{%- endif %}
) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings, source=WORKER_SOURCE)
    readiness = readiness or health.ReadinessChecks()
{%- if yes %}
    telemetry = telemetry or create_telemetry(settings)
{%- endif %}
    broker = broker or create_broker(settings, consumer_name=settings.worker_name)
{%- if yes %}
    # The attempt's telemetry after the lifecycle: it sees a failure before the pause that
    # precedes a retry (taskiq runs the error hooks last added first).
    broker.add_middlewares(
        RequestIdLabels(),
        JobLifecycle(broker, settings, outcomes=telemetry.job_metrics),
        observe_attempts(telemetry, settings),
    )
{%- else %}
    broker.add_middlewares(RequestIdLabels(), JobLifecycle(broker, settings))
{%- endif %}
{%- if postgres %}
    database = database or Database(settings{% if yes %}, checkout_waits=telemetry.database_metrics{% endif %})
    register_item_jobs(broker, database)
{%- else %}
    register_item_jobs(broker, ItemStore())
{%- endif %}
    consumer = Consumer(broker, settings)
    readiness.register("redis", consumer.ping)
    readiness.register("heartbeat", consumer.heartbeat_is_fresh)
{%- if postgres %}
    readiness.register("database", database.ping)
{%- endif %}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, object]]:
{%- if yes %}
        async with (
            consumer.running(),
            refreshing_readiness(readiness, telemetry.readiness_gauges),
            refreshing_queue_gauges(broker, queue_gauges),
        ):
            yield health.health_state(readiness)
{%- else %}
        async with consumer.running():
            yield health.health_state(readiness)
{%- endif %}
{%- if postgres %}
        await database.dispose()
{%- endif %}

    # Probes only: no API documentation.
    app = FastAPI(
        title={{ (cookiecutter.project_name ~ " worker") | tojson }},
        version=settings.service_version,
        lifespan=lifespan,
        openapi_url=None,
{%- if yes %}
        # Its spans are the jobs' (app.observability): none of FastAPI's for the probes.
        telemetry=NATIVE_TELEMETRY_OFF,
{%- endif %}
    )
    app.include_router(health.router)
{%- if yes %}
    queue_gauges = instrument_worker(app, telemetry, broker{% if postgres %}, settings, database{% endif %})
{%- endif %}
    return app


app = create_worker()
gc.freeze()  # as app.main does: the garbage collector leaves what lives as long as the process
