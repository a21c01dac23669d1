"""The monthly report with runs an operator aborted (controller/workflows/aborts.py): counted under
their own outcome, said to be aborted and by whom, and an aborted restore drill is no failed drill."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from controller.workflows import aborts
from controller.workflows.engine import Engine
from controller.workflows.loader import load_playbook
from controller.workflows.models import WorkflowRun
from tests.controller.test_client_report import (  # noqa: F401 (story: the fixture)
    DRILL_FAILURE,
    PLAYBOOK,
    Clock,
    ClockedIncidents,
    Story,
    msk,
    report_of,
    story,
)
from tests.controller.workflows.fakes import FakeExecutor


def aborted_run(told: Story, clock: Clock, path: Path, at: str, start: float) -> int:
    """A run of ``path`` on web1 that cli:ops aborts while the command ``at`` runs."""
    clock.t = start
    ex = FakeExecutor(host="web1")
    ex.on(r"^read-version", (0, "VERSION=25.100.200\n", ""))
    ex.on(r"^verify-backup", (0, "backup ok\n", ""))
    ex.on(r"^version-is", (0, "", ""))

    def asked(_command: str) -> tuple[int, str, str]:
        with told.db.session() as s:
            run_id = max(r.id for r in s.query(WorkflowRun))
            aborts.request_abort(s, run_id, actor="cli:ops", now=clock.t)
        clock.t += 60
        return (0, "backup ok\n" if at == "verify-backup" else "VERSION=25.100.300\n", "")

    ex.on(f"^{at}", asked)
    engine = Engine(told.db.session, incidents=ClockedIncidents(clock), clock=clock, sleep=lambda _s: None)
    return engine.run(load_playbook(path), "web1", ex, {}).id


def test_aborted_runs_in_the_month(story: Story, tmp_path: Path) -> None:  # noqa: F811
    update = tmp_path / "update.yaml"
    update.write_text(textwrap.dedent(PLAYBOOK.format(name="bitrix-modules-update", failure="")))
    drill = tmp_path / "drill.yaml"
    drill.write_text(textwrap.dedent(PLAYBOOK.format(name="bitrix-backup-drill", failure=DRILL_FAILURE)))
    clock = Clock(0.0)
    before = aborted_run(story, clock, update, "verify-backup", msk(12, 1, 3))
    during = aborted_run(story, clock, update, "do-update", msk(12, 2, 3))
    drilled = aborted_run(story, clock, drill, "verify-backup", msk(12, 2, 4))

    report: dict[str, Any] = report_of(story, "acme", "2026-12")
    updates = report["updates"]
    assert updates["by_outcome"] == {"ABORTED": 1, "ROLLED_BACK": 1}
    runs = {r["id"]: r for r in updates["runs"]}
    assert runs[before]["outcome"] == "ABORTED" and not runs[before]["rolled_back"]
    assert runs[before]["reason"] == "aborted by cli:ops before the update began: nothing changed"
    assert runs[during]["rolled_back"]
    assert runs[during]["reason"] == "aborted by cli:ops during update/aborted by cli:ops: ROLLED_BACK"
    [web1] = [h for h in report["backups"]["hosts"] if h["host"] == "web1"]
    assert web1["drills"] == 1 and web1["drills_failed"] == 0
    failures = report["backups"]["failures"]
    assert not any(f["what"].startswith(f"restore drill run {drilled}") for f in failures)
