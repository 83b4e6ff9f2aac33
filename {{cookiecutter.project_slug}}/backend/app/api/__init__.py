"""The HTTP API, one sub-package per version."""
