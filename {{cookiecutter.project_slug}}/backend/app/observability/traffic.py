"""What the metrics and the traces agree on: which requests are traffic, and how methods are
named. Scrapes and health probes are neither counted nor traced."""

METRICS_PATH = "/metrics"
HEALTH_PATH_PREFIX = "/health/"

# Any other method is reported under one fixed name, so invented methods cannot create
# series or span names.
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}
)


def is_unobserved(path: str) -> bool:
    return path == METRICS_PATH or path.startswith(HEALTH_PATH_PREFIX)
