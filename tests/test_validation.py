"""Every validation rule, through a real cookiecutter run: it fails, the message names
the variable, and no output folder is left behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TEMPLATE_DIR, render
from cookiecutter.exceptions import FailedHookException

# (variable, bad value, variable the message must name): one per rule of docs/contract.md.
BAD_ANSWERS = [
    ("project_name", "", "project_name"),
    ("project_name", "!!!", "project_name"),
    ("project_slug", "My_Service", "project_slug"),
    ("project_slug", "9lives", "project_slug"),
    ("project_slug", "trailing-", "project_slug"),
    ("project_slug", "a" * 64, "project_slug"),
    ("description", " ", "description"),
    ("author_name", "", "author_name"),
    ("author_email", "not-an-email", "author_email"),
    ("backend_port", "80", "backend_port"),
    ("backend_port", "70000", "backend_port"),
    ("backend_port", "eighty", "backend_port"),
    ("grafana_port", "1023", "grafana_port"),
    ("grafana_port", "8000", "grafana_port"),
]


def leftovers(output_dir: Path) -> list[Path]:
    return sorted(output_dir.iterdir()) if output_dir.exists() else []


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    BAD_ANSWERS,
    ids=[f"{variable}={value[:10]!r}" for variable, value, _ in BAD_ANSWERS],
)
def test_bad_answer_fails_naming_the_variable_and_leaves_nothing(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], variable: str, value: str, named: str
) -> None:
    # An output folder that does not exist yet, as with `cookiecutter -o new-folder`: with
    # an empty slug the project folder is the output folder itself, so it must go too.
    output_dir = tmp_path / "out"
    with pytest.raises(FailedHookException):
        render(output_dir, **{variable: value})
    err = capfd.readouterr().err
    assert f"ERROR: {named}=" in err
    assert leftovers(output_dir) == []


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("python_version", "2.7"),
        ("include_observability", "maybe"),
        ("database", "sqlite"),
        ("log_collector", "fluentd"),
        ("kubernetes", "maybe"),
    ],
    ids=[
        "python_version='2.7'",
        "include_observability='maybe'",
        "database='sqlite'",
        "log_collector='fluentd'",
        "kubernetes='maybe'",
    ],
)
def test_a_value_outside_a_choice_is_refused_before_rendering(
    tmp_path: Path, variable: str, value: str
) -> None:
    with pytest.raises(ValueError, match=variable):
        render(tmp_path, **{variable: value})
    assert leftovers(tmp_path) == []


def test_a_name_without_letters_or_digits_is_named_even_into_an_existing_folder(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # cookiecutter.json falls back to an invalid slug rather than an empty folder name, so
    # our hook (not cookiecutter's "folder exists") answers, naming the variable.
    with pytest.raises(FailedHookException):
        render(tmp_path, project_name="...")
    assert "ERROR: project_name='...' is not allowed: it yields an empty project_slug" in (
        capfd.readouterr().err
    )
    assert leftovers(tmp_path) == []


def test_command_line_exits_non_zero_with_one_line_per_problem(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cookiecutter",
            "--no-input",
            "--output-dir",
            str(tmp_path),
            str(TEMPLATE_DIR),
            "project_slug=Bad Slug",
            "author_email=nobody",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR: ")]
    assert errors[:2] == [
        "ERROR: project_slug='Bad Slug' is not allowed: lowercase letters, digits and single "
        "dashes, starting with a letter (pattern ^[a-z][a-z0-9]*(-[a-z0-9]+)*$), "
        "at most 63 characters",
        "ERROR: author_email='nobody' is not allowed: an address shaped like local@domain.tld",
    ]
    assert leftovers(tmp_path) == []
