"""The worker's loop: it joins the queue's consumer group, runs the jobs it reads, and keeps a
heartbeat while it does; when Redis fails it waits and joins again, without a restart."""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from taskiq.acks import AcknowledgeType
from taskiq.receiver import Receiver

from app.jobs.broker import JobBroker
from app.settings import Settings

HEARTBEAT_SECONDS = 5.0
# A heartbeat older than this fails the worker's readiness.
HEARTBEAT_STALE_SECONDS = 3 * HEARTBEAT_SECONDS
RECONNECT_SECONDS = 2.0
# Beyond WORKER_SHUTDOWN_SECONDS, what a stop waits for the consumer before cancelling it.
STOP_MARGIN_SECONDS = 5.0

logger = logging.getLogger("app.jobs")


class Consumer:
    def __init__(self, broker: JobBroker, settings: Settings) -> None:
        self._broker = broker
        self._concurrency = settings.worker_concurrency
        self._shutdown_seconds = settings.worker_shutdown_seconds
        self._subscribed = False
        self._last_beat: float | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Consume while the block runs; on leaving it, stop reading and let running jobs
        finish for WORKER_SHUTDOWN_SECONDS: those still running are delivered again."""
        stop = asyncio.Event()
        self._broker.is_worker_process = True
        consuming = asyncio.create_task(self._consume(stop))
        heartbeat = asyncio.create_task(self._beat())
        try:
            yield
        finally:
            stop.set()
            heartbeat.cancel()
            # Every wait is bounded, so a stop never hangs: a read of the stream in flight
            # ends within its block time, running jobs within WORKER_SHUTDOWN_SECONDS.
            await asyncio.wait([consuming], timeout=self._shutdown_seconds + STOP_MARGIN_SECONDS)
            consuming.cancel()
            await asyncio.wait([consuming, heartbeat], timeout=STOP_MARGIN_SECONDS)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(STOP_MARGIN_SECONDS):
                    await self._broker.shutdown()

    async def ping(self) -> bool:
        """The readiness check: Redis answers."""
        async with Redis(connection_pool=self._broker.connection_pool) as redis:
            return bool(await redis.ping())

    async def heartbeat_is_fresh(self) -> bool:
        """The readiness check: this worker is in the consumer group and its last heartbeat
        is recent."""
        return (
            self._subscribed
            and self._last_beat is not None
            and time.monotonic() - self._last_beat < HEARTBEAT_STALE_SECONDS
        )

    async def _consume(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                # Joins the consumer group, made if missing (a Redis that lost its data).
                await self._broker.startup()
                receiver = Receiver(
                    self._broker,
                    max_async_tasks=self._concurrency,
                    # Acknowledged once the result is saved: a job is never lost, and a job
                    # interrupted before that runs again (at least once).
                    ack_type=AcknowledgeType.WHEN_SAVED,
                    wait_tasks_timeout=self._shutdown_seconds,
                    run_startup=False,
                )
                self._subscribed = True
                self._last_beat = time.monotonic()
                await receiver.listen(stop)
            except Exception as error:
                logger.warning(
                    "job queue unavailable, joining again",
                    extra={
                        "error_type": type(error).__name__,
                        "retry_in_seconds": RECONNECT_SECONDS,
                    },
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), RECONNECT_SECONDS)
            finally:
                self._subscribed = False

    async def _beat(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                if self._subscribed and await self.ping():
                    self._last_beat = time.monotonic()
            await asyncio.sleep(HEARTBEAT_SECONDS)
