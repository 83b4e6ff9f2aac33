"""The database seen like HTTP: each statement's facts read once from SQLAlchemy's public
engine events, and handed to observers as the request pipeline hands a request's:
`DatabaseSpans` (one CLIENT span per statement, child of the request's span) and
`DatabaseMetrics` (the statements' and the pool's metrics on `GET /metrics`).

A small instrumentation, as `tracing.py` is for requests: the contrib packages either
instrument nothing with SQLAlchemy 2.1 or write the older attribute names.
"""

import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Delete, Insert, Select, TableClause, Update, event
from sqlalchemy.engine import Compiled, Connection, ExceptionContext, ExecutionContext

from app.db.engine import Database

# Bounded label values: the statement's first keyword, never its text or a table name.
OPERATIONS = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"})
OTHER_OPERATION = "OTHER"
# The one attribute this module keeps on SQLAlchemy's execution context: the statement's
# `ObservedStatement`, from before its cursor runs until it finished or failed.
OBSERVED = "observed_statement"
# A connection whose transaction saw a statement fail (connection.info, SQLAlchemy's place
# for user data): its rollback is counted.
FAILED = "observed_statement_failed"


@dataclass(slots=True)
class StatementFacts:
    """One statement, as every observer reports it."""

    operation: str
    # The table the compiled statement reads or writes first; None for raw SQL.
    collection: str | None
    text: str
    started: float
    duration: float = 0.0
    error: BaseException | None = None


StatementFinisher = Callable[[StatementFacts], None]


class StatementObserver(Protocol):
    def statement_started(self, facts: StatementFacts) -> StatementFinisher | None:
        """Called before the statement runs; returns what to call once it is over, if
        anything."""
        ...


@dataclass(slots=True)
class ObservedStatement:
    facts: StatementFacts
    finishers: list[StatementFinisher] = field(default_factory=list)


def operation_of(statement: str) -> str:
    keyword = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
    return keyword if keyword in OPERATIONS else OTHER_OPERATION


# Each compiled statement's table, found once: SQLAlchemy caches and reuses the compiled form
# of a statement, while finding an ORM select's tables costs as much as compiling it.
_collections: weakref.WeakKeyDictionary[Compiled, str | None] = weakref.WeakKeyDictionary()


def collection_of(context: ExecutionContext) -> str | None:
    """The first table of the statement SQLAlchemy compiled (text() has none)."""
    compiled = context.compiled
    if compiled is None:
        return None
    try:
        return _collections[compiled]
    except KeyError:
        collection = _collections[compiled] = _first_table(compiled.statement)
        return collection


def _first_table(statement: object) -> str | None:
    if isinstance(statement, Insert | Update | Delete):
        return statement.table.name if isinstance(statement.table, TableClause) else None
    if isinstance(statement, Select):
        for source in statement.get_final_froms():
            if isinstance(source, TableClause):
                return source.name
    return None


def observe_statements(database: Database, observers: Sequence[StatementObserver]) -> None:
    """Hand every statement the service's engine runs to `observers`, in order."""
    engine = database.engine.sync_engine

    def started(
        connection: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: ExecutionContext,
        executemany: bool,
    ) -> None:
        facts = StatementFacts(
            operation_of(statement), collection_of(context), statement, time.perf_counter()
        )
        observed = ObservedStatement(facts)
        for observer in observers:
            finisher = observer.statement_started(facts)
            if finisher is not None:
                observed.finishers.append(finisher)
        setattr(context, OBSERVED, observed)

    def finish(context: ExecutionContext, error: BaseException | None) -> None:
        observed: ObservedStatement | None = getattr(context, OBSERVED, None)
        if observed is None:
            return
        facts = observed.facts
        facts.duration = time.perf_counter() - facts.started
        facts.error = error
        for finisher in reversed(observed.finishers):
            finisher(facts)

    def finished(
        connection: Connection,
        cursor: Any,
        statement: str,
        parameters: Any,
        context: ExecutionContext,
        executemany: bool,
    ) -> None:
        finish(context, None)

    def failed(exception_context: ExceptionContext) -> None:
        if exception_context.execution_context is not None:
            finish(exception_context.execution_context, exception_context.original_exception)
        if exception_context.connection is not None:
            exception_context.connection.info[FAILED] = True

    event.listen(engine, "before_cursor_execute", started)
    event.listen(engine, "after_cursor_execute", finished)
    event.listen(engine, "handle_error", failed)
