"""Write the rendered backend's uv lockfiles, one per dependency set (`make lock`).

Each set is a combination of the answers in the post-generation hook's LOCK_OPTIONS. The
template is rendered for it without hooks (they place a lockfile, which is what this writes),
`uv lock` runs in the rendered backend starting from the lockfile kept so far, so only what
the pyproject changed moves (`--upgrade` takes the newest of everything), and the result is
copied back into the template.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from cookiecutter.main import cookiecutter

TEMPLATE_DIR = Path(__file__).resolve().parent.parent
UV = Path(sys.executable).parent / "uv"


def post_gen_hook() -> ModuleType:
    path = TEMPLATE_DIR / "hooks" / "post_gen_project.py"
    spec = importlib.util.spec_from_file_location("post_gen_project", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dependency_sets(lock_options: tuple[str, ...]) -> list[dict[str, str]]:
    """Every combination of the values of `lock_options`, from cookiecutter.json."""
    choices = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text())
    values = [choices[option] for option in lock_options]
    return [
        dict(zip(lock_options, combination, strict=True))
        for combination in itertools.product(*values)
    ]


def lock(answers: dict[str, str], kept: Path, upgrade: bool) -> None:
    with tempfile.TemporaryDirectory() as output_dir:
        project = Path(
            cookiecutter(
                str(TEMPLATE_DIR),
                no_input=True,
                extra_context=answers,
                output_dir=output_dir,
                accept_hooks=False,
            )
        )
        backend = project / "backend"
        if kept.exists():
            shutil.copyfile(kept, backend / "uv.lock")
        command = [str(UV), "lock", "--quiet", *(["--upgrade"] if upgrade else [])]
        subprocess.run(command, cwd=backend, check=True)
        shutil.copyfile(backend / "uv.lock", kept)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upgrade", action="store_true", help="take the newest of everything")
    upgrade = parser.parse_args().upgrade
    hook = post_gen_hook()
    locks_dir = TEMPLATE_DIR / "{{cookiecutter.project_slug}}" / hook.LOCKFILES_DIR
    locks_dir.mkdir(exist_ok=True)
    for answers in dependency_sets(hook.LOCK_OPTIONS):
        kept = locks_dir / hook.lockfile_name(answers)
        lock(answers, kept, upgrade)
        print(f"{kept.relative_to(TEMPLATE_DIR)}: {answers}")


if __name__ == "__main__":
    main()
