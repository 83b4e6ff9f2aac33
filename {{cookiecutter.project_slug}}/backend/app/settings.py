"""Service settings, read from the environment (names are case-insensitive)."""

from typing import Literal

{%- if cookiecutter.include_observability == "yes" %}

from pydantic import AliasChoices, Field, field_validator
{%- else %}

from pydantic import field_validator
{%- endif %}
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        case_sensitive=False,
        frozen=True,
{%- if cookiecutter.include_observability == "yes" %}
        # A field with aliases (service_name) still takes its own name in code and tests.
        validate_by_name=True,
{%- endif %}
    )

{%- if cookiecutter.include_observability == "yes" %}

    # OTEL_SERVICE_NAME wins so the logs, the metrics and the traces name the service alike.
    service_name: str = Field(
        default="backend", validation_alias=AliasChoices("OTEL_SERVICE_NAME", "SERVICE_NAME")
    )
{%- else %}

    service_name: str = "backend"
{%- endif %}
    service_version: str = "0.1.0"
    environment: str = "development"
    log_level: LogLevel = "INFO"
{%- if cookiecutter.include_observability == "yes" %}
    # Unset or empty: spans are still created (trace ids in logs and exemplars) but never exported.
    otel_exporter_otlp_endpoint: str | None = None
{%- endif %}

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value
{%- if cookiecutter.include_observability == "yes" %}

    @field_validator("otel_exporter_otlp_endpoint")
    @classmethod
    def _empty_means_unset(cls, value: str | None) -> str | None:
        return value or None
{%- endif %}
