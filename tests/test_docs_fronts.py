"""The runnable Python blocks of docs/structlog.md, docs/loguru.md and docs/scope.md run as
standalone scripts, with only CDP_WRITE_KEY and CDP_HOST (a local collector) in their
environment, and deliver what they log; a block marked ``<!-- fragment -->`` is not run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from cdp_logging.testing import LocalCollector

from support.helpers import DEADLINE, WRITE_KEY

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"(?P<before>[^\n]*)\n```python\n(?P<code>.*?)\n```", re.DOTALL)


def runnable_blocks(page: str) -> list[str]:
    text = "\n" + (DOCS / page).read_text()
    return [match["code"] for match in BLOCK.finditer(text) if match["before"].strip() != "<!-- fragment -->"]


@pytest.mark.parametrize(("page", "index"), [
    (page, index) for page in ("structlog.md", "loguru.md", "scope.md")
    for index in range(len(runnable_blocks(page)))
])
def test_a_runnable_block_runs_and_delivers(page: str, index: int) -> None:
    code = runnable_blocks(page)[index]
    with LocalCollector(write_key=WRITE_KEY) as collector:
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                                env={"CDP_WRITE_KEY": WRITE_KEY, "CDP_HOST": collector.url})
        assert result.returncode == 0, result.stderr
        assert collector.wait_for(1, timeout=DEADLINE)
        assert not collector.rejected
