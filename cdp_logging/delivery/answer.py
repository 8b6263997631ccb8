"""Reading an HTTP/1.1 answer within bounds: httptools (llhttp) parses it, the head, body and
inflated body each have a limit, and what breaks HTTP is a :class:`ProtocolError`."""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Mapping

try:
    import httptools
except ImportError:  # pragma: no cover - then HTTPTransport sends through requests
    httptools = None  # type: ignore[assignment]

from ..errors import ProtocolError

#: Whether answers can be parsed here (httptools imported); without it requests sends.
PARSER_AVAILABLE = httptools is not None


#: The most response heads may take in all (interim 1xx answers included); the API's are a
#: few hundred bytes.
MAX_HEAD_BYTES = 64 * 1024


#: The most of an answer's body that is read and kept; the rest of a longer one is not read,
#: and its connection is closed. The transport keeps a few hundred characters of it.
MAX_BODY_BYTES = 64 * 1024


#: The most a compressed answer is inflated to (the library asks for none, but a server may
#: send one anyway).
MAX_INFLATED_BYTES = 64 * 1024


class Headers(Mapping[str, str]):
    """An answer's headers: names as the server wrote them, looked up whatever their case.

    Decoded on first use: the library reads none of a successful answer's headers.
    """

    __slots__ = ("_by_name", "_raw")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw
        self._by_name: dict[str, tuple[str, str]] | None = None

    def _names(self) -> dict[str, tuple[str, str]]:
        by_name = self._by_name
        if by_name is None:
            by_name = {}
            for raw_name, raw_value in self._raw:
                name = raw_name.decode("latin-1")
                key = name.lower()
                value = raw_value.decode("latin-1").strip()
                if key in by_name:
                    value = f"{by_name[key][1]}, {value}"
                by_name[key] = (name, value)
            self._by_name = by_name
        return by_name

    def __getitem__(self, name: str) -> str:
        return self._names()[name.lower()][1]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._names()

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._names().values())

    def __len__(self) -> int:
        return len(self._names())

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


class Answer:
    """A parsed response: status, headers and body (at most MAX_BODY_BYTES)."""

    __slots__ = ("body", "content_encoding", "content_type", "headers", "status")

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes, *,
                 content_type: str | None = None, content_encoding: str | None = None) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        # Given by the parser, which sees them pass: looking them up would decode every header.
        self.content_type = headers.get("content-type", "") if content_type is None else content_type
        self.content_encoding = (headers.get("content-encoding", "") if content_encoding is None
                                 else content_encoding)

    @property
    def text(self) -> str:
        """The body as text, in the charset the server named (UTF-8 if none or unusable)."""
        body = self.body
        if not body:
            return ""
        if self.content_encoding.lower() in ("gzip", "deflate"):
            # Not asked for (Accept-Encoding: identity), but sent: inflated within a bound,
            # so a small bomb cannot take memory.
            try:
                body = zlib.decompressobj(47).decompress(body, MAX_INFLATED_BYTES)  # 47: gzip or zlib header
            except zlib.error:
                pass
        charset = "utf-8"
        for parameter in self.content_type.split(";")[1:]:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "charset" and value.strip():
                charset = value.strip().strip('"')
        try:
            return body.decode(charset, "replace")
        except (LookupError, UnicodeError, ValueError, TypeError):
            # An unknown charset, a bytes-to-bytes codec, or one that fails even with
            # "replace" (punycode): the text is only for the error report.
            return body.decode("utf-8", "replace")


class AnswerReader:
    """One answer as httptools parses it: the callbacks keep the final answer's status,
    headers and (bounded) body; interim 1xx answers are passed over.

    The answer is the first complete one: bytes past it (a second answer in the same read, a
    body after a 304) only mark the connection out of step (``extra``), so that it is closed;
    they never change the status, headers or body already taken, and a malformed tail is not
    an error once the answer is complete."""

    __slots__ = ("body", "body_kept", "complete", "content_encoding", "content_type", "eof_framed",
                 "extra", "head_bytes", "headers", "headers_done", "keep_alive", "parser", "status",
                 "truncated")

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.body_kept = 0
        self.head_bytes = 0
        self.status = 0
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.eof_framed = False
        self.truncated = False
        self.extra = False
        self.content_type = ""
        self.content_encoding = ""

    # httptools' callbacks.
    def on_message_begin(self) -> None:
        if self.complete:
            self.extra = True  # bytes past the answer: the connection is out of step

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.complete:
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.complete:
            return
        parser = self.parser
        status = parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.headers = []  # interim (100 Continue, 103 Early Hints): the answer follows
            return
        self.status = status
        self.headers_done = True
        self.keep_alive = parser.should_keep_alive()
        length = chunked = False
        for name, value in self.headers:
            lowered = name.lower()
            if lowered == b"content-length":
                length = True
            elif lowered == b"transfer-encoding":
                chunked = value.lower().rstrip().endswith(b"chunked")
            elif lowered == b"content-type":
                self.content_type = value.decode("latin-1")
            elif lowered == b"content-encoding":
                self.content_encoding = value.decode("latin-1").strip()
        self.eof_framed = not length and not chunked and status not in (204, 304)

    def on_body(self, data: bytes) -> None:
        if self.complete:
            return
        room = MAX_BODY_BYTES - self.body_kept
        if len(data) > room:
            data = data[:room]
            self.truncated = True
        if data:
            self.body.append(data)
            self.body_kept += len(data)

    def on_message_complete(self) -> None:
        if self.headers_done:
            self.complete = True

    def feed(self, data: bytes) -> None:
        """Parse the next bytes; raises ProtocolError for anything that is not strict
        HTTP/1.x or heads longer than MAX_HEAD_BYTES."""
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserUpgrade, httptools.HttpParserError) as err:
            if self.complete:  # what follows a complete answer: it stands, the connection goes
                self.extra = True
                return
            if isinstance(err, httptools.HttpParserUpgrade):
                raise ProtocolError("the server switched protocols (101)") from None
            raise ProtocolError(f"malformed answer: {err}") from None
        if not self.headers_done:
            self.head_bytes += len(data)
            if self.head_bytes > MAX_HEAD_BYTES:
                raise ProtocolError(f"response heads over {MAX_HEAD_BYTES} bytes")

    def answer(self) -> Answer:
        return Answer(self.status, Headers(self.headers), b"".join(self.body),
                      content_type=self.content_type, content_encoding=self.content_encoding)
