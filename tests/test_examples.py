"""Every example in examples/ runs, as a separate process, against a LocalCollector.

A ``*.py`` file with an ``if __name__ == "__main__":`` block is run as a script, with CDP_HOST
pointing at the collector and CDP_WRITE_KEY set, and must exit 0 and deliver at least one event
(examples added later are picked up by themselves). ``RUNS`` says how to run the ones that need
more (a framework, a driver, their own checks). A ``*.py`` file without such a block is
configuration (gunicorn, Django settings): it must compile here, and the handler's tests load
it; so are non-Python files such as ``logging.ini``.
"""

from __future__ import annotations

import base64
import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cdp_logging.testing import LocalCollector

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
WRITE_KEY = "example-write-key"
MARKETING_WRITE_KEY = "example-marketing-key"
#: Long enough for an example that imports a web framework on a loaded 2-core machine.
RUN_TIMEOUT = 120.0

_MAIN_BLOCK = re.compile(r"^if __name__ == [\"']__main__[\"']:", re.MULTILINE)

Check = Callable[[LocalCollector, "subprocess.CompletedProcess[str]"], None]


@dataclass(frozen=True)
class Run:
    """How to run one example, and what must come of it."""

    #: Modules the example imports that the test extra may lack: skipped without them.
    needs: tuple[str, ...] = ()
    #: Python source run instead of the script, given the script's path as sys.argv[1].
    driver: str | None = None
    #: How many events must reach the collector (the example may start its own, see quickstart).
    events: int = 1
    #: Text that must appear in the example's standard output.
    prints: tuple[str, ...] = ()
    #: Further checks of what arrived.
    check: Check | None = None


def sent(collector: LocalCollector, type: str, event: str | None = None,
         user_id: str | None = None) -> list[dict[str, Any]]:
    found = collector.events(type, event=event, user_id=user_id)
    assert found, f"no {type} {event or ''} for {user_id}; got:\n" + "\n".join(
        f"  {message}" for message in collector.messages
    )
    return found


def check_flask(collector: LocalCollector, result: Any) -> None:
    [identify] = sent(collector, "identify", user_id="42")
    assert identify["traits"] == {"email": "ada@example.com", "plan": "free"}
    assert sent(collector, "track", "Signed Up", "42")[0]["properties"] == {"plan": "free"}
    assert sent(collector, "page", user_id="42")[0]["name"] == "Pricing"
    [visitor] = [page for page in sent(collector, "page") if page.get("anonymousId") == "visitor-7"]
    assert visitor["name"] == "Pricing"
    # A visitor with no id at all: counted and reported, and the page is served.
    assert result.stdout.splitlines() == ["201 CREATED", "200 OK", "200 OK", "200 OK"]
    assert "page.user_id: user_id or anonymous_id is required" in result.stderr


def check_fastapi(collector: LocalCollector, result: Any) -> None:
    orders = sent(collector, "track", "Order Completed", "42")
    assert sorted(order["properties"]["order_id"] for order in orders) == [7, 8]


def check_celery(collector: LocalCollector, result: Any) -> None:
    [welcome] = sent(collector, "track", "Welcome Email Sent", "42")
    assert welcome["properties"] == {"email": "ada@example.com"}


def check_several_clients(collector: LocalCollector, result: Any) -> None:
    keys = {basic_auth_user(request) for request in collector.requests}
    assert keys == {WRITE_KEY, MARKETING_WRITE_KEY}
    sent(collector, "track", "Checkout Started", "42")
    sent(collector, "track", "Newsletter Clicked", "42")


def check_integrations_and_backfill(collector: LocalCollector, result: Any) -> None:
    [upgraded] = sent(collector, "track", "Membership Upgraded", "42")
    assert upgraded["integrations"] == {"All": False, "Mixpanel": True, "Google Analytics": False}
    backfilled = sorted(m["timestamp"] for m in sent(collector, "track", "Order Completed"))
    assert backfilled == [
        "2023-03-01T09:30:00.000Z", "2023-06-02T17:05:00.000Z", "2024-01-15T12:00:00.000Z",
    ]
    assert sent(collector, "identify", user_id="43")[0]["timestamp"] == "2024-01-15T12:00:00.000Z"
    assert {(g["groupId"], g["objectTypeId"]) for g in sent(collector, "group")} == {
        ("acme", "2"), ("course-101", "3"),
    }


def check_error_handling(collector: LocalCollector, result: Any) -> None:
    [delivered] = collector.messages
    assert delivered["event"] == "Order Completed"
    assert "reported InvalidEventError" in result.stdout
    assert "reported DeliveryError" in result.stdout
    assert "callback: delivered" in result.stdout and "callback: failed" in result.stdout


#: The Lambda runtime imports the module and calls the handler; the container is then frozen
#: (here: the process ends at once, skipping atexit and logging.shutdown), so only what
#: flush_after delivered before each invocation returned can have arrived.
LAMBDA_DRIVER = """
import os, runpy, sys
handler = runpy.run_path(sys.argv[1])["handler"]
for order_id in (1, 2):
    print(handler({"user_id": "42", "order_id": order_id, "total": 5.0}, None), flush=True)
os._exit(0)
"""


def check_lambda(collector: LocalCollector, result: Any) -> None:
    paid = sent(collector, "track", "Order Paid", "42")
    assert sorted(order["properties"]["order_id"] for order in paid) == [1, 2]


def check_privacy(collector: LocalCollector, completed: subprocess.CompletedProcess[str]) -> None:
    [message] = collector.messages
    assert message["userId"] not in ("ada@example.com", "ops@staff.example.com")
    assert message["properties"] == {
        "method": "password", "password": "[redacted]", "headers": {"Authorization": "[redacted]"},
        "internal_note": "[redacted]",
    }


def check_structlog(collector: LocalCollector, result: Any) -> None:
    [added] = sent(collector, "track", "Added To Cart", "019mr8mf4r")
    assert added["properties"] == {"sku": "shoe-42", "qty": 1}
    assert sent(collector, "identify", user_id="019mr8mf4r")[0]["traits"] == {"plan": "pro"}
    [page] = sent(collector, "page")
    assert (page["anonymousId"], page["name"], page["context"]["ip"]) == ("visitor-7", "Pricing", "203.0.113.7")


def check_loguru(collector: LocalCollector, result: Any) -> None:
    assert sent(collector, "track", "Added To Cart", "019mr8mf4r")[0]["properties"] == {"sku": "shoe-42"}
    assert sent(collector, "identify", user_id="019mr8mf4r")[0]["traits"] == {"plan": "pro"}
    assert sent(collector, "page")[0]["anonymousId"] == "visitor-7"


def check_scope(collector: LocalCollector, result: Any) -> None:
    [added] = sent(collector, "track", "Added To Cart", "019mr8mf4r")
    assert added["anonymousId"] == "visitor-7"
    assert added["context"]["page"] == {"url": "https://shop.example/cart", "path": "/cart"}
    assert added["context"]["userAgent"].startswith("testclient")
    sent(collector, "track", "Report Sent", "system:nightly-report")


RUNS: dict[str, Run] = {
    "quickstart.py": Run(events=0, prints=("received 6 events",)),
    "flask_app.py": Run(needs=("flask",), events=4, check=check_flask),
    "fastapi_app.py": Run(needs=("fastapi", "uvicorn"), events=2, check=check_fastapi),
    "celery_app.py": Run(needs=("celery",), check=check_celery),
    "lambda_handler.py": Run(driver=LAMBDA_DRIVER, events=4, check=check_lambda),
    "several_clients.py": Run(events=4, check=check_several_clients),
    "eu_region.py": Run(events=2, prints=("sending to http://127.0.0.1:",)),
    "integrations_and_backfill.py": Run(events=8, check=check_integrations_and_backfill),
    "error_handling.py": Run(events=1, check=check_error_handling),
    "privacy.py": Run(events=1, check=check_privacy, prints=("dropped by before_send: 1",)),
    # A user's test module: it runs pytest on itself, with its own collector.
    "testing_example_test.py": Run(events=0, prints=("4 passed",)),
    "structlog_app.py": Run(needs=("structlog",), events=3, check=check_structlog),
    "loguru_app.py": Run(needs=("loguru",), events=3, check=check_loguru),
    "scope_app.py": Run(needs=("starlette", "httpx"), events=2, check=check_scope),
}


def basic_auth_user(request: Any) -> str:
    scheme, _, encoded = (request.header("authorization") or "").partition(" ")
    assert scheme == "Basic"
    return base64.b64decode(encoded).decode().partition(":")[0]


def scripts() -> list[str]:
    return sorted(p.name for p in EXAMPLES.glob("*.py") if _MAIN_BLOCK.search(p.read_text()))


def configuration_files() -> list[str]:
    return sorted(
        p.name for p in EXAMPLES.glob("*.py") if not _MAIN_BLOCK.search(p.read_text())
    )


@pytest.fixture(scope="module")
def shared_collector() -> Iterator[LocalCollector]:
    # No write key: the several-clients example uses two; the checks read them from requests.
    with LocalCollector() as collector:
        yield collector


@pytest.fixture
def collector(shared_collector: LocalCollector) -> LocalCollector:
    shared_collector.clear()
    return shared_collector


def run_example(
    path: Path, run: Run, collector: LocalCollector
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CDP_HOST": collector.url,
        "CDP_WRITE_KEY": WRITE_KEY,
        "MARKETING_CDP_WRITE_KEY": MARKETING_WRITE_KEY,
        # Proxy settings in the environment must not divert requests meant for 127.0.0.1.
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
    }
    argv = [sys.executable, str(path)] if run.driver is None else [
        sys.executable, "-c", run.driver, str(path)
    ]
    return subprocess.run(
        argv, cwd=EXAMPLES.parent, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT,
    )


@pytest.mark.parametrize("name", scripts())
def test_example_runs_and_delivers(name: str, collector: LocalCollector) -> None:
    run = RUNS.get(name, Run())
    missing = [module for module in run.needs if importlib.util.find_spec(module) is None]
    if missing:
        pytest.skip(f"examples/{name} needs {', '.join(missing)}: pip install -e '.[test]'")

    result = run_example(EXAMPLES / name, run, collector)

    assert result.returncode == 0, (
        f"examples/{name} exited {result.returncode}\n--- stdout\n{result.stdout}"
        f"\n--- stderr\n{result.stderr}"
    )
    if run.events:
        try:
            collector.wait_for(run.events, timeout=10.0)
        except TimeoutError as err:
            pytest.fail(
                f"examples/{name} exited 0 but did not deliver {run.events} event(s) to "
                f"CDP_HOST: {err}\n(if it sends elsewhere by design, describe it in RUNS)"
                f"\n--- stderr\n{result.stderr}"
            )
    for text in run.prints:
        assert text in result.stdout, f"examples/{name} did not print {text!r}:\n{result.stdout}"
    if run.check is not None:
        run.check(collector, result)
    assert not collector.rejected, f"the collector refused messages: {collector.rejected}"


def test_every_example_described_in_runs_exists() -> None:
    assert sorted(set(RUNS) - set(scripts())) == []


def test_configuration_examples_compile() -> None:
    for name in configuration_files():
        compile((EXAMPLES / name).read_text(), str(EXAMPLES / name), "exec")
