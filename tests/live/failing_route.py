"""The rendered application plus one route that raises, served only by the live tests.

The backend's own tests get their 500 the same way (a `/test/fail` route added to the app);
here it travels through uvicorn and every middleware of the real process.
"""

from app.main import create_app
from fastapi import FastAPI

FAILING_ROUTE = "/test/fail"


def create_app_with_failing_route() -> FastAPI:
    application = create_app()

    @application.get(FAILING_ROUTE)
    async def fail() -> None:
        raise RuntimeError("raised on purpose by the live tests")

    return application
