"""The update-run marker: how the agent knows that sessions-deny and scheduled-jobs-deny are on
because an update is running, not because one was left behind.

The contract (docs/agent-checks.md "1C: the update-run marker"): a run that locks an infobase
writes ``/var/lib/boxkeeper/onec-update-<infobase>.lock`` (``<infobase>`` as rac names it: ``buh``)
*before* it turns sessions-deny on, and removes it *after* it turned them off, in every outcome
(the controller's reconcile included). The content is free text for people (the run id and when
it started); the agent reads only whether it exists and its age (mtime). A marker older than the
check's ``update_max_age`` (12 h) counts as left behind too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

DEFAULT_MARKER = "/var/lib/boxkeeper/onec-update-{infobase}.lock"


@dataclass(frozen=True)
class UpdateMarker:
    path: str
    age: float      # seconds since it was written
    text: str       # its first line (for a summary), at most 120 characters


def marker_path(template: str, infobase: str) -> str:
    return template.replace("{infobase}", infobase)


def read_marker(path: str, now: float) -> Optional[UpdateMarker]:
    """The marker at ``path``, or None when there is none (or it cannot be read)."""
    try:
        with open(path, "rb") as f:
            mtime = os.fstat(f.fileno()).st_mtime
            first = f.read(512).decode("utf-8", "replace").split("\n", 1)[0].strip()
    except OSError:
        return None
    return UpdateMarker(path, max(0.0, now - mtime), first[:120])
