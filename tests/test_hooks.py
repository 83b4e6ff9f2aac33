"""The hooks' logic, imported directly (they are valid Python before rendering),
and the prune list checked against the rendered trees of both variants."""

from __future__ import annotations

import importlib.util
import stat
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from conftest import COOKIECUTTER_JSON, TEMPLATE_DIR


def load_hook(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, TEMPLATE_DIR / "hooks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pre_gen = load_hook("pre_gen_project")
post_gen = load_hook("post_gen_project")

VALID = {
    "project_name": "My Service",
    "project_slug": "my-service",
    "description": "A service.",
    "author_name": "Ada",
    "author_email": "ada@example.com",
    "python_version": "3.12",
    "backend_port": "8000",
    "grafana_port": "3000",
    "database": "postgres",
    "worker": "none",
    "include_observability": "yes",
    "log_collector": "alloy",
    "kubernetes": "no",
}


def test_hooks_receive_the_answers_through_one_jinja_string_literal() -> None:
    for hook in (pre_gen, post_gen):
        assert hook.RENDERED_ANSWERS == "{{ cookiecutter | jsonify }}"


def test_the_defaults_of_cookiecutter_json_are_valid() -> None:
    defaults = {
        name: value[0] if isinstance(value, list) else value
        for name, value in COOKIECUTTER_JSON.items()
        if not name.startswith("_")
    }
    defaults["project_slug"] = "my-service"
    assert pre_gen.validate(defaults) == []


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("project_slug", "a" * 63),
        ("project_slug", "a1-b2-c3"),
        ("author_email", "first.last+tag@sub.example.co.uk"),
        ("backend_port", "1024"),
        ("backend_port", "65535"),
        ("backend_port", 8080),
        ("python_version", "3.11"),
        ("include_observability", "no"),
        ("database", "none"),
        ("worker", "taskiq"),
        ("log_collector", "promtail"),
        ("kubernetes", "yes"),
    ],
    ids=lambda value: str(value)[:20],
)
def test_boundary_values_are_accepted(variable: str, value: object) -> None:
    assert pre_gen.validate({**VALID, variable: value}) == []


INVALID = [
    ("project_name", "   ", "project_name"),
    ("project_slug", "", "project_name"),
    ("project_slug", "My-Service", "project_slug"),
    ("project_slug", "my_service", "project_slug"),
    ("project_slug", "1service", "project_slug"),
    ("project_slug", "-service", "project_slug"),
    ("project_slug", "service-", "project_slug"),
    ("project_slug", "my--service", "project_slug"),
    ("project_slug", "a" * 64, "project_slug"),
    ("description", "", "description"),
    ("author_name", " ", "author_name"),
    ("author_email", "nobody", "author_email"),
    ("author_email", "a@b", "author_email"),
    ("author_email", "a b@example.com", "author_email"),
    ("author_email", "a@@example.com", "author_email"),
    ("backend_port", "80", "backend_port"),
    ("backend_port", "1023", "backend_port"),
    ("backend_port", "65536", "backend_port"),
    ("backend_port", "http", "backend_port"),
    ("backend_port", "-8000", "backend_port"),
    ("backend_port", "8000.0", "backend_port"),
    ("backend_port", " 8000", "backend_port"),
    ("grafana_port", "", "grafana_port"),
    ("grafana_port", "8000", "grafana_port"),
    ("python_version", "2.7", "python_version"),
    ("include_observability", "True", "include_observability"),
    ("database", "mysql", "database"),
    ("worker", "celery", "worker"),
    ("log_collector", "fluentd", "log_collector"),
    ("kubernetes", "helm", "kubernetes"),
]


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    INVALID,
    ids=[f"{variable}={value[:12]!r}" for variable, value, _ in INVALID],
)
def test_each_rule_rejects_a_bad_answer_with_one_line_naming_it(
    variable: str, value: str, named: str
) -> None:
    problems = pre_gen.validate({**VALID, variable: value})
    assert len(problems) == 1, problems
    shown = value if named == variable else VALID[named]
    assert problems[0].startswith(f"{named}={shown!r} is not allowed: "), problems
    assert "\n" not in problems[0]


def test_the_workers_port_is_taken_only_with_the_worker() -> None:
    assert pre_gen.validate({**VALID, "backend_port": "8001"}) == []
    (line,) = pre_gen.validate({**VALID, "backend_port": "8001", "worker": "taskiq"})
    assert line.startswith("backend_port='8001' is not allowed: must differ from the worker's port")


def test_a_helm_release_name_bounds_the_slug_with_kubernetes() -> None:
    longest = {**VALID, "kubernetes": "yes", "project_slug": "a" * 53}
    assert pre_gen.validate(longest) == []
    (line,) = pre_gen.validate({**longest, "project_slug": "a" * 54})
    assert line.startswith("project_slug='aaaa") and "53 characters with kubernetes=yes" in line
    assert pre_gen.validate({**VALID, "kubernetes": "no", "project_slug": "a" * 63}) == []


def test_every_problem_is_reported_at_once() -> None:
    problems = pre_gen.validate({**VALID, "author_email": "x", "backend_port": "1"})
    assert [line.split("=")[0] for line in problems] == ["author_email", "backend_port"]


def test_pre_gen_main_prints_each_problem_to_stderr_and_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(pre_gen, "RENDERED_ANSWERS", '{"project_slug": "Bad"}')
    assert pre_gen.main() == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "ERROR: project_slug='Bad' is not allowed" in err


# The first value of each choice, as cookiecutter answers without input.
DEFAULT_ANSWERS = {
    option: values[0]
    for option, values in COOKIECUTTER_JSON.items()
    if isinstance(values, list) and not option.startswith("_")
}


def test_the_defaults_prune_only_the_worker_the_other_log_collector_and_kubernetes() -> None:
    assert post_gen.paths_to_prune({**VALID, **DEFAULT_ANSWERS}) == [
        *post_gen.KEPT_ONLY_WHEN[("worker", "taskiq")],
        *post_gen.KEPT_ONLY_WHEN[("log_collector", "promtail")],
        *post_gen.KEPT_ONLY_WHEN[("kubernetes", "yes")],
    ]


def test_observability_off_prunes_its_declared_paths() -> None:
    pruned = post_gen.paths_to_prune({**DEFAULT_ANSWERS, "include_observability": "no"})
    assert pruned[: len(post_gen.KEPT_ONLY_WHEN[("include_observability", "yes")])] == list(
        post_gen.KEPT_ONLY_WHEN[("include_observability", "yes")]
    )


def test_database_none_prunes_its_declared_paths() -> None:
    pruned = post_gen.paths_to_prune({**DEFAULT_ANSWERS, "database": "none"})
    assert set(post_gen.KEPT_ONLY_WHEN[("database", "postgres")]) <= set(pruned)


def test_each_log_collector_prunes_the_other() -> None:
    for chosen, other in (("promtail", "alloy"), ("alloy", "promtail")):
        answers = {
            **DEFAULT_ANSWERS,
            "log_collector": chosen,
            "kubernetes": "yes",
            "worker": "taskiq",
        }
        assert post_gen.paths_to_prune(answers) == list(
            post_gen.KEPT_ONLY_WHEN[("log_collector", other)]
        )


# The defaults switch every feature on but Kubernetes and background jobs, which a project
# chooses when it needs them.
FEATURES_OFF_BY_DEFAULT = {"kubernetes", "worker"}


def test_every_pruning_answer_is_a_value_of_its_choice() -> None:
    for option, value in post_gen.KEPT_ONLY_WHEN:
        assert value in COOKIECUTTER_JSON[option], (option, value)
    for option, on in post_gen.FEATURES.items():
        (off,) = set(COOKIECUTTER_JSON[option]) - {on}
        assert off in ("no", "none"), (option, off)
        default = off if option in FEATURES_OFF_BY_DEFAULT else on
        assert COOKIECUTTER_JSON[option][0] == default, option
        assert (option, on) in post_gen.KEPT_ONLY_WHEN


def test_prune_removes_folders_and_files_and_skips_missing_ones(tmp_path: Path) -> None:
    (tmp_path / "gone" / "deep").mkdir(parents=True)
    (tmp_path / "gone" / "deep" / "x.py").write_text("")
    (tmp_path / "file.py").write_text("")
    (tmp_path / "kept.py").write_text("")
    table = {("include_observability", "yes"): ("gone", "file.py", "never-rendered.py")}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(post_gen, "KEPT_ONLY_WHEN", table)
        removed = post_gen.prune(tmp_path, {"include_observability": "no"})
    assert removed == [tmp_path / "gone", tmp_path / "file.py"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.py"]


EXAMPLE = "LOG_LEVEL=INFO\nGRAFANA_ADMIN_USER=admin\nGRAFANA_ADMIN_PASSWORD=\nX=1\n"


def test_env_file_gets_a_fresh_grafana_password_when_the_stack_is_on() -> None:
    text = post_gen.env_file_text(EXAMPLE, {"include_observability": "yes"}, lambda: "s3cret")
    assert text == EXAMPLE.replace("GRAFANA_ADMIN_PASSWORD=\n", "GRAFANA_ADMIN_PASSWORD=s3cret\n")


def test_generated_passwords_are_long_and_differ() -> None:
    first, second = (
        post_gen.env_file_text(EXAMPLE, {"include_observability": "yes"}) for _ in range(2)
    )
    password = first.split("GRAFANA_ADMIN_PASSWORD=")[1].split("\n")[0]
    assert len(password) >= 24
    assert first != second


def test_env_file_gets_a_fresh_database_password_with_postgres() -> None:
    example = "POSTGRES_USER=app\nPOSTGRES_PASSWORD=\nGRAFANA_ADMIN_PASSWORD=\n"
    answers = {"database": "postgres", "include_observability": "no"}
    text = post_gen.env_file_text(example, answers, lambda: "pw")
    assert text == "POSTGRES_USER=app\nPOSTGRES_PASSWORD=pw\nGRAFANA_ADMIN_PASSWORD=\n"


def test_env_file_is_the_example_when_the_stack_is_off() -> None:
    assert post_gen.env_file_text(EXAMPLE, {"include_observability": "no"}) == EXAMPLE


def test_written_env_file_is_private(tmp_path: Path) -> None:
    (tmp_path / ".env.example").write_text(EXAMPLE)
    env_file = post_gen.write_env_file(tmp_path, {"include_observability": "yes"})
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert "GRAFANA_ADMIN_PASSWORD=\n" not in env_file.read_text()


@pytest.mark.parametrize("include_observability", ["yes", "no"])
def test_next_steps_name_the_folder_and_urls(include_observability: str) -> None:
    answers = {**VALID, "include_observability": include_observability, "grafana_port": "3300"}
    steps = post_gen.next_steps(answers)
    assert "cd my-service" in steps
    assert "docker compose up -d" in steps
    assert "http://localhost:8000/docs" in steps
    assert ("http://localhost:3300" in steps) is (include_observability == "yes")
    assert ("grafana" in steps.lower()) is (include_observability == "yes")
    assert "k8s" not in steps
    assert "make k8s-up" in post_gen.next_steps({**answers, "kubernetes": "yes"})


def relative_files(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


PRUNED_OPTION_VALUES = [
    (option, value)
    for option in dict.fromkeys(option for option, _ in post_gen.KEPT_ONLY_WHEN)
    for value in COOKIECUTTER_JSON[option]
]


@pytest.mark.parametrize(
    ("option", "value"), PRUNED_OPTION_VALUES, ids=[f"{o}={v}" for o, v in PRUNED_OPTION_VALUES]
)
def test_prune_list_matches_the_rendered_trees(
    render_once: Callable[..., Path], option: str, value: str
) -> None:
    """For each answer, its render against the render of each other value of its option, the
    other features on (each prunes files of the others too): exactly the paths listed under
    it are what only it has, and each listed path is rendered."""
    declared = post_gen.KEPT_ONLY_WHEN.get((option, value), ())
    base = {feature: on for feature, on in post_gen.FEATURES.items() if feature != option}
    chosen = render_once(**base, **{option: value})
    rendered = {listed for listed in declared if (chosen / listed).exists()}
    for other_value in (other for other in COOKIECUTTER_JSON[option] if other != value):
        other = render_once(**base, **{option: other_value})
        survivors = [listed for listed in declared if (other / listed).exists()]
        assert not survivors, f"{survivors} survived {option}={other_value}"
        only_here = relative_files(chosen) - relative_files(other)
        uncovered = sorted(
            path
            for path in only_here
            if not any(path == listed or path.startswith(f"{listed}/") for listed in declared)
        )
        assert not uncovered, (
            f"only with {option}={value}, missing from the prune list: {uncovered}"
        )
    assert set(declared) == rendered, f"listed but never rendered: {set(declared) - rendered}"


def test_every_chosen_module_has_one_source_per_value_of_its_option() -> None:
    for target, sources in post_gen.CHOSEN_FILES.items():
        (option,) = {option for option, _ in sources}
        assert sorted(value for _, value in sources) == sorted(COOKIECUTTER_JSON[option]), target
        assert len(set(sources.values())) == len(sources), target


def test_choose_files_keeps_the_answers_module_under_its_name(tmp_path: Path) -> None:
    table = {
        "app/items.py": {("database", "postgres"): "app/a.py", ("database", "none"): "app/b.py"}
    }
    (tmp_path / "app").mkdir()
    (tmp_path / "app/a.py").write_text("postgres")
    (tmp_path / "app/b.py").write_text("in memory")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(post_gen, "CHOSEN_FILES", table)
        kept = post_gen.choose_files(tmp_path, {"database": "none"})
    assert kept == [tmp_path / "app/items.py"]
    assert relative_files(tmp_path) == {"app/items.py"}
    assert (tmp_path / "app/items.py").read_text() == "in memory"


def test_choose_files_leaves_alone_a_module_pruned_with_its_feature(tmp_path: Path) -> None:
    table = {
        "jobs/items.py": {("database", "postgres"): "jobs/a.py", ("database", "none"): "jobs/b.py"}
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(post_gen, "CHOSEN_FILES", table)
        assert post_gen.choose_files(tmp_path, {"database": "none"}) == []


@pytest.mark.parametrize("database", COOKIECUTTER_JSON["database"])
def test_each_database_answer_renders_its_items_module_under_one_name(
    render_once: Callable[..., Path], database: str
) -> None:
    project = render_once(database=database, worker="taskiq")
    for target, sources in post_gen.CHOSEN_FILES.items():
        assert (project / target).is_file(), target
        assert not any((project / source).exists() for source in sources.values())
    items = (project / "backend/app/api/v1/items.py").read_text()
    assert ("stored in PostgreSQL" in items) is (database == "postgres")
    assert ("kept in process memory" in items) is (database == "none")
