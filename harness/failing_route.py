"""The rendered application plus the routes only the live tests need: one that raises, and
with a database one that holds a pooled connection for a while.

The backend's own tests get their 500 the same way (a `/test/fail` route added to the app);
here it travels through uvicorn and every middleware of the real process.
"""

import importlib.util

from app.main import create_app
from fastapi import FastAPI

FAILING_ROUTE = "/test/fail"
HOLD_ROUTE = "/test/hold"


def create_app_with_failing_route() -> FastAPI:
    application = create_app()

    @application.get(FAILING_ROUTE)
    async def fail() -> None:
        raise RuntimeError("raised on purpose by the live tests")

    if importlib.util.find_spec("app.db") is not None:  # database=postgres
        from app.db.engine import Session
        from sqlalchemy import text

        @application.get(HOLD_ROUTE)
        async def hold(session: Session, seconds: float) -> None:
            await session.execute(text("SELECT pg_sleep(:seconds)"), {"seconds": seconds})

    return application
