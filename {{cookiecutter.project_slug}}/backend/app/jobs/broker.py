"""The broker: jobs as messages on a Redis stream, read by a consumer group, acknowledged
once their result is saved, so a job whose worker died is delivered again (at least once).

One broker per process, made by the application factory or the worker's; the API only sends,
the worker also listens. Results and job states live in Redis next to the queue, as JSON.
"""

from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, cast

from redis.asyncio import Redis
from taskiq import AckableMessage, TaskiqMessage
from taskiq.serializers import JSONSerializer
from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

from app.settings import Settings

# Seconds a blocking read of the stream waits for a message; the socket waits longer.
READ_BLOCK_SECONDS = 2.0
# What XREADGROUP answers: per stream, its messages as (id, fields); XAUTOCLAIM, the
# messages alone.
StreamMessages = list[tuple[bytes, dict[bytes, bytes]]]
StreamReply = list[tuple[bytes, StreamMessages]]
# The newest dead letters kept (about: Redis trims whole blocks of a stream).
DEAD_LETTERS_KEPT = 10_000


def redis_url(settings: Settings) -> str:
    """The server's address; its password goes to the connection pool, never into a URL."""
    return f"redis://{settings.redis_host}:{settings.redis_port}/{settings.redis_db}"


def connection_settings(settings: Settings) -> dict[str, Any]:
    return {
        "password": settings.redis_password.get_secret_value() or None,
        "socket_connect_timeout": settings.redis_timeout,
        "socket_timeout": READ_BLOCK_SECONDS + settings.redis_timeout,
        # Seconds to wait for a free pooled connection before the command fails.
        "timeout": settings.redis_timeout,
    }


class JobBroker(RedisStreamBroker):
    """taskiq-redis's stream broker with a recovery that does not wait for traffic.

    taskiq-redis 1.2.4 looks for messages left unacknowledged by a dead worker only after a
    new message arrived (its pull request #129, open, would change that), so on a quiet
    queue such a job could wait forever. Here a worker first takes back what its own name
    left pending (a restarted container keeps its hostname), then claims other consumers'
    messages idle longer than `idle_timeout` on every read, traffic or not. Redis's
    XAUTOCLAIM is atomic and resets the idle time, so two workers never claim the same
    message at once. An acknowledged message is deleted: the stream holds the waiting and
    running jobs only.
    """

    def __init__(self, url: str, *, redelivery_seconds: float, batch: int, **kwargs: Any) -> None:
        super().__init__(
            url,
            # A worker reads no more than it runs at once: the rest waits for any worker.
            xread_count=batch,
            unacknowledged_batch_size=batch,
            # The group, made by the first worker, reads the stream from its start: jobs the
            # API sent before any worker ran are not skipped.
            consumer_id="0",
            idle_timeout=round(redelivery_seconds * 1000),
            xread_block=round(READ_BLOCK_SECONDS * 1000),
            **kwargs,
        )

    def _acknowledgement(self, message_id: bytes) -> Callable[[], Awaitable[None]]:
        async def acknowledge_and_delete() -> None:
            async with Redis(connection_pool=self.connection_pool) as redis:
                pipeline = redis.pipeline()
                pipeline.xack(self.queue_name, self.consumer_group_name, message_id)
                pipeline.xdel(self.queue_name, message_id)
                await pipeline.execute()

        return acknowledge_and_delete

    @property
    def dead_letters(self) -> str:
        """The stream of the jobs that failed their last attempt."""
        return f"{self.queue_name}:dead"

    async def dead_letter(self, message: TaskiqMessage, error_type: str) -> None:
        async with Redis(connection_pool=self.connection_pool) as redis:
            await redis.xadd(
                self.dead_letters,
                {
                    "task": message.task_name,
                    "job_id": message.task_id,
                    "error_type": error_type,
                    # The message as it was sent: XADD it to the queue to run the job again.
                    "data": self.formatter.dumps(message).message,
                },
                maxlen=DEAD_LETTERS_KEPT,
                approximate=True,
            )

    def _message(self, message_id: bytes, fields: dict[bytes, bytes]) -> AckableMessage:
        return AckableMessage(data=fields[b"data"], ack=self._acknowledgement(message_id))

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        async with Redis(connection_pool=self.connection_pool) as redis:
            own_pending = await redis.xreadgroup(
                self.consumer_group_name, self.consumer_name, {self.queue_name: "0"}
            )
            for _, messages in cast(StreamReply, own_pending):
                for message_id, fields in messages:
                    if fields:  # an entry deleted while pending comes back empty
                        yield self._message(message_id, fields)
            while True:
                fetched = await redis.xreadgroup(
                    self.consumer_group_name,
                    self.consumer_name,
                    {self.queue_name: ">"},
                    block=self.block,
                    count=self.count,
                )
                for _, messages in cast(StreamReply, fetched):
                    for message_id, fields in messages:
                        yield self._message(message_id, fields)
                _, claimed, _ = await redis.xautoclaim(
                    self.queue_name,
                    self.consumer_group_name,
                    self.consumer_name,
                    min_idle_time=self.idle_timeout,
                    count=self.unacknowledged_batch_size,
                )
                for message_id, fields in cast(StreamMessages, claimed):
                    yield self._message(message_id, fields)


def create_broker(settings: Settings, consumer_name: str | None = None) -> JobBroker:
    """The broker and its result backend; nothing connects before the first command."""
    connection = connection_settings(settings)
    result_backend: RedisAsyncResultBackend[Any] = RedisAsyncResultBackend(
        redis_url(settings),
        result_ex_time=settings.job_result_ttl_seconds,
        serializer=JSONSerializer(),
        prefix_str=f"{settings.job_queue}:result",
        **connection,
    )
    return JobBroker(
        redis_url(settings),
        queue_name=settings.job_queue,
        consumer_group_name=settings.job_queue,
        consumer_name=consumer_name,
        redelivery_seconds=settings.job_redelivery_seconds,
        batch=settings.worker_concurrency,
        **connection,
    ).with_result_backend(result_backend)
