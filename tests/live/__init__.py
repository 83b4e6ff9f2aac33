"""Slow tier: the rendered backend, a real Prometheus and a real OTLP receiver on 127.0.0.1."""
