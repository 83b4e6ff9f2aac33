"""The ids of the current trace, for a log line or an exemplar.

Only a sampled span's: only those reach the trace store, so an id of any other would lead
nowhere. Depends on the OpenTelemetry API alone, so the logging can use it without the
instrumentation.
"""

from typing import NamedTuple

from opentelemetry import trace


class TraceIds(NamedTuple):
    trace_id: str
    span_id: str


def current_trace_ids() -> TraceIds | None:
    """The current span's trace and span ids in hex, if it is sampled; else None."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.trace_flags.sampled:
        return None
    return TraceIds(format(span_context.trace_id, "032x"), format(span_context.span_id, "016x"))
