"""Builds :class:`~agent.report.Report` values and hands out their ``seq``.

``seq`` only grows, across restarts and ``kill -9`` too, and has no gaps. :meth:`Reporter.spool_next`
does, in one thread, in this order:

1. build the report with ``seq = last + 1`` (:meth:`SeqCounter.reserve`, in memory);
2. write it to the spool (temp file, fsync, rename, fsync of the directory);
3. take ``seq`` as used (:meth:`SeqCounter.advance`, in memory: the spool file of step 2 is its
   durable record).

The spool keeps the highest seq on disk from then on: the report stays queued until the
controller took it, and then becomes the spool's ``delivered`` file (a rename, see
agent/spool.py), or it moves to ``rejected/``. On start the counter continues after the larger of
the spool's highest seq (queued, ``delivered`` or ``rejected/``) and the ``seq`` file that earlier
agent versions wrote after every report (one more write and two more fsyncs per report; still
read, so an upgraded agent continues where it was). A ``kill -9`` at any point therefore neither
repeats a seq (it is in the spool) nor skips one (a seq is only taken by a report that reached the
spool). A stale ``seq`` file cannot make a seq repeat while the spool holds a later one.

A fresh agent (no usable ``seq`` or ``delivered`` file and an empty spool: a first install, a
reinstall, a wiped ``/var/lib/boxkeeper``) does not start at 1: it starts after ``initial()``, the
current unix time in milliseconds in production. Otherwise a reinstalled agent would repeat the seqs its
predecessor already delivered and the controller, which is idempotent on (host, seq) and ignores
reports older than the newest it has, would take every new report for a duplicate or a late one.
The previous agent's highest seq is its own start time in ms plus the number of reports it built,
always below the current time in ms (reports are at most a few per second).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Optional

from agent.errors import SpoolError
from agent.report import (
    MAX_CHECKS,
    MAX_SAMPLES,
    MAX_SUMMARY_LENGTH,
    CheckReport,
    Facts,
    Report,
    Sample,
    to_json,
)
from agent.spool import Spool

log = logging.getLogger(__name__)

SEQ_FILE = "seq"


def unix_millis() -> int:
    """The first seq base of a fresh agent (see the module docstring)."""
    return int(time.time() * 1000)


class SeqCounter:
    """The seq counter: :meth:`reserve` the next value, :meth:`advance` past it once the report
    that carries it is spooled. Starts after the larger of ``floor`` (the spool's highest seq) and
    the ``seq`` file of earlier agent versions, or after ``initial()`` when both are missing."""

    def __init__(self, path: Path, *, floor: int = 0, initial: Callable[[], int] = lambda: 0) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        stored = self._read()
        if stored is None and floor == 0:
            floor = initial()
            if floor:
                log.info("no seq state in %s: a fresh agent, numbering reports after %d",
                         self.path.parent, floor)
        self._last = max(stored or 0, floor)

    def _read(self) -> Optional[int]:
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SpoolError(f"cannot read {self.path}: {exc.strerror or exc}") from exc
        if not text.isdigit():
            log.warning("%s holds %r, not a number; continuing from the spool's highest seq", self.path, text)
            return None
        return int(text)

    @property
    def last(self) -> int:
        with self._lock:
            return self._last

    def reserve(self) -> int:
        """The next seq (last + 1). Calling it again before :meth:`advance` gives the same value."""
        with self._lock:
            return self._last + 1

    def advance(self, seq: int) -> None:
        """Take ``seq`` as used. Nothing is written here: the caller has stored the report that
        carries it durably (the spool, see the module docstring)."""
        with self._lock:
            self._last = max(self._last, seq)


def _clip(check: CheckReport) -> CheckReport:
    if len(check.summary) <= MAX_SUMMARY_LENGTH:
        return check
    return replace(check, summary=check.summary[: MAX_SUMMARY_LENGTH - 1] + "…")


class Reporter:
    """Assembles a report from the latest check states, host samples and facts."""

    def __init__(
        self,
        *,
        host: str,
        agent_version: str,
        push_interval: float,
        seq: SeqCounter,
        checks: Callable[[], Sequence[CheckReport]],
        samples: Callable[[], Sequence[Sample]],
        facts: Callable[[], Facts],
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._host = host
        self._version = agent_version
        self._push_interval = push_interval
        self._seq = seq
        self._checks = checks
        self._samples = samples
        self._facts = facts
        self._wall = wall

    def build(self) -> Report:
        checks = tuple(_clip(c) for c in self._checks())[:MAX_CHECKS]
        samples = tuple(self._samples())[:MAX_SAMPLES]
        facts = self._facts()
        return Report(
            schema="boxkeeper.report/1",
            host=self._host,
            agent_version=self._version,
            seq=self._seq.reserve(),
            sent_at=self._wall(),
            push_interval_seconds=self._push_interval,
            checks=checks,
            samples=samples,
            facts=facts,
        )

    def spool_next(self, spool: Spool) -> Report:
        """Build the next report, store it in ``spool`` durably (which records its seq), then take
        its seq as used."""
        report = self.build()
        spool.append(report.seq, to_json(report))
        self._seq.advance(report.seq)
        return report
