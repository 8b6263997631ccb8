"""The spool's file: opened safely on first use (SQLite, ours, 0600, no link; a corrupt file
moved aside), its one connection kept apart across fork, and its rows: append, claim under a
lease, acknowledge, release."""

from __future__ import annotations


import contextlib
import os
import secrets
import sqlite3
import stat
import threading
import time
import weakref
from collections.abc import Callable, Iterator


from ...errors import SpoolError
from .common import (
    _is_busy,
    _is_corrupt,
    SpoolDiskFull,
    APPLICATION_ID,
    BUSY_TIMEOUT,
    FORK_WAIT,
    FRESH_SPOOLS,
    SCHEMA_VERSION,
    SQLITE_HEADER,
    SpoolBusy,
    SpoolFull,
    SpoolUnavailable,
    WAL_SIZE_LIMIT,
    _Garbage,
    _SCHEMA,
    holder_identity,
    logger,
    trim_quarantine,
    Appended,
    EMPTY_PAGES,
    QUARANTINE_ROW_BYTES,
    Quarantined,
    ROW_OVERHEAD,
    _chunks,
    _lease_over,
    row_file_bytes,
    _unreadable,
    holder_is_gone,
)
from .hazards import DiskFull, no_room, private_folder


#: Connections a forked child inherited from a fork that skipped Python's fork handlers:
#: never used, never closed (SQLite's state for them belongs to the parent), only kept from
#: the garbage collector.
_inherited_connections: list[sqlite3.Connection] = []


#: Every SpoolFile, so that each closes its connection before a fork.
_files: weakref.WeakSet[SpoolFile] = weakref.WeakSet()


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
        self.disk_full = DiskFull()
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
            if write:
                self.disk_full.written(self.path)

    def _open(self) -> sqlite3.Connection:
        """With the lock held: make sure the file (and its WAL and shared-memory files) are
        this user's own and no one else's to write, connect, check that it is a spool, then
        switch it to WAL and create the tables. A file that is not a SQLite database is moved
        aside and a fresh spool made in its place."""
        problem = private_folder(os.path.dirname(self.path))
        if problem is not None:
            raise self._give_up(problem)
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
            trim_quarantine(db)
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
        application_id: int = db.execute("PRAGMA application_id").fetchone()[0]
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
        reason = no_room(err, self.path)
        if reason is not None:  # for now: the next write tries again
            report = self.disk_full.failed(self.path, err, reason)
            if report is not None:
                self._replaced.append(report)
            return SpoolDiskFull(str(err))
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

    # -- the rows ----------------------------------------------------------------------------

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
            # The quarantine (bounded, QUARANTINE_ROWS) is not the events' room: left out.
            quarantined = db.execute("SELECT total(length(data)) + count(*) * ? FROM quarantine",
                                     (ROW_OVERHEAD,)).fetchone()[0]
            used = pages * self._page_size - quarantined
            # Pages are never quite full: a byte counted takes this much of the file. Measured
            # over a tenth of the bound at least: a few events in pages left sparse by rows
            # deleted (set aside, sent) would otherwise seem to take the whole file.
            spread = max(1.0, used / max(counted, self.max_bytes / 10)) if counted else 1.0
            # And at least what these messages' rows will take by SQLite's format: while the
            # spool holds less than that tenth, or rows of another size, the pages in use
            # understate it, and a large write (a backlog of 2 KB events, a page each, when
            # the spool is nearly empty) would grow the file past the bound for good.
            spread = max(spread, sum(row_file_bytes(len(message), self._page_size)
                                     for message in messages) / sum(sizes)) if messages else spread
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
        # Kept for someone to look at, bounded: each row's first QUARANTINE_ROW_BYTES, the
        # newest QUARANTINE_ROWS rows.
        db.executemany("INSERT OR REPLACE INTO quarantine "
                       "SELECT id, CASE WHEN length(data) > ? THEN substr(data, 1, ?) ELSE data END, ?, ? "
                       "FROM events WHERE id = ?",
                       # Plain ? placeholders: numbered ones with a sequence are deprecated (3.12).
                       [(QUARANTINE_ROW_BYTES, QUARANTINE_ROW_BYTES, problem, now, row_id)
                        for row_id, problem in unreadable])
        self._delete(db, [row_id for row_id, _ in unreadable], 0)
        trim_quarantine(db)
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
            row_id: int | None = db.execute("SELECT min(id) FROM events WHERE id > ?", (after,)).fetchone()[0]
            if row_id is None:
                return None
            span = _lease_over(row_id, leased)
            if span is None:
                return row_id
            after = span[1]

    def look(self) -> tuple[int | None, int | None, int]:
        """(oldest id, newest id, number of events) in the spool now."""
        with self._transaction(write=False) as db:
            now: tuple[int | None, int | None, int] = db.execute(
                "SELECT (SELECT min(id) FROM events), (SELECT max(id) FROM events), events FROM totals"
            ).fetchone()
            return now

    def count_up_to(self, last_id: int) -> int:
        """How many rows with an id up to ``last_id`` remain."""
        with self._transaction(write=False) as db:
            count: int = db.execute("SELECT count(*) FROM events WHERE id <= ?", (last_id,)).fetchone()[0]
            return count

    def existing(self, ids: list[int]) -> set[int]:
        """Which of ``ids`` are still in the spool."""
        found: set[int] = set()
        with self._transaction(write=False) as db:
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                found.update(row[0] for row in db.execute(f"SELECT id FROM events WHERE id IN ({marks})", chunk))  # noqa: S608 - only "?" placeholders
        return found

    @staticmethod
    def _delete(db: sqlite3.Connection, ids: list[int], size: int, count: int | None = None) -> None:
        if not ids:
            return
        for chunk in _chunks(ids):
            db.execute(f"DELETE FROM events WHERE id IN ({','.join('?' * len(chunk))})", chunk)  # noqa: S608 - only "?" placeholders
        db.execute("UPDATE totals SET events = max(0, events - ?), bytes = max(0, bytes - ?)",
                   (len(ids) if count is None else count, size))


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
