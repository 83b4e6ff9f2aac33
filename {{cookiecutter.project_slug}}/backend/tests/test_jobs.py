{%- set postgres = cookiecutter.database == "postgres" -%}
"""Background jobs against the real Redis of REDIS_*: the API sends, a worker in this process
runs them; retries, dead letters, redelivery and a Redis that does not answer."""

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from redis.asyncio import Redis
from taskiq.kicker import AsyncKicker

from app.jobs.broker import JobBroker, create_broker, redis_url
from app.jobs.lifecycle import JobFailed
from app.main import create_app
from app.settings import Settings
from app.worker import create_worker
from tests.conftest import LogLines, capture_json_logs

JOB_WAIT_SECONDS = 15


def redis(settings: Settings) -> Redis:
    return Redis.from_url(
        redis_url(settings), password=settings.redis_password.get_secret_value() or None
    )


def on_redis(settings: Settings, use: Callable[[Redis], Awaitable[Any]]) -> Any:
    """What `use` answers on a Redis connection of its own."""

    async def execute() -> Any:
        async with redis(settings) as connection:
            return await use(connection)

    return asyncio.run(execute())


def left_running_by(settings: Settings, consumer: str) -> None:
    """As if a worker named `consumer` had read every waiting job and died: delivered, never
    acknowledged."""
    queue = group = settings.job_queue

    async def read(connection: Redis) -> None:
        await connection.xgroup_create(queue, group, id="0", mkstream=True)
        await connection.xreadgroup(group, consumer, {queue: ">"})

    on_redis(settings, read)


@pytest.fixture(autouse=True)
def own_keys_removed(settings: Settings) -> Iterator[None]:
    """Each test's queue, results and dead letters are deleted after it."""
    yield

    async def remove() -> None:
        async with redis(settings) as connection:
            keys = [key async for key in connection.scan_iter(f"{settings.job_queue}*")]
            if keys:
                await connection.delete(*keys)

    asyncio.run(remove())


@pytest.fixture
def worker_broker(settings: Settings) -> JobBroker:
    return create_broker(settings, consumer_name=settings.worker_name)


@pytest.fixture
def worker_app(settings: Settings, worker_broker: JobBroker) -> FastAPI:
    return create_worker(settings, broker=worker_broker)


def wait_for_job(client: TestClient, location: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_WAIT_SECONDS
    while True:
        job: dict[str, Any] = client.get(location).json()
        if job["status"] == status or time.monotonic() > deadline:
            assert job["status"] == status, job
            return job
        time.sleep(0.05)


def send(client: TestClient, *names: str, **headers: str) -> Any:
    items = [{"name": name, "price": "2.50"} for name in names]
    return client.post("/api/v1/items/imports", json={"items": items}, headers=headers)


def test_an_import_is_202_with_the_jobs_location_and_runs_in_the_worker(
    client: TestClient, worker_app: FastAPI
) -> None:
    response = send(client, "lamp", "desk")
    assert response.status_code == 202
    job = response.json()
    assert job == {"id": job["id"], "status": "queued", "attempt": 1, "result": None, "error": None}
    location = response.headers["location"]
    assert location == f"/api/v1/jobs/{job['id']}"
    assert client.get(location).json()["status"] == "queued"  # no worker yet

    with TestClient(worker_app):
        done = wait_for_job(client, location, "succeeded")
    assert done["result"] == {"created": 2, "skipped": []}
    assert done["attempt"] == 1
{%- if postgres %}
    # The worker wrote through the API's repository into the same database.
    names = {item["name"] for item in client.get("/api/v1/items").json()}
    assert names == {"lamp", "desk"}
{%- endif %}


def test_a_job_run_twice_adds_nothing_twice(client: TestClient, worker_app: FastAPI) -> None:
    with TestClient(worker_app):
        first = wait_for_job(client, send(client, "lamp").headers["location"], "succeeded")
        again = wait_for_job(client, send(client, "lamp", "desk").headers["location"], "succeeded")
    assert first["result"] == {"created": 1, "skipped": []}
    assert again["result"] == {"created": 1, "skipped": ["lamp"]}


@pytest.mark.parametrize(
    "body",
    [
        {"items": []},
        {"items": [{"name": "lamp", "price": "-1"}]},
        {"items": [{"name": "", "price": "1"}]},
        {"items": [{"name": f"item {n}", "price": "1"} for n in range(101)]},
        {"items": "lamp"},
        {},
    ],
    ids=["empty", "negative-price", "empty-name", "too-many", "not-a-list", "no-items"],
)
def test_a_bad_import_is_422_and_sends_nothing(
    client: TestClient, settings: Settings, body: dict[str, Any]
) -> None:
    assert client.post("/api/v1/items/imports", json=body).status_code == 422
    assert on_redis(settings, lambda redis: redis.exists(settings.job_queue)) == 0


def test_an_unknown_job_is_404_and_a_malformed_id_422(client: TestClient) -> None:
    assert client.get(f"/api/v1/jobs/{'0' * 32}").status_code == 404
    assert client.get("/api/v1/jobs/not-an-id").status_code == 422


def test_a_redis_that_does_not_answer_is_503_with_the_request_id(
    settings: Settings, unused_port: int
) -> None:
    unreachable = settings.model_copy(update={"redis_port": unused_port})
    with TestClient(create_app(unreachable)) as client:
        sent = send(client, "lamp")
        read = client.get(f"/api/v1/jobs/{'0' * 32}")
        # The API itself still serves: Redis is needed only to send or read a job.
        assert client.get("/health/ready").status_code == 200
    for response in (sent, read):
        assert response.status_code == 503
        assert response.json() == {
            "detail": "Service Unavailable: the job queue did not answer",
            "request_id": response.headers["x-request-id"],
        }


def readiness_once_settled(worker: TestClient) -> Any:
    """/health/ready once the worker has joined the queue, or tried to for a while."""
    deadline = time.monotonic() + 3
    while (response := worker.get("/health/ready")).status_code != 200:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return response


def test_the_workers_readiness_needs_redis_and_its_heartbeat(
    worker_app: FastAPI, settings: Settings, unused_port: int
) -> None:
    with TestClient(worker_app) as worker:
        ready = readiness_once_settled(worker)
    assert ready.status_code == 200
    assert ready.json()["checks"]["redis"] == "pass"
    assert ready.json()["checks"]["heartbeat"] == "pass"

    unreachable = settings.model_copy(update={"redis_port": unused_port})
    with TestClient(create_worker(unreachable)) as worker:
        assert worker.get("/health/live").status_code == 200
        not_ready = readiness_once_settled(worker)
    assert not_ready.status_code == 503
    assert not_ready.json()["checks"]["redis"] == "fail"
    assert not_ready.json()["checks"]["heartbeat"] == "fail"


def flaky(failures: int) -> Callable[[], Any]:
    """A job that fails its first `failures` attempts, then returns how many runs it took."""
    runs = 0

    async def job() -> int:
        nonlocal runs
        runs += 1
        if runs <= failures:
            raise ConnectionError("the service this job calls did not answer")
        return runs

    return job


def kick(settings: Settings, task_name: str, **labels: Any) -> str:
    """Send a job as the API does, with `labels`; its id."""

    async def send() -> str:
        broker = create_broker(settings)
        try:
            kicker: AsyncKicker[Any, Any] = AsyncKicker(task_name, broker, labels=labels)
            return (await kicker.kiq()).task_id
        finally:
            await broker.shutdown()

    return asyncio.run(send())


def job_log_lines(lines: list[dict[str, Any]], job_id: str) -> list[dict[str, Any]]:
    """The lines written while the job ran: taskiq's as each attempt starts, and ours."""
    return [
        line
        for line in lines
        if line.get("job_id") == job_id or line["message"].startswith("Executing task")
    ]


def test_a_failing_job_is_retried_with_its_request_ids_until_it_succeeds(
    settings: Settings, worker_broker: JobBroker
) -> None:
    worker_broker.register_task(flaky(failures=2), task_name="test.flaky")
    api = create_app(settings)
    # The worker's logging, made last, is the process's: its lines say source=worker.
    worker = create_worker(settings, broker=worker_broker)
    log_lines: LogLines = capture_json_logs()
    job_id = kick(settings, "test.flaky", request_id="request-1", correlation_id="correlation-1")
    with TestClient(worker), TestClient(api) as client:
        job = wait_for_job(client, f"/api/v1/jobs/{job_id}", "succeeded")
    assert (job["attempt"], job["result"]) == (3, 3)
    lines = job_log_lines(log_lines(), job_id)
    retried = [line for line in lines if line["message"] == "job attempt failed, retrying"]
    assert [line["attempt"] for line in retried] == [1, 2]
    assert len(lines) == 5  # three attempts started, two retried
    for line in lines:
        assert line["source"] == "worker"
        assert (line["request_id"], line["correlation_id"]) == ("request-1", "correlation-1")
    assert on_redis(settings, lambda redis: redis.exists(f"{settings.job_queue}:dead")) == 0


def test_a_job_failing_every_attempt_is_failed_and_kept_as_a_dead_letter(
    settings: Settings, worker_broker: JobBroker, worker_app: FastAPI
) -> None:
    worker_broker.register_task(flaky(failures=99), task_name="test.broken")
    job_id = kick(settings, "test.broken")
    with TestClient(worker_app), TestClient(create_app(settings)) as client:
        job = wait_for_job(client, f"/api/v1/jobs/{job_id}", "failed")
    assert (job["attempt"], job["error"], job["result"]) == (
        settings.job_attempts,
        "ConnectionError",
        None,
    )
    ((_, dead),) = on_redis(settings, lambda redis: redis.xrange(f"{settings.job_queue}:dead"))
    assert (dead[b"task"], dead[b"job_id"], dead[b"error_type"]) == (
        b"test.broken",
        job_id.encode(),
        b"ConnectionError",
    )


def test_a_job_raising_job_failed_is_not_retried(
    settings: Settings, worker_broker: JobBroker, worker_app: FastAPI
) -> None:
    async def rejected() -> None:
        raise JobFailed

    worker_broker.register_task(rejected, task_name="test.rejected")
    job_id = kick(settings, "test.rejected")
    with TestClient(worker_app), TestClient(create_app(settings)) as client:
        job = wait_for_job(client, f"/api/v1/jobs/{job_id}", "failed")
    assert (job["attempt"], job["error"]) == (1, "JobFailed")
    assert on_redis(settings, lambda redis: redis.exists(f"{settings.job_queue}:dead")) == 0


def test_a_job_its_worker_left_running_is_run_again_by_the_next_of_that_name(
    settings: Settings, worker_app: FastAPI, client: TestClient
) -> None:
    location = send(client, "lamp").headers["location"]
    left_running_by(settings, settings.worker_name)
    with TestClient(worker_app):
        job = wait_for_job(client, location, "succeeded")
    assert job["result"] == {"created": 1, "skipped": []}
    # Acknowledged and deleted: nothing is left waiting or pending.
    queue = settings.job_queue
    assert on_redis(settings, lambda redis: redis.xlen(queue)) == 0
    assert on_redis(settings, lambda redis: redis.xpending(queue, queue))["pending"] == 0


def test_a_job_another_worker_left_running_is_claimed_once_idle(
    settings: Settings, worker_broker: JobBroker, worker_app: FastAPI, client: TestClient
) -> None:
    location = send(client, "lamp").headers["location"]
    left_running_by(settings, "a-dead-worker")
    worker_broker.idle_timeout = 200  # milliseconds, not the settings' job timeout and more
    with TestClient(worker_app):
        job = wait_for_job(client, location, "succeeded")
    assert job["result"] == {"created": 1, "skipped": []}


def test_jobs_sent_before_any_worker_ran_are_not_skipped(
    client: TestClient, worker_app: FastAPI
) -> None:
    locations = [send(client, name).headers["location"] for name in ("lamp", "desk")]
    with TestClient(worker_app):
        for location in locations:
            wait_for_job(client, location, "succeeded")


def test_a_stopping_worker_lets_its_running_job_finish(
    settings: Settings, worker_broker: JobBroker, worker_app: FastAPI
) -> None:
    async def slow() -> str:
        await asyncio.sleep(1)
        return "finished"

    worker_broker.register_task(slow, task_name="test.slow")
    job_id = kick(settings, "test.slow")
    with TestClient(worker_app), TestClient(create_app(settings)) as client:
        wait_for_job(client, f"/api/v1/jobs/{job_id}", "running")
    # The worker's lifespan has ended: the job it was running has finished first.
    with TestClient(create_app(settings)) as client:
        assert client.get(f"/api/v1/jobs/{job_id}").json()["result"] == "finished"
