"""The safemigrate distribution: core dependencies only, optional packages imported where used."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import pytest

import safemigrate

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(safemigrate.__file__).parent
CORE = {"django", "zstandard", "cryptography", "orjson"}
# Optional packages, and the only modules that may import them when they are imported themselves.
OPTIONAL_HOMES = {
    "django_q": {"tasks.py", "schedules.py"},
    "croniter": {"schedules.py"},
    "psycopg": {"vendors/postgresql.py", "vendors/pgadmin.py"},
    "MySQLdb": {"vendors/mysql.py"},
}


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def requirement_name(requirement: str) -> str:
    return re.split(r"[\[<>=~!; ]", requirement, maxsplit=1)[0].lower()


def top_level_imports(path: Path) -> set[str]:
    """Root names of the modules ``path`` imports when it is imported (not inside functions)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_distribution__core_dependencies_only():
    project = pyproject()["project"]
    assert project["name"] == "safemigrate"
    assert {requirement_name(r) for r in project["dependencies"]} == CORE
    assert set(project["optional-dependencies"]) >= {"postgresql", "mysql", "tasks", "s3"}
    assert "Framework :: Django :: 6.1" in project["classifiers"]
    assert (PACKAGE / "py.typed").is_file()


def test_distribution__version_is_in_the_changelog():
    assert pyproject()["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "safemigrate.__version__"}
    assert f"## {safemigrate.__version__}" in (ROOT / "CHANGELOG.md").read_text()


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports__optional_packages_only_in_their_homes(path):
    """Every installation imports the app without django-q2, croniter or a database driver."""
    relative = str(path.relative_to(PACKAGE))
    third_party = top_level_imports(path) - set(sys.stdlib_module_names) - {"safemigrate", "__future__"}
    for name in third_party - CORE:
        assert relative in OPTIONAL_HOMES.get(name, set()), f"{relative} imports {name} at module level"
