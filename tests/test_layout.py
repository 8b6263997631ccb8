"""The package's layout holds: imports go one way through the stages, no module imports itself
back through others (inside functions included), and no module or class is long enough that a
reader must scroll through several concerns. docs/development.md maps the stages."""

from __future__ import annotations

import ast
from pathlib import Path


PACKAGE = Path(__file__).resolve().parent.parent / "cdp_logging"

#: Each module's stage; a module may import its own stage and those below it (a lower rank),
#: never one above. The base (names, limits, exception types) is below everything.
STAGES = {"base": 0, "delivery": 1, "engine": 2, "front": 3, "public": 4, "tools": 5}
BASE = {"cdp_logging._version", "cdp_logging._lazy", "cdp_logging.constants", "cdp_logging.errors", "cdp_logging.secret"}
ENGINE = {"cdp_logging.client", "cdp_logging.option_table", "cdp_logging.option_sources", "cdp_logging.fields", "cdp_logging.calls", "cdp_logging.options", "cdp_logging.outcomes", "cdp_logging.registry", "cdp_logging.messages", "cdp_logging.encoding", "cdp_logging.reporting",
          "cdp_logging.environment", "cdp_logging.lifecycle", "cdp_logging.privacy", "cdp_logging.redaction", "cdp_logging.scoping", "cdp_logging.shutdown"}
FRONT = {"cdp_logging.handler", "cdp_logging.fast", "cdp_logging.mapping", "cdp_logging.events", "cdp_logging.config",
         "cdp_logging.structlog", "cdp_logging.loguru", "cdp_logging.nested", "cdp_logging.route"}
TOOLS = ("cdp_logging.testing", "cdp_logging.cli", "cdp_logging.autoinstall", "cdp_logging.compat",
         "cdp_logging.__main__")



def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def stage(module: str) -> str:
    if module in BASE:
        return "base"
    if module == "cdp_logging":
        return "public"
    if module.startswith("cdp_logging.delivery"):
        return "delivery"
    if module in ENGINE:
        return "engine"
    if module in FRONT or module.startswith(("cdp_logging.rules", "cdp_logging.integrations")):
        return "front"
    if module.startswith(TOOLS):
        return "tools"
    raise AssertionError(f"{module} has no stage: add it to one in tests/test_layout.py")


def imports(module: str) -> set[str]:
    """The package's modules ``module`` imports anywhere in its text: at the top, inside
    functions, and under TYPE_CHECKING."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            targets = [f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in MODULES else origin
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target.startswith("cdp_logging") and target != module:
                found.add(target)
    return found


GRAPH = {module: imports(module) for module in MODULES}


def test_every_module_has_a_stage() -> None:
    assert {module: stage(module) for module in MODULES}


def test_imports_go_down_the_stages_and_nothing_imports_the_tools() -> None:
    wrong = [
        f"{module} ({stage(module)}) imports {target} ({stage(target)})"
        for module, targets in GRAPH.items() for target in sorted(targets)
        if STAGES[stage(target)] > STAGES[stage(module)]
    ]
    assert wrong == []


def test_no_import_cycle() -> None:
    cycles = []
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycles.append(" -> ".join([*path[path.index(module):], module]))
            return
        if module in done:
            return
        for target in sorted(GRAPH[module]):
            # A package's __init__ is imported before its modules; it importing them is not a
            # cycle with their imports of siblings.
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(GRAPH):
        visit(module, [])
    assert cycles == []


def test_the_check_sees_imports_inside_functions() -> None:
    assert "cdp_logging.delivery.spool" in GRAPH["cdp_logging.client"]  # imported in __init__ only
