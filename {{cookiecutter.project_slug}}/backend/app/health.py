"""Health endpoints for orchestrators and load balancers, and the readiness checks.

- `GET /health/startup`: the application has finished starting (its lifespan startup has
  completed): 200, else 503. No dependency is checked, as for live.
- `GET /health/live`: the process serves requests. No dependency is checked.
- `GET /health/ready`: every registered check passes (200) or not (503). The body names each
  check and its result, never an error message, a secret or a stack trace.

Add a check in one place, `create_app`: `readiness.register("database", database.ping)`.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

ReadinessCheck = Callable[[], Awaitable[bool]]

CHECK_TIMEOUT_SECONDS = 2.0
# Lifespan state keys (Starlette hands the lifespan's state to every request, and only once
# its startup has completed): that startup has completed, and the checks /health/ready runs.
STARTUP_COMPLETE = "startup_complete"
READINESS_CHECKS = "readiness_checks"

logger = logging.getLogger(__name__)


class ReadinessChecks:
    """Named async checks, run concurrently; a check that raises or times out fails."""

    def __init__(self) -> None:
        self._checks: dict[str, ReadinessCheck] = {}

    def register(self, name: str, check: ReadinessCheck) -> None:
        if name in self._checks:
            raise ValueError(f"readiness check {name!r} is already registered")
        self._checks[name] = check

    async def run(self) -> dict[str, bool]:
        passed = await asyncio.gather(
            *(self._run_check(name, check) for name, check in self._checks.items())
        )
        return dict(zip(self._checks, passed, strict=True))

    @staticmethod
    async def _run_check(name: str, check: ReadinessCheck) -> bool:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                return await check()
        except Exception:
            logger.warning("readiness check failed", exc_info=True, extra={"check": name})
            return False


async def get_readiness_checks(request: Request) -> ReadinessChecks:
    checks: ReadinessChecks = getattr(request.state, READINESS_CHECKS)
    return checks


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def health_state(checks: ReadinessChecks) -> dict[str, object]:
    """What the application's lifespan yields for these endpoints once its startup is done."""
    return {STARTUP_COMPLETE: True, READINESS_CHECKS: checks}


router = APIRouter(prefix="/health", tags=["health"])


@router.get(
    "/startup",
    responses={503: {"description": "The application has not finished starting"}},
)
async def startup(request: Request) -> JSONResponse:
    complete = getattr(request.state, STARTUP_COMPLETE, False)
    return JSONResponse(
        {"status": "pass" if complete else "fail", "timestamp": _utc_now()},
        status_code=200 if complete else 503,
    )


@router.get("/live")
async def live() -> dict[str, str]:
    return {"status": "pass", "timestamp": _utc_now()}


@router.get(
    "/ready",
    responses={503: {"description": "At least one readiness check failed"}},
)
async def ready(
    checks: Annotated[ReadinessChecks, Depends(get_readiness_checks)],
) -> JSONResponse:
    results = await checks.run()
    all_passed = all(results.values())
    return JSONResponse(
        {
            "status": "pass" if all_passed else "fail",
            "timestamp": _utc_now(),
            "checks": {name: "pass" if passed else "fail" for name, passed in results.items()},
        },
        status_code=200 if all_passed else 503,
    )
