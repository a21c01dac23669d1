"""The durable, ordered, bounded queue of reports waiting to reach the controller.

Layout of ``spool.dir``::

    00000000000000000042.json     one report per file, named by its zero-padded seq, zlib-compressed
                                   (agent versions before it wrote the JSON as it is: such files
                                   are read and sent all the same, told apart by their first byte)
    .00000000000000000043.json.tmp  a report being written (discarded on start: torn by a crash)
    delivered                      the newest report the controller took (its seq is the counter's
                                   floor after a restart, see agent/reporter.py)
    seq                            written by earlier agent versions (read on start, no longer written)
    rejected/                      reports the controller refused with a 4xx (the last N kept)

Compression: a report of the example config (12–16 KB of JSON) takes about a fifth of that on
disk (docs/benchmarks.md), so the default 64 MiB holds about 5 days of reports at one per 15 s
instead of 17–23 hours.
``max_bytes`` counts the bytes on disk. The report just appended is sent from memory as it is;
an older one is decompressed when it is read back. A report moved to ``rejected/`` is written
there as plain JSON, for a person to read.

Writing a report: write a temp file, ``fsync`` it, ``rename`` it to its final name, ``fsync`` the
directory. After :meth:`Spool.append` returns, the report survives ``kill -9`` and power loss.
Replay is oldest seq first. A delivered report leaves the queue by a rename to ``delivered``
(replacing the one before), so the highest seq ever handed out is always on disk — in a queued
report, in ``rejected/`` or in ``delivered`` — without a file write of its own. The spool is
bounded by ``max_bytes``: when an append takes it over, the oldest reports are deleted first (the
newest one is always kept), counted in :attr:`SpoolStats.dropped_total` and logged as one WARNING
naming how many and which seq range.
All methods are thread-safe (one lock; file I/O of a single report happens under it).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from agent.errors import SpoolError

log = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^(\d{20})\.json$")
REJECTED_DIR = "rejected"
DELIVERED_FILE = "delivered"


#: zlib's level for spooled reports: 1 (the fastest) stores a report of the example config in 19 % of
#: its JSON (level 6: 17 %) for half of level 6's CPU, 0.07 ms (docs/benchmarks.md, bench/spool_bench.py)
COMPRESS_LEVEL = 1


def spool_name(seq: int) -> str:
    return f"{seq:020d}.json"


def pack(body: bytes) -> bytes:
    """A report as it is stored: zlib-compressed."""
    return zlib.compress(body, COMPRESS_LEVEL)


def unpack(data: bytes) -> bytes:
    """A stored report as it is sent. A file written by an agent version that did not compress
    holds the JSON itself (it begins with ``{``, which a zlib stream never does: its first byte
    is 0x78 for the default window); it is returned as it is."""
    if data[:1] != b"\x78":
        return data
    try:
        return zlib.decompress(data)
    except zlib.error:
        return data  # not ours to fix: the controller answers 400 and it goes to rejected/


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)  # novm
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new one, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)  # novm
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


@dataclass(frozen=True)
class SpoolStats:
    reports: int
    bytes: int
    dropped_total: int
    rejected_total: int


class Spool:
    def __init__(self, directory: Path, max_bytes: int, *, keep_rejected: int = 20) -> None:
        self.dir = Path(directory)
        self.max_bytes = max_bytes
        self.keep_rejected = keep_rejected
        self._lock = threading.Lock()
        self._sizes: dict[int, int] = {}
        self._bytes = 0
        self._dropped = 0
        self._rejected = 0
        self._newest: Optional[tuple[int, bytes]] = None  # the last report appended: read back free
        self._delivered: Optional[int] = None  # seq of the report in DELIVERED_FILE
        try:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._recover()
        except OSError as exc:
            raise SpoolError(f"spool directory {self.dir} is not usable: {exc.strerror or exc}") from exc

    def _recover(self) -> None:
        torn = 0
        for entry in os.scandir(self.dir):
            if entry.name.endswith(".json.tmp") and entry.is_file():
                os.unlink(entry.path)
                torn += 1
                continue
            m = _NAME_RE.match(entry.name)
            if m and entry.is_file():
                self._sizes[int(m.group(1))] = entry.stat().st_size
        self._bytes = sum(self._sizes.values())
        self._delivered = self._read_delivered()
        if torn:
            log.warning("spool %s: discarded %d partly written report(s) left by a crash", self.dir, torn)
        if self._sizes:
            log.info(
                "spool %s: %d report(s) waiting (seq %d..%d, %d bytes)",
                self.dir, len(self._sizes), min(self._sizes), max(self._sizes), self._bytes,
            )

    def _read_delivered(self) -> Optional[int]:
        try:
            seq = json.loads(unpack((self.dir / DELIVERED_FILE).read_bytes()))["seq"]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("spool %s: cannot read the seq of %s (%s); going by the queued reports and "
                        "the seq file", self.dir, DELIVERED_FILE, exc)
            return None
        return seq if isinstance(seq, int) and not isinstance(seq, bool) else None

    # -- queue -----------------------------------------------------------------------------

    def append(self, seq: int, body: bytes) -> None:
        """Store one report durably (compressed), then enforce ``max_bytes`` (oldest dropped first)."""
        stored = pack(body)
        with self._lock:
            try:
                write_atomic(self.dir / spool_name(seq), stored)
            except OSError as exc:
                raise SpoolError(f"cannot write report {seq} to {self.dir}: {exc.strerror or exc}") from exc
            self._bytes += len(stored) - self._sizes.get(seq, 0)
            self._sizes[seq] = len(stored)
            self._newest = (seq, body)
            self._enforce_bound()

    def _enforce_bound(self) -> None:
        if self._bytes <= self.max_bytes or len(self._sizes) <= 1:
            return
        dropped: list[int] = []
        for seq in sorted(self._sizes)[:-1]:
            if self._bytes <= self.max_bytes:
                break
            self._unlink(seq)
            dropped.append(seq)
        self._dropped += len(dropped)
        log.warning(
            "spool %s over max_bytes %d: dropped %d oldest report(s), seq %d..%d (never delivered)",
            self.dir, self.max_bytes, len(dropped), dropped[0], dropped[-1],
        )

    def _unlink(self, seq: int) -> None:
        self._forget_newest(seq)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.dir / spool_name(seq))
        self._bytes -= self._sizes.pop(seq, 0)

    def _forget_newest(self, seq: int) -> None:
        if self._newest is not None and self._newest[0] == seq:
            self._newest = None

    def oldest(self) -> Optional[tuple[int, bytes]]:
        """The oldest waiting report (seq, body), or None when the spool is empty. When that is the
        report appended last (the usual case: the controller is up), its body comes from memory
        instead of being read back from the file just written."""
        with self._lock:
            while self._sizes:
                seq = min(self._sizes)
                if self._newest is not None and self._newest[0] == seq:
                    return self._newest
                try:
                    return seq, unpack((self.dir / spool_name(seq)).read_bytes())
                except FileNotFoundError:  # removed behind our back: forget it, go on
                    self._bytes -= self._sizes.pop(seq, 0)
            return None

    def seqs(self) -> list[int]:
        with self._lock:
            return sorted(self._sizes)

    def remove(self, seq: int) -> None:
        """Take a delivered report off the queue: renamed to ``delivered`` when it is the newest
        delivered so far (else deleted). No fsync of the directory: a rename lost in a crash leaves
        the report queued, and delivering it twice is harmless (the next append's fsync of the
        directory makes it durable anyway)."""
        with self._lock:
            if seq not in self._sizes or (self._delivered is not None and seq < self._delivered):
                self._unlink(seq)
                return
            self._forget_newest(seq)
            try:
                os.replace(self.dir / spool_name(seq), self.dir / DELIVERED_FILE)
                self._delivered = seq
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise SpoolError(f"cannot move delivered report {seq} in {self.dir}: "
                                 f"{exc.strerror or exc}") from exc
            self._bytes -= self._sizes.pop(seq, 0)

    def reject(self, seq: int) -> Optional[Path]:
        """Move a refused report to ``rejected/`` (keeping the newest ``keep_rejected``)."""
        with self._lock:
            if seq not in self._sizes:
                return None
            target_dir = self.dir / REJECTED_DIR
            target = target_dir / spool_name(seq)
            try:
                target_dir.mkdir(mode=0o700, exist_ok=True)
                source = self.dir / spool_name(seq)  # kept as plain JSON there, for a person to read
                write_atomic(target, unpack(source.read_bytes()))
                os.unlink(source)
                self._forget_newest(seq)
                self._bytes -= self._sizes.pop(seq, 0)
                self._rejected += 1
                kept = sorted(p for p in target_dir.iterdir() if _NAME_RE.match(p.name))
                for old in kept[: max(0, len(kept) - self.keep_rejected)]:
                    old.unlink(missing_ok=True)
                fsync_dir(self.dir)
            except OSError as exc:
                raise SpoolError(f"cannot move report {seq} to {target_dir}: {exc.strerror or exc}") from exc
            return target

    def max_seq(self) -> Optional[int]:
        """The highest seq in the spool, its rejected/ folder or the delivered report: the floor of
        the seq counter after a restart or a crash."""
        with self._lock:
            seqs = list(self._sizes)
            if self._delivered is not None:
                seqs.append(self._delivered)
        rejected = self.dir / REJECTED_DIR
        if rejected.is_dir():
            seqs += [int(m.group(1)) for p in rejected.iterdir() if (m := _NAME_RE.match(p.name))]
        return max(seqs, default=None)

    def stats(self) -> SpoolStats:
        with self._lock:
            return SpoolStats(len(self._sizes), self._bytes, self._dropped, self._rejected)
