"""The distribution ships every subpackage of the source tree."""

from __future__ import annotations

import tomllib

from tests.conftest import REPO


def _declared_packages() -> set[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    return set(config["tool"]["setuptools"]["packages"])


def _source_packages() -> set[str]:
    roots = {"qopt": REPO / "qopt", "qopt.integrations": REPO / "integrations"}
    found = set()
    for prefix, root in roots.items():
        for init in root.rglob("__init__.py"):
            parts = init.parent.relative_to(root).parts
            found.add(".".join((prefix, *parts)) if parts else prefix)
    return found


def test_every_source_package_is_declared_for_the_wheel() -> None:
    missing = sorted(_source_packages() - _declared_packages())
    assert not missing, f"add these to [tool.setuptools] packages in pyproject.toml: {missing}"


def test_no_declared_package_is_missing_from_the_tree() -> None:
    stale = sorted(_declared_packages() - _source_packages())
    assert not stale, f"remove these from [tool.setuptools] packages in pyproject.toml: {stale}"


def test_the_distribution_name_is_not_the_unrelated_qopt_on_the_package_index() -> None:
    # 'qopt' on the package index is another project (qubit simulation and optimal control).
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert config["project"]["name"] == "qopt-loop"
    assert all("qopt[" not in extra for extra in config["project"]["optional-dependencies"]["all"])
