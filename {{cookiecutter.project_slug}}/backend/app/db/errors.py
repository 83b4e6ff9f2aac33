"""A database that fails (down, unreachable, pool exhausted, statement timed out) makes the
request a 503 with its request id, logged once without the statement, its parameters or the
connection's credentials."""

import logging

from fastapi import FastAPI, Request
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.responses import JSONResponse

from app.request_context import current_request_ids

logger = logging.getLogger("app.db")

# SQLSTATE classes of a database that cannot serve now, not of a wrong statement: connection
# exceptions (08), insufficient resources (53) and operator intervention (57, which includes
# 57014, a statement cancelled by statement_timeout).
UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57")


def is_unavailable(error: DBAPIError) -> bool:
    if isinstance(error, OperationalError | InterfaceError):
        return True
    sqlstate = getattr(error.orig, "sqlstate", None) or ""
    return sqlstate[:2] in UNAVAILABLE_SQLSTATE_CLASSES


async def driver_error(request: Request, error: Exception) -> JSONResponse:
    """A 503 for a database that cannot serve; any other driver error is a bug: a 500."""
    if isinstance(error, DBAPIError) and is_unavailable(error):
        return await database_unavailable(request, error)
    raise error


async def database_unavailable(request: Request, error: Exception) -> JSONResponse:
    # Only the error's type: SQLAlchemy's message carries the statement and its parameters.
    cause = error.__cause__ or error.__context__
    logger.error(
        "database unavailable",
        extra={
            "error_type": type(error).__name__,
            "cause_type": type(cause).__name__ if cause is not None else None,
        },
    )
    ids = current_request_ids.get()
    return JSONResponse(
        {
            "detail": "Service Unavailable: the database did not answer",
            "request_id": ids.request_id if ids is not None else None,
        },
        status_code=503,
    )


def add_database_error_handlers(app: FastAPI) -> None:
    # Every failure is a driver error (a refused connection too: app/db/engine.py raises it
    # as one), or a checkout that waited past the pool timeout.
    app.add_exception_handler(DBAPIError, driver_error)
    app.add_exception_handler(PoolTimeoutError, database_unavailable)
