"""``cdp-logging collect`` in a real process: it escapes what it prints (nothing a client sends
reaches the terminal raw), takes the key from CDP_WRITE_KEY (``--write-key`` still works, with
a warning: other users see it in the process list), and counts in good English."""

from __future__ import annotations

import base64
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

from support.helpers import wait_until
from support.legacy import Output
from support.reliability import python_env


class Collect:
    def __init__(self, *arguments: str, **variables: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cdp_logging", "collect", "--port", "0", *arguments],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=python_env(**variables),
            errors="surrogateescape",
        )
        self.errors = Output(self.process.stderr)
        self.output = Output(self.process.stdout)
        banner = wait_until(lambda: self.errors.find("listening on"), message=lambda: self.errors.text)
        self.url = re.search(r"listening on (http://127\.0\.0\.1:\d+)", banner)[1]  # type: ignore[index]
        self.session = requests.Session()
        self.session.trust_env = False

    def post(self, body: object, key: str, path: str = "/v1/batch") -> int:
        return self.session.post(self.url + path, json=body, auth=(key, ""), timeout=15).status_code

    def stop(self) -> str:
        self.session.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        return self.errors.text


@pytest.fixture
def started() -> Iterator[list[Collect]]:
    made: list[Collect] = []
    yield made
    for collect in made:
        if collect.process.poll() is None:
            collect.process.kill()
            collect.process.wait()


def test_one_event_is_one_event(started: list[Collect]) -> None:
    collect = Collect()
    started.append(collect)
    assert collect.post({"batch": [{"type": "track", "userId": "42", "event": "E"},
                                   {"type": "track", "userId": "42"}]}, "any-key") == 200
    wait_until(lambda: collect.output.lines, message="the event line")
    assert "received 1 event, rejected 1 invalid one." in collect.stop()


ESCAPES = "\x1b]0;owned\x07\x1b[2J\u202e\x9b31m"


def test_what_a_client_sends_reaches_the_terminal_escaped(started: list[Collect]) -> None:
    collect = Collect()
    started.append(collect)
    # Through a refused event's type and messageId, an accepted event's name, and the path.
    assert collect.post({"batch": [{"type": "tr" + ESCAPES, "messageId": "m" + ESCAPES, "userId": "u"},
                                   {"type": "track", "event": "E" + ESCAPES, "userId": "u"}]}, "k") == 200
    auth = base64.b64encode(b"k:").decode()
    with socket.create_connection(("127.0.0.1", int(collect.url.rsplit(":", 1)[1]))) as raw:
        raw.sendall(f"POST /v1/{ESCAPES} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n"
                    "Content-Length: 2\r\n\r\n{}".encode("latin-1", "replace"))
        raw.settimeout(15)
        assert raw.recv(12) == b"HTTP/1.1 404"
    wait_until(lambda: collect.errors.find("refused POST /v1/"), message=lambda: collect.errors.text)
    wait_until(lambda: collect.output.lines, message="the event line")
    printed = collect.stop() + collect.output.text
    assert "\\u001b" in printed
    for character in "\x1b\x07\x9b\u202e":
        assert character not in printed, repr(printed)


def test_the_key_comes_from_the_environment(started: list[Collect]) -> None:
    collect = Collect(CDP_WRITE_KEY="right-key")
    started.append(collect)
    assert collect.post({"batch": []}, "wrong-key") == 401
    assert collect.post({"batch": []}, "right-key") == 200
    assert "--write-key" not in collect.stop()


def test_the_write_key_flag_still_works_with_a_warning(started: list[Collect]) -> None:
    collect = Collect("--write-key", "right-key")
    started.append(collect)
    assert collect.post({"batch": []}, "wrong-key") == 401
    assert collect.post({"batch": []}, "right-key") == 200
    text = collect.stop()
    assert "--write-key shows the key to every user of this machine" in text and "CDP_WRITE_KEY" in text


def test_a_key_with_a_control_character_is_refused_unshown() -> None:
    result = subprocess.run([sys.executable, "-m", "cdp_logging", "collect", "--port", "0"],
                            capture_output=True, text=True, timeout=60,
                            env=python_env(CDP_WRITE_KEY="secret-key\x1bpart"))
    assert result.returncode == 2
    assert "control character" in result.stderr and "secret-key" not in result.stderr
