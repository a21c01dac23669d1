"""A rolled-back 1C configuration release is held for the fleet: the next run of the same `.cfu`
version ends SKIPPED with the infobase untouched (--with-1c test boxes: real sshd and PostgreSQL,
the 1C test doubles of rac and the designer)."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.store.db import Database
from controller.workflows import releases
from tests.boxes.box import Box
from tests.boxes.doubles.state import make_update
from tests.controller.workflows.onec_kit import NEXT, START, infobase_content, locks, marker, updates
from tests.controller.workflows.test_onec_config_update import open_incidents, run_update

pytestmark = pytest.mark.integration


def test_a_rolled_back_cfu_version_is_skipped_on_the_next_run_until_released(
        store: Database, box_1c: Box, tmp_path: Path) -> None:
    before = infobase_content(box_1c)
    broken = make_update(updates(box_1c) / f"{NEXT}-errors", NEXT, [START], config_errors=True)
    first, _ = run_update(store, box_1c, tmp_path, update_dir=str(broken))
    assert first.state == "ROLLED_BACK", first.error
    [incident] = open_incidents(store, box_1c.name)
    assert f"release {NEXT} is now held for the fleet; `boxkeeper releases release 1`" in incident.summary

    # The vendor's good build of the same version: still that release, still held.
    backups = box_1c.layout.root / "var/backups/boxkeeper-1c"
    kept_before = sorted(backups.rglob("*"))
    second, ex = run_update(store, box_1c, tmp_path, update_dir=str(updates(box_1c) / NEXT))
    assert second.state == "SKIPPED", second.error
    assert f"release held: 1c-config-update release {NEXT}" in (second.error or "")
    changing = ("sessions-deny=on", "/UpdateCfg")  # no lock, no update (the dump: below)
    assert not any(word in text for text in ex.seen for word in changing)
    assert infobase_content(box_1c) == before and locks(box_1c) == ("off", "off")
    assert not marker(box_1c).exists()
    assert sorted(backups.rglob("*")) == kept_before  # no dump taken
    assert len(open_incidents(store, box_1c.name)) == 1

    with store.session() as s:
        releases.release(s, 1, actor="cli:ops", now=1.0)
    third, _ = run_update(store, box_1c, tmp_path, update_dir=str(updates(box_1c) / NEXT))
    assert third.state == "SUCCEEDED", third.error
