"""Logging as one JSON object per line on stdout, for every logger including uvicorn's.

Each line carries `timestamp`, `level`, `message`, `logger`, `service`, `environment` and
`source` (the kind of process: {% if cookiecutter.worker == "taskiq" %}`api`, or `worker` for the jobs' process{% else %}`api` here, a background worker would say `worker`{% endif %}); inside
a request also `request_id` and `correlation_id`{% if cookiecutter.include_observability == "yes" %}; inside a sampled span `trace_id` and `span_id`{% endif %};
every `extra={...}` field given to the logging call; and for an exception an `error` object
with `type`, `message` and `stack`.
"""

import json
import logging
import sys
import time
from typing import Any

from app.request_context import current_request_ids
from app.settings import Settings
{%- if cookiecutter.include_observability == "yes" %}
from app.trace_context import current_trace_ids
{%- endif %}

# `source` of the lines the API process writes{% if cookiecutter.worker == "taskiq" %}, and the worker's{% endif %}.
API_SOURCE = "api"
{%- if cookiecutter.worker == "taskiq" %}
WORKER_SOURCE = "worker"
{%- endif %}

# Attributes every LogRecord has; any other attribute came from `extra` and is written out,
# but for uvicorn's `color_message`, a copy of the message with terminal colours.
_NOT_EXTRA = frozenset(
    [
        *vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)),
        "message",
        "asctime",
        "color_message",
    ]
)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line; cheap, since it runs for every request."""

    def __init__(self, service: str, environment: str, source: str) -> None:
        super().__init__()
        self._service = service
        self._environment = environment
        self._source = source
        # The date and time up to the second, formatted once per second, not once per line
        # (handlers format under their lock, so this cache needs none of its own).
        self._cached_second = -1
        self._cached_second_text = ""

    def _timestamp(self, created: float) -> str:
        second = int(created)
        if second != self._cached_second:
            self._cached_second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._cached_second = second
        return f"{self._cached_second_text}.{int((created - second) * 1000):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": self._timestamp(record.created),
            "level": record.levelname.lower(),
            "message": record.getMessage(),
            "logger": record.name,
            "service": self._service,
            "environment": self._environment,
            "source": self._source,
        }
        ids = current_request_ids.get()
        if ids is not None:
            entry["request_id"] = ids.request_id
            entry["correlation_id"] = ids.correlation_id
{%- if cookiecutter.include_observability == "yes" %}
        trace_ids = current_trace_ids()
        if trace_ids is not None:
            entry["trace_id"], entry["span_id"] = trace_ids
{%- endif %}
        for key, value in record.__dict__.items():
            if key not in _NOT_EXTRA:
                entry[key] = value
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            error_type = type(error)
            entry["error"] = {
                "type": error_type.__qualname__
                if error_type.__module__ == "builtins"
                else f"{error_type.__module__}.{error_type.__qualname__}",
                "message": str(error),
                "stack": self.formatException(record.exc_info),
            }
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(settings: Settings, source: str = API_SOURCE) -> None:
    """Send every log record, uvicorn's included, through one JSON handler on stdout."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(settings.service_name, settings.environment, source))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    # app.access writes the access line; without handlers uvicorn skips building its own.
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers.clear()
    uvicorn_access.propagate = False
