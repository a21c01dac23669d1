"""Following runs as they go: new finished timeline rows of some runs, read from the store.

The engine writes every step's row before it runs and its result after (:mod:`controller.workflows.engine`),
so any process that can read the database can follow a run — the one driving it (``update run``
printing progress), or another (``boxkeeper runs follow ID``). A follower only reads.

:class:`Follower` keeps, per run, the last timeline row it has handed out; :meth:`Follower.poll`
returns the rows finished since, oldest first (a step still running is held back until it has its
result, so rows come out in order). :class:`ProgressThread` polls in the background and hands each
row to a callback until stopped, then polls once more so nothing finished is left out.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from controller.workflows import runs as store
from controller.workflows.runs import SessionFactory, TimelineEntry


@dataclass(frozen=True)
class Progress:
    run_id: int
    host: str
    entry: TimelineEntry


class Follower:
    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions
        self._seen: dict[int, int] = {}
        self._hosts: dict[int, str] = {}
        self._lock = threading.Lock()

    def add(self, run_id: int, host: str) -> None:
        with self._lock:
            self._seen.setdefault(run_id, 0)
            self._hosts[run_id] = host

    def poll(self) -> list[Progress]:
        with self._lock:
            wanted = dict(self._seen)
        found: list[Progress] = []
        with self.sessions() as s:
            for run_id, seq in wanted.items():
                for entry in store.entries_after(s, run_id, seq):
                    found.append(Progress(run_id, self._hosts[run_id], entry))
        with self._lock:
            for p in found:
                self._seen[p.run_id] = max(self._seen[p.run_id], p.entry.seq)
        return sorted(found, key=lambda p: (p.entry.started_at, p.run_id, p.entry.seq))


class ProgressThread:
    """Hands every finished row of the followed runs to ``emit`` while a run or rollout goes."""

    def __init__(self, follower: Follower, emit: Callable[[Progress], None], interval: float = 0.5) -> None:
        self.follower, self.emit, self.interval = follower, emit, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="run-progress", daemon=True)
        self._emit_lock = threading.Lock()

    def __enter__(self) -> ProgressThread:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._flush()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._flush()

    def _flush(self) -> None:
        with self._emit_lock:
            for p in self.follower.poll():
                self.emit(p)
