"""The house has no back doors (issue 18): the layers of the README's "Layout and layers", as import-linter
contracts in pyproject.toml, hold over the package's real imports; every module of the package sits in a layer;
and no view renders a document itself."""

from __future__ import annotations

import ast
import pkgutil
import tomllib
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

import duesflow

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(duesflow.__file__).parent
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def test_the_package_under_test_is_this_checkout():
    # The editable install may point at another checkout; the contracts must be checked against this one.
    assert PACKAGE == ROOT / "duesflow"


def test_the_import_contracts_hold(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    exit_code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    assert exit_code == 0, capsys.readouterr().out


def layered_modules() -> set[str]:
    layers = next(contract for contract in CONFIG["contracts"] if contract["type"] == "layers")["layers"]
    return {name.strip() for layer in layers for name in layer.split(":")}


def test_every_module_of_the_package_sits_in_a_layer():
    # A module outside every layer escapes the contract: a new one must be placed (or belongs outside duesflow,
    # like the benchmark data generator in bench/).
    top_level = {f"duesflow.{module.name}" for module in pkgutil.iter_modules([str(PACKAGE)])
                 if module.name != "migrations"}
    assert top_level - layered_modules() == set()


VIEW_PACKAGES = ("api", "web")


def view_modules() -> list[Path]:
    return sorted(path for package in VIEW_PACKAGES for path in (PACKAGE / package).glob("*.py"))


@pytest.mark.parametrize("path", view_modules(), ids=lambda path: f"{path.parent.name}/{path.name}")
def test_views_send_documents_but_never_render_them(path):
    renderers = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").lstrip(".").startswith("receipts"):
            renderers += [alias.name for alias in node.names if alias.name.startswith("render_")]
    assert renderers == [], f"{path.name} renders {renderers}: a service makes the document, the view sends it"
