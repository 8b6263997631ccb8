"""The tiers a developer can pick (``pytest -m unit``, ``-m server``, ``-m subprocess``).

Every test is marked by what it uses, so a new test needs no marker of its own:

- ``server``: it talks to a server on 127.0.0.1 (a fixture that depends on pytest-httpserver,
  or code that starts a raw server, the local collector or a socket);
- ``subprocess``: it starts a Python process, a command or a fork;
- ``unit``: neither.

What a test "uses" is read from its fixtures and from its source, with the source of the
helpers it calls (from its own module or ``tests/support``), two levels down. A test that the
reading gets wrong can carry ``@pytest.mark.server`` / ``@pytest.mark.subprocess`` itself.

``CDP_TIER_AUDIT=1 pytest -m unit`` checks the reading: a test marked ``unit`` that connects
or listens on an internet socket, or starts a process, fails and says which.
"""

from __future__ import annotations

import inspect
import os
import re
import socket
import subprocess
from collections.abc import Iterator
from types import FunctionType
from typing import Any

import pytest

TIERS = ("unit", "server", "subprocess")

#: Fixtures that start or reach a server (the closure of a test's fixtures is searched).
SERVER_FIXTURES = frozenset({"httpserver", "second_api"})

SERVER_WORDS = re.compile(
    r"\b(HTTPServer|RawServer|SilentServer|LocalCollector|start_api|start_server|start_collector|"
    r"create_server|create_connection|socket\.socket|socketserver|ThreadingHTTPServer|"
    r"httpserver|requests\.(get|post)|urlopen|free_port|uvicorn)\b"
)
SUBPROCESS_WORDS = re.compile(
    r"\b(subprocess|Popen|run_python|sys\.executable|os\.fork|multiprocessing|billiard|"
    r"check_output|run_cli|ProcessPool\w*)\b"
)


def _source(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""


def _helpers(source: str, namespace: dict[str, Any]) -> Iterator[Any]:
    """The functions and classes of ``namespace`` that ``source`` names and the tests own."""
    for name in set(re.findall(r"\b[A-Za-z_]\w*\b", source)):
        value = inspect.unwrap(namespace[name]) if callable(namespace.get(name)) else None  # a cache's function too
        module = getattr(value, "__module__", "") or ""
        if isinstance(value, (FunctionType, type)) and (
            module.startswith("support") or module.startswith("test") or module == namespace.get("__name__")
        ):
            yield value


def _text_of(item: pytest.Function) -> str:
    """The test's source, with its fixtures' and its helpers' (two levels of calls)."""
    function = getattr(item, "function", None)
    namespace = getattr(getattr(item, "module", None), "__dict__", {})
    roots: list[Any] = [function]
    definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    for name in item.fixturenames:
        if name == "tier_audit":  # its own source names sockets and processes
            continue
        for definition in definitions.get(name, ()):
            roots.append(getattr(definition, "func", None))
    texts: list[str] = []
    seen: set[int] = set()
    level = [root for root in roots if root is not None]
    for _depth in range(3):
        following: list[Any] = []
        for obj in level:
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            text = _source(obj)
            texts.append(text)
            scope = dict(namespace)
            scope.update(getattr(inspect.getmodule(obj), "__dict__", {}))
            following.extend(_helpers(text, scope))
        level = following
    return "\n".join(texts)


def mark_by_tier(items: list[pytest.Item]) -> None:
    """Give every test its tiers (called from conftest's ``pytest_collection_modifyitems``)."""
    for item in items:
        marked = {name for name in TIERS if item.get_closest_marker(name)}
        if not marked & {"server", "subprocess"} and isinstance(item, pytest.Function):
            text = _text_of(item)
            if SERVER_FIXTURES & set(item.fixturenames) or SERVER_WORDS.search(text):
                marked.add("server")
            if SUBPROCESS_WORDS.search(text):
                marked.add("subprocess")
        if not marked:
            marked.add("unit")
        for name in marked:
            item.add_marker(name)


# -- the audit ----------------------------------------------------------------------------------

AUDIT = os.environ.get("CDP_TIER_AUDIT") == "1"


@pytest.fixture(autouse=AUDIT)
def tier_audit(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """With CDP_TIER_AUDIT=1: a ``unit`` test that uses a socket or a process fails."""
    if not AUDIT or request.node.get_closest_marker("unit") is None:
        yield
        return
    used: list[str] = []
    connect, listen, popen = socket.socket.connect, socket.socket.listen, subprocess.Popen.__init__

    def audited_connect(self: socket.socket, *args: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            used.append(f"connect {args[0]!r}")
        return connect(self, *args)

    def audited_listen(self: socket.socket, *args: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            used.append("listen")
        return listen(self, *args)

    def audited_popen(self: Any, *args: Any, **kwargs: Any) -> None:
        used.append(f"process {args[0] if args else kwargs.get('args')!r}")
        popen(self, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", audited_connect)
    monkeypatch.setattr(socket.socket, "listen", audited_listen)
    monkeypatch.setattr(subprocess.Popen, "__init__", audited_popen)
    yield
    if used:
        pytest.fail(f"marked unit, but used {sorted(set(used))[:3]}: mark it server or subprocess")
