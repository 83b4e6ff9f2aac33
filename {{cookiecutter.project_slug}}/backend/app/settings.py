{%- set uses_field = cookiecutter.include_observability == "yes" or cookiecutter.database == "postgres" or cookiecutter.worker == "taskiq" -%}
{%- set uses_secret = cookiecutter.database == "postgres" or cookiecutter.worker == "taskiq" -%}
"""Service settings, read from the environment (names are case-insensitive)."""

{% if cookiecutter.worker == "taskiq" -%}
import socket
{% endif -%}
from typing import Literal

from pydantic import {% if cookiecutter.include_observability == "yes" %}AliasChoices, {% endif %}{% if uses_field %}Field, {% endif %}{% if uses_secret %}SecretStr, {% endif %}field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
{%- if cookiecutter.worker == "taskiq" %}
# Added to the longest an attempt can hold its message, for clocks and slow networks.
REDELIVERY_MARGIN_SECONDS = 30.0
{%- endif %}


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
{%- if cookiecutter.worker == "taskiq" %}

    # Redis (the job queue and its results): where it is, its password, and the seconds to
    # connect or to get an answer before an enqueue gets a 503.
    redis_host: str = "localhost"
    redis_port: int = Field(default=6379, ge=1, le=65535)
    redis_password: SecretStr = SecretStr("")
    redis_db: int = Field(default=0, ge=0, le=15)
    redis_timeout: float = Field(default=2.0, gt=0)
    # The stream the jobs wait in; its consumer group has the same name.
    job_queue: str = Field(default="jobs", min_length=1)
    # A job's attempts in all, and the pause after the first failed one (doubled after each).
    job_attempts: int = Field(default=3, ge=1, le=20)
    job_retry_backoff_seconds: float = Field(default=1.0, ge=0, le=60)
    # The most an attempt may run before it fails as timed out (and is retried).
    job_timeout_seconds: float = Field(default=60.0, gt=0)
    # How long a job's state and result are kept once it is queued.
    job_result_ttl_seconds: int = Field(default=86400, ge=60)
    # The worker: the jobs it runs at once, its name in the consumer group (a restarted
    # worker takes back what its predecessor of the same name left running), and how long
    # a stop (SIGTERM) waits for running jobs before it hands them back.
    worker_concurrency: int = Field(default=10, ge=1, le=1000)
    worker_name: str = Field(default_factory=socket.gethostname, min_length=1)
    worker_shutdown_seconds: float = Field(default=20.0, ge=0)
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
{%- if cookiecutter.worker == "taskiq" %}

    def job_retry_pause_seconds(self, failed_attempt: int) -> float:
        """The pause after a failed attempt (from 1) before the next: doubled after each."""
        return self.job_retry_backoff_seconds * (1 << (failed_attempt - 1))

    @property
    def job_redelivery_seconds(self) -> float:
        """How long a job may stay unacknowledged before another worker takes it: longer
        than an attempt and its pause before the next can last, so a job still running is
        never taken twice."""
        longest_pause = self.job_retry_pause_seconds(max(self.job_attempts - 1, 1))
        return self.job_timeout_seconds + longest_pause + REDELIVERY_MARGIN_SECONDS
{%- endif %}
{%- if cookiecutter.include_observability == "yes" %}

    @field_validator("otel_exporter_otlp_endpoint", "otel_traces_sampler")
    @classmethod
    def _empty_means_unset(cls, value: str | None) -> str | None:
        return value or None
{%- endif %}
