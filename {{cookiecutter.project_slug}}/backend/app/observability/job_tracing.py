"""OpenTelemetry spans of the background jobs, named and described after the messaging
semantic conventions:

- `send <queue>`, a PRODUCER span around each send, a child of the request's span; the
  job's labels carry its trace context (W3C `traceparent`) to the worker. Inside a trace
  the sampler left out, no span is made: the labels carry the current context instead;
- `process <queue>`, a CONSUMER span per attempt, its parent the send's, so every attempt
  of a job, its log lines and its database spans join the trace of the request that sent it
  (a job sent outside a trace starts one with its first attempt, its retries join it). A
  failed attempt is ERROR with `error.type`; a retry is a new span with its `job.attempt`.
"""

import contextlib
from collections.abc import Iterator
from typing import Any, NamedTuple

from opentelemetry import context, propagate, trace
from opentelemetry.semconv.attributes import error_attributes
from opentelemetry.trace import SpanKind, Status, StatusCode
from taskiq import TaskiqMessage

from app.jobs.lifecycle import attempt_of

# The messaging conventions' attributes (their names as in the conventions' registry).
MESSAGING_SYSTEM = "messaging.system"
MESSAGING_OPERATION_NAME = "messaging.operation.name"
MESSAGING_OPERATION_TYPE = "messaging.operation.type"
MESSAGING_DESTINATION_NAME = "messaging.destination.name"
MESSAGING_MESSAGE_ID = "messaging.message.id"
# Not in the conventions: which job, and which attempt of it.
JOB_NAME = "job.name"
JOB_ATTEMPT = "job.attempt"
# The queue's server speaks Redis's protocol (the conventions know no Valkey).
SYSTEM = "redis"


class AttemptSpan(NamedTuple):
    span: trace.Span
    token: object


class JobSpans:
    def __init__(self, tracer: trace.Tracer, queue: str) -> None:
        self._tracer = tracer
        self._queue = queue

    def _attributes(self, operation: str, job_name: str, job_id: str) -> dict[str, Any]:
        return {
            MESSAGING_SYSTEM: SYSTEM,
            MESSAGING_OPERATION_NAME: operation,
            MESSAGING_OPERATION_TYPE: operation,
            MESSAGING_DESTINATION_NAME: self._queue,
            MESSAGING_MESSAGE_ID: job_id,
            JOB_NAME: job_name,
        }

    @contextlib.contextmanager
    def sending(self, job_name: str, job_id: str, labels: dict[str, Any]) -> Iterator[None]:
        parent = trace.get_current_span().get_span_context()
        if parent.is_valid and not parent.trace_flags.sampled:
            # No sampler of the SDK records a span in a trace it left out, so the send makes
            # none: the parent's context goes with the job, and its attempts stay out too.
            propagate.inject(labels)
            yield
            return
        # start_span and attach rather than start_as_current_span: the same span for a quarter
        # less CPU (bench/README.md).
        span = self._tracer.start_span(
            f"send {self._queue}",
            kind=SpanKind.PRODUCER,
            attributes=self._attributes("send", job_name, job_id),
        )
        token = context.attach(trace.set_span_in_context(span))
        try:
            propagate.inject(labels)
            yield
        except Exception as error:
            if span.is_recording():
                span.record_exception(error)
                span.set_attribute(error_attributes.ERROR_TYPE, type(error).__qualname__)
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            raise
        finally:
            context.detach(token)
            span.end()

    def attempt_started(self, message: TaskiqMessage) -> AttemptSpan:
        """The attempt's span, current until `attempt_finished`."""
        span = self._tracer.start_span(
            f"process {self._queue}",
            context=propagate.extract(message.labels),
            kind=SpanKind.CONSUMER,
            attributes={
                **self._attributes("process", message.task_name, message.task_id),
                JOB_ATTEMPT: attempt_of(message.labels),
            },
        )
        attempt_context = trace.set_span_in_context(span)
        if not any(field in message.labels for field in propagate.get_global_textmap().fields):
            # Sent from outside a trace: the retries, which carry these labels, join this one.
            propagate.inject(message.labels, context=attempt_context)
        return AttemptSpan(span, context.attach(attempt_context))

    @staticmethod
    def attempt_finished(attempt: AttemptSpan, error_type: str | None) -> None:
        span, token = attempt
        try:
            if error_type is not None:
                span.set_attribute(error_attributes.ERROR_TYPE, error_type)
                span.set_status(Status(StatusCode.ERROR))
        finally:
            context.detach(token)  # type: ignore[arg-type]
            span.end()
