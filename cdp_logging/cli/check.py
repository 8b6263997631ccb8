"""``cdp-logging check``: log lines read back and matched against the rules, each shown with the
event it makes or why the API would refuse it."""

from __future__ import annotations

import argparse
import http
import io
import json
import logging
import os
import re
import sys
from typing import Any, TextIO
from collections.abc import Iterable, Iterator

from ..config import VARIABLES, handler_from_environment, read_environment
from ..constants import ENV_RULES
from ..constants import ENV_WRITE_KEY
from ..errors import ConfigurationError, InvalidEventError
from ..handler import CDPHandler
from ..messages import build_message, encode_message
from ..privacy import leaving_step
from ..redaction import Redactor, redact_keys_from_environment
from ..rules import LinearPattern, faults_of, linear_pattern
from .common import EXIT_CONFIGURATION, EXIT_REJECTED, print_error, environment_help
from .run import quiet_without_write_key


#: The format of ``logging.basicConfig()``'s lines; --format for others.
DEFAULT_LINE_FORMAT = logging.BASIC_FORMAT


_FORMAT_FIELD = re.compile(r"%\((?P<name>\w+)\)[-#0 +]*\d*(?:\.\d+)?[a-zA-Z]")


#: How a field of a log line looks; padding (``%(levelname)-8s``) is allowed around words.
_FIELD_PATTERNS = {
    "message": r"(?P<{}>.*)",
    "levelname": r"\s*(?P<{}>\w+)\s*",
    "name": r"\s*(?P<{}>\S+?)\s*",
}


def add_check(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "check", help="check the configuration and show what log lines would send",
        description="Check the environment variables and the rules file as `run` would, then "
                    "read log lines (standard input, or FILE) and show the call each would "
                    "make. Nothing is sent. Exit status: 0 when the configuration is valid, 1 "
                    "when some lines would make events the API refuses, 2 when the "
                    "configuration cannot work.",
        epilog=environment_help(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # Lines are read as UTF-8, each byte that is not (0xff, a file name in Latin-1) read as
    # U+FFFD, as rules match a message in the application.
    parser.add_argument("file", nargs="?", default=None,
                        type=argparse.FileType("r", encoding="utf-8", errors="replace"),
                        metavar="FILE", help="log lines to try (default: standard input)")
    parser.add_argument("--format", default=DEFAULT_LINE_FORMAT, metavar="FORMAT",
                        help="the %%-style logging format of the lines (default: %(default)r, "
                             "what logging.basicConfig() writes)")
    parser.add_argument("--logger", default="root",
                        help="logger of lines whose format has no %%(name)s (default: root)")
    parser.add_argument("--level", default="INFO",
                        help="level of lines whose format has no %%(levelname)s (default: INFO)")
    parser.add_argument("--json", action="store_true",
                        help="write one JSON object per line, with the full message")
    parser.set_defaults(command=check)


def check(arguments: argparse.Namespace) -> int:
    """Validate the configuration; show what each sample line would send."""
    out = sys.stdout
    try:
        environ = dict(os.environ)
        quiet_without_write_key(environ)  # the description says it
        rules = read_environment(environ).get("rules")
        faults = [] if rules is None else faults_of(rules)
        if faults:
            # Every one, where an application would skip each with a warning or an error.
            for fault in faults:
                print_error(f"{ENV_RULES}={fault}")
            return EXIT_CONFIGURATION
        handler = handler_from_environment(environ)
        line_pattern = _line_pattern(arguments.format)
    except ConfigurationError as err:
        print_error(str(err))
        return EXIT_CONFIGURATION
    try:
        if not arguments.json:
            _describe_configuration(handler, out)
        lines = _sample_lines(arguments.file)
        if lines is None:
            if not arguments.json:
                out.write("\nNo sample lines: pipe log lines to standard input (or name a file) "
                          "to see what they would send.\n")
            return 0
        sample = Sample(handler, line_pattern, arguments, out, leaving=_leaving(environ))
        for number, line in enumerate(lines, 1):
            sample.try_line(number, line.rstrip("\r\n"))
        sample.summarise()
        return EXIT_REJECTED if sample.rejected else 0
    finally:
        handler.client.close_and_flush(timeout=0)


def _line_pattern(line_format: str) -> LinearPattern:
    """The pattern of a log line in ``line_format``: RE2, so that however many fields, a
    line costs time linear in its length (a line is text an attacker may write)."""
    parts = []
    seen: set[str] = set()
    position = 0
    for field in _FORMAT_FIELD.finditer(line_format):
        parts.append(re.escape(line_format[position:field.start()].replace("%%", "%")))
        position = field.end()
        name = field["name"]
        if name in seen:
            parts.append(r"(?:.*?)")  # RE2 has no backreferences: a repeat is only its shape
            continue
        seen.add(name)
        parts.append(_FIELD_PATTERNS.get(name, r"(?P<{}>.*?)").format(name))
    parts.append(re.escape(line_format[position:].replace("%%", "%")))
    if "message" not in seen:
        raise ConfigurationError(f"--format {line_format!r} has no %(message)s")
    return linear_pattern("".join(parts))


def _sample_lines(file: TextIO | None) -> Iterable[str] | None:
    if file is not None:
        return file
    if sys.stdin is None or sys.stdin.isatty():
        return None
    binary = getattr(sys.stdin, "buffer", None)
    if binary is None:
        return sys.stdin
    return io.TextIOWrapper(binary, encoding="utf-8", errors="replace")


def _describe_configuration(handler: CDPHandler, out: TextIO) -> None:
    client = handler.client
    out.write("cdp-logging check: the configuration is valid; nothing is sent.\n")
    for variable in VARIABLES:
        value = os.environ.get(variable.name, "").strip()
        if variable.name == ENV_WRITE_KEY:
            shown = "set (not shown)" if value else "not set: nothing would be sent"
        elif variable.name == ENV_RULES:
            rules = handler.rules
            shown = (f"{rules.source}: {len(rules)} rule{'' if len(rules) == 1 else 's'}"
                     if rules is not None
                     else "not set: only records with a payload in extra are sent")
        elif value:
            shown = value
        else:
            continue
        out.write(f"  {variable.name:<22} {shown}\n")
        if variable.name == ENV_RULES and handler.rules is not None:
            for line in handler.rules.matching_limits():
                out.write(f"  {'':<22} {line}\n")
    if not os.environ.get("CDP_HOST", "").strip():
        out.write(f"  {'CDP_HOST':<22} {client.host} (default)\n")


def _leaving(environ: dict[str, str]) -> tuple[Redactor | None, Any]:
    """The redaction and the step before encoding that ``run`` would use, from the environment."""
    keys = redact_keys_from_environment(environ)
    step = leaving_step(keys, read_environment(environ).get("before_send"),
                        lambda entry, key: None, lambda: None, lambda error: None)
    return (Redactor(keys, lambda entry, key: None) if keys else None), step


class Sample:
    """Sample lines tried against the rules; counts what they would do."""

    def __init__(self, handler: CDPHandler, line_pattern: LinearPattern,
                 arguments: argparse.Namespace, out: TextIO,
                 leaving: tuple[Redactor | None, Any] = (None, None)) -> None:
        self.redactor, self.step = leaving
        self.dropped = 0
        self.rules = handler.rules
        self.level = handler.level
        self.line_pattern = line_pattern
        self.arguments = arguments
        self.json = arguments.json
        self.out = out
        self.lines = self.sent = self.rejected = self.unmatched = self.unreadable = 0
        self.by_template = False
        if not self.json:
            out.write(f"\nSample lines, read in the format {arguments.format!r} "
                      "(arguments read back from text are strings unless the placeholder "
                      "is numeric, as %d or %f):\n")

    def try_line(self, number: int, line: str) -> None:
        if not line.strip():
            return
        self.lines += 1
        parsed = self.line_pattern.fullmatch(line)
        levelno = _level_number(parsed["levelname"].strip()) if parsed and "levelname" in \
            self.line_pattern.groupindex else _level_number(self.arguments.level)
        if parsed is None or levelno is None:
            self.unreadable += 1
            why = (f"not in the format {self.arguments.format!r} (see --format)" if parsed is None
                   else "unknown level name")
            self._show(number, line, {"outcome": "unreadable", "reason": why}, f"skipped: {why}")
            return
        logger = parsed["name"].strip() if "name" in self.line_pattern.groupindex else self.arguments.logger
        found = None
        if self.rules is not None and levelno >= self.level:
            for text in _as_logged(parsed["message"]):
                found = self.rules.find_in_text(logger, levelno, text)
                if found is not None:
                    break
        if found is None:
            self.unmatched += 1
            self._show(number, line, {"outcome": "unmatched"}, "no rule matches: nothing is sent")
            return
        matched, record = found
        self.by_template = self.by_template or matched.rule.message is not None
        rule = f"rule {matched.rule.number} ({matched.rule.describe()})"
        try:
            call, fields = matched.call(record)
            built = build_message(call, **fields)
            # What leaves the process: redacted, then before_send, as when running.
            redacted = [] if self.redactor is None else self.redactor.redacted_paths(built)
            message = built if self.step is None else self.step(built)
            if message is not None:
                encode_message(message)
        except InvalidEventError as err:
            self.rejected += 1
            self._show(number, line, {"outcome": "rejected", "rule": matched.rule.number,
                                      "error": str(err)},
                       f"{rule} makes an event the API would refuse: {err}")
            return
        if message is None:
            self.dropped += 1
            self._show(number, line, {"outcome": "dropped", "rule": matched.rule.number, "call": call,
                                      "redacted": redacted},
                       f"{rule} makes {call}, which before_send drops: nothing is sent")
            return
        self.sent += 1
        shown = {key: value for key, value in message.items()
                 if key not in ("type", "messageId", "timestamp", "context")}
        marked = f" ({', '.join(redacted)} redacted)" if redacted else ""
        self._show(number, line, {"outcome": "sent", "rule": matched.rule.number, "call": call,
                                  "message": message, "redacted": redacted},
                   f"{rule} sends {call} {json.dumps(shown, default=str)}{marked}")

    def _show(self, number: int, line: str, result: dict[str, Any], text: str) -> None:
        if self.json:
            self.out.write(json.dumps({"line": number, "text": line, **result}, default=str) + "\n")
        else:
            self.out.write(f"{number:>4}  {line}\n      -> {text}\n")

    def summarise(self) -> None:
        if self.json:
            return
        self.out.write(
            f"\n{self.lines} lines: {self.sent} would send an event, {self.rejected} would be "
            f"refused, {self.unmatched} match no rule, {self.unreadable} could not be read"
            + (f", {self.dropped} dropped by before_send" if self.dropped else "") + ".\n"
            "Each event sent also carries a messageId, a timestamp and context.library.\n"
        )
        if self.by_template:
            self.out.write(
                "Message rules were matched here by reading the text back. When the application "
                "runs they match\nonly log calls whose message in the code is exactly the rule's, "
                "placeholders included\n(%s is not %d): find it in the application's source, or "
                "use a regex rule.\n"
            )


#: A line that ends in an HTTP status and its phrase ("200 OK").
_STATUS_PHRASE = re.compile(r"(?P<logged>.* (?P<code>[1-5]\d\d)) (?P<phrase>[A-Z][A-Za-z' -]*)")


def _as_logged(message: str) -> Iterator[str]:
    """The message as read, then as the application may have logged it when a console
    decorated it: uvicorn pads its level prefix ("INFO:     ") and writes the status of an
    access record with its phrase ("200 OK"), which the logged message does not have."""
    yield message
    stripped = message.strip()
    if stripped != message:
        yield stripped
    found = _STATUS_PHRASE.fullmatch(stripped)
    if found is not None:
        try:
            phrase = http.HTTPStatus(int(found["code"])).phrase
        except ValueError:  # not a status Python knows: not one a console adds a phrase to
            return
        if phrase == found["phrase"]:
            yield found["logged"]


def _level_number(name: str) -> int | None:
    if name.isdigit():
        return int(name)
    level = logging.getLevelName(name.upper())
    return level if isinstance(level, int) else None
