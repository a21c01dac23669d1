"""Run states of the per-host state machine (DESIGN.md "Update workflows") and the allowed transitions.

::

    LOCK → PREFLIGHT → BACKUP → BACKUP_VERIFY → UPDATE → VERIFY → SUCCEEDED
      │        │          │           │            │        │
      └────────┴──────────┴───────────┴→ FAILED    └────────┴→ ROLLBACK → ROLLBACK_VERIFY → ROLLED_BACK
                                                               │              │
                                                               └──────────────┴→ ROLLBACK_FAILED → QUARANTINED

A dry run ends PREFLIGHT → SUCCEEDED (``dry_run`` set on the run). ROLLED_BACK is a failure of the
release: it never counts as success (its exit code is non-zero and it opens an incident).

SKIPPED: the release the run would install is held fleet-wide (:mod:`controller.workflows.releases`);
decided after PREFLIGHT, before anything changed on the box. It is not a failure and opens no
incident. A later rollback (``boxkeeper runs rollback ID``, :mod:`controller.workflows.later`) goes
LOCK → PREFLIGHT → ROLLBACK → ROLLBACK_VERIFY → ROLLED_BACK (or ROLLBACK_FAILED → QUARANTINED).

ABORTED: an operator aborted the run (``boxkeeper runs abort ID``, :mod:`controller.workflows.aborts`)
before its update phase began; nothing on the box was changed (a backup is not a change), its
``finally`` steps ran and the lock is released. An abort once the update phase has begun goes the
rollback path instead (ROLLED_BACK, or QUARANTINED).
"""

from __future__ import annotations

import enum

from controller.workflows.playbook import Phase


class RunState(enum.StrEnum):
    LOCK = "LOCK"
    PREFLIGHT = "PREFLIGHT"
    BACKUP = "BACKUP"
    BACKUP_VERIFY = "BACKUP_VERIFY"
    UPDATE = "UPDATE"
    VERIFY = "VERIFY"
    SUCCEEDED = "SUCCEEDED"
    ROLLBACK = "ROLLBACK"
    ROLLBACK_VERIFY = "ROLLBACK_VERIFY"
    ROLLED_BACK = "ROLLED_BACK"
    ROLLBACK_FAILED = "ROLLBACK_FAILED"
    QUARANTINED = "QUARANTINED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    ABORTED = "ABORTED"


S = RunState
TERMINAL = frozenset({S.SUCCEEDED, S.ROLLED_BACK, S.QUARANTINED, S.FAILED, S.SKIPPED, S.ABORTED})
TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    S.LOCK: frozenset({S.PREFLIGHT, S.FAILED, S.ABORTED}),
    S.PREFLIGHT: frozenset({S.BACKUP, S.FAILED, S.SUCCEEDED, S.SKIPPED, S.ROLLBACK, S.ABORTED}),
    S.BACKUP: frozenset({S.BACKUP_VERIFY, S.FAILED, S.ABORTED}),
    S.BACKUP_VERIFY: frozenset({S.UPDATE, S.FAILED, S.ABORTED}),
    S.UPDATE: frozenset({S.VERIFY, S.ROLLBACK}),
    S.VERIFY: frozenset({S.SUCCEEDED, S.ROLLBACK}),
    S.ROLLBACK: frozenset({S.ROLLBACK_VERIFY, S.ROLLBACK_FAILED}),
    S.ROLLBACK_VERIFY: frozenset({S.ROLLED_BACK, S.ROLLBACK_FAILED}),
    S.ROLLBACK_FAILED: frozenset({S.QUARANTINED}),
}

#: The playbook phase each working state runs (ROLLBACK_VERIFY runs ``verify`` with after=rollback).
PHASE_OF: dict[RunState, Phase] = {
    S.PREFLIGHT: Phase.PREFLIGHT,
    S.BACKUP: Phase.BACKUP,
    S.BACKUP_VERIFY: Phase.BACKUP_VERIFY,
    S.UPDATE: Phase.UPDATE,
    S.VERIFY: Phase.VERIFY,
    S.ROLLBACK: Phase.ROLLBACK,
    S.ROLLBACK_VERIFY: Phase.VERIFY,
}

#: CLI exit codes of ``boxkeeper update run`` per final state (3 = refused, 2 = config error).
EXIT_CODES = {S.SUCCEEDED: 0, S.FAILED: 1, S.ROLLED_BACK: 4, S.QUARANTINED: 5, S.SKIPPED: 6, S.ABORTED: 7}


class TransitionError(RuntimeError):
    """A programming error: the engine tried a transition the state machine does not allow."""


def check_transition(current: RunState, target: RunState) -> None:
    if target not in TRANSITIONS.get(current, frozenset()):
        raise TransitionError(f"{current} → {target} is not a transition of the run state machine")
