"""Requests that are not traffic: scrapes and health probes are neither counted nor traced."""

import re

METRICS_PATH = "/metrics"
HEALTH_PATH_PREFIX = "/health/"

# The same rule over the full URL (scheme://host/path), the form the tracing
# instrumentation matches its excluded URLs against.
UNOBSERVED_URL_PATTERN = (
    rf"^[a-z]+://[^/]+({re.escape(METRICS_PATH)}|{re.escape(HEALTH_PATH_PREFIX)}.*)$"
)


def is_unobserved(path: str) -> bool:
    return path == METRICS_PATH or path.startswith(HEALTH_PATH_PREFIX)
