"""Version 1 of the API, served under `/api/v1`: one module per resource."""

from fastapi import APIRouter

from app.api.v1 import {% if cookiecutter.worker == "taskiq" %}item_imports, {% endif %}items{% if cookiecutter.worker == "taskiq" %}, jobs{% endif %}

router = APIRouter(prefix="/api/v1")
router.include_router(items.router)
{%- if cookiecutter.worker == "taskiq" %}
router.include_router(item_imports.router)
router.include_router(jobs.router)
{%- endif %}
