"""README and the documentation site say what is true.

Every ```python block of README.md and docs/ runs as a standalone script, in a subprocess whose
environment holds only CDP_WRITE_KEY and CDP_HOST (a LocalCollector started here), and must
exit 0; where a block sends, the collector must have received something and refused nothing.
A block that defines test functions or a TestCase (the testing page's) is a test module: it
runs under pytest, and its tests must pass.
A block with ``<!-- fragment -->`` on the line directly above its fence is not run (a Django
settings file, a view, an excerpt of a file in examples/); blocks in other languages (sh, ini,
toml, yaml) are not run either.

A small runner rather than pytest-examples: that runs each block inside the test process
(``exec``), where a block would share the tests' environment, loggers and clients, and it
brings formatters (black, ruff) to check the blocks' style; here a block gets a fresh
interpreter with nothing but the two variables, as a reader pasting it into a file would.

Also README's own claims (issue 26 §4): the quick start's test command is what CI runs, the
quick start's commands share one virtual environment, and every runtime dependency of
setup.cfg is named in README.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from cdp_logging.testing import LocalCollector

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
DOCUMENTS = [README, *sorted(DOCS.rglob("*.md"))]
FRAGMENT = "<!-- fragment -->"
WRITE_KEY = "docs-write-key"
#: A block runs within this many seconds, delivery at exit included.
BLOCK_TIMEOUT = 90.0

#: An opening fence: indentation (a block inside a list item), three or more backticks or
#: tildes, and the info string whose first word is the language.
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`]*)$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a document."""

    path: Path
    line: int  #: the line of its opening fence, from 1
    language: str
    code: str
    fragment: bool

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def code_blocks(path: Path) -> list[Block]:
    """Every fenced code block of ``path``, in order, with its fence's indentation removed."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    number = 0
    while number < len(lines):
        opening = FENCE.match(lines[number])
        if opening is None:
            number += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        end = number + 1
        while end < len(lines) and not (
            lines[end].strip().startswith(fence[0] * len(fence)) and not lines[end].strip().strip(fence[0])
        ):
            end += 1
        code = "\n".join(line[indent:] if not line[:indent].strip() else line.lstrip()
                         for line in lines[number + 1:end])
        blocks.append(Block(
            path=path, line=number + 1, language=(opening["info"].split() or [""])[0].lower(),
            code=code + "\n", fragment=number > 0 and lines[number - 1].strip() == FRAGMENT,
        ))
        number = end + 1
    return blocks


BLOCKS = [block for path in DOCUMENTS for block in code_blocks(path)]
PYTHON = [block for block in BLOCKS if block.language in ("python", "py")]
RUNNABLE = [block for block in PYTHON if not block.fragment]

#: A call of the client or a log call with a payload: a block holding one sends, unless it
#: captures its calls or runs its own collector.
SENDING = re.compile(r"\.(?:identify|track|page|screen|group|alias)\(|extra=")
NOT_SENDING = ("capture_events", "CapturedEvents", "cdp_events", "cdp_collector", "LocalCollector", "enable=False")
#: A block that is a test module, run by pytest rather than as a script.
TEST_MODULE = re.compile(r"^(?:def test_|class \w+\((?:unittest\.)?TestCase\))", re.M)


def sends(block: Block) -> bool:
    """Whether the block, run as a script, should deliver at least one event."""
    return bool(SENDING.search(block.code)) and not any(word in block.code for word in NOT_SENDING)


@dataclass(frozen=True)
class Run:
    """What running one block as a script gave."""

    returncode: int
    stdout: str
    stderr: str
    received: int
    rejected: list[object]


def run_block(block: Block, folder: Path) -> Run:
    """Run ``block`` as a script in ``folder`` against a collector of its own."""
    script = folder / f"test_{block.path.stem}_{block.line}.py"
    script.write_text(block.code, encoding="utf-8")
    command = [sys.executable, str(script)]
    if TEST_MODULE.search(block.code):
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", str(script)]
    with LocalCollector(write_key=WRITE_KEY) as collector:
        try:
            result = subprocess.run(
                command, cwd=folder, capture_output=True, text=True,
                env={"CDP_WRITE_KEY": WRITE_KEY, "CDP_HOST": collector.url}, timeout=BLOCK_TIMEOUT,
            )
        except subprocess.TimeoutExpired as expired:
            return Run(-1, str(expired.stdout or ""), f"{expired.stderr or ''}\ntimed out after {BLOCK_TIMEOUT} s",
                       len(collector.messages), list(collector.rejected))
        if sends(block) and result.returncode == 0:
            try:  # the script delivered at exit: this returns at once unless nothing came
                collector.wait_for(1, timeout=5.0)
            except TimeoutError:
                pass  # the test says the block sent nothing
        return Run(result.returncode, result.stdout, result.stderr, len(collector.messages),
                   list(collector.rejected))


@cache
def runs(folder: Path) -> dict[Block, Run]:
    """Every runnable block's run, side by side (each is mostly an interpreter starting)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(RUNNABLE, pool.map(lambda block: run_block(block, folder), RUNNABLE)))


@pytest.fixture(scope="module")
def blocks_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("doc-blocks")


def test_the_documents_hold_python_blocks_both_run_and_marked() -> None:
    assert len(RUNNABLE) >= 12 and any(block.fragment for block in PYTHON)
    assert any(block.path == README for block in RUNNABLE)
    assert len([block for block in RUNNABLE if TEST_MODULE.search(block.code)]) >= 3


@pytest.mark.parametrize("block", RUNNABLE, ids=str)
def test_a_python_block_runs_as_a_script(block: Block, blocks_folder: Path) -> None:
    run = runs(blocks_folder)[block]
    output = f"{block} exited {run.returncode}\n{block.code}\n--- stdout\n{run.stdout}\n--- stderr\n{run.stderr}"
    assert run.returncode == 0, output
    if TEST_MODULE.search(block.code):
        assert re.search(r"\b[1-9]\d* passed\b", run.stdout), output
    assert "Traceback" not in run.stderr, output
    # The library's own warnings (a bad payload, an undelivered batch) begin with its name.
    assert "cdp-logging:" not in run.stderr, output
    assert run.rejected == [], output
    if sends(block):
        assert run.received > 0, f"{block} sends, but the collector received nothing\n{output}"


def test_a_fragment_marker_is_always_directly_above_a_fence() -> None:
    for path in DOCUMENTS:
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines):
            if line.strip() == FRAGMENT:
                following = lines[number + 1] if number + 1 < len(lines) else ""
                assert FENCE.match(following), f"{path.relative_to(ROOT)}:{number + 1}: {FRAGMENT} not above a fence"


def test_the_runner_finds_blocks_inside_list_items_and_after_a_marker(tmp_path: Path) -> None:
    document = tmp_path / "page.md"
    document.write_text(
        "- an item:\n  ```python\n  print('in a list')\n  ```\n\n"
        "```py\ndef f():\n    return 1\n```\n"
        f"{FRAGMENT}\n```python\nsettings = 1\n```\n\n````sh\n```\nmake test\n````\n",
        encoding="utf-8",
    )
    first, indented, second, third = code_blocks(document)
    assert (first.language, first.code, first.fragment) == ("python", "print('in a list')\n", False)
    assert (indented.language, indented.code) == ("py", "def f():\n    return 1\n")
    assert (second.code, second.fragment) == ("settings = 1\n", True)
    assert (third.language, third.code) == ("sh", "```\nmake test\n")


def test_a_block_that_no_longer_runs_fails(tmp_path: Path) -> None:
    broken = Block(path=README, line=0, language="python", fragment=False,
                   code="import cdp_logging\ncdp_logging.Analytics().track(user_id='1')\n")
    run = run_block(broken, tmp_path)
    assert run.returncode != 0 and "InvalidEventError" in run.stderr


def test_a_test_module_block_runs_under_pytest_and_fails_with_its_test(tmp_path: Path) -> None:
    module = Block(path=README, line=0, language="python", fragment=False,
                   code="def test_sent(cdp_events):\n    cdp_events.assert_tracked('Never Sent')\n")
    run = run_block(module, tmp_path)
    assert run.returncode == 1 and "1 failed" in run.stdout, run.stdout


def test_a_block_runs_with_only_the_key_and_host_in_its_environment(tmp_path: Path) -> None:
    probe = Block(path=README, line=0, language="python", fragment=False,
                  code="import os\nprint(sorted(k for k in os.environ if not k.startswith('LC_')))\n")
    run = run_block(probe, tmp_path)
    assert run.stdout.strip() == "['CDP_HOST', 'CDP_WRITE_KEY']", run.stdout


# -- README's claims (issue 26 §4) ---------------------------------------------------------


def readme_section(heading: str) -> str:
    text = README.read_text(encoding="utf-8")
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def runtime_dependencies() -> list[str]:
    """The distribution names of setup.cfg's install_requires."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    requirements = config["options"]["install_requires"].strip().splitlines()
    return [re.match(r"[A-Za-z0-9._-]+", line.strip())[0] for line in requirements if line.strip()]  # type: ignore[index]


def test_readme_names_every_runtime_dependency() -> None:
    installation = readme_section("Installation")
    dependencies = runtime_dependencies()
    assert "google-re2" in dependencies and "requests" in dependencies
    missing = [name for name in dependencies if f"`{name}`" not in installation]
    assert missing == [], f"README's Installation does not name {missing}"


def test_the_quick_start_says_what_it_needs() -> None:
    quick_start = readme_section("Quick start")
    assert "only Python" not in quick_start
    for needed in ("Python 3.10", "`make`", "package index"):
        assert needed in quick_start, needed


def test_ci_runs_the_test_command_readme_gives() -> None:
    [commands] = [block.code for block in code_blocks(README)
                  if block.language == "sh" and "make test" in block.code and "make demo" in block.code][:1]
    test_command = next(command for command in (line.split("#")[0].strip() for line in commands.splitlines())
                        if command.endswith(" test"))
    assert test_command == "make test"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(rf"^{re.escape(test_command)}$", ci, re.M), ".ci/run does not run README's test command"


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_the_quick_start_commands_share_one_virtual_environment(tmp_path: Path) -> None:
    """README says `make demo` and `make test` use one virtual environment, .venv."""
    assert "one virtual environment, `.venv`" in readme_section("Quick start")
    venv = tmp_path / ".venv"
    result = subprocess.run(
        ["make", "--dry-run", "--always-make", "demo", "test", f"VENV={venv}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert re.findall(r"-m venv (\S+)", result.stdout) == [str(venv)], result.stdout
    assert f"{venv}/bin/python examples/quickstart.py" in result.stdout
    assert f"{venv}/bin/python -m pytest" in result.stdout


# -- excerpts of examples/ --------------------------------------------------------------------

EXCERPTS = [block for block in PYTHON if block.code.startswith("# examples/")]


def code_of(line: str) -> str:
    """A line's code: stripped, without a comment after two spaces (a page may comment
    differently from the file); a comment line alone is no code."""
    code = line.split("  # ", 1)[0].strip()
    return "" if code.startswith("#") else code


def test_the_framework_pages_show_excerpts_of_the_examples() -> None:
    assert {block.code.split()[1] for block in EXCERPTS} >= {
        "examples/flask_app.py", "examples/fastapi_app.py", "examples/celery_app.py",
        "examples/lambda_handler.py", "examples/several_clients.py",
    }


@pytest.mark.parametrize("block", EXCERPTS, ids=str)
def test_an_excerpt_of_an_example_is_in_that_file(block: Block) -> None:
    """A block that starts ``# examples/NAME`` is marked a fragment, and every line of code it
    shows is in that file (which tests/test_examples.py runs), so the page cannot drift from the code."""
    assert block.fragment, f"{block}: an excerpt is a fragment; the whole file runs under tests/test_examples.py"
    example = ROOT / block.code.split()[1]
    lines = {code_of(line) for line in example.read_text(encoding="utf-8").splitlines()}
    missing = [line for line in block.code.splitlines()[1:] if code_of(line) and code_of(line) not in lines]
    assert missing == [], f"{block}: not in {example.name}: {missing}"
