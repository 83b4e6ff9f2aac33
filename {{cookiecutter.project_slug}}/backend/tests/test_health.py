import asyncio
import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app import health
from tests.conftest import SERVICE_CHECKS


def test_liveness_answers_without_running_checks(
    readiness: health.ReadinessChecks, client: TestClient
) -> None:
    async def never_called() -> bool:
        raise AssertionError("liveness must not run readiness checks")

    readiness.register("dependency", never_called)

    response = client.get("/health/live")

    assert response.status_code == 200
    assert response.json().keys() == {"status", "timestamp"}
    assert response.json()["status"] == "pass"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", response.json()["timestamp"])


def test_ready_with_the_service_checks_passing_passes(client: TestClient) -> None:
    response = client.get("/health/ready")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "pass"
    assert body["checks"] == SERVICE_CHECKS
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["timestamp"])


def test_ready_fails_with_503_when_one_check_fails(
    readiness: health.ReadinessChecks, client: TestClient
) -> None:
    async def passing() -> bool:
        return True

    async def failing() -> bool:
        return False

    readiness.register("cache", passing)
    readiness.register("queue", failing)

    response = client.get("/health/ready")

    assert response.status_code == 503
    assert response.json()["status"] == "fail"
    assert response.json()["checks"] == {**SERVICE_CHECKS, "cache": "pass", "queue": "fail"}


def test_a_raising_check_fails_without_leaking_its_error(
    readiness: health.ReadinessChecks, client: TestClient
) -> None:
    async def raising() -> bool:
        raise ConnectionError("password=hunter2 refused")

    readiness.register("broker", raising)

    response = client.get("/health/ready")

    assert response.status_code == 503
    assert response.json()["checks"] == {**SERVICE_CHECKS, "broker": "fail"}
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text


def test_a_slow_check_times_out_and_fails(
    readiness: health.ReadinessChecks, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(health, "CHECK_TIMEOUT_SECONDS", 0.05)

    async def hanging() -> bool:
        await asyncio.sleep(10)
        return True

    readiness.register("slow", hanging)

    response = client.get("/health/ready")

    assert response.status_code == 503
    assert response.json()["checks"]["slow"] == "fail"


def test_a_check_name_registers_once() -> None:
    async def passing() -> bool:
        return True

    checks = health.ReadinessChecks()
    checks.register("database", passing)

    with pytest.raises(ValueError, match="database"):
        checks.register("database", passing)


def test_checks_run_concurrently_and_report_by_name() -> None:
    started: list[str] = []

    async def slow(name: str, result: bool) -> bool:
        started.append(name)
        await asyncio.sleep(0.05)
        assert len(started) == 2, "the other check has not started meanwhile"
        return result

    checks = health.ReadinessChecks()
    checks.register("database", lambda: slow("database", True))
    checks.register("cache", lambda: slow("cache", False))

    assert asyncio.run(checks.run()) == {"database": True, "cache": False}


def test_startup_passes_once_the_lifespan_has_started(
    app: FastAPI, readiness: health.ReadinessChecks
) -> None:
    async def never_called() -> bool:
        raise AssertionError("the startup probe must not run readiness checks")

    readiness.register("dependency", never_called)
    # Without `with`, the test client runs no lifespan: the application never started.
    not_started = TestClient(app).get("/health/startup")
    with TestClient(app) as client:
        started = client.get("/health/startup")

    assert not_started.status_code == 503
    assert not_started.json()["status"] == "fail"
    assert started.status_code == 200
    assert started.json()["status"] == "pass"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", started.json()["timestamp"])
