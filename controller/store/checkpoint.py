"""WAL checkpoints of a SQLite database in a background thread, off the writers' path.

With ``journal_mode=WAL`` every commit appends pages to ``<db>-wal``; a *checkpoint* copies them
back into the database file (and fsyncs it). By default SQLite runs it inside whichever commit
pushes the WAL over 1,000 pages, i.e. while that connection holds the write lock, so every writer
of every ``serve`` worker waits for the copy. At ingest rates this was about a quarter of the
write lock's time (docs/benchmarks.md).

Here a thread runs ``PRAGMA wal_checkpoint(PASSIVE)`` on its own connection at most every
``interval`` seconds after a write (PASSIVE never blocks readers or writers; SQLite's own locking
keeps the copy correct). The writers' automatic checkpoint stays on at ``fallback_pages`` so the
WAL stays bounded even if this thread stalls; ``journal_size_limit`` truncates the WAL file back
after a checkpoint. The thread starts on the first write and ends after ``idle_seconds`` without
writes; a new write starts it again.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time

log = logging.getLogger("boxkeeper.controller.store")

#: The writers' own automatic checkpoint, in pages (4 KiB): a bound, not the usual path.
FALLBACK_PAGES = 16384
#: The WAL file is truncated back to this after a checkpoint (bytes).
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024


class WalCheckpointer:
    def __init__(self, path: str, *, interval: float = 0.25, busy_timeout_ms: int = 30000,
                 idle_seconds: float = 5.0) -> None:
        self.path = path
        self.interval = interval
        self.busy_timeout_ms = busy_timeout_ms
        self.idle_seconds = idle_seconds
        self.checkpoints = 0  # completed passes (for tests and curiosity)
        self._cond = threading.Condition()
        self._dirty = False
        self._running = False
        self._stopped = False
        self._thread: threading.Thread | None = None

    def wrote(self) -> None:
        """A write transaction committed: checkpoint soon."""
        with self._cond:
            self._dirty = True
            if not self._running and not self._stopped:
                self._running = True
                thread = threading.Thread(target=self._run, name="boxkeeper-wal-checkpoint", daemon=True)
                self._thread = thread
                thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """No more checkpoints from here; waits for a pass in progress (up to ``timeout``)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        connection: sqlite3.Connection | None = None
        try:
            idle_since = time.monotonic()
            while True:
                with self._cond:
                    self._cond.wait(self.interval)
                    if self._stopped:
                        return
                    dirty, self._dirty = self._dirty, False
                    if not dirty:
                        if time.monotonic() - idle_since > self.idle_seconds:
                            self._running = False
                            return
                        continue
                idle_since = time.monotonic()
                if connection is None:
                    connection = sqlite3.connect(self.path, timeout=self.busy_timeout_ms / 1000,
                                                 isolation_level=None, check_same_thread=False)
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except sqlite3.Error as exc:  # busy with another process's checkpoint: next time
                    log.debug("WAL checkpoint skipped: %s", exc)
        except Exception:
            log.exception("WAL checkpoint thread failed; the writers' automatic checkpoint takes over")
            with self._cond:
                self._running = False
        finally:
            if connection is not None:
                connection.close()
