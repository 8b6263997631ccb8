"""The examples run as they are documented: each in its own process, against a local server.

dictConfig and fileConfig applications, the Django LOGGING snippet, and gunicorn started with
``--log-config``; the write key and host come from the environment only.
"""

from __future__ import annotations

import ast
import http.client
import itertools
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer

from support.handlers import (  # noqa: F401  (fixtures)
    EXAMPLES,
    SUBPROCESS_TIMEOUT,
    messages,
    run_python,
    server,
    subprocess_env,
    write_key,
)
from support.helpers import wait_until


def test_the_dictconfig_example_delivers_its_events_at_exit(server: HTTPServer, write_key: str) -> None:
    result = run_python([str(EXAMPLES / "dictconfig_app.py")], subprocess_env(server, write_key))

    assert result.returncode == 0, result.stderr
    received = messages(server, write_key)
    assert [(m["type"], m.get("event") or m.get("name")) for m in received] == [
        ("identify", None), ("track", "added_to_cart"), ("track", "Order Completed"),
        ("page", "Pricing"), ("group", None)]
    assert received[2]["properties"] == {"order_id": 7, "total": 39.95}
    assert received[4]["groupId"] == "56" and received[4]["objectTypeId"] == "1"
    assert {m["userId"] for m in received} == {"019mr8mf4r"}
    assert "served /checkout in 12 ms" in result.stderr  # the console handler saw everything


def test_the_fileconfig_example_delivers_its_events_at_exit(server: HTTPServer, write_key: str) -> None:
    result = run_python([str(EXAMPLES / "fileconfig_app.py")], subprocess_env(server, write_key))

    assert result.returncode == 0, result.stderr
    received = messages(server, write_key)
    assert [m["type"] for m in received] == ["screen", "alias", "identify", "track"]
    screen, alias, identify, track = received
    assert (screen["anonymousId"], screen["name"]) == ("anon-42", "Home")
    assert (alias["previousId"], alias["userId"]) == ("anon-42", "019mr8mf4r")
    assert (identify["userId"], identify["traits"]) == ("019mr8mf4r", {"plan": "Free"})
    assert (track["event"], track["userId"], track["properties"]) == ("Checkout Started", "019mr8mf4r", {"items": 3})


def test_the_django_logging_snippet_configures_the_handler_without_django(
    server: HTTPServer, write_key: str
) -> None:
    script = (
        "import logging.config, sys\n"
        "from django_settings import LOGGING\n"
        "assert 'django' not in sys.modules\n"
        "logging.config.dictConfig(LOGGING)\n"
        "logging.getLogger('shop.views').info('checkout', extra={'track': {\n"
        "    'user_id': 7, 'event': 'Checkout Started', 'properties': {'items': 3}}})\n"
        "logging.getLogger('django.request').warning('Not Found: /favicon.ico')\n"
    )

    result = run_python(["-c", script], subprocess_env(server, write_key))

    assert result.returncode == 0, result.stderr
    [message] = messages(server, write_key)
    assert (message["type"], message["userId"], message["event"]) == ("track", "7", "Checkout Started")
    assert "Not Found: /favicon.ico" in result.stderr


@pytest.mark.parametrize("name", ["logging.ini", "gunicorn_logging.ini", "django_settings.py", "dictconfig_app.py"])
def test_the_example_configurations_hold_no_secret(name: str) -> None:
    text = (EXAMPLES / name).read_text()
    assert "write_key'" not in text and 'write_key"' not in text and "write_key=" not in text


@pytest.fixture
def socket_directory() -> Iterator[Path]:
    """A short directory for a unix socket (their paths are limited to about 100 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="cdp-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _get(socket_path: Path, path: str, visitor: str) -> bytes:
    class UnixConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(10)
            self.sock.connect(str(socket_path))

    connection = UnixConnection("localhost")
    try:
        connection.request("GET", path, headers={"X-Visitor": visitor})
        return connection.getresponse().read()
    finally:
        connection.close()


def test_gunicorn_with_the_example_log_config_tracks_requests_from_its_worker(
    server: HTTPServer, write_key: str, socket_directory: Path
) -> None:
    socket_path = socket_directory / "app.sock"
    env = subprocess_env(server, write_key, HOME=str(socket_directory))  # gunicorn's control socket
    # The command in the example's docstring, as written, from the repository's top directory.
    command = documented_gunicorn_command()
    gunicorn = subprocess.Popen(
        [sys.executable, "-m", *command[:-1],
         "--bind", f"unix:{socket_path}", "--workers", "1", command[-1]],
        env=env, cwd=EXAMPLES.parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_until(lambda: socket_path.exists() or gunicorn.poll() is not None, message="gunicorn to listen")
        assert gunicorn.poll() is None, gunicorn.communicate()[1]
        wait_until(lambda: _reachable(socket_path), message="gunicorn's worker to answer")
        for n in range(3):
            assert _get(socket_path, f"/page-{n}", visitor=f"visitor-{n}") == b"ok\n"
        gunicorn.send_signal(signal.SIGTERM)
        _, stderr = gunicorn.communicate(timeout=SUBPROCESS_TIMEOUT)
    finally:
        if gunicorn.poll() is None:
            gunicorn.kill()
            gunicorn.communicate()

    assert gunicorn.returncode == 0, stderr
    pages = [m for m in messages(server, write_key) if m.get("name", "").startswith("/page-")]
    assert sorted((m["anonymousId"], m["name"]) for m in pages) == [
        (f"visitor-{n}", f"/page-{n}") for n in range(3)]
    assert "gunicorn.access" in stderr and "shop.web: page served" in stderr


def documented_gunicorn_command() -> list[str]:
    """The gunicorn command line in examples/wsgi_app.py's docstring, without the variables
    set before it."""
    docstring = ast.get_docstring(ast.parse((EXAMPLES / "wsgi_app.py").read_text())) or ""
    block = docstring.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    words = shlex.split(block.replace("\\\n", " "))
    command = list(itertools.dropwhile(lambda word: "=" in word, words))
    assert command[0] == "gunicorn", block
    return command


def _reachable(socket_path: Path) -> bool:
    try:
        return _get(socket_path, "/", visitor="probe") == b"ok\n"
    except OSError:
        return False
