"""A failed release pages: rolled back on a real box → incident → webhook notification from the monitor."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller import inventory
from controller.alerting.models import Incident
from controller.config import load
from controller.monitor import Monitor
from controller.runtime import WorkflowRuntime
from controller.store.db import Database
from tests.boxes.box import Box
from tests.controller.alerting.support import recorder, secret_file
from tests.controller.workflows.boxkit import bitrix_vars, portal_version
from tests.controller.workflows.test_cli import write_config

pytestmark = pytest.mark.integration


def test_a_rolled_back_release_pages_with_its_failed_step_and_versions(box: Box, tmp_path: Path) -> None:
    with recorder("127.0.3.61") as hook:
        path = write_config(box, tmp_path)
        raw: dict[str, Any] = yaml.safe_load(path.read_text())
        raw["notify"] = [{"name": "ops-hook", "type": "webhook", "url": hook.url + "/bk",
                          "secret_file": str(secret_file(tmp_path / "hook.secret", "s3cret"))}]
        path.write_text(yaml.safe_dump(raw))
        cfg = load(path)
        db = Database(cfg.database)
        db.upgrade()
        inventory.sync_config(cfg, db)
        Path(cfg.state_dir, "known_hosts").write_text(box.info.known_hosts.strip() + "\n")
        box.stage("broken-fatal")
        variables = {k: v for k, v in bitrix_vars(box).items() if k != "portal_url"}

        result = WorkflowRuntime(cfg, db).run("bitrix-modules-update", box.name, variables)
        assert result.state == "ROLLED_BACK", result.error
        assert portal_version(box) == (200, "25.100.200")

        monitor = Monitor(cfg, db)
        deadline = time.monotonic() + 30
        while not hook.bodies() and time.monotonic() < deadline:
            monitor.evaluate_once()
            monitor.dispatch_once()
            time.sleep(0.2)
    [page] = hook.bodies()
    assert page["event"] == "firing"
    incident = page["incident"]
    assert incident["host"] == box.name and incident["severity"] == "critical"
    assert incident["cause"] == "release_rolled_back"
    summary = incident["summary"]
    # the broken kernel shows first on the control panel, checked while the public part is still closed
    assert "release rolled back" in summary and "failed at verify/portal admin page" in summary
    assert f"boxkeeper-run-{result.id}" in summary  # where the backup pair is
    assert "ERROR_WRONG_CODE" in summary  # the Bitrix update server may refuse the next update
    with db.read_session() as s:
        stored = s.get(Incident, incident["id"])
        assert stored is not None
        details = stored.details
    assert details["captured"]["sm_version_before"] == "25.100.200"  # versions before/after
    assert details["failed_step"] and details["failed_output"]  # the failed step's output
