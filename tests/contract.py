"""Names docs/contract.md lists, read from its sections for the tests that check them."""

from __future__ import annotations

import re

from conftest import TEMPLATE_DIR

CONTRACT = (TEMPLATE_DIR / "docs" / "contract.md").read_text(encoding="utf-8")


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
