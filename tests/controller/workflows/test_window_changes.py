"""Editing, disabling and deleting update windows (CLI and the scheduler), each change recorded with
its operator; a missed window's incident carries its client."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select

from controller.alerting.models import Incident
from controller.alerting.routing import channels_for
from controller.cli import main
from controller.config import load
from controller.store.db import Database
from controller.workflows.outcomes import ServiceIncidents
from controller.workflows.windows import JOBS_TABLE, WindowScheduler, add_window, edit_window, set_enabled
from tests.controller.workflows.test_windows import Runner, no_lift, no_silence


def write_config(tmp_path: Path) -> str:
    config = {
        "state_dir": str(tmp_path / "state"),
        "database": f"sqlite:///{tmp_path}/boxkeeper.db",
        "clients": [{"name": "acme", "timezone": "Europe/Moscow", "hosts": [{"name": "web1"}]},
                    {"name": "globex", "hosts": [{"name": "db1"}]}],
        "notify": [{"type": "webhook", "name": "acme-hook", "url": "https://127.0.0.1:9/a",
                    "clients": ["acme"], "min_severity": "warning"},
                   {"type": "webhook", "name": "globex-hook", "url": "https://127.0.0.1:9/g",
                    "clients": ["globex"], "min_severity": "warning"}],
    }
    path = tmp_path / "controller.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def cli(cfg: str, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["--config", cfg, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_edit_disable_enable_delete_are_recorded_with_the_operator(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path)
    assert cli(cfg, capsys, "windows", "add", "sat", "--client", "acme", "--playbook",
               "bitrix-modules-update", "--cron", "0 3 * * 6", "--duration", "120")[0] == 0
    code, out, _ = cli(cfg, capsys, "windows", "edit", "sat", "--cron", "30 2 * * 0", "--duration", "90",
                       "--var", "modules=crm")
    assert code == 0
    assert "cron: '0 3 * * 6' -> '30 2 * * 0'" in out and "duration_minutes: 120 -> 90" in out
    code, _, err = cli(cfg, capsys, "windows", "edit", "sat", "--cron", "61 * * * *")
    assert code == 2 and "cron" in err  # a wrong value: nothing changed
    code, _, err = cli(cfg, capsys, "windows", "edit", "sat", "--timezone", "Mars/Olympus")
    assert code == 2 and "timezone" in err
    assert cli(cfg, capsys, "windows", "disable", "sat")[1] == "window sat: disabled\n"
    assert cli(cfg, capsys, "windows", "disable", "sat")[1] == "window sat: already disabled\n"
    code, out, _ = cli(cfg, capsys, "windows", "list", "--json")
    [window] = json.loads(out)
    assert (window["cron"], window["duration_minutes"], window["enabled"], window["variables"]) == (
        "30 2 * * 0", 90, False, {"modules": "crm"})
    assert "(DISABLED)" in cli(cfg, capsys, "windows", "list")[1]
    assert cli(cfg, capsys, "windows", "enable", "sat")[0] == 0
    assert cli(cfg, capsys, "windows", "delete", "sat")[0] == 0
    assert cli(cfg, capsys, "windows", "delete", "sat")[:1] == (1,)
    assert json.loads(cli(cfg, capsys, "windows", "list", "--json")[1]) == []

    code, out, _ = cli(cfg, capsys, "windows", "changes", "sat", "--json")
    changes = json.loads(out)
    assert [c["action"] for c in changes] == ["delete", "enable", "disable", "edit", "add"]
    assert {c["actor"] for c in changes} == {changes[0]["actor"]} and changes[0]["actor"].startswith("cli:")
    assert changes[3]["changes"]["cron"] == ["0 3 * * 6", "30 2 * * 0"]
    assert "sat: delete by cli:" in cli(cfg, capsys, "windows", "changes")[1]


def scheduler(db: Database, runner: Runner) -> WindowScheduler:
    return WindowScheduler(db, hosts_of=lambda target: ["web1"], run_host=runner,
                           incidents=ServiceIncidents(), silence=no_silence, lift=no_lift)


def test_a_disabled_window_does_not_start_and_an_edit_reaches_the_scheduler(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/boxkeeper.db")
    db.upgrade()
    now = datetime.now(UTC)
    with db.session() as s:
        window_id = add_window(s, name="now", target="client:acme", playbook="bitrix-modules-update",
                               cron=f"{now.minute} {now.hour} * * *", duration_minutes=120, timezone="UTC",
                               variables={}, now=time.time()).id
    runner = Runner()
    sched = scheduler(db, runner)
    sched.start(paused=True)
    try:
        with db.session() as s:
            set_enabled(s, "now", False, actor="alice", now=time.time())
        sched.run_window(window_id)  # a stored job firing after the window was disabled
        assert runner.calls == []
        sched.sync()
        assert sched.next_start(window_id) is None  # its job is gone
        with db.session() as s:
            set_enabled(s, "now", True, actor="alice", now=time.time())
            edit_window(s, "now", actor="alice", now=time.time(), cron="15 4 * * *")
        sched.sync()
        nxt = sched.next_start(window_id)
        assert nxt is not None and (nxt.astimezone(UTC).hour, nxt.minute) == (4, 15)
        with db.session() as s:  # back to a window open now: enabled again, it runs its hosts
            edit_window(s, "now", actor="alice", now=time.time(), cron=f"{now.minute} {now.hour} * * *")
        sched.run_window(window_id)
        assert runner.calls == ["web1"]
    finally:
        sched.stop()
        db.engine.dispose()


def test_a_missed_window_incident_carries_its_client_for_client_routed_channels(
        tmp_path: Path) -> None:
    cfg = load(write_config(tmp_path))
    db = Database(cfg.database)
    db.upgrade()
    with db.session() as s:
        window_id = add_window(s, name="sat", target="client:acme", playbook="bitrix-modules-update",
                               cron="0 3 * * 6", duration_minutes=120, timezone="Europe/Moscow", variables={},
                               now=time.time()).id
    down = scheduler(db, Runner())
    down.start(paused=True)
    down.stop()
    jobs = SQLAlchemyJobStore(engine=db.engine, tablename=JOBS_TABLE)
    jobs.start(BackgroundScheduler(), "default")
    job = jobs.lookup_job(f"window-{window_id}")
    job._modify(next_run_time=datetime.now(UTC) - timedelta(minutes=10))
    jobs.update_job(job)
    back = scheduler(db, Runner())
    back.start()
    try:
        assert back.done.wait(30)
    finally:
        back.stop()
    with db.read_session() as s:
        [(cause, client)] = s.execute(select(Incident.cause, Incident.client_name)).all()
    assert (cause, client) == ("update_window_missed", "acme")
    routed = channels_for(cfg.notify, client=client, severity="warning")
    assert [c.name for c in routed] == ["acme-hook"]
    db.engine.dispose()
