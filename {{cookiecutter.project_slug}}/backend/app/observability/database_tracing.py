"""One CLIENT span per database statement, child of the request's span, with the stable
database conventions. `db.query.text` is the statement as SQLAlchemy sends it, with `$1`
placeholders: bound values never reach a span."""

from typing import Any

from opentelemetry import trace
from opentelemetry.semconv.attributes import db_attributes, error_attributes, server_attributes
from opentelemetry.trace import SpanKind, Status, StatusCode

from app.observability.database import StatementFacts, StatementFinisher
from app.settings import Settings


class DatabaseSpans:
    """A `StatementObserver`: spans only inside a sampled request, so probes and scrapes
    make none."""

    def __init__(self, tracer: trace.Tracer, settings: Settings) -> None:
        self.tracer = tracer
        self.base_attributes = {
            db_attributes.DB_SYSTEM_NAME: "postgresql",
            db_attributes.DB_NAMESPACE: settings.postgres_db,
            server_attributes.SERVER_ADDRESS: settings.postgres_host,
            server_attributes.SERVER_PORT: settings.postgres_port,
        }

    def statement_started(self, facts: StatementFacts) -> StatementFinisher | None:
        if not trace.get_current_span().is_recording():
            return None
        attributes: dict[str, Any] = {
            **self.base_attributes,
            db_attributes.DB_OPERATION_NAME: facts.operation,
            db_attributes.DB_QUERY_TEXT: facts.text,
        }
        name = facts.operation
        if facts.collection is not None:
            attributes[db_attributes.DB_COLLECTION_NAME] = facts.collection
            name = f"{facts.operation} {facts.collection}"
        span = self.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)

        def statement_finished(facts: StatementFacts) -> None:
            if facts.error is not None:
                # The SQLSTATE is the conventions' error.type when the server sent one.
                sqlstate = getattr(facts.error, "sqlstate", None)
                if sqlstate:
                    span.set_attribute(db_attributes.DB_RESPONSE_STATUS_CODE, sqlstate)
                span.set_attribute(
                    error_attributes.ERROR_TYPE, sqlstate or type(facts.error).__name__
                )
                span.set_status(Status(StatusCode.ERROR))
            span.end()

        return statement_finished
