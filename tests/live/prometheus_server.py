"""A real Prometheus (the version compose pins) scraping the processes of the live tests."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
import yaml
from conftest import PINNED_BUILD_HINT, require_tool

from harness.processes import ManagedProcess, closed_port, free_port, wait_until

_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration such as `15s`, `1m30s` or `500ms`."""
    parts = re.findall(r"(\d+)(ms|s|m|h)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"unsupported duration {text!r}"
    return sum(int(number) * _DURATION_UNITS[unit] for number, unit in parts)


def compose_bind_mounts(compose_file: Path, service: str) -> dict[PurePosixPath, Path]:
    """Container path -> host path of each bind mount of a compose service."""
    compose = yaml.safe_load(compose_file.read_text())
    mounts: dict[PurePosixPath, Path] = {}
    for volume in compose["services"][service].get("volumes", []):
        if isinstance(volume, dict):
            source, target = volume.get("source", ""), volume.get("target", "")
        else:
            source, target = [*volume.split(":"), ""][:2]
        if source.startswith("."):
            mounts[PurePosixPath(target)] = (compose_file.parent / source).resolve()
    return mounts


def local_config(
    rendered_path: Path,
    targets_by_job: dict[str, str],
    unreachable: str,
    mounts: dict[PurePosixPath, Path],
    alertmanager: str | None = None,
) -> dict[str, Any]:
    """The rendered prometheus.yml with only addresses and file paths made local.

    Every job is kept: those in `targets_by_job` point at the processes these tests run,
    every other job at `unreachable` (a port nothing listens on), so it scrapes as up=0.
    Alerts go to `alertmanager`, or to `unreachable` without one. Rule file paths are made
    absolute (relative ones against the rendered file's folder, container ones through
    compose's bind mounts), so the rendered alert rules are loaded and evaluated too.
    """
    config = yaml.safe_load(rendered_path.read_text())
    for job in config["scrape_configs"]:
        static_configs = job.get("static_configs")
        assert static_configs, f"job {job['job_name']!r} has no static_configs to point locally"
        local_target = targets_by_job.get(job["job_name"], unreachable)
        for static_config in static_configs:
            static_config["targets"] = [local_target for _ in static_config["targets"]]
    for alertmanagers in config["alerting"]["alertmanagers"]:
        for static_config in alertmanagers["static_configs"]:
            static_config["targets"] = [alertmanager or unreachable]

    def local_path(pattern: str) -> str:
        path = PurePosixPath(pattern)
        if not path.is_absolute():
            return str(rendered_path.parent / pattern)
        for target, source in mounts.items():
            if path.is_relative_to(target):
                return str(source / path.relative_to(target))
        raise AssertionError(f"rule file {pattern} is in no bind mount of the compose service")

    config["rule_files"] = [local_path(pattern) for pattern in config.get("rule_files", [])]
    return config


class PrometheusServer:
    def __init__(self, binary: str, config: dict[str, Any], port: int, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.config_path = workdir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.url = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(base_url=self.url, timeout=10)
        self.process = ManagedProcess(
            "prometheus",
            [
                binary,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--enable-feature=exemplar-storage",
            ],
            log_dir=workdir,
        )

    def scrape_interval(self, job_name: str) -> float:
        job = next(j for j in self.config["scrape_configs"] if j["job_name"] == job_name)
        interval = job.get("scrape_interval") or self.config.get("global", {}).get(
            "scrape_interval", "1m"
        )
        return parse_duration(interval)

    def wait_ready(self, timeout: float = 30) -> None:
        def ready() -> bool:
            self.process.assert_running()
            return self.http.get("/-/ready").status_code == 200

        wait_until(ready, timeout, "Prometheus to be ready")

    def stop(self) -> None:
        self.http.close()
        self.process.stop()

    def _api(self, path: str, **params: Any) -> Any:
        response = self.http.get(f"/api/v1/{path}", params=params)
        body = response.json()
        assert body.get("status") == "success", f"{path} {params}: {response.status_code} {body}"
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant vector result of `promql` (scalars come back as one unlabelled sample)."""
        data = self._api("query", query=promql)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def query_exemplars(self, promql: str, since: float) -> list[dict[str, Any]]:
        return list(self._api("query_exemplars", query=promql, start=since, end=time.time() + 1))

    def targets(self) -> list[dict[str, Any]]:
        return list(self._api("targets")["activeTargets"])

    def rule_groups(self) -> list[dict[str, Any]]:
        return list(self._api("rules")["groups"])

    def wait_for_scrape_after(self, job_name: str, moment: float) -> None:
        """Block until every target of `job_name` was scraped successfully after `moment`."""

        def scraped() -> bool:
            jobs = [t for t in self.targets() if t["labels"].get("job") == job_name]
            assert jobs, f"Prometheus has no target for job {job_name!r}"
            return all(
                t["health"] == "up" and rfc3339_seconds(t["lastScrape"]) > moment for t in jobs
            )

        wait_until(
            scraped,
            3 * self.scrape_interval(job_name) + 10,
            f"a successful scrape of job {job_name!r}",
            interval=0.25,
        )


def rfc3339_seconds(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


@contextlib.contextmanager
def running_prometheus(
    project: Path,
    targets_by_job: dict[str, str],
    workdir: Path,
    alertmanager: str | None = None,
    extra_rule_files: Sequence[Path] = (),
) -> Iterator[PrometheusServer]:
    """The pinned Prometheus with `project`'s rendered configuration made local
    (`local_config`): scraping `targets_by_job` and itself, every other job a port nothing
    listens on for as long as it runs; ready, and stopped when the block ends."""
    binary = require_tool("prometheus", PINNED_BUILD_HINT)
    port = free_port()
    with closed_port() as nothing_listens:
        config = local_config(
            project / "observability/prometheus/prometheus.yml",
            targets_by_job={**targets_by_job, "prometheus": f"127.0.0.1:{port}"},
            unreachable=f"127.0.0.1:{nothing_listens}",
            mounts=compose_bind_mounts(project / "compose.yml", "prometheus"),
            alertmanager=alertmanager,
        )
        config["rule_files"] += [str(path) for path in extra_rule_files]
        server = PrometheusServer(binary, config, port, workdir)
        try:
            server.wait_ready()
            yield server
        finally:
            server.stop()
