"""Requests that are not traffic: scrapes and health probes are neither counted nor traced."""

METRICS_PATH = "/metrics"
HEALTH_PATH_PREFIX = "/health/"

# The same rule over the full URL (scheme://host/path), the form the tracing
# instrumentation matches its excluded URLs against.
UNOBSERVED_URL_PATTERN = r"^[a-z]+://[^/]+(/metrics|/health/.*)$"


def is_unobserved(path: str) -> bool:
    return path == METRICS_PATH or path.startswith(HEALTH_PATH_PREFIX)
