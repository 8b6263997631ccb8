"""The durable spool: queued events kept in a local SQLite file until the API acknowledged them.

With ``spool_path``, the batcher's worker writes what the application queued to the spool at
least every ``spool_sync_interval`` seconds, in one transaction (:meth:`Spool.write`), and a
sender thread of its own claims the oldest rows, posts them and deletes them once the API
acknowledged them. A request that hangs or an outage never holds up the writing, so what a
killed process loses is only what it queued in its last ``spool_sync_interval``.

Several processes may share one file (SQLite in WAL mode, short transactions). A row is sent
by the process holding a lease on it: a row of the ``claims`` table naming the holder, the
span of ids it took and when the lease ends. A lease ends when its rows are acknowledged or
released, when its holder is seen to be gone (same host and pid namespace: its pid no longer
runs, or runs another program), or at the latest ``lease`` seconds after the claim. What a
process leaves behind, the next one to open the file sends.

The application's threads never touch the file: they only append to the in-memory queue, as
without a spool. Only :meth:`Spool.close` does, at the end (and :meth:`Spool.flush` where no
thread may start, at interpreter exit).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import sqlite3
import stat
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from collections.abc import Callable, Iterator

import orjson

from ..batcher import Item, item_bytes, message_ids, own_thread
from ...errors import DeliveryError, SpoolError
from ..transport import Outcome

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
#: How often the sender looks again while a flush or close waits on rows another process holds.
FLUSH_POLL = 0.05
#: The WAL is cut back to this many bytes after a checkpoint.
WAL_SIZE_LIMIT = 4_000_000
#: At most this many ids in one ``IN (...)`` list (SQLite's oldest limit is 999 variables).
IDS_PER_STATEMENT = 500
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

#: Connections a forked child inherited from a fork that skipped Python's fork handlers:
#: never used, never closed (SQLite's state for them belongs to the parent), only kept from
#: the garbage collector.
_inherited_connections: list[sqlite3.Connection] = []
#: Every SpoolFile, so that each closes its connection before a fork.
_files: weakref.WeakSet[SpoolFile] = weakref.WeakSet()


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


class SpoolFile:
    """One spool database, opened on first use: each method is one short transaction.

    One connection serves the writer and the sender in turn, under a lock. Raises
    :class:`SpoolBusy` when another process held the file too long (or a corrupt file was
    just moved aside: a fresh one is made on the next call, and reported to ``on_replaced``),
    and :class:`SpoolUnavailable` once the file cannot be used; after that, every call raises
    it again.

    The file, its folder and SQLite's ``-wal`` and ``-shm`` files are made 0600 (0700)
    whatever the umask; a link at any of those names, a file of another user's or one others
    may write is refused, left as it is.

    Example::

        spool = SpoolFile("/var/lib/app/events.db", max_bytes=100_000_000,
                          full="drop_oldest", lease=100.0)
        spool.append([b'{"type":"track",...}'])
        rows = spool.claim(limit=20, budget=500_000)
        spool.acknowledge([row_id for row_id, _ in rows])
    """

    def __init__(self, path: str | os.PathLike[str], *, max_bytes: int, full: SpoolFull,
                 lease: float) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.max_bytes = max_bytes
        self.full = full
        self.lease = lease
        self.unusable: SpoolError | None = None
        #: Told when a corrupt file was moved aside and a fresh spool made in its place.
        self.on_replaced: Callable[[SpoolError], None] | None = None
        self._replaced: list[SpoolError] = []
        self._fresh_spools = 0
        #: Rows claim() set aside as unreadable since the last call of :meth:`take_quarantined`.
        self._quarantined: list[tuple[int, str]] = []
        self._init_state()
        _files.add(self)

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._held_for_fork = False
        self._db: sqlite3.Connection | None = None
        self._page_size = 4096
        #: (device, inode) of the file opened: a file someone put in its place is never moved.
        self._opened: tuple[int, int] | None = None
        self._closed = False
        #: Who this process is, in the rows it claims.
        self.holder = holder_identity()

    # -- the writer's side ------------------------------------------------------------------

    def append(self, messages: list[bytes]) -> Appended:
        """Add ``messages`` in order, in one transaction. When they do not fit, ``full`` says
        what goes: "drop_oldest" deletes the oldest rows nobody is sending (and, if that is not
        enough, the oldest of ``messages``); "drop_newest" writes only the first that fit.

        Room is measured in the pages the events take in the file: the bytes counted (each
        message and ROW_OVERHEAD) times what the pages in use show a counted byte to take."""
        sizes = [len(message) + ROW_OVERHEAD for message in messages]
        with self._transaction() as db:
            counted = db.execute("SELECT bytes FROM totals").fetchone()[0]
            pages = (db.execute("PRAGMA page_count").fetchone()[0]
                     - db.execute("PRAGMA freelist_count").fetchone()[0] - EMPTY_PAGES)
            # Pages are never quite full: a byte counted takes this much of the file.
            spread = max(1.0, pages * self._page_size / counted) if counted else 1.0
            limit = self.max_bytes / spread
            room = limit - counted
            start, end = 0, len(messages)
            dropped: list[int] = []
            if self.full == "drop_oldest":
                incoming = sum(sizes)
                while start < end and incoming > limit:
                    incoming -= sizes[start]
                    start += 1
                if incoming > room:
                    dropped, freed = self._oldest_rows(db, incoming - room)
                    self._delete(db, dropped, freed)
                    room += freed
                while start < end and incoming > room:  # the rest is being sent: no room for these
                    incoming -= sizes[start]
                    start += 1
            else:
                end = 0
                while end < len(sizes) and sizes[end] <= room:
                    room -= sizes[end]
                    end += 1
            db.executemany("INSERT INTO events (data) VALUES (?)", [(m,) for m in messages[start:end]])
            last_id = db.execute("SELECT last_insert_rowid()").fetchone()[0]
            db.execute("UPDATE totals SET events = events + ?, bytes = bytes + ?",
                       (end - start, sum(sizes[start:end])))
        return Appended(last_id - (end - start) + 1, start, end - start, dropped)

    def _oldest_rows(self, db: sqlite3.Connection, needed: int) -> tuple[list[int], int]:
        """The oldest rows nobody is sending that free at least ``needed`` bytes (or all)."""
        leased = self._leases(db)
        ids: list[int] = []
        freed = 0
        cursor = db.execute("SELECT id, length(data) FROM events ORDER BY id")
        try:
            for row_id, size in cursor:
                if _lease_over(row_id, leased) is None:
                    ids.append(row_id)
                    freed += size + ROW_OVERHEAD
                    if freed >= needed:
                        break
        finally:
            cursor.close()
        return ids, freed

    # -- the sender's side ------------------------------------------------------------------

    def claim(self, limit: int, budget: int, *, settled: list[int] | None = None,
              ) -> tuple[list[tuple[int, bytes]], bool]:
        """Lease the oldest rows nobody holds: a run of at most ``limit`` whose bytes (plus a
        comma each) fit ``budget``. Returns the ``(id, message)`` pairs, oldest first, and
        whether more rows may be waiting. ``settled`` rows (the batch just delivered) are
        deleted and this process's lease ended first, in the same transaction."""
        now = time.time()
        with self._transaction() as db:
            if settled:
                self._settle(db, settled, release=True)
            db.execute("DELETE FROM claims WHERE until < ?", (now,))  # leases that ran out
            leased = self._leases(db)
            first = self._first_free(db, leased)
            if first is None:
                return [], False
            # Up to the next span someone holds: a claim is one span of ids.
            bound = min((start for start, _ in leased if start > first), default=None)
            cursor = db.execute(
                "SELECT id, data FROM events WHERE id >= ? AND id < ? ORDER BY id LIMIT ?",
                (first, bound if bound is not None else 2 ** 63 - 1, limit),
            )
            rows: list[tuple[int, bytes]] = []
            unreadable: list[tuple[int, str]] = []
            used = 0
            more = bound is not None
            try:
                for row_id, data in cursor:
                    problem = _unreadable(data)
                    if problem is not None:
                        unreadable.append((row_id, problem))
                        continue
                    if rows and used + len(data) + 1 > budget:
                        more = True
                        break
                    rows.append((row_id, data))
                    used += len(data) + 1
            finally:
                cursor.close()
            if unreadable:
                self._quarantine(db, unreadable)
                more = True
            if not rows:
                return [], more
            db.execute("INSERT INTO claims VALUES (?, ?, ?, ?)",
                       (self.holder, rows[0][0], rows[-1][0], now + self.lease))
        return rows, more or len(rows) == limit

    def _quarantine(self, db: sqlite3.Connection, unreadable: list[tuple[int, str]]) -> None:
        """Move rows that are not an event's JSON to the quarantine table, never to be sent."""
        now = time.time()
        db.executemany("INSERT OR REPLACE INTO quarantine SELECT id, data, ?, ? FROM events WHERE id = ?",
                       [(problem, now, row_id) for row_id, problem in unreadable])
        self._delete(db, [row_id for row_id, _ in unreadable], 0)
        self._quarantined.extend(unreadable)

    def take_quarantined(self) -> Quarantined | None:
        """The rows set aside since the last call, each told once; None if there were none."""
        with self._lock:
            taken, self._quarantined = self._quarantined, []
        if not taken:
            return None
        row_id, problem = taken[0]
        return Quarantined(len(taken), f"row {row_id}: {problem}")

    def acknowledge(self, ids: list[int], *, release: bool = True) -> None:
        """Delete rows the API acknowledged (or refused for good); with ``release``, the
        lease they were taken under ends too (the claim is settled)."""
        with self._transaction() as db:
            self._settle(db, ids, release=release)

    def _settle(self, db: sqlite3.Connection, ids: list[int], *, release: bool) -> None:
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            count, size = db.execute(
                f"SELECT count(*), total(length(data)) FROM events WHERE id IN ({marks})", chunk  # noqa: S608 - only "?" placeholders are formatted in
            ).fetchone()
            self._delete(db, chunk, int(size) + count * ROW_OVERHEAD, count)
        if release:
            db.execute("DELETE FROM claims WHERE holder = ?", (self.holder,))

    def release(self) -> None:
        """Give back every row this process holds, to be sent again by whoever comes first."""
        with self._transaction() as db:
            db.execute("DELETE FROM claims WHERE holder = ?", (self.holder,))

    def renew(self) -> None:
        """Extend this process's lease (before another request for the same claim)."""
        with self._transaction() as db:
            db.execute("UPDATE claims SET until = ? WHERE holder = ?",
                       (time.time() + self.lease, self.holder))

    def release_abandoned(self) -> int:
        """End the leases of processes that are gone; how many leases ended."""
        with self._transaction(write=False) as db:
            holders = [row[0] for row in db.execute("SELECT DISTINCT holder FROM claims")]
        gone = [holder for holder in holders if holder != self.holder and holder_is_gone(holder)]
        if not gone:
            return 0
        with self._transaction() as db:
            before = db.total_changes
            db.executemany("DELETE FROM claims WHERE holder = ?", [(holder,) for holder in gone])
            return db.total_changes - before

    @staticmethod
    def _leases(db: sqlite3.Connection) -> list[tuple[int, int]]:
        """The spans of ids under a lease that has not run out, in order."""
        return db.execute("SELECT first, last FROM claims WHERE until >= ? ORDER BY first",
                          (time.time(),)).fetchall()

    @staticmethod
    def _first_free(db: sqlite3.Connection, leased: list[tuple[int, int]]) -> int | None:
        """The oldest id under no lease, or None."""
        after = 0
        while True:
            row_id = db.execute("SELECT min(id) FROM events WHERE id > ?", (after,)).fetchone()[0]
            if row_id is None:
                return None
            span = _lease_over(row_id, leased)
            if span is None:
                return row_id
            after = span[1]

    def look(self) -> tuple[int | None, int | None, int]:
        """(oldest id, newest id, number of events) in the spool now."""
        with self._transaction(write=False) as db:
            return db.execute(
                "SELECT (SELECT min(id) FROM events), (SELECT max(id) FROM events), events FROM totals"
            ).fetchone()

    def count_up_to(self, last_id: int) -> int:
        """How many rows with an id up to ``last_id`` remain."""
        with self._transaction(write=False) as db:
            return db.execute("SELECT count(*) FROM events WHERE id <= ?", (last_id,)).fetchone()[0]

    def existing(self, ids: list[int]) -> set[int]:
        """Which of ``ids`` are still in the spool."""
        found: set[int] = set()
        with self._transaction(write=False) as db:
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                found.update(row[0] for row in db.execute(f"SELECT id FROM events WHERE id IN ({marks})", chunk))  # noqa: S608 - only "?" placeholders
        return found

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection; later calls raise SpoolUnavailable."""
        with self._lock:
            self._closed = True
            self._close_connection()

    def before_fork(self) -> None:
        """Close the connection, and hold the lock until the fork is done: SQLite's state must
        not cross a fork (a child using it, even through a new connection, can hang)."""
        if self._lock.acquire(timeout=FORK_WAIT):
            self._held_for_fork = True
            self._close_connection()

    def after_fork_in_parent(self) -> None:
        """The fork is done: carry on (the connection reopens on next use)."""
        if self._held_for_fork:
            self._held_for_fork = False
            self._lock.release()

    def after_fork(self) -> None:
        """In a forked child: a lock and a holder identity of its own; a connection of its own
        is opened on first use."""
        if self._db is not None:
            _inherited_connections.append(self._db)
        self._init_state()

    # -- inside -----------------------------------------------------------------------------

    @staticmethod
    def _delete(db: sqlite3.Connection, ids: list[int], size: int, count: int | None = None) -> None:
        if not ids:
            return
        for chunk in _chunks(ids):
            db.execute(f"DELETE FROM events WHERE id IN ({','.join('?' * len(chunk))})", chunk)  # noqa: S608 - only "?" placeholders
        db.execute("UPDATE totals SET events = max(0, events - ?), bytes = max(0, bytes - ?)",
                   (len(ids) if count is None else count, size))

    @contextlib.contextmanager
    def _transaction(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        """The connection, inside ``BEGIN IMMEDIATE ... COMMIT`` when ``write``; errors of
        SQLite and of the file system become SpoolBusy or SpoolUnavailable."""
        try:
            with self._locked_transaction(write) as db:
                yield db
        finally:
            if self._replaced:
                self._tell_replaced()

    def _tell_replaced(self) -> None:
        """Report the files moved aside, outside the lock (the handler is the user's code)."""
        with self._lock:
            replaced, self._replaced = self._replaced, []
        for error in replaced:
            if self.on_replaced is None:
                logger.warning("%s", error)
            else:
                self.on_replaced(error)

    @contextlib.contextmanager
    def _locked_transaction(self, write: bool) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self.unusable is not None:
                raise SpoolUnavailable(self.unusable)
            if self._closed:
                raise SpoolUnavailable(SpoolError("is closed", path=self.path))
            try:
                db = self._db if self._db is not None else self._open()
                if not write:
                    yield db
                    return
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            except (sqlite3.Error, OSError) as err:
                raise self._failure(err) from err

    def _open(self) -> sqlite3.Connection:
        """With the lock held: make sure the file (and its WAL and shared-memory files) are
        this user's own and no one else's to write, connect, check that it is a spool, then
        switch it to WAL and create the tables. A file that is not a SQLite database is moved
        aside and a fresh spool made in its place."""
        _make_private_directory(os.path.dirname(self.path))
        try:
            self._opened = self._claim(self.path)
        except _Garbage as garbage:
            moved_to = self._move_aside(garbage.file_id) if self._fresh_spools < FRESH_SPOOLS else None
            if moved_to is None:
                raise self._give_up(f"is not a SQLite database ({garbage}); left in place "
                                    "(it could not be renamed, or too many were replaced)") from None
            self._fresh_spools += 1
            self._replaced.append(SpoolError(
                f"is not a SQLite database ({garbage})", path=self.path, moved_to=moved_to, fresh=True,
            ))
            self._opened = self._claim(self.path)
        for suffix in ("-wal", "-shm"):
            self._claim(self.path + suffix, header=False)
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None,
                             check_same_thread=False)
        try:
            # What SQLite opened by name is the file checked above, and nothing was planted
            # at its companions' names meanwhile.
            if _file_id(self.path) != self._opened:
                raise self._give_up("was replaced while being opened; left as it is")
            self._set_up(db)
            for suffix in ("-wal", "-shm"):
                if os.path.lexists(self.path + suffix):
                    self._claim(self.path + suffix, header=False)
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.close()
            raise
        self._db = db
        return db

    def _claim(self, path: str, *, header: bool = True) -> tuple[int, int]:
        """Create ``path`` 0600 (whatever the umask) if missing; else check, without following
        a link, that it is a regular file of this user's that no one else may write, and, with
        ``header``, a spool by its SQLite header (or empty) before it is made 0600. Returns
        its (device, inode); raises SpoolUnavailable (the file left as it is) or _Garbage (not
        a SQLite file at all).

        A descriptor is only opened on a file no connection of this process has open: closing
        one would drop the locks SQLite holds on that file for the whole process."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            pass
        else:
            try:
                os.fchmod(fd, 0o600)
                status = os.fstat(fd)
            finally:
                os.close(fd)
            return status.st_dev, status.st_ino
        status = os.lstat(path)
        file_id = status.st_dev, status.st_ino
        if stat.S_ISLNK(status.st_mode):
            raise self._give_up(f"has a symbolic link at {path}; left as it is")
        if not stat.S_ISREG(status.st_mode):
            raise self._give_up(f"has something other than a file at {path}; left as it is")
        if status.st_uid != os.geteuid():
            raise self._give_up(
                f"has a file {path} owned by another user (uid {status.st_uid}; this process runs "
                f"as uid {os.geteuid()}); left as it is. Put the spool in a folder of this user's own"
            )
        if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise self._give_up(
                f"has a file {path} that other users may write (mode {stat.S_IMODE(status.st_mode):o}); "
                "left as it is"
            )
        if header and not _open_here(file_id):
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
            try:
                first_bytes = os.pread(fd, 100, 0)
            finally:
                os.close(fd)
            problem = _header_problem(first_bytes)
            if problem == _NOT_SQLITE:
                raise _Garbage("its first bytes are not SQLite's", file_id)
            if problem is not None:
                raise self._give_up(problem)
        if stat.S_IMODE(status.st_mode) != 0o600:
            os.chmod(path, 0o600)  # by name: no descriptor to close (see above)
        return file_id

    def _set_up(self, db: sqlite3.Connection) -> None:
        # Known to be a spool (or empty) before anything in it changes, such as its journal mode.
        self._check_is_spool(db)
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise self._give_up(f"cannot be used in WAL mode (journal mode {mode!r}; a network file system?)")
        # NORMAL in WAL mode: a commit survives the process being killed (the OS has it), not
        # a power cut; FULL would add an fsync to every write.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        db.execute("BEGIN IMMEDIATE")
        try:
            application_id = self._check_is_spool(db)
            for statement in _SCHEMA:
                db.execute(statement)
            if application_id == 0:
                db.execute(f"PRAGMA application_id={APPLICATION_ID}")
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        self._page_size = db.execute("PRAGMA page_size").fetchone()[0]

    def _check_is_spool(self, db: sqlite3.Connection) -> int:
        """The file's application id, once it is known to be a spool or empty."""
        application_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        tables = db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        if application_id not in (0, APPLICATION_ID) or (application_id == 0 and tables):
            raise self._give_up("is another program's database, not a cdp-logging spool; left as it is")
        if version > SCHEMA_VERSION:
            raise self._give_up(f"was written by a newer cdp-logging (schema {version}); left as it is")
        return application_id

    def _give_up(self, problem: str, moved_to: str | None = None) -> SpoolUnavailable:
        """With the lock held: stop using the file, for good; the exception saying so."""
        self.unusable = SpoolError(problem, path=self.path, moved_to=moved_to)
        self._close_connection()
        return SpoolUnavailable(self.unusable)

    def _failure(self, err: BaseException) -> Exception:
        """With the lock held: what an error of SQLite or the file system means for the spool."""
        if _is_busy(err):
            return SpoolBusy(str(err))
        if _is_corrupt(err):
            self._close_connection()
            moved_to = self._move_aside(self._opened)
            problem = f"is corrupt or not a database ({err})"
            if moved_to is not None and self._fresh_spools < FRESH_SPOOLS:
                # The next call makes a fresh spool at the path: durability goes on.
                self._fresh_spools += 1
                self._replaced.append(SpoolError(problem, path=self.path, moved_to=moved_to, fresh=True))
                return SpoolBusy(problem)
            if moved_to is None:
                problem += "; left in place (it could not be renamed, or another file took its place)"
        else:
            moved_to = None
            problem = f"cannot be used ({type(err).__name__}: {err})"
        return self._give_up(problem, moved_to)

    def _move_aside(self, opened: tuple[int, int] | None) -> str | None:
        """Rename the file ``opened`` (and its WAL) to ``<path>.corrupt-<time>-<pid>``, 0600,
        unless another file has taken its place; the new name, or None."""
        if opened is None or _file_id(self.path) != opened:
            return None
        aside = f"{self.path}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{secrets.token_hex(2)}"
        try:
            os.replace(self.path, aside)
            fd = os.open(aside, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            os.fchmod(fd, 0o600)  # it still holds users' data
        finally:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.replace(self.path + "-wal", aside + "-wal")
        with contextlib.suppress(OSError):
            os.remove(self.path + "-shm")
        return aside

    def _close_connection(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()


def _before_fork() -> None:
    for file in list(_files):
        file.before_fork()


def _after_fork_in_parent() -> None:
    for file in list(_files):
        file.after_fork_in_parent()


def _after_fork_in_child() -> None:
    for file in list(_files):
        file.after_fork()


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                    after_in_child=_after_fork_in_child)


def _lease_over(row_id: int, leased: list[tuple[int, int]]) -> tuple[int, int] | None:
    """The leased span holding ``row_id``, if any."""
    for first, last in leased:
        if first <= row_id <= last:
            return first, last
    return None


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), IDS_PER_STATEMENT):
        yield ids[start:start + IDS_PER_STATEMENT]


def _file_id(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path`` itself (a link is not followed), or None."""
    try:
        status = os.lstat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


#: What :func:`_header_problem` says of a file that is not a SQLite database at all.
_NOT_SQLITE = "not SQLite"


def _header_problem(header: bytes) -> str | None:
    """Why a file with these first bytes is not to be used as a spool; None when it is empty,
    a spool, or a database in WAL mode with no application id yet (a spool whose creation
    was never checkpointed: SQLite tells the rest)."""
    if not header:
        return None
    if not header.startswith(SQLITE_HEADER) or len(header) < 72:
        return _NOT_SQLITE
    application_id = int.from_bytes(header[68:72], "big")
    if application_id == APPLICATION_ID or (application_id == 0 and header[18] == 2):
        return None
    return "is another program's database, not a cdp-logging spool; left as it is"


def _open_here(file_id: tuple[int, int]) -> bool:
    """Whether a spool of this process has a connection to the file ``file_id``."""
    return any(file._db is not None and file._opened == file_id for file in list(_files))


def _make_private_directory(path: str) -> None:
    """Create ``path`` and any missing parents, each 0700 whatever the umask."""
    missing: list[str] = []
    while path and not os.path.isdir(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder, 0o700)
            os.chmod(folder, 0o700)


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


def _is_corrupt(err: BaseException) -> bool:
    code = _error_code(err)
    if code is not None:
        return code in (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
    # Python 3.10 raises both as the base DatabaseError, which nothing else maps to.
    return type(err) is sqlite3.DatabaseError


# -- who holds a lease, and whether it is gone ----------------------------------------------


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


# -- the client's view: writing, sending, flushing, closing -----------------------------------


class SpoolClient(Protocol):
    """What the spool needs from its client (:class:`cdp_logging.Analytics`): a way to post a
    batch, and to count, report and call back as events settle."""

    def _post(self, messages: list[bytes], *, interrupt: threading.Event,
              deadline: Callable[[], float | None]) -> Outcome: ...

    def _delivered(self, items: list[Item]) -> None: ...

    def _refused(self, items: list[Item], outcome: Outcome) -> None: ...

    def _kept(self, messages: list[bytes], outcome: Outcome, retry_in: float) -> None: ...

    def _spool_dropped(self, count: int, items: list[Item], reason: str) -> None: ...

    def _spool_unusable(self, error: SpoolError) -> None: ...

    def _spool_replaced(self, error: SpoolError) -> None: ...

    def _finish(self, items: list[Item], error: Any) -> None: ...


class Spool:
    """A :class:`SpoolFile` and the thread that sends from it, as a client uses them.

    The batcher's worker calls :meth:`write`; :meth:`flush` and :meth:`close` wait for the
    sender. The sender claims a batch when ``max_events_in_batch`` events were written, on the
    first event, every ``flush_interval`` (which also finds what other processes left), on
    flush and close, and at once while a backlog lasts. After a batch is given up (the retry
    budget spent, or an answer such as 401), its rows are released and the sender pauses
    ``backoff(n)`` seconds, n counting the batches given up in a row.

    Example::

        spool = Spool(SpoolFile(path, max_bytes=..., full="drop_oldest", lease=100.0), client,
                      max_events_in_batch=20, max_batch_bytes=499_936, flush_interval=10.0,
                      backoff=policy.backoff, name="cdp-logging")
        spool.start()
        unwritten = spool.write(items)       # on the batcher's worker
    """

    def __init__(self, file: SpoolFile, client: SpoolClient, *, max_events_in_batch: int,
                 max_batch_bytes: int, flush_interval: float, backoff: Callable[[int], float],
                 name: str) -> None:
        self.file = file
        self._client = client
        #: Where the sender counts itself while it runs: the batcher's ``own_threads``, which
        #: the client puts here, so that records logged on the sender are told apart.
        self.own_threads: set[int] = set()
        self._max_events = max_events_in_batch
        self._budget = max_batch_bytes
        self._flush_interval = flush_interval
        self._backoff = backoff
        self._name = name
        self.unusable: SpoolError | None = file.unusable
        file.on_replaced = client._spool_replaced
        self._init_state()

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._looked = threading.Condition(self._lock)
        #: The sender; made here so that the batcher knows it before it runs.
        self.thread = threading.Thread(target=self._run, name=f"{self._name}-spool", daemon=True)
        self._started = False
        self._no_thread = False
        #: Items with a callback, by row id, until their fate is known.
        self._callbacks: dict[int, Item] = {}
        #: Rows delivered whose deletion rides on the next claim, made at once (a backlog).
        self._settled: list[int] = []
        #: Rows this client wrote since the sender's last claim, and the newest row it wrote.
        self._written = 0
        self._last_written = 0
        self._backlog = True  # claim at once: an earlier process may have left rows
        self._sent_any = False
        self._last_cycle = 0.0
        self._pause_until = 0.0
        self._given_up_in_a_row = 0
        self._given_up = 0
        self._flushers = 0
        self._flush_requests = 0
        self._served = 0
        #: The sender's last look at the file, taken after it served flush request _looked_for.
        self._looked_for = 0
        self._oldest: int | None = None
        self.spooled = 0
        self._newest: int | None = None
        self.in_flight = 0
        self._closing = False
        self._given_up_before_close = 0
        self._writer_done = False
        self._deadline: float | None = None
        self._close_lock = threading.Lock()
        #: How many of this client's events close() left in the spool; None before close.
        self.kept_at_close: int | None = None
        #: Cuts a retry wait short when closing.
        self.interrupt = threading.Event()

    # -- the writer (the batcher's worker) ----------------------------------------------------

    def write(self, items: list[Item]) -> list[Item]:
        """Write ``items`` in one transaction; returns them all if they could not be written
        (the caller sends them from memory), else nothing. Full-spool drops are reported."""
        if self.unusable is not None:
            return items
        try:
            appended = self.file.append([item_bytes(item) for item in items])
        except SpoolBusy:
            return items
        except SpoolUnavailable as err:
            self._stop_using(err.error)
            return items
        end = appended.start + appended.written
        written, refused = items[appended.start:end], items[:appended.start] + items[end:]
        with self._lock:
            for offset, item in enumerate(written):
                if type(item) is tuple:
                    self._callbacks[appended.first_id + offset] = item
            dropped = [self._callbacks.pop(i) for i in appended.dropped_ids if i in self._callbacks]
            if written:
                self._written += len(written)
                self._last_written = appended.first_id + len(written) - 1
                self._wake.notify()
            self._start_locked()
        count = len(appended.dropped_ids) + len(refused)
        if count:
            which = "its oldest events were" if self.file.full == "drop_oldest" else "new events are"
            self._client._spool_dropped(
                count, dropped + [item for item in refused if type(item) is tuple],
                f"the spool is full (spool_max_bytes={self.file.max_bytes}): {which} dropped",
            )
        return []

    # -- the application's side: start, flush, close ------------------------------------------

    def start(self) -> None:
        """Start the sender; it begins with what earlier processes left in the file."""
        with self._lock:
            self._start_locked()

    def _start_locked(self) -> bool:
        """With the lock held: start the sender if it never ran; whether it runs now."""
        if not self._started:
            self._started = True
            try:
                self.thread.start()
            except RuntimeError:
                # Python 3.12+ refuses new threads at interpreter exit: flush and close then
                # send on their own thread.
                self._no_thread = True
        return self.thread.is_alive()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event in the spool when called (up to the newest this client
        wrote, or the sender saw) was delivered. False at ``timeout``, when a batch is given
        up, after close, and without a usable spool."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            if self.unusable is not None:
                return False
            if self._closing:
                return self._delivered_up_to(self._last_written)
            running = self._start_locked()
            last_written = self._last_written
        if not running:
            return self._send_here(deadline, last_written)
        with self._lock:
            self._flush_requests += 1
            request = self._flush_requests
            given_up_before = self._given_up
            self._flushers += 1
            self._wake.notify()
            mark: int | None = None
            try:
                while self.unusable is None:
                    if self._looked_for >= request:
                        if mark is None:
                            mark = max(self._last_written, self._newest or 0)
                        if self._delivered_up_to(mark):
                            return True
                        if self._given_up != given_up_before:
                            return False
                    left = None if deadline is None else deadline - time.monotonic()
                    if (left is not None and left <= 0) or not self.thread.is_alive():
                        return False
                    self._looked.wait(1.0 if left is None else min(left, 1.0))
                return False
            finally:
                self._flushers -= 1

    def begin_close(self, timeout: float) -> None:
        """Start closing: deliver what this client wrote until ``timeout`` seconds from now."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            self._given_up_before_close = self._given_up
            self._deadline = time.monotonic() + timeout
            self._wake.notify()
        self.interrupt.set()

    def close(self) -> bool:
        """Once nothing more will be written: let the sender deliver what this client wrote
        until the deadline, stop it and close the file; events still waiting for their fate
        run their callbacks now. How many stay in the spool is then ``kept_at_close``.

        True for the call that closed; later calls return False at once.
        """
        with self._close_lock:
            if self.kept_at_close is not None:
                return False
            self.kept_at_close = self._close()
            return True

    def _close(self) -> int:
        with self._lock:
            self._writer_done = True
            deadline = self._deadline if self._deadline is not None else time.monotonic()
            no_thread = self._no_thread
            last_written = self._last_written
            self._wake.notify()
        if self.unusable is not None:
            return 0
        if no_thread and last_written:
            self._send_here(deadline, last_written)
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(max(0.0, deadline - time.monotonic()))
        stopped = not self.thread.is_alive()
        with self._lock:
            callbacks, self._callbacks = self._callbacks, {}
        kept = 0
        remaining = set(callbacks)
        with contextlib.suppress(SpoolBusy, SpoolUnavailable):
            if last_written:
                kept = self.file.count_up_to(last_written)
            remaining = self.file.existing(list(callbacks)) if callbacks else set()
        if callbacks:
            # Gone from the spool: another process sharing it delivered them.
            self._client._finish([item for i, item in callbacks.items() if i not in remaining], None)
            waiting = [item for i, item in callbacks.items() if i in remaining]
            if waiting:
                self._client._finish(waiting, DeliveryError(
                    f"not delivered before closing; kept in the spool {self.file.path} for the "
                    "next process to send", message_ids=message_ids(waiting), attempts=0,
                ))
        if stopped:
            self.file.close()
        return kept

    def after_fork(self) -> None:
        """In a forked child: state of its own, no sender until one is needed (the file
        resets itself at the fork)."""
        self._init_state()

    # -- the sender -------------------------------------------------------------------------

    def _run(self) -> None:
        with own_thread(self.own_threads):
            self._send_until_stopped()

    def _send_until_stopped(self) -> None:
        with contextlib.suppress(SpoolBusy, SpoolUnavailable):
            self.file.release_abandoned()
        while True:
            with self._lock:
                if not self._wait_until_due():
                    break
            try:
                if not self._cycle():
                    break
            except Exception:  # the sender must outlive anything a transport or hook runs into
                logger.exception("cdp-logging spool sender caught an unexpected error; it keeps running")
                self._settle_deferred()
                with contextlib.suppress(SpoolBusy, SpoolUnavailable):
                    self.file.release()
                with self._lock:
                    self._given_up_in_a_row += 1
                    self._pause_until = time.monotonic() + self._backoff(self._given_up_in_a_row)
        self._settle_deferred()
        with contextlib.suppress(SpoolBusy, SpoolUnavailable):
            self.file.release()
        with self._lock:
            self._looked.notify_all()

    def _wait_until_due(self) -> bool:
        """With the lock held: wait until a claim is due; False to stop."""
        while self.unusable is None:
            now = time.monotonic()
            if self._closing:
                if self._deadline is not None and now >= self._deadline:
                    return False
                if self._given_up != self._given_up_before_close:
                    return False  # tried once more while closing; the rest waits in the spool
                if self._writer_done and not self._written and self._delivered_up_to(self._last_written):
                    return False
            if now < self._pause_until and not self._closing:
                wake_at = self._pause_until
            else:
                if (self._backlog or self._written >= self._max_events
                        or (self._written and not self._sent_any)
                        or self._served < self._flush_requests):
                    return True
                poll = FLUSH_POLL if (self._flushers or self._closing) else self._flush_interval
                if now - self._last_cycle >= poll:
                    return True
                wake_at = self._last_cycle + poll
            if self._closing and self._deadline is not None:
                wake_at = min(wake_at, self._deadline)
            self._wake.wait(max(0.0, wake_at - now))
        return False

    def _delivered_up_to(self, last_id: int) -> bool:
        """With the lock held: the last look found no row up to ``last_id``."""
        return self._oldest is None or self._oldest > last_id

    def _cycle(self) -> bool:
        """Claim a batch, send it, look at the file; False to stop (the spool is unusable)."""
        with self._lock:
            request = self._served = self._flush_requests
            self._written = 0
            self._last_cycle = time.monotonic()
        sent_all = True
        try:
            rows, full = self.file.claim(self._max_events, self._budget, settled=self._settled)
            self._settled = []
            quarantined = self.file.take_quarantined()
            if quarantined is not None:
                self._client._spool_dropped(quarantined.count, [], (
                    f"{quarantined.count} row(s) of the spool {self.file.path} could not be read "
                    f"({quarantined.first}); moved to its quarantine table, the rows behind are sent"
                ))
            if rows:
                with self._lock:
                    self.in_flight = len(rows)
                try:
                    # With more rows waiting, the next claim comes at once and deletes these.
                    sent_all = self._send(rows, defer_delete=full)
                finally:
                    with self._lock:
                        self.in_flight = 0
            oldest, newest, count = self.file.look()
            if not rows and count:
                self.file.release_abandoned()  # rows there but none free: is a holder gone?
        except SpoolBusy:
            with self._lock:
                self._backlog = False
            return True
        except SpoolUnavailable as err:
            self._stop_using(err.error)
            return False
        with self._lock:
            self._oldest, self._newest, self.spooled = oldest, newest, count
            self._looked_for = request
            # A full batch may have more behind it; a batch given up is due again after the pause.
            self._backlog = full or not sent_all
            if not sent_all:
                self._given_up += 1
            elif rows:
                self._sent_any = True
                self._given_up_in_a_row = 0
            self._looked.notify_all()
        return True

    def _send(self, rows: list[tuple[int, bytes]], *, defer_delete: bool) -> bool:
        """Post the claimed rows, splitting a batch the API refuses to find the event at fault.
        True when every row was settled (delivered, or refused for good and removed); False
        when the rest were released for later. With ``defer_delete``, the last rows settled
        are deleted by the next claim rather than in a transaction of their own."""
        parts = [rows]
        while parts:
            part = parts.pop(0)
            outcome = self._client._post([data for _, data in part], interrupt=self.interrupt,
                                         deadline=self._closing_deadline)
            status = None if outcome.response is None else outcome.response.status
            if outcome.ok or (status in REFUSED_STATUSES and len(part) == 1):
                ids = [row_id for row_id, _ in part]
                if defer_delete and not parts:
                    self._settled = ids
                else:
                    # The last part settled settles the claim: its lease ends in the same stroke.
                    self._acknowledge(ids, release=not parts)
                items = self._settled_items(part)
                if outcome.ok:
                    self._client._delivered(items)
                else:
                    self._client._refused(items, outcome)
            elif status in REFUSED_STATUSES:
                half = len(part) // 2
                parts[0:0] = [part[:half], part[half:]]
                self.file.renew()
            else:
                self.file.release()
                with self._lock:
                    self._given_up_in_a_row += 1
                    retry_in = self._backoff(self._given_up_in_a_row)
                    self._pause_until = time.monotonic() + retry_in
                    closing = self._closing
                if not closing:
                    self._client._kept([data for p in [part, *parts] for _, data in p], outcome, retry_in)
                return False
        return True

    def _acknowledge(self, ids: list[int], *, release: bool) -> None:
        """Delete settled rows, trying again while another process holds the file: a row
        left behind would be sent a second time."""
        for attempt in range(3):
            try:
                self.file.acknowledge(ids, release=release)
                return
            except SpoolBusy:
                if attempt == 2:
                    raise

    def _settle_deferred(self) -> None:
        """Delete the rows whose deletion waited for a next claim that will not come now."""
        settled, self._settled = self._settled, []
        if settled:
            with contextlib.suppress(SpoolBusy, SpoolUnavailable):
                self._acknowledge(settled, release=True)

    def _settled_items(self, part: list[tuple[int, bytes]]) -> list[Item]:
        """The rows as queue items, with the callbacks that waited for them."""
        with self._lock:
            callbacks = self._callbacks
            if not callbacks:
                return [data for _, data in part]
            return [callbacks.pop(row_id, data) for row_id, data in part]

    def _closing_deadline(self) -> float | None:
        return self._deadline

    def _send_here(self, deadline: float | None, last_id: int) -> bool:
        """Without a sender thread (none may start at interpreter exit): send on this thread
        until the rows up to ``last_id`` are gone, a batch is given up, or ``deadline``."""
        try:
            while deadline is None or time.monotonic() < deadline:
                given_up = self._given_up
                if not self._cycle() or self._given_up != given_up:
                    return False
                with self._lock:
                    if self._delivered_up_to(last_id):
                        return True
                    if not self._backlog:
                        # What remains is held by another process: give it a moment.
                        self._looked.wait(FLUSH_POLL)
            return False
        finally:
            self._settle_deferred()

    def _stop_using(self, error: SpoolError) -> None:
        """The file cannot be used: report once, hand waiting callbacks the error, wake all."""
        with self._lock:
            if self.unusable is not None:
                return
            self.unusable = error
            callbacks, self._callbacks = self._callbacks, {}
            self._wake.notify_all()
            self._looked.notify_all()
        self._client._spool_unusable(error)
        if callbacks:
            self._client._finish(list(callbacks.values()), error)
