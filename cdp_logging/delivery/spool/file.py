"""The spool's rows: append, claim under a lease, acknowledge, release."""

from __future__ import annotations


import sqlite3
import time


from .common import (
    Appended, EMPTY_PAGES, QUARANTINE_ROW_BYTES, Quarantined, ROW_OVERHEAD, _chunks,
    _lease_over, _unreadable, holder_is_gone, trim_quarantine,
)
from .opening import OpenedFile


class SpoolFile(OpenedFile):
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

