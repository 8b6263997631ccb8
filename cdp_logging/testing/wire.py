"""The local collector's requests and answers: what it records, bodies decoded (gzip, JSON),
errors, planned failures."""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..constants import CALL_TYPES


# One logger for the collector, whichever of its modules logs.
logger = logging.getLogger("cdp_logging.testing.collector")


# The API's limits, call types and paths are named once, in constants.py.
SINGLE_CALL_PATHS = {f"/v1/{call_type}": call_type for call_type in CALL_TYPES}


STRICT_MODE_HEADER = "X-Strict-Mode"


TRUE_HEADER_VALUES = frozenset({"1", "true", "yes"})


# The most of a refused body read (and thrown away) after the answer, so that a client still
# sending sees the answer rather than a reset connection; past it the connection is closed.
MAX_DISCARD_BYTES = 64 * 1024 * 1024


#: The ``code`` of an error answer, by status (the official Python client reads ``code`` and
#: ``message`` from every error answer, and retries one it cannot parse).
_ERROR_CODES = {
    400: "invalid_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 408: "request_timeout", 411: "length_required",
    413: "payload_too_large", 415: "unsupported_media_type", 429: "too_many_requests",
    500: "internal_error", 502: "bad_gateway", 503: "unavailable", 504: "gateway_timeout",
}


def error_body(status: int, lines: list[str], **more: Any) -> bytes:
    """An error answer's JSON: ``code`` and ``message`` (what clients read), and the API's
    documented ``{"meta": {"errors": [...]}}``."""
    code = _ERROR_CODES.get(status, "client_error" if status < 500 else "server_error")
    message = lines[0] if len(lines) == 1 else f"{len(lines)} errors; the first: {lines[0]}" if lines else code
    return json_bytes({"code": code, "message": message, "meta": {"errors": lines}, **more})


@dataclass(frozen=True)
class ReceivedRequest:
    """What the collector saw of one HTTP request and how it answered.

    ``body`` holds the bytes as sent (still gzip-compressed if they were), ``payload`` the decoded
    JSON (None when it could not be decoded), ``errors`` the error lines of the answer. ``headers``
    keeps the names as sent; `header` looks one up regardless of case. The headers and body are left
    out of the repr, so that a write key in ``Authorization`` does not end up in test output::

        # after a client posted one gzip-compressed batch
        [request] = collector.requests
        assert (request.path, request.status) == ("/v1/batch", 200)
        assert request.header("content-encoding") == "gzip"
    """

    method: str
    path: str
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)
    payload: Any = field(repr=False)
    status: int
    errors: tuple[str, ...]
    time: float
    client_address: tuple[str, int]

    def header(self, name: str) -> str | None:
        """The value of header ``name``, matched without regard to case, or None::

        assert request.header("content-type") == "application/json"
        """
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None


class WireResponse(NamedTuple):
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False
    errors: tuple[str, ...] = ()
    #: Refused before its messages were looked at (auth, path, framing, encoding): its body
    #: is not kept.
    refused: bool = False


class Decoded(NamedTuple):
    payload: Any
    size: int
    error: WireResponse | None


@dataclass
class PlannedFailure:
    status: int
    body: bytes
    content_type: str
    retry_after: str | None
    remaining: int


class BodyTooLarge(Exception):
    pass


def gunzip(body: bytes, limit: int) -> bytes:
    """Decompress a gzip body, refusing to produce more than ``limit`` bytes (gzip bombs)."""
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = decompressor.decompress(body, limit + 1)
    except zlib.error as error:
        raise ValueError(str(error)) from None
    if len(data) > limit:
        raise BodyTooLarge
    if not decompressor.eof:
        raise ValueError("the gzip stream is truncated")
    if decompressor.unused_data:
        raise ValueError("there is data after the end of the gzip stream")
    return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# Python's json accepts NaN and Infinity, which are not JSON and which the API refuses.
JSON_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def error_response(status: int, text: str, headers: tuple[tuple[str, str], ...] = ()) -> WireResponse:
    """A refusal of the request as a whole; its body is not kept."""
    # The API documents its error answers as {"meta": {"errors": ["..."]}}; clients read
    # "code" and "message".
    body = error_body(status, [text])
    return WireResponse(status, body, headers=headers, errors=(text,), refused=True)


def message_count(payload: Any) -> int:
    """How many messages a kept payload holds (a single call's, or a batch's); 0 for none."""
    if payload is None:
        return 0
    if type(payload) is dict and type(payload.get("batch")) is list:
        return len(payload["batch"])
    return 1


def closing_error(status: int, text: str) -> WireResponse:
    return error_response(status, text)._replace(close=True)


def header_value(headers: Mapping[str, str], name: str, default: str) -> str:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return default


def planned_failure(
    status: int,
    retry_after: float | str | None,
    body: bytes | str | Mapping[str, Any] | None,
    remaining: int,
) -> PlannedFailure:
    if body is None:
        encoded, content_type = (
            error_body(status, [f"failure planned by the test: status {status}"]),
            "application/json",
        )
    elif isinstance(body, bytes):
        encoded, content_type = body, "application/octet-stream"
    elif isinstance(body, str):
        encoded, content_type = body.encode("utf-8"), "text/plain; charset=utf-8"
    else:
        encoded, content_type = json_bytes(dict(body)), "application/json"
    if isinstance(retry_after, float) and retry_after.is_integer():
        retry_after = int(retry_after)
    return PlannedFailure(
        status=status,
        body=encoded,
        content_type=content_type,
        retry_after=None if retry_after is None else str(retry_after),
        remaining=remaining,
    )
