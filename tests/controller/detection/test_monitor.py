"""The monitor's threads: a failing pass is logged and the loop goes on; stop() joins the threads."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from controller.monitor import Monitor
from controller.store.db import Database
from tests.controller.alerting.support import controller_config


def test_a_failing_pass_is_logged_and_the_loop_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = controller_config(tmp_path, hosts=[{"name": "portal-01"}], detection={"evaluate_interval": "100ms"})
    db = Database(cfg.database)
    db.upgrade()
    monitor = Monitor(cfg, db)
    calls: list[float] = []
    real = monitor.evaluate_once

    def flaky(only: set[str] | None = None) -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("database went away")
        real(only)

    monitor.evaluate_once = flaky  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="boxkeeper.monitor"):
        monitor.start()
        deadline = time.monotonic() + 30
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        monitor.stop()
    assert len(calls) >= 3 and monitor.pass_errors == 1
    assert "detection pass failed" in caplog.text and "database went away" in caplog.text
    assert not [t for t in threading.enumerate() if t.name.startswith("boxkeeper-")]
    db.dispose()
