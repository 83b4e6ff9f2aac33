"""The repository's own layers: harness/ serves tests/ and bench/ and imports neither, and
bench/ never imports tests/, so the benchmark and the tests share code without a loop."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import TEMPLATE_DIR


def imported_top_levels(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def modules_of(folder: Path) -> set[str]:
    """The names a file of `folder` is imported by: its modules and packages."""
    return {
        path.stem if path.is_file() else path.name
        for path in folder.iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").exists()
    }


def imports_into(source: str, target: str) -> dict[str, set[str]]:
    targets = modules_of(TEMPLATE_DIR / target) | {target}
    return {
        str(path.relative_to(TEMPLATE_DIR)): found
        for path in sorted((TEMPLATE_DIR / source).rglob("*.py"))
        if (found := imported_top_levels(path) & targets)
    }


def test_bench_never_imports_the_tests() -> None:
    assert imports_into("bench", "tests") == {}
    assert '"tests"' not in (TEMPLATE_DIR / "bench/bench.py").read_text(encoding="utf-8")


def test_the_harness_imports_neither_the_tests_nor_the_benchmark() -> None:
    assert imports_into("harness", "tests") == {}
    assert imports_into("harness", "bench") == {}


def test_the_check_sees_an_import_of_a_test_module(tmp_path: Path) -> None:
    module = tmp_path / "uses_tests.py"
    module.write_text("from conftest import render\nimport live.backend\n", encoding="utf-8")
    assert imported_top_levels(module) >= {"conftest", "live"}
    assert {"conftest", "live", "stack_checks"} <= modules_of(TEMPLATE_DIR / "tests")
