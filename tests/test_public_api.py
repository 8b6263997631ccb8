"""Every name README, the documentation and the examples use resolves, as do the public names, the console script
and the pytest plugin: moving a module must not break a user's import."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import re
from pathlib import Path

import pytest

import cdp_logging

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "examples").glob("*.py"))]
TEXT = "\n".join(path.read_text() for path in DOCUMENTS)

#: ``from cdp_logging.x import a, b`` (one line or parenthesised), ``import cdp_logging.x``, and
#: dotted references such as ``cdp_logging.events.identify`` in prose and code.
FROM_IMPORTS = re.findall(r"from (cdp_logging[\w.]*) import \(?([\w, \n]+?)\)?(?:\n|$)", TEXT)
MODULE_IMPORTS = re.findall(r"^\s*import (cdp_logging[\w.]*)", TEXT, re.M)
DOTTED = set(re.findall(r"\bcdp_logging(?:\.\w+)+", TEXT))


def resolve(dotted: str) -> object:
    """The object at ``dotted``: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        try:
            value: object = importlib.import_module(".".join(parts[:end]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[end:]:
            value = getattr(value, attribute)
        return value
    raise AssertionError(f"nothing importable in {dotted}")


def test_the_documents_use_names_of_the_package() -> None:
    assert FROM_IMPORTS and MODULE_IMPORTS and len(DOTTED) > 10


@pytest.mark.parametrize(("module", "names"), FROM_IMPORTS)
def test_every_from_import_in_readme_and_examples_works(module: str, names: str) -> None:
    imported = importlib.import_module(module)
    for name in (n.strip().split(" as ")[0] for n in names.split(",") if n.strip()):
        assert hasattr(imported, name) or importlib.util.find_spec(f"{module}.{name}"), f"{module}.{name}"
        resolve(f"{module}.{name}")


@pytest.mark.parametrize("module", sorted(set(MODULE_IMPORTS)))
def test_every_module_import_works(module: str) -> None:
    importlib.import_module(module)


@pytest.mark.parametrize("dotted", sorted(DOTTED))
def test_every_dotted_name_resolves(dotted: str) -> None:
    resolve(dotted)


@pytest.mark.parametrize("name", cdp_logging.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(cdp_logging, name) is not None


def test_the_entry_points_resolve() -> None:
    points = importlib.metadata.entry_points()
    [script] = [p for p in points.select(group="console_scripts") if p.name == "cdp-logging"]
    assert callable(script.load())
    [plugin] = [p for p in points.select(group="pytest11") if p.name == "cdp_logging"]
    assert {"cdp_events", "cdp_collector"} <= set(vars(plugin.load()))
