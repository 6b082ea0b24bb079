"""Packaging rules (issue #12 item 15): ranges in pyproject, exact versions in constraints.txt,
no private imports of typer's vendored click."""

from __future__ import annotations

import importlib.util
import re
import tomllib

from tests.conftest import REPO


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_pyproject_dependencies_use_ranges_not_exact_pins() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    pinned = [r for r in requirements if "==" in r]
    assert not pinned


def test_constraints_pin_every_dependency_exactly() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lines = [
        line.strip()
        for line in (REPO / "constraints.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert all("==" in line for line in lines)
    pinned = {_name(line) for line in lines}
    wanted = {_name(r) for r in [*project["dependencies"], *project["optional-dependencies"]["dev"]]}
    assert wanted <= pinned


def test_the_make_stamp_installs_with_the_constraints() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert "$(STAMP): pyproject.toml constraints.txt" in makefile
    assert "pip install --quiet -c constraints.txt -e '.[dev]'" in makefile


def test_no_module_imports_typers_private_click() -> None:
    offenders = [
        str(path.relative_to(REPO))
        for path in (REPO / "src").rglob("*.py")
        if re.search(r"typer\._click|from typer import _click", path.read_text())
    ]
    assert not offenders


def test_the_notifier_uses_the_websockets_package_not_its_own_rfc6455_stack() -> None:
    from attune.notifier.service import WS_IMPLEMENTATION

    assert importlib.util.find_spec("attune.notifier.ws_protocol") is None
    assert importlib.util.find_spec("attune.notifier.frames") is None
    assert WS_IMPLEMENTATION.startswith("websockets")
    assert importlib.util.find_spec("websockets") is not None
