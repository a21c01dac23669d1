"""Reading the lines a log file gained since the last read, with the offset kept on disk.

:class:`LogTail` remembers, per watched file, its device, inode and the offset read up to, in
memory and in one small JSON file (written atomically: a temporary file, fsync, rename) in the
agent's ``state_dir``, so a restart goes on where it stopped. Each :meth:`LogTail.read`:

- **first start** (no state, or state for another path): nothing is read; the offset is set to
  the file's end, so years of old lines do not alert at once;
- **same file, grown**: the new bytes from the offset;
- **truncated** (size below the offset, same inode; ``copytruncate``): from the beginning;
- **rotated** (another inode at the path): the rest of the old file when it can still be found
  in the same directory under a name starting with the log's (``error_log.1``,
  ``error_log-20261203``: found by its inode), then the new file from its beginning;
- **bounded**: at most ``max_read`` bytes per read; beyond that the *newest* ``max_read`` bytes
  are read (from a line start) and the bytes skipped are reported, so a log flooding faster
  than the agent reads never makes it fall behind.

A line still being written (no newline yet) is left for the next read (unless it is longer than
64 KiB). Lines are decoded as UTF-8 (invalid bytes replaced). ``save=False`` reads without moving
the kept offset on (``boxkeeper-agent check``: a one-off run must not take the running agent's
lines). When the state cannot be written the offset is kept in memory and the read says why.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

_LONG_LINE = 64 * 1024


class LogError(Exception):
    """The file cannot be read (permission, not a regular file)."""


@dataclass(frozen=True)
class TailState:
    path: str
    dev: int
    ino: int
    offset: int


@dataclass(frozen=True)
class TailRead:
    """What one read found. ``lines``: the complete new lines, oldest first."""

    lines: tuple[str, ...] = ()
    bytes_read: int = 0
    size: int = 0  # the file's size now
    started: bool = False  # first start: positioned at the end, nothing read
    missing: bool = False  # the file does not exist (a missing_ok tail)
    rotated_from: Optional[str] = None  # the rotated file whose rest was read, or "" if not found
    truncated: bool = False
    skipped_bytes: int = 0  # new bytes not read (more than max_read)
    save_error: Optional[str] = None  # why the offset could not be saved

    @property
    def notes(self) -> list[str]:
        """Short remarks for a summary: rotation, truncation, skipped bytes, unsaved offset."""
        notes = []
        if self.rotated_from:
            notes.append(f"rotated: read the rest of {self.rotated_from} and the new file")
        elif self.rotated_from == "":
            notes.append("rotated: read the new file from its start")
        if self.truncated:
            notes.append("truncated: read from its start")
        if self.skipped_bytes:
            notes.append(f"{_size(self.bytes_read + self.skipped_bytes)} new, more than one run reads: "
                         f"read the newest {_size(self.bytes_read)}, skipped {_size(self.skipped_bytes)}")
        if self.save_error:
            notes.append(f"offset not saved: {self.save_error}")
        return notes


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class LogTail:
    """The new lines of ``path`` at each :meth:`read`; offset kept in ``state_file`` (None: in
    memory only). Thread-safe (one read at a time)."""

    def __init__(self, path: Union[str, Path], state_file: Optional[Path], *, save: bool = True,
                 max_read: int = 2 * 1024 * 1024, missing_ok: bool = False) -> None:
        self.path = str(path)
        self.state_file = state_file
        self.save = save
        self.max_read = max(1, int(max_read))
        self.missing_ok = missing_ok
        self._state: Optional[TailState] = None
        self._loaded = False
        self._lock = threading.Lock()

    # -- state ------------------------------------------------------------------------------

    def _load(self) -> Optional[TailState]:
        if self.state_file is None:
            return None
        try:
            data = json.loads(self.state_file.read_text(encoding="utf-8"))
            return TailState(str(data["path"]), int(data["dev"]), int(data["ino"]), int(data["offset"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # none yet, or unreadable: start from the end as on a first start

    def _store(self, state: TailState) -> Optional[str]:
        """Keep ``state`` (in memory; on disk when allowed); the reason it was not saved, or None."""
        changed = state != self._state
        self._state = state
        if not self.save or self.state_file is None or not changed:
            return None
        path = self.state_file
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        data = json.dumps({"path": state.path, "dev": state.dev, "ino": state.ino, "offset": state.offset})
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)  # novm
            try:
                os.write(fd, data.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            return f"{path}: {exc.strerror or exc}"
        return None

    # -- reading ----------------------------------------------------------------------------

    def read(self) -> TailRead:
        with self._lock:
            if not self._loaded:
                self._state = self._load()
                self._loaded = True
            return self._read()

    def _read(self) -> TailRead:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)  # novm
        except FileNotFoundError:
            if self.missing_ok:
                return TailRead(missing=True)
            raise LogError(f"{self.path} does not exist") from None
        except PermissionError:
            raise LogError(f"cannot read {self.path}: permission denied (the agent's user needs read "
                           f"access, e.g. membership of the file's group)") from None
        except OSError as exc:
            raise LogError(f"cannot read {self.path}: {exc.strerror or exc}") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise LogError(f"{self.path} is not a regular file")
            old = self._state
            if old is None or old.path != self.path:
                error = self._store(TailState(self.path, st.st_dev, st.st_ino, st.st_size))
                return TailRead(size=st.st_size, started=True, save_error=error)
            budget = self.max_read
            chunks: list[bytes] = []
            skipped = 0
            rotated_from: Optional[str] = None
            truncated = False
            start = old.offset
            if (st.st_dev, st.st_ino) != (old.dev, old.ino):
                rotated_from = ""
                found = self._rotated(old)
                if found is not None:
                    rotated_from = found
                    data, skip = _read_rest(found, old.offset, budget)
                    chunks.append(data)
                    skipped += skip
                    budget -= len(data)
                start = 0
            elif st.st_size < old.offset:
                truncated, start = True, 0
            data, skip, consumed = _read_from(fd, start, st.st_size, max(budget, 0))
            chunks.append(data)
            skipped += skip
            error = self._store(TailState(self.path, st.st_dev, st.st_ino, consumed))
        finally:
            os.close(fd)
        text = b"".join(chunks).decode("utf-8", "replace")
        lines = tuple(line for line in text.split("\n") if line)
        return TailRead(lines=lines, bytes_read=sum(map(len, chunks)), size=st.st_size,
                        rotated_from=rotated_from, truncated=truncated, skipped_bytes=skipped,
                        save_error=error)

    def _rotated(self, old: TailState) -> Optional[str]:
        """The rotated file that still has the old inode, in the log's directory, if any."""
        directory, base = os.path.split(self.path)
        try:
            with os.scandir(directory or ".") as entries:
                for entry in entries:
                    if not entry.name.startswith(base) or entry.path == self.path:
                        continue
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if (st.st_dev, st.st_ino) == (old.dev, old.ino) and stat.S_ISREG(st.st_mode):
                        return entry.path
        except OSError:
            return None
        return None


def _read_from(fd: int, start: int, size: int, budget: int) -> tuple[bytes, int, int]:
    """(the complete lines from ``start`` — at most ``budget`` bytes, the newest —, the bytes
    skipped, the offset consumed up to)."""
    skipped = 0
    begin = start
    if size - start > budget:
        skipped = size - start - budget
        begin = size - budget
    data = os.pread(fd, size - begin, begin) if size > begin else b""
    if skipped and data:
        cut = data.find(b"\n")  # the first line is partial: begin at the next one
        if cut >= 0:
            skipped += cut + 1
            begin += cut + 1
            data = data[cut + 1:]
    keep = data.rfind(b"\n") + 1  # a line without its newline yet waits for the next read ...
    if len(data) - keep >= _LONG_LINE:
        keep = len(data)  # ... unless it is endless
    return data[:keep], skipped, begin + keep


def _read_rest(path: str, offset: int, budget: int) -> tuple[bytes, int]:
    """The bytes of the rotated file ``path`` past ``offset`` (at most ``budget``, the newest) and
    the bytes skipped. A rotated file is finished: its last line counts even without a newline."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size <= offset:
                return b"", 0
            skipped = max(0, size - offset - budget)
            f.seek(offset + skipped)
            data = f.read(size - offset - skipped)
    except OSError:
        return b"", 0
    if skipped:
        cut = data.find(b"\n")
        if cut >= 0:
            skipped += cut + 1
            data = data[cut + 1:]
    if data and not data.endswith(b"\n"):
        data += b"\n"
    return data, skipped
