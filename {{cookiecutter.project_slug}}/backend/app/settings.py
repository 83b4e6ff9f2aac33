"""Service settings, read from the environment (names are case-insensitive)."""

from typing import Literal

from pydantic import {% if cookiecutter.include_observability == "yes" %}AliasChoices, {% endif %}{% if cookiecutter.include_observability == "yes" or cookiecutter.database == "postgres" %}Field, {% endif %}{% if cookiecutter.database == "postgres" %}SecretStr, {% endif %}field_validator
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
{%- if cookiecutter.database == "postgres" %}

    # PostgreSQL: the same names as the postgres image's, so one .env serves both.
    postgres_host: str = "localhost"
    postgres_port: int = Field(default=5432, ge=1, le=65535)
    postgres_user: str = "app"
    # Never logged or shown: SecretStr hides it from repr() and error messages.
    postgres_password: SecretStr = SecretStr("")
    postgres_db: str = "app"
    # Connections kept open, and how many more may be opened under load.
    database_pool_size: int = Field(default=5, ge=1)
    database_max_overflow: int = Field(default=5, ge=0)
    # Seconds a request waits for a free connection before it gets a 503.
    database_pool_timeout: float = Field(default=5.0, gt=0)
    # Seconds to open a connection, and the most one statement may run, before they fail.
    database_connect_timeout: float = Field(default=5.0, gt=0)
    database_statement_timeout: float = Field(default=5.0, gt=0)
{%- if cookiecutter.include_observability == "yes" %}
    # Statements at least this many seconds long count as slow (db_client_slow_operations_total).
    database_slow_statement_seconds: float = Field(default=0.5, gt=0)
{%- endif %}
{%- endif %}
{%- if cookiecutter.include_observability == "yes" %}
    # Unset or empty: spans are still created (trace ids in logs and exemplars) but never exported.
    otel_exporter_otlp_endpoint: str | None = None
    # Unset or empty: traces are sampled by ENVIRONMENT (app/observability/tracing.py); set,
    # the OpenTelemetry SDK reads it, and OTEL_TRACES_SAMPLER_ARG, itself.
    otel_traces_sampler: str | None = None
{%- endif %}

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value
{%- if cookiecutter.include_observability == "yes" %}

    @field_validator("otel_exporter_otlp_endpoint", "otel_traces_sampler")
    @classmethod
    def _empty_means_unset(cls, value: str | None) -> str | None:
        return value or None
{%- endif %}
