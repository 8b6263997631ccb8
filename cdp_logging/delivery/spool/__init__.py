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

from .common import APPLICATION_ID, LEASE_MARGIN, WRITE_EVENTS, SpoolBusy, SpoolFull, SpoolUnavailable
from .file import SpoolFile
from .sender import Spool, SpoolClient

__all__ = [
    "APPLICATION_ID",
    "LEASE_MARGIN",
    "WRITE_EVENTS",
    "Spool",
    "SpoolBusy",
    "SpoolClient",
    "SpoolFile",
    "SpoolFull",
    "SpoolUnavailable",
]
