"""pyproject.toml declares every package src/dwbase imports, and caps the framework stack.

A package that is only there because another one pulls it in (starlette under fastapi,
anyio under starlette) can change or vanish with that package's next release; so every
third-party top-level import of the package must be a dependency or an extra of its own.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions, version
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "dwbase"

FRAMEWORK = ("fastapi", "starlette", "pydantic", "uvicorn", "anyio")
"""The node's framework stack: a new major version of any of them may change its API."""


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _requirement_name(spec: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    assert match, spec
    return _canonical(match.group(1))


def _project() -> dict[str, Any]:
    project: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project


def _declared() -> dict[str, str]:
    """Canonical distribution name -> its requirement, over dependencies and every extra."""
    project = _project()
    specs: list[str] = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        specs += extra
    return {_requirement_name(s): s for s in specs}


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level module name -> the files of src/dwbase that import it."""
    found: dict[str, set[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            for name in names:
                top = name.partition(".")[0]
                if top != "dwbase" and top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_of_the_package_is_declared() -> None:
    imports = _third_party_imports()
    assert {"fastapi", "starlette", "pydantic", "numpy"} <= set(imports)  # the scan works
    declared = _declared()
    # A module may ship in a distribution of another name (nats in nats-py).
    dists = packages_distributions()

    def is_declared(module: str) -> bool:
        names = [module, *dists.get(module, [])]
        return any(_canonical(n) in declared for n in names)

    missing = {m: sorted(files) for m, files in imports.items() if not is_declared(m)}
    assert not missing, f"imported by src/dwbase but not declared in pyproject.toml: {missing}"


def test_the_framework_stack_is_declared_with_a_major_version_cap() -> None:
    project = _project()
    dependencies = {_requirement_name(s): s for s in project["dependencies"]}
    for name in FRAMEWORK:
        assert name in dependencies, f"{name} is not a dependency"
        specifier = Requirement(dependencies[name]).specifier
        assert any(s.operator == "<" for s in specifier), f"{name}{specifier} has no upper bound"
        assert any(s.operator == ">=" for s in specifier), f"{name}{specifier} has no lower bound"
        # the caps admit what the suite runs on
        assert specifier.contains(version(name)), f"installed {name} {version(name)} {specifier}"
