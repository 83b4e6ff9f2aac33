"""Names docs/contract.md lists, read from its sections for the tests that check them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from conftest import TEMPLATE_DIR

CONTRACT = (TEMPLATE_DIR / "docs" / "contract.md").read_text(encoding="utf-8")
# What docs/contract.md calls `process_*` and `python_*`: prometheus-client's default
# Process, Platform and GC collectors.
DEFAULT_COLLECTOR_METRICS = {
    "process_cpu_seconds_total", "process_virtual_memory_bytes", "process_resident_memory_bytes",
    "process_start_time_seconds", "process_open_fds", "process_max_fds",
    "python_info", "python_gc_objects_collected_total", "python_gc_objects_uncollectable_total",
    "python_gc_collections_total",
}  # fmt: skip


def contract_section(title: str) -> str:
    """The body of the section whose heading starts with `title`."""
    match = re.search(rf"^## {re.escape(title)}[^\n]*\n(.*?)(?=^## |\Z)", CONTRACT, re.M | re.S)
    assert match, f"docs/contract.md has no section {title!r}"
    return match.group(1)


def loki_labels() -> set[str]:
    line = re.search(r"^- Labels: (.+)$", contract_section("Loki"), re.M)
    assert line, "docs/contract.md no longer lists the Loki labels"
    return set(re.findall(r"`(\w+)`", line.group(1).split(".")[0]))


def structured_metadata_keys() -> set[str]:
    line = re.search(r"Never labels: (.+?) \(structured metadata\)", contract_section("Loki"))
    assert line, "docs/contract.md no longer lists the structured metadata keys"
    return set(re.findall(r"`(\w+)`", line.group(1)))


@dataclass(frozen=True)
class ContractMetrics:
    labels: dict[str, set[str]]  # series name -> its labels
    prefixes: tuple[str, ...]  # `process_*`-style families: DEFAULT_COLLECTOR_METRICS

    def known(self, name: str) -> bool:
        if name.startswith(self.prefixes):
            return name in DEFAULT_COLLECTOR_METRICS
        return name in self.labels


def contract_metrics() -> ContractMetrics:
    """Series names and labels from the Metrics table and Tempo's metrics generator."""
    labels: dict[str, set[str]] = {}
    prefixes: list[str] = []
    for row in re.findall(r"^\|(.+)\|$", contract_section("Metrics"), re.M):
        cells = [cell.strip() for cell in row.split("|")]
        names = re.findall(r"`([^`]+)`", cells[0])
        if len(cells) < 3 or not names:
            continue
        kind = cells[1]
        own_labels = set(re.findall(r"`(\w+)`", cells[2].split(";")[0]))
        for name in names:
            if name.endswith("_*"):
                prefixes.append(name[:-1])
            elif kind.startswith("histogram"):
                labels[f"{name}_bucket"] = own_labels | {"le"}
                labels[f"{name}_sum"] = labels[f"{name}_count"] = own_labels
            else:
                labels[name] = own_labels
    # The SLO rules' recorded series: `le` only on the latency threshold.
    for name in re.findall(r"`(job:\w+:\w+)`", contract_section("Prometheus")):
        labels[name] = {"job", "slo"} | ({"le"} if name.endswith(":seconds") else set())
    generator = re.search(
        r"metrics generator writes through remote write:\n(.+?)(?=^- |\Z)",
        contract_section("Prometheus"),
        re.M | re.S,
    )
    assert generator, "docs/contract.md no longer names Tempo's generated metrics"
    for item in re.findall(r"^  - (.+?)(?=^  - |\Z)", generator.group(1), re.M | re.S):
        own_labels = set(re.findall(r"\(labels ([^)]+)\)", item)[0].split("`")[1::2])
        for name in re.findall(r"`(traces_\w+)`", item):
            labels[name] = own_labels | ({"le"} if name.endswith("_bucket") else set())
    return ContractMetrics(labels, tuple(prefixes))
