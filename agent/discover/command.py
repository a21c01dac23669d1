"""``boxkeeper-agent discover``: options → :func:`~agent.discover.survey.discover` → text, printed
or written to a file.

``--write FILE`` creates FILE with mode 0640 and refuses to replace an existing one (exit 1)
unless ``--force``; with ``--force`` the new file is written beside it and renamed over it (never a
half-written config), keeping the old file's owner and group when allowed. Exit 2: bad options
(the root is not a directory, the host name is not valid).

``--rac`` is the one option that makes discover run something: the 1C cluster's ``rac`` (the
platform's own, found under the root), twice, read-only — ``rac cluster list`` and ``rac infobase
summary list`` — to name the infobases to watch (:func:`ask_rac`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from pathlib import Path
from typing import Optional, TextIO

import yaml

from agent.checks.onec.rac import Rac, RacError
from agent.configtypes import NAME_RE
from agent.discover.render import Push, render
from agent.discover.services import ProcessSource
from agent.discover.survey import discover

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2
MODE = 0o640


class RefusedError(Exception):
    """The output file could not be written (exists without --force, or an OS error)."""


def process_source(root: Path, proc: Optional[str]) -> ProcessSource:
    """``/``: every process of ``/proc`` (or ``--proc``); another root: the processes named by its
    pid files in ``--proc``, or none without it."""
    is_host = os.path.abspath(root) == "/"
    if is_host:
        return ProcessSource(Path(proc or "/proc"), whole_table=True)
    return ProcessSource(Path(proc) if proc else None, whole_table=False)


def ask_rac(rac: Path, timeout: float = 10.0) -> tuple[tuple[str, ...] | None, str]:
    """The infobases the 1C cluster has, asked through ``rac`` (read-only); or None and why not."""
    client = Rac(str(rac))
    try:
        cluster = client.cluster(timeout)
        listed = client.run(["infobase", f"--cluster={cluster}", "summary", "list"], timeout)
    except RacError as exc:
        return None, f"rac did not tell: {exc}"
    names = tuple(r["name"] for r in listed if r.get("name"))
    return names, f"rac infobase summary list (cluster {cluster})"


def write_config(path: Path, text: str, *, force: bool) -> None:
    data = text.encode("utf-8")
    if not force:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, MODE)  # novm
        except FileExistsError:
            raise RefusedError(f"{path} exists; not overwritten (use --force to replace it)") from None
        except OSError as exc:
            raise RefusedError(f"cannot create {path}: {exc.strerror or exc}") from None
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), MODE)  # whatever the umask
            f.write(data)
        return
    try:
        old = os.stat(path)
    except OSError:
        old = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise RefusedError(f"cannot write beside {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), MODE)
            if old is not None:
                with contextlib.suppress(OSError):
                    os.fchown(f.fileno(), old.st_uid, old.st_gid)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise RefusedError(f"cannot write {path}: {exc.strerror or exc}") from None


def summary(text: str) -> str:
    checks = (yaml.safe_load(text) or {}).get("checks") or []
    todos = sum(1 for line in text.splitlines() if line.lstrip().startswith("# TODO:"))
    off = sum(1 for line in text.splitlines() if line.lstrip().startswith("#- "))
    return f"{len(checks)} checks, {off} commented out, {todos} TODO"


def run(
    *,
    root: str,
    proc: Optional[str],
    host: Optional[str],
    paths_under_root: bool,
    write: Optional[str],
    force: bool,
    out: TextIO,
    err: TextIO,
    controller_url: Optional[str] = None,
    token_file: Optional[str] = None,
    listen: Optional[str] = None,
    rac: bool = False,
) -> int:
    root_path = Path(root)
    if not root_path.is_dir():
        err.write(f"boxkeeper-agent: discover: --root {root}: not a directory\n")
        return EXIT_USAGE
    if host is not None and not NAME_RE.fullmatch(host):
        err.write(f"boxkeeper-agent: discover: --host {host!r}: expected letters, digits, '_', '.', ':' "
                  "or '-' (at most 100)\n")
        return EXIT_USAGE
    if host is None and os.path.abspath(root_path) == "/":
        short = socket.gethostname().split(".")[0]
        host = short if NAME_RE.fullmatch(short) else None
    found = discover(root_path, process_source(root_path, proc), host, ask_rac if rac else None)
    push = None
    if controller_url is not None:
        push = Push(controller_url, token_file) if token_file else Push(controller_url)
    elif token_file is not None:
        err.write("boxkeeper-agent: discover: --token-file goes with --controller-url\n")
        return EXIT_USAGE
    text = render(found, paths_under_root=paths_under_root, push=push, listen=listen)
    if write is None:
        out.write(text)
        return EXIT_OK
    try:
        write_config(Path(write), text, force=force)
    except RefusedError as exc:
        err.write(f"boxkeeper-agent: discover: {exc}\n")
        return EXIT_REFUSED
    err.write(f"boxkeeper-agent: wrote {write} ({summary(text)})\n")
    return EXIT_OK
