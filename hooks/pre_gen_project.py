"""Reject answers that would render a broken project, before anything is written.

Cookiecutter renders this file with Jinja before running it, so the answers arrive
as one JSON string literal; the module stays valid, importable Python before
rendering and the checks are plain functions over a dict (see tests/test_hooks.py).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping

RENDERED_ANSWERS = r"""{{ cookiecutter | jsonify }}"""

SLUG_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
SLUG_MAX_LENGTH = 63
# With kubernetes=yes the slug is the Helm release's name, which Helm caps at 53 characters.
RELEASE_NAME_MAX_LENGTH = 53
# cookiecutter.json derives the slug as `project_name | slugify or '_'`: a name with no letter
# or digit would otherwise give an empty folder name, which cookiecutter rejects before any hook.
EMPTY_NAME_SLUG = "_"
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
PORT_RANGE = range(1024, 65536)
PORT_VARIABLES = ("backend_port", "grafana_port")
# The worker's own HTTP port (probes and metrics), fixed in its compose service and Makefile.
WORKER_PORT = 8001
REQUIRED_TEXT = ("project_name", "description", "author_name")
CHOICES = {
    "python_version": ("3.11", "3.12", "3.13", "3.14"),
    "database": ("postgres", "none"),
    "worker": ("none", "taskiq"),
    "include_observability": ("yes", "no"),
    "log_collector": ("alloy", "promtail"),
    "kubernetes": ("no", "yes"),
}


def problem(variable: str, value: object, allowed: str) -> str:
    """One line naming the variable, the rejected value and what is allowed."""
    return f"{variable}={str(value)!r} is not allowed: {allowed}"


def check_required_text(answers: Mapping[str, object]) -> list[str]:
    return [
        problem(name, answers.get(name, ""), "must not be empty")
        for name in REQUIRED_TEXT
        if not str(answers.get(name, "")).strip()
    ]


def check_slug(answers: Mapping[str, object]) -> list[str]:
    slug = str(answers.get("project_slug", ""))
    if slug in ("", EMPTY_NAME_SLUG):
        return [
            problem(
                "project_name",
                answers.get("project_name", ""),
                "it yields an empty project_slug; use a name with at least one letter "
                "or digit, or set project_slug explicitly",
            )
        ]
    if len(slug) > SLUG_MAX_LENGTH or not SLUG_PATTERN.fullmatch(slug):
        return [
            problem(
                "project_slug",
                slug,
                f"lowercase letters, digits and single dashes, starting with a letter "
                f"(pattern {SLUG_PATTERN.pattern}), at most {SLUG_MAX_LENGTH} characters",
            )
        ]
    return []


def check_email(answers: Mapping[str, object]) -> list[str]:
    email = str(answers.get("author_email", ""))
    if EMAIL_PATTERN.fullmatch(email):
        return []
    return [problem("author_email", email, "an address shaped like local@domain.tld")]


def port_number(value: object) -> int | None:
    """The port as an integer, or None unless it is written as plain decimal digits."""
    text = str(value)
    if not text.isascii() or not text.isdigit():
        return None
    return int(text)


def check_ports(answers: Mapping[str, object]) -> list[str]:
    problems = []
    ports: dict[str, int] = {}
    for name in PORT_VARIABLES:
        port = port_number(answers.get(name, ""))
        if port is None or port not in PORT_RANGE:
            problems.append(problem(name, answers.get(name, ""), "an integer from 1024 to 65535"))
        else:
            ports[name] = port
    if len(ports) == len(PORT_VARIABLES) and len(set(ports.values())) < len(ports):
        problems.append(
            problem(
                "grafana_port",
                ports["grafana_port"],
                f"must differ from backend_port ({ports['backend_port']})",
            )
        )
    if answers.get("worker") == "taskiq":
        problems.extend(
            problem(
                name, port, f"must differ from the worker's port ({WORKER_PORT}) with worker=taskiq"
            )
            for name, port in ports.items()
            if port == WORKER_PORT
        )
    return problems


def check_choices(answers: Mapping[str, object]) -> list[str]:
    return [
        problem(name, answers.get(name, ""), f"one of {', '.join(allowed)}")
        for name, allowed in CHOICES.items()
        if answers.get(name) not in allowed
    ]


def check_release_name(answers: Mapping[str, object]) -> list[str]:
    slug = str(answers.get("project_slug", ""))
    if answers.get("kubernetes") != "yes" or len(slug) <= RELEASE_NAME_MAX_LENGTH:
        return []
    return [
        problem(
            "project_slug",
            slug,
            f"at most {RELEASE_NAME_MAX_LENGTH} characters with kubernetes=yes "
            "(it names the Helm release, and Helm allows no longer name)",
        )
    ]


def validate(answers: Mapping[str, object]) -> list[str]:
    """Every problem with the answers, one line each; empty when they are all valid."""
    return [
        *check_required_text(answers),
        *check_slug(answers),
        *check_release_name(answers),
        *check_email(answers),
        *check_ports(answers),
        *check_choices(answers),
    ]


def main() -> int:
    problems = validate(json.loads(RENDERED_ANSWERS))
    for line in problems:
        print(f"ERROR: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
