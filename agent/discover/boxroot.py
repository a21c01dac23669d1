"""Read-only access to a box's files through a root directory (``/``, or a copy, image or test box).

Everything ``discover`` reads goes through :class:`BoxRoot`, so it can be pointed at a fake tree in
tests, and so nothing is ever read from outside the root:

- paths are *box paths*: absolute, as on the box (``/home/bitrix/www``). :meth:`BoxRoot.host`
  turns one into the path to open here, resolving symbolic links *inside* the root (an absolute
  link target such as ``/var/log/httpd`` is taken relative to the root, as a chroot would);
- a path written in one of the box's files that already starts with the root (the configs of a
  test box name their files by their full path here) is the box path after the root
  (:meth:`BoxRoot.box_path`);
- only regular files are read, at most ``MAX_READ`` bytes, opened non-blocking (a FIFO left in
  ``/etc`` cannot hang discover); anything that cannot be read is ``None``, never an exception.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Optional, Union

MAX_READ = 1024 * 1024
_MAX_LINKS = 40


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p and p != "."]


class BoxRoot:
    def __init__(self, root: Union[Path, str]) -> None:
        self.path = Path(os.path.abspath(root))
        self._prefixes = tuple(
            {str(self.path).rstrip("/"), os.path.realpath(self.path).rstrip("/")} - {""}
        )

    @property
    def is_host_root(self) -> bool:
        """True when the root is this machine's ``/`` (paths need no mapping)."""
        return str(self.path) == "/"

    def box_path(self, found: str) -> str:
        """The box path of a path named in one of the box's files (root prefix removed)."""
        norm = os.path.normpath(found) if found else found
        if not norm.startswith("/"):
            return norm
        for prefix in self._prefixes:
            if norm == prefix:
                return "/"
            if norm.startswith(prefix + "/"):
                return norm[len(prefix):]
        return "/" + norm.lstrip("/")

    def under_root(self, found: str) -> bool:
        """True when a path of this machine lies inside the root."""
        norm = os.path.normpath(found)
        return self.is_host_root or any(norm == p or norm.startswith(p + "/") for p in self._prefixes)

    def host(self, box_path: str) -> Path:
        """Where a box path is here; symbolic links are followed without leaving the root."""
        if self.is_host_root:
            return Path("/", *_parts(box_path))
        pending = _parts(box_path)
        resolved: list[str] = []
        hops = 0
        while pending:
            part = pending.pop(0)
            if part == "..":
                if resolved:
                    resolved.pop()
                continue
            here = self.path.joinpath(*resolved, part)
            try:
                target = os.readlink(here)
            except OSError:  # not a link, or not there: taken as it is
                resolved.append(part)
                continue
            hops += 1
            if hops > _MAX_LINKS:
                return self.path.joinpath(*resolved, part, *pending)
            if target.startswith("/"):
                target = self.box_path(target)
                resolved = []
            pending = _parts(target) + pending
        return self.path.joinpath(*resolved)

    def canonical(self, box_path: str) -> str:
        """The box path with every symbolic link resolved (for telling two names of one file apart)."""
        if self.is_host_root:
            return os.path.realpath(box_path)
        rel = self.host(box_path).relative_to(self.path)
        return "/" + str(rel) if str(rel) != "." else "/"

    # -- questions -------------------------------------------------------------------------------

    def _stat(self, box_path: str) -> Optional[os.stat_result]:
        try:
            return os.stat(self.host(box_path))
        except (OSError, ValueError):
            return None

    def exists(self, box_path: str) -> bool:
        return self._stat(box_path) is not None

    def is_file(self, box_path: str) -> bool:
        st = self._stat(box_path)
        return st is not None and stat.S_ISREG(st.st_mode)

    def is_dir(self, box_path: str) -> bool:
        st = self._stat(box_path)
        return st is not None and stat.S_ISDIR(st.st_mode)

    def listdir(self, box_path: str) -> list[str]:
        """Names in a directory, sorted (none when it is missing or unreadable)."""
        try:
            return sorted(os.listdir(self.host(box_path)))
        except OSError:
            return []

    def files(self, box_dir: str) -> list[str]:
        """Box paths of the regular files in a directory, sorted."""
        return [p for p in (join(box_dir, n) for n in self.listdir(box_dir)) if self.is_file(p)]

    def glob(self, pattern: str) -> list[str]:
        """Box paths matching a glob of box paths (``*``, ``?``, ``[...]`` in any component), sorted."""
        parts = _parts(pattern)
        fixed: list[str] = []
        while parts and not any(c in parts[0] for c in "*?["):
            fixed.append(parts.pop(0))
        base = "/" + "/".join(fixed)
        if not parts:
            return [base] if self.exists(base) else []
        host_base = self.host(base)
        try:
            found = sorted(host_base.glob("/".join(parts)))
        except (OSError, ValueError):
            return []
        return [join(base, str(p.relative_to(host_base))) for p in found]

    def read_text(self, box_path: str) -> Optional[str]:
        """The text of a regular file (UTF-8, undecodable bytes replaced), at most MAX_READ bytes."""
        data = self._read(box_path)
        return data if isinstance(data, str) else None

    def unreadable(self, box_path: str) -> Optional[str]:
        """Why a file cannot be read (``None``: it can)."""
        data = self._read(box_path)
        return data.reason if isinstance(data, _Unreadable) else None

    def _read(self, box_path: str) -> Union[str, _Unreadable]:
        try:
            flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY  # novm
            fd = os.open(self.host(box_path), flags)
        except OSError as exc:
            return _Unreadable(_reason(exc))
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return _Unreadable("not a regular file")
            chunks: list[bytes] = []
            size = 0
            while size < MAX_READ and (chunk := os.read(fd, MAX_READ - size)):
                chunks.append(chunk)
                size += len(chunk)
            return b"".join(chunks).decode("utf-8", errors="replace")
        except OSError as exc:
            return _Unreadable(_reason(exc))
        finally:
            os.close(fd)


class _Unreadable:
    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _reason(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ENOENT:
        return "not found"
    return exc.strerror or str(exc)


def join(box_dir: str, *names: str) -> str:
    """``join("/etc", "cron.d")`` → ``/etc/cron.d`` (box paths, no normalisation of ``..``)."""
    out = box_dir.rstrip("/")
    for name in names:
        out += "/" + name.strip("/")
    return out or "/"
