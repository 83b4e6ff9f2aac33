"""Updates that arrive by themselves: each Dependabot configuration watches every kind of
pin in its repository, where those pins really are, and ignores only what is held back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from conftest import TEMPLATE_DIR
from test_versions import compose_images

# What each ecosystem reads in the folder Dependabot is pointed at.
MANIFESTS = {
    "uv": ("uv.lock",),
    "docker": ("Dockerfile",),
    "docker-compose": ("compose.yml",),
    "github-actions": (".github/workflows/ci.yml",),
    "npm": ("package-lock.json",),
    "pip": ("reference-requirements.txt",),
}


def updates(repository: Path) -> dict[str, dict[str, Any]]:
    config = yaml.safe_load((repository / ".github/dependabot.yml").read_text())
    entries = config["updates"]
    by_ecosystem = {entry["package-ecosystem"]: entry for entry in entries}
    assert len(by_ecosystem) == len(entries), "an ecosystem is listed twice"
    return by_ecosystem


def assert_each_points_at_its_manifest(repository: Path, entries: dict[str, Any]) -> None:
    for ecosystem, entry in entries.items():
        folder = repository / entry["directory"].lstrip("/")
        for manifest in MANIFESTS[ecosystem]:
            assert (folder / manifest).is_file(), f"{ecosystem}: no {manifest} in {folder}"
        assert entry["schedule"]["interval"] == "weekly"
        assert entry.get("groups"), f"{ecosystem}: one pull request per package, not grouped"


def test_rendered_project_watches_its_packages_images_and_actions(project: Path) -> None:
    entries = updates(project)
    pulls_images = bool(list(compose_images(project)))
    expected = {"uv", "docker", "github-actions"} | ({"docker-compose"} if pulls_images else set())
    assert set(entries) == expected
    assert_each_points_at_its_manifest(project, entries)


def test_rendered_project_ignores_only_the_held_back_images_and_python_minors(
    variant: Path,
) -> None:
    project = variant
    entries = updates(project)
    python_rule = entries["docker"]["ignore"]
    assert [rule["dependency-name"] for rule in python_rule] == ["python"]
    assert "version-update:semver-patch" not in python_rule[0]["update-types"]
    if not (project / "observability").is_dir():
        assert "ignore" not in entries.get("docker-compose", {})
        return
    ignored = {rule["dependency-name"]: rule for rule in entries["docker-compose"]["ignore"]}
    # Promtail too, when it runs: its last image is out.
    end_of_life = {"grafana/promtail"} & {image.split(":")[0] for image in compose_images(project)}
    assert set(ignored) == {"prom/prometheus", "grafana/tempo"} | end_of_life
    assert set(ignored) <= {image.split(":")[0] for image in compose_images(project)}
    for held_on_a_line in ("prom/prometheus", "grafana/tempo"):
        assert ignored[held_on_a_line]["update-types"] == [
            "version-update:semver-major",
            "version-update:semver-minor",
        ]


def test_the_template_repository_watches_its_own_tools_and_workflow() -> None:
    entries = updates(TEMPLATE_DIR)
    assert set(entries) == {"uv", "npm", "pip", "github-actions"}
    assert_each_points_at_its_manifest(TEMPLATE_DIR, entries)
