"""A client with a spool in a process of its own, driven one command a line: for the tests
of what a machine does to a spool that need such a process (a file size limit, a mount or a
user namespace). Started by :class:`support.spool.SpoolConsole`.

Usage: ``spool_console.py HOST SPOOL OPTIONS_JSON``. Each line on stdin is a JSON array, a
command; each answer is one JSON line on stdout, ``{"ok": value}`` or ``{"error": traceback}``:

* ``["track", count, prefix, size]``: that many track calls; their message ids.
* ``["flush", timeout]``: ``client.flush(timeout)``.
* ``["limit", bytes]`` / ``["unlimit"]``: set the soft RLIMIT_FSIZE (SIGXFSZ is ignored,
  so a write past it fails with EFBIG), or raise it back to the hard limit.
* ``["fill", path]`` / ``["free", path]``: write ``path`` until its disk is full; remove it.
* ``["rows"]``: the events in the spool; ``["stats"]``: ``client.stats()``;
  ``["errors"]``: what the error_handler got, ``[type, paused, text]`` each.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import signal
import sqlite3
import sys
import traceback
from typing import Any

from cdp_logging import Analytics, CDPError, SpoolError

WRITE_KEY = "console-write-key"


def main() -> None:
    host, spool, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # Python does this already; said, not assumed
    errors: list[CDPError] = []
    client = Analytics(WRITE_KEY, host=host, spool_path=spool, error_handler=errors.append, **options)

    def track(count: int, prefix: str, size: int) -> list[str]:
        return [client.track(user_id="u1", event="Spooled", message_id=f"{prefix}-{i}",
                             properties={"text": "p" * size}) for i in range(count)]

    def rows() -> int:
        with contextlib.closing(sqlite3.connect(f"file:{spool}?mode=ro", uri=True, timeout=10)) as db:
            return int(db.execute("SELECT count(*) FROM events").fetchone()[0])

    def limit(size: int) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    def unlimit() -> None:
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))

    def fill(path: str) -> int:
        written = 0
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                written += os.write(fd, b"x" * 4096)
        except OSError as err:
            if err.errno != errno.ENOSPC:
                raise
        finally:
            os.close(fd)
        return written

    def reported() -> list[list[Any]]:
        return [[type(e).__name__, isinstance(e, SpoolError) and e.paused, str(e)] for e in list(errors)]

    commands: dict[str, Any] = {
        "track": track, "flush": lambda timeout: client.flush(timeout=timeout), "limit": limit,
        "unlimit": unlimit, "fill": fill, "free": os.unlink, "rows": rows,
        "stats": client.stats, "errors": reported,
    }
    try:
        for line in sys.stdin:
            name, *arguments = json.loads(line)
            try:
                answer = {"ok": commands[name](*arguments)}
            except Exception:
                answer = {"error": traceback.format_exc()}
            print(json.dumps(answer), flush=True)
    finally:
        client.close(timeout=0)


if __name__ == "__main__":
    main()
