"""The stored raw form of a report (``reports.body``): what the controller reads back from it, no more.

::

    {"schema": "boxkeeper.stored/1", "push_interval_seconds": 15.0,
     "checks": [{"name": "portal", "status": 2, "hard": true}, ...]}

Readers of raw reports need only this: the retention's hourly summaries (:mod:`controller.retention`,
from which the monthly report is made) take each check's status and the push interval. Everything
else of a report has its own place: the latest check states (summary, perfdata, attempts) in
``check_states``, each status change with its summary in ``state_changes``, the latest samples and
facts in ``host_states``. A report of 20 checks takes ~0.9 KB here instead of ~7 KB as the whole
validated report without samples (the form before; ~10 KB at the example agent config): less to
write on every push (CPU, WAL) and ~8× fewer bytes kept for ``retention.raw_reports``.

Rows written by an older controller (``boxkeeper.report/1``: the whole report) carry the same keys
among others and are read by the same :data:`DECODER` (unknown keys are skipped), so nothing is
converted: they age out with the raw retention.
"""

from __future__ import annotations

import msgspec

FORM = "boxkeeper.stored/1"


class StoredCheck(msgspec.Struct, gc=False):
    name: str
    status: int
    hard: bool = True


class StoredReport(msgspec.Struct, gc=False, kw_only=True):
    """A stored raw report: the compact form, or the part of an older full body readers use."""

    schema: str = FORM
    push_interval_seconds: float
    checks: list[StoredCheck]


DECODER = msgspec.json.Decoder(StoredReport)
_ENCODE = msgspec.json.Encoder().encode


def encode(push_interval_seconds: float, checks: list[StoredCheck]) -> str:
    """The JSON text kept in ``reports.body``."""
    return _ENCODE(StoredReport(push_interval_seconds=push_interval_seconds, checks=checks)).decode("utf-8")
