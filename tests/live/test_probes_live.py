"""The Kubernetes probes ask the running backend what the kubelet would: each path the
chart's Deployment probes answers 200 once uvicorn serves (no cluster runs here)."""

from __future__ import annotations

import re

import httpx
import pytest
from conftest import TEMPLATE_DIR

from harness.backend import BackendProcess

pytestmark = pytest.mark.slow

# Copied without rendering: the same file in every render with kubernetes=yes.
DEPLOYMENT = (
    TEMPLATE_DIR / "{{cookiecutter.project_slug}}/deploy/kubernetes/chart/templates/deployment.yaml"
)


def test_every_probe_path_of_the_chart_answers_200(backend: BackendProcess) -> None:
    paths = re.findall(r"^\s+path: (/\S+)$", DEPLOYMENT.read_text(), re.MULTILINE)
    assert paths == ["/health/startup", "/health/live", "/health/ready"]
    for path in paths:
        response = httpx.get(backend.url + path, timeout=10)
        assert response.status_code == 200, (path, response.text)
        assert response.json()["status"] == "pass"
