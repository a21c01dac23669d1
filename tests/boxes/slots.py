"""Claiming a loopback address (box index 11..99) so that concurrent sessions never share one.

A claim is a file /tmp/boxkeeper-box-slots/<index> created with O_EXCL, naming the state dir.
A claim is stale (and taken over) when its box directory holds no running server and the
process that claimed it is gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path

from . import procs
from .errors import NoFreeSlotError
from .layout import FIRST_INDEX, LAST_INDEX, SERVICES, BoxLayout

SLOTS_DIR = Path(os.environ.get("BOXKEEPER_BOX_SLOTS", "/tmp/boxkeeper-box-slots"))


def _claim_file(index: int) -> Path:
    return SLOTS_DIR / str(index)


def _is_stale(index: int) -> bool:
    try:
        claim = json.loads(_claim_file(index).read_text())
    except (OSError, ValueError):
        # being written right now, or garbage: stale only when old
        with contextlib.suppress(OSError):
            return time.time() - _claim_file(index).stat().st_mtime > 60
        return False
    if procs.is_running(claim.get("owner")):
        return False
    layout = BoxLayout(Path(claim.get("state_dir", "/nonexistent")), index)
    return not any(procs.is_running(procs.read_pid(layout.pid_file(s))) for s in SERVICES)


def _ports_free(layout: BoxLayout) -> bool:
    return all(
        procs.port_free(layout.address, port)
        for port in (layout.ssh_port, layout.http_port, layout.ext_http_port, layout.db_port, layout.pg_port)
    )


def claim(state_dir: Path) -> BoxLayout:
    """Claim the lowest free index for a new box in `state_dir`.

    One claimer at a time (an ``flock`` of ``.lock``, threads and processes alike): the stale
    check and its unlink are not atomic, so two claimers taking over the same stale claim could
    each unlink the other's fresh one and both get the index (seen: two boxes building in one
    directory, FileExistsError)."""
    SLOTS_DIR.mkdir(parents=True, exist_ok=True)
    with open(SLOTS_DIR / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        return _claim(state_dir)


def _claim(state_dir: Path) -> BoxLayout:
    for index in range(FIRST_INDEX, LAST_INDEX + 1):
        path = _claim_file(index)
        if path.exists() and _is_stale(index):
            path.unlink(missing_ok=True)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            continue
        layout = BoxLayout(state_dir, index)
        with os.fdopen(fd, "w") as out:
            json.dump({"state_dir": str(state_dir), "owner": os.getpid()}, out)
        if layout.root.exists() or not _ports_free(layout):
            # a leftover directory of ours or a foreign server on this address: skip it
            if not layout.root.exists():
                path.write_text(json.dumps({"state_dir": "/nonexistent", "owner": None, "busy": True}))
            else:
                path.unlink(missing_ok=True)
            continue
        return layout
    raise NoFreeSlotError(f"no free box address in 127.0.0.{FIRST_INDEX}-{LAST_INDEX}")


def release(layout: BoxLayout) -> None:
    """Give the index back (after the box is down)."""
    path = _claim_file(layout.index)
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("state_dir") == str(layout.state_dir):
            path.unlink()
