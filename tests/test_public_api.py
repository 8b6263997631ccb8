"""Every name README, the documentation and the examples use resolves, as do the public names, the console script
and the pytest plugin: moving a module must not break a user's import."""

from __future__ import annotations

import ast
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


# -- __all__ is exact ----------------------------------------------------------------------------

PACKAGES = ["cdp_logging", "cdp_logging.testing"]

#: Names an ``__init__`` binds for its own workings, not for users.
MACHINERY = {"TYPE_CHECKING", "annotations", "lazy_names"}


def names_bound_by(package: str) -> set[str]:
    """Every non-underscore name the package's ``__init__`` binds: assigned, imported (under
    TYPE_CHECKING too) or listed to be imported on first use (``_MODULES``)."""
    module = importlib.import_module(package)
    assert module.__file__ is not None
    tree = ast.parse(Path(module.__file__).read_text())
    names: set[str] = set(getattr(module, "_MODULES", {}))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node in tree.body:
            names.add(node.name)
        elif isinstance(node, ast.Assign) and node in tree.body:
            names.update(target.id for target in node.targets if isinstance(target, ast.Name))
    return {name for name in names if not name.startswith("_") or name == "__version__"} - MACHINERY


@pytest.mark.parametrize("package", PACKAGES)
def test_all_is_exactly_the_public_names(package: str) -> None:
    module = importlib.import_module(package)
    assert len(module.__all__) == len(set(module.__all__)), "a name listed twice"
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    assert set(module.__all__) == names_bound_by(package)
    # What `from package import *` gives and what dir() shows are the same names.
    star: dict[str, object] = {}
    exec(f"from {package} import *", star)
    assert set(star) - {"__builtins__"} == set(module.__all__)
    assert set(module.__all__) <= set(dir(module))


@pytest.mark.parametrize("package", PACKAGES)
def test_a_name_outside_all_is_an_attribute_error(package: str) -> None:
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        getattr(importlib.import_module(package), "not_a_name")  # noqa: B009 - the point of the test


# -- every exception a user can catch is in errors.py, and exported ------------------------------


def every_module() -> list[str]:
    """Every module of the package but the optional integrations' (their frameworks may be
    missing) and the entry points that run on import."""
    root = Path(cdp_logging.__file__).parent
    names = []
    for path in sorted(root.rglob("*.py")):
        dotted = ".".join(("cdp_logging", *path.relative_to(root).with_suffix("").parts))
        dotted = dotted.removesuffix(".__init__")
        if dotted.endswith(("__main__", "sitecustomize")):
            continue
        names.append(dotted)
    return names


def subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= subclasses(sub)
    return found


def test_every_public_error_lives_in_errors_and_is_exported() -> None:
    for name in every_module():
        try:
            importlib.import_module(name)
        except ImportError:  # an integration whose framework is not installed
            continue
    public = {cls for cls in subclasses(cdp_logging.CDPError) if not cls.__name__.startswith("_")}
    assert {cls.__module__ for cls in public} == {"cdp_logging.errors"}
    from cdp_logging import errors

    defined = {value for value in vars(errors).values()
               if isinstance(value, type) and issubclass(value, BaseException)
               and value.__module__ == "cdp_logging.errors"}
    assert defined == public | {cdp_logging.CDPError}
    drawn = drawn_tree(errors.__doc__ or "")
    assert set(drawn) == {cls.__name__ for cls in defined}
    for cls in defined:
        assert cls.__name__ in cdp_logging.__all__, cls
        assert getattr(cdp_logging, cls.__name__) is cls
        # The tree in the module's docstring draws every class under its parent.
        parents = [base.__name__ for base in cls.__bases__ if issubclass(base, cdp_logging.CDPError)]
        assert drawn[cls.__name__] == (parents[0] if parents else None), cls


def drawn_tree(doc: str) -> dict[str, str | None]:
    """Each class the docstring's tree draws, with the class it is drawn under (a class's
    depth is its name's column, four characters a level)."""
    drawn: dict[str, str | None] = {}
    path: list[str] = []
    root = None
    for line in doc.splitlines():
        found = re.match(r"^[ │├└─]*?(\w+(?:Error|Timeout))\b", line)
        if found is None or (root is None and found.group(1) != "CDPError"):
            continue
        column = found.start(1)
        root = column if root is None else root
        depth = (column - root) // 4
        del path[depth:]
        drawn[found.group(1)] = path[-1] if path else None
        path.append(found.group(1))
    return drawn


def test_the_old_homes_of_moved_errors_still_import() -> None:
    from cdp_logging.delivery.protocol import TransportError as from_protocol
    from cdp_logging.delivery.transport import TransportError as from_transport
    from cdp_logging.outcomes import CallbackError

    assert from_protocol is from_transport is cdp_logging.TransportError
    assert CallbackError is cdp_logging.CallbackError
    assert issubclass(cdp_logging.TransportError, cdp_logging.CDPError)
