"""The rendered backend's layers point one way, and its parts are passed, not parked.

The core (everything under backend/app but the factories and app/observability/) never imports
the observability package: observability hooks into the core, through the request
pipeline's observers, from the factory. Nothing is kept on `app.state`.
"""

from __future__ import annotations

import ast
from pathlib import Path

# The application's factory, and the worker's (worker=taskiq).
FACTORIES = {Path("main.py"), Path("worker.py")}
OBSERVABILITY = Path("observability")


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
            modules |= {f"{node.module}.{alias.name}" for alias in node.names}
    return modules


def core_modules(project: Path) -> list[Path]:
    app_dir = project / "backend/app"
    return [
        path
        for path in sorted(app_dir.rglob("*.py"))
        if path.relative_to(app_dir) not in FACTORIES
        and OBSERVABILITY not in path.relative_to(app_dir).parents
    ]


def test_the_core_never_imports_observability(combination: Path) -> None:
    offenders = {
        str(path.relative_to(combination)): sorted(
            module
            for module in imported_modules(path)
            if module == "app.observability" or module.startswith("app.observability.")
        )
        for path in core_modules(combination)
    }
    assert {path: modules for path, modules in offenders.items() if modules} == {}
    assert len(offenders) >= 10, "the core modules were not found"


def test_the_core_check_sees_an_import_of_observability(tmp_path: Path) -> None:
    module = tmp_path / "backend/app/logging.py"
    module.parent.mkdir(parents=True)
    module.write_text("from app.observability.tracing import ServerSpans\n", encoding="utf-8")
    assert "app.observability.tracing" in imported_modules(module)
    assert core_modules(tmp_path) == [module]


def test_nothing_is_parked_on_app_state(combination: Path) -> None:
    for path in sorted((combination / "backend").rglob("*.py")):
        if ".venv" in path.parts:
            continue
        assert "app.state" not in path.read_text(encoding="utf-8"), path
