"""The Kubernetes probes ask the running backend what the kubelet would: each path the
chart's Deployment probes answers 200 once uvicorn serves (no cluster runs here)."""

from __future__ import annotations

import re

import httpx
import pytest
from conftest import TEMPLATE_DIR

from harness.backend import BackendProcess

pytestmark = pytest.mark.slow

# Copied without rendering: the same file in every render with kubernetes=yes. Its
# `backend.healthProbes` are the probes of every Deployment of the chart.
HELPERS = (
    TEMPLATE_DIR / "{{cookiecutter.project_slug}}/deploy/kubernetes/chart/templates/_helpers.tpl"
)


def health_probe_paths() -> list[str]:
    probes = HELPERS.read_text().split('{{- define "backend.healthProbes" -}}')[1]
    return re.findall(r"^\s+path: (/\S+)$", probes.split("{{- end }}")[0], re.MULTILINE)


def test_every_probe_path_of_the_chart_answers_200(backend: BackendProcess) -> None:
    paths = health_probe_paths()
    assert paths == ["/health/startup", "/health/live", "/health/ready"]
    for path in paths:
        response = httpx.get(backend.url + path, timeout=10)
        assert response.status_code == 200, (path, response.text)
        assert response.json()["status"] == "pass"
