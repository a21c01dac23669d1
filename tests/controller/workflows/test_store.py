"""The workflow tables on SQLite and PostgreSQL: migration 0003 matches the models; one run per host."""

from __future__ import annotations

import threading

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from controller.store.base import Base
from controller.store.db import Database
from controller.workflows import models, runs
from controller.workflows.errors import HostBusyError


def test_migration_0003_matches_the_models(db: Database) -> None:
    assert models.WorkflowRun.__tablename__ in Base.metadata.tables
    with db.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    ours = [d for d in diffs if "workflow_" in repr(d)]
    assert ours == []


def test_only_one_run_per_host_even_when_racing(db: Database) -> None:
    winners: list[int] = []
    refused: list[str] = []
    barrier = threading.Barrier(4)

    def attempt() -> None:
        barrier.wait()
        try:
            winners.append(runs.create_run(db.session, host="box1", playbook="p", playbook_path="/p.yaml",
                                           variables={}, dry_run=False, now=1.0))
        except HostBusyError as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(winners) == 1 and len(refused) == 3
    with db.session() as s:
        runs.release_lease(s, "box1", winners[0])
    assert runs.create_run(db.session, host="box1", playbook="p", playbook_path="/p.yaml", variables={},
                           dry_run=False, now=2.0) != winners[0]
