"""The spool's limits, its schema, and what its parts tell each other."""

from __future__ import annotations


import logging
import os
import secrets
import socket
import sqlite3
from dataclasses import dataclass
from typing import Literal
from collections.abc import Iterator

import orjson

from ...errors import SpoolError


SpoolFull = Literal["drop_oldest", "drop_newest"]


logger = logging.getLogger("cdp_logging")


#: At most this many events go into one transaction; the queue wakes the writer at this count.
WRITE_EVENTS = 1000


#: What a row takes besides its event's bytes (rowid, lease columns, cell header), at least.
ROW_OVERHEAD = 40


#: Pages of an empty spool (the schema, and the roots of the events, claims, totals and
#: quarantine tables).
EMPTY_PAGES = 5


#: ``PRAGMA application_id`` of a spool ("CDPS"): another program's database is never used.
APPLICATION_ID = 0x43445053


SCHEMA_VERSION = 1


#: Seconds a statement waits for another process's transaction before giving up for now.
BUSY_TIMEOUT = 5.0


#: A lease outlives the longest a send may take (one timeout past max_retry_time) by this.
LEASE_MARGIN = 30.0


#: While closing, no request starts in the last this many seconds of the close's budget (at
#: most half of it): the one in flight has that long to be answered and its rows deleted.
#: A request cut at the deadline leaves its rows in the spool, and the next process sends
#: them again (the same messageIds), though the API may have taken them.
ANSWER_RESERVE = 1.0


#: A closing sender's request ends this long before the close's deadline, so that the rows
#: of an answer that came in time are deleted before close() stops waiting.
ACK_MARGIN = 0.15


#: How often the sender looks again while a flush or close waits on rows another process holds.
FLUSH_POLL = 0.05


#: The WAL is cut back to this many bytes after a checkpoint.
WAL_SIZE_LIMIT = 4_000_000


#: At most this many ids in one ``IN (...)`` list (SQLite's oldest limit is 999 variables).
IDS_PER_STATEMENT = 500


#: The quarantine keeps the newest this many rows set aside, each cut to its first
#: QUARANTINE_ROW_BYTES (enough to see what they were; small enough to stay in their page, so
#: that what they take of the file is known): about 100 KB at most, which ``spool_max_bytes``
#: does not count (it bounds the events waiting to be sent). Rows the spool never wrote (a
#: damaged disk, another program) must not crowd out the events.
QUARANTINE_ROWS = 100
QUARANTINE_ROW_BYTES = 1_000


#: HTTP statuses by which the API refuses the content: a batch is split to find the event at
#: fault, and an event refused alone is removed, as it would be refused forever.
REFUSED_STATUSES = frozenset({400, 413, 422})


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, data BLOB NOT NULL)",
    # A lease on the events with ids first..last (whoever holds the spans in between).
    """CREATE TABLE IF NOT EXISTS claims (
        holder TEXT NOT NULL,
        first INTEGER NOT NULL,
        last INTEGER NOT NULL,
        until REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS totals (
        id INTEGER PRIMARY KEY CHECK (id = 0),
        events INTEGER NOT NULL,
        bytes INTEGER NOT NULL
    )""",
    "INSERT OR IGNORE INTO totals VALUES (0, 0, 0)",
    # Rows that were not what the spool writes (an event's JSON bytes), set aside so that
    # the rows behind them are still sent; kept for someone to look at.
    """CREATE TABLE IF NOT EXISTS quarantine (
        id INTEGER PRIMARY KEY,
        data,
        problem TEXT NOT NULL,
        at REAL NOT NULL
    )""",
)


#: The first bytes of every SQLite database file.
SQLITE_HEADER = b"SQLite format 3\x00"


#: A corrupt file is replaced by a fresh spool at most this many times in one process.
FRESH_SPOOLS = 3


#: How long a fork waits for a spool's current transaction to end.
FORK_WAIT = 2 * BUSY_TIMEOUT


class SpoolBusy(Exception):
    """Another process held the file longer than the busy timeout: try again later."""


class _Garbage(Exception):
    """The file at the spool's path is not a SQLite database; ``file_id`` is its (device, inode)."""

    def __init__(self, problem: str, file_id: tuple[int, int]) -> None:
        super().__init__(problem)
        self.file_id = file_id


class SpoolUnavailable(Exception):
    """The spool cannot be used any more; ``error`` says why (it has been reported once)."""

    def __init__(self, error: SpoolError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class Quarantined:
    """Rows :meth:`SpoolFile.claim` set aside as unreadable: how many, and the first's story."""

    count: int
    first: str


@dataclass(frozen=True)
class Appended:
    """What :meth:`SpoolFile.append` did: rows ``first_id`` onward hold the ``written``
    messages from index ``start`` of those given; the others were dropped, as were the rows
    ``dropped_ids`` (the oldest, deleted to make room)."""

    first_id: int
    start: int
    written: int
    dropped_ids: list[int]


def _lease_over(row_id: int, leased: list[tuple[int, int]]) -> tuple[int, int] | None:
    """The leased span holding ``row_id``, if any."""
    for first, last in leased:
        if first <= row_id <= last:
            return first, last
    return None


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), IDS_PER_STATEMENT):
        yield ids[start:start + IDS_PER_STATEMENT]


def _unreadable(data: object) -> str | None:
    """Why a row's data is not an event as the spool writes them (JSON bytes of an object)."""
    if not isinstance(data, bytes):
        return f"its data is {type(data).__name__}, not the bytes of an event"
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError as err:
        return f"its data is not JSON ({err})"
    if not isinstance(event, dict):
        return f"its data is JSON {type(event).__name__}, not an event"
    return None


def holder_identity() -> str:
    """This process in the rows it claims: host, pid namespace, pid, the process's start time
    (telling a reused pid apart) and a random token (telling clients apart)."""
    pid = os.getpid()
    stat = _process_stat(pid)
    started = stat[1] if stat else "?"
    return "|".join((socket.gethostname(), _pid_namespace(), str(pid), started, secrets.token_hex(4)))


def holder_is_gone(holder: str) -> bool:
    """True when the process named by ``holder`` surely no longer runs: it shares this host
    and pid namespace, and its pid is gone, a zombie, or another process's. Where that cannot
    be told (another host, no /proc), False: its lease runs out instead."""
    try:
        host, namespace, pid, started, _token = holder.rsplit("|", 4)
    except ValueError:
        return False
    if host != socket.gethostname() or not namespace or namespace != _pid_namespace() or started == "?":
        return False
    try:
        stat = _process_stat(int(pid))
    except ValueError:
        return False
    if stat is None:
        return True
    state, start = stat
    if state == "?":
        return False
    return state in ("Z", "X") or start != started


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _process_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) of a process from /proc, None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read().decode("ascii", "replace")
    except FileNotFoundError:
        return None
    except OSError:
        return ("?", "?")
    # The command name (field 2) may hold spaces and parentheses: split after its last ")".
    fields = text[text.rfind(")") + 2:].split()
    return (fields[0], fields[19]) if len(fields) > 19 else ("?", "?")


def _error_code(err: BaseException) -> int | None:
    code = getattr(err, "sqlite_errorcode", None)  # Python 3.11+
    return None if code is None else code & 0xFF


def _is_busy(err: BaseException) -> bool:
    if not isinstance(err, sqlite3.OperationalError):
        return False
    code = _error_code(err)
    if code is not None:
        return code in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED
    text = str(err)
    return "locked" in text or "busy" in text


class SpoolDiskFull(SpoolBusy):
    """The disk (or the file system's quota) is full: nothing can be written for now. The
    events are sent from memory meanwhile, and the spool is used again once a write works."""


def _is_corrupt(err: BaseException) -> bool:
    code = _error_code(err)
    if code is not None:
        return code in (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
    # Python 3.10 raises both as the base DatabaseError, which nothing else maps to.
    return type(err) is sqlite3.DatabaseError


def trim_quarantine(db: sqlite3.Connection) -> None:
    """Keep the newest QUARANTINE_ROWS rows of the quarantine, each its first
    QUARANTINE_ROW_BYTES (a spool of an earlier release kept every row whole, for ever)."""
    db.execute("DELETE FROM quarantine WHERE id NOT IN "
               "(SELECT id FROM quarantine ORDER BY at DESC, id DESC LIMIT ?)", (QUARANTINE_ROWS,))
    db.execute("UPDATE quarantine SET data = substr(data, 1, ?) WHERE length(data) > ?",
               (QUARANTINE_ROW_BYTES, QUARANTINE_ROW_BYTES))


def _varint_length(value: int) -> int:
    """Bytes of SQLite's variable-length integer for ``value`` (>= 0)."""
    length = 1
    while value >= 1 << (7 * length) and length < 9:
        length += 1
    return length


#: Bytes of a row's id in its cell, at most: ids below 2**35 (34 billion events written).
_ROWID_BYTES = 5


def row_file_bytes(length: int, page_size: int) -> float:
    """What a row of an event of ``length`` bytes takes of the file once written, at most,
    by SQLite's file format: its share of the table's leaf page (rows of this size appended
    one after another fill each page with as many whole cells as fit, no more) plus its
    overflow pages. A row too large for half a page takes a page of its own: twice its
    bytes, nearly, for rows just over that size."""
    usable = page_size  # a spool reserves no bytes at the end of its pages
    payload = 2 + _varint_length(2 * length + 12) + length  # record header: size, NULL id, BLOB
    max_local = usable - 35
    overflow_pages = 0
    local = payload
    if payload > max_local:
        min_local = (usable - 12) * 32 // 255 - 23
        local = min_local + (payload - min_local) % (usable - 4)
        if local > max_local:
            local = min_local
        overflow_pages = -(-(payload - local) // (usable - 4))
    cell = _varint_length(payload) + _ROWID_BYTES + local + (4 if overflow_pages else 0)
    per_page = max(1, (usable - 8) // (cell + 2))  # the leaf's header, a 2-byte pointer a cell
    # Each leaf page has a cell in a page above it: a child's number, an id, a pointer.
    leaf_share = (1 / per_page) * (1 + (4 + 9 + 2) / (usable - 12))
    return page_size * (leaf_share + overflow_pages)
