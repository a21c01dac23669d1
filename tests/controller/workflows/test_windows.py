"""Update windows on APScheduler's persistent job store (the controller's SQLite database)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from controller import inventory
from controller.alerting import silences
from controller.alerting.silences import Owner
from controller.config import parse
from controller.errors import ConfigError
from controller.runtime import WorkflowRuntime
from controller.schedule_trigger import CronScheduleTrigger
from controller.store.db import Database
from controller.workflows.models import UpdateWindow, WorkflowRun
from controller.workflows.runs import RunSummary
from controller.workflows.windows import (
    JOBS_TABLE,
    WindowScheduler,
    add_window,
    last_start,
    occurrences,
    schedule_of,
)
from tests.controller.workflows.conftest import RecordingIncidents


class Runner:
    def __init__(self, states: dict[str, str] | None = None) -> None:
        self.calls: list[str] = []
        self.states = states or {}

    def __call__(self, window: UpdateWindow, host: str, ends_at: float) -> RunSummary:
        self.calls.append(host)
        state = self.states.get(host, "SUCCEEDED")
        return RunSummary(len(self.calls), host, "p", state, False, None, None, {}, 0.0, 1.0)


def no_silence(host: str, owner: Owner, until: float, reason: str) -> Owner | None:
    return None


def no_lift(owner: Owner | None, host: str | None) -> None:
    return None


def scheduler(store: Database, runner: Runner, incidents: RecordingIncidents) -> WindowScheduler:
    return WindowScheduler(store, hosts_of=lambda target: ["canary", "web2", "web3"], run_host=runner,
                           incidents=incidents, silence=no_silence, lift=no_lift)


def make_window(store: Database, duration: int = 120) -> int:
    with store.session() as s:
        return add_window(s, name="sat-night", target="client:acme", playbook="bitrix-modules-update",
                          cron="0 3 * * 6", duration_minutes=duration, timezone="Europe/Moscow", variables={},
                          now=time.time()).id


def test_window_validation(store: Database) -> None:
    with store.session() as s, pytest.raises(ConfigError, match="cron: expected a cron expression"):
        add_window(s, name="x", target="h", playbook="p", cron="every saturday", duration_minutes=60,
                   timezone="UTC", variables={}, now=0)
    with store.session() as s, pytest.raises(ConfigError, match="timezone: expected an IANA time zone"):
        add_window(s, name="x", target="h", playbook="p", cron="0 3 * * 6", duration_minutes=60,
                   timezone="Mars/Olympus", variables={}, now=0)


def test_cron_weekdays_mean_what_cron_means() -> None:
    monday = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    for expr, weekday in (("0 3 * * 6", 5), ("0 3 * * 0", 6), ("0 3 * * 7", 6), ("0 3 * * 1-5", 1)):
        nxt = CronScheduleTrigger(schedule_of(expr, "UTC")).get_next_fire_time(None, monday)
        assert nxt is not None and nxt.weekday() == weekday, expr


@pytest.mark.parametrize(("weekdays", "days"), [
    ("*/2", {"Sun", "Tue", "Thu", "Sat"}),  # cron(8): 0,2,4,6 (APScheduler's own would be Mon,Wed,Fri,Sun)
    ("1-5/2", {"Mon", "Wed", "Fri"}),
    ("0-6", {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}),
    ("5-7", {"Fri", "Sat", "Sun"}),
])
def test_stepped_weekdays_fire_on_cron8s_days(weekdays: str, days: set[str]) -> None:
    """The trigger the window scheduler stores, fired for two weeks in the window's zone."""
    trigger = CronScheduleTrigger(schedule_of(f"0 3 * * {weekdays}", "Europe/Moscow"))
    fired: list[datetime] = []
    previous = None
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # a Monday
    while len(fired) < 14:
        nxt = trigger.get_next_fire_time(previous, now)
        if nxt is None or nxt > now + timedelta(days=14):
            break
        fired.append(nxt)
        previous = nxt
    assert fired and {f.strftime("%a") for f in fired} == days
    assert all((f.hour, f.minute) == (3, 0) for f in fired)  # 03:00 Moscow time


def test_an_operators_silence_survives_the_end_of_a_window_run(store: Database, tmp_path: object) -> None:
    cfg = parse({"state_dir": str(tmp_path), "clients": [{"name": "acme", "hosts": [
        {"name": "canary"}, {"name": "web2"}, {"name": "web3"}]}]}, "c.yaml")
    inventory.sync_config(cfg, store)
    runtime = WorkflowRuntime(cfg, store)
    now = time.time()
    with store.session() as s:  # an operator silenced web2 for the night
        silences.silence(s, host="web2", until=now + 8 * 3600, reason="disk swap tonight",
                         owner=Owner.operator("alice"), now=now)
    seen: dict[str, str | None] = {}

    def run_host(window: UpdateWindow, host: str, ends_at: float) -> RunSummary:
        with store.read_session() as s:  # during its run, the window silences the host
            seen[host] = silences.is_muted(s, host=host, client="acme", now=time.time())
        return Runner()(window, host, ends_at)

    sched = WindowScheduler(store, hosts_of=lambda target: ["canary", "web2", "web3"], run_host=run_host,
                            incidents=RecordingIncidents(), silence=runtime.silence, lift=runtime.lift)
    start = datetime.now(UTC)
    with store.session() as s:  # a daily window that started this minute and lasts two hours
        window_id = add_window(s, name="sat-night", target="client:acme", playbook="bitrix-modules-update",
                               cron=f"{start.minute} {start.hour} * * *", duration_minutes=120,
                               timezone="UTC", variables={}, now=time.time()).id
    sched.run_window(window_id)
    assert seen["canary"] == seen["web3"] == "muted: update window sat-night"
    assert seen["web2"] is not None  # silenced twice over: by alice and by the window
    with store.read_session() as s:
        left = [(host, row.owner_kind, row.reason) for host, row in silences.active(s, time.time())]
    assert left == [("web2", "operator", "disk swap tonight")]  # the window lifted only its own


def test_window_is_scheduled_in_its_time_zone_and_survives_a_restart(store: Database) -> None:
    window_id = make_window(store)
    first = scheduler(store, Runner(), RecordingIncidents())
    first.start(paused=True)
    nxt = first.next_start(window_id)
    first.stop()
    assert nxt is not None and nxt.astimezone().utcoffset() is not None
    assert nxt.astimezone(UTC).hour == 0 and nxt.weekday() == 5  # 03:00 Moscow = 00:00 UTC, Saturday
    again = scheduler(store, Runner(), RecordingIncidents())
    again.start(paused=True)
    try:
        assert again.next_start(window_id) == nxt  # the persistent job store kept it
    finally:
        again.stop()


def test_window_missed_while_down_is_recorded_and_notified_never_run_late(store: Database) -> None:
    window_id = make_window(store)
    down = scheduler(store, Runner(), RecordingIncidents())
    down.start(paused=True)
    down.stop()
    # The controller went down just before the window's start and comes back 10 minutes after it:
    # the persisted job's next run time is now 10 minutes in the past.
    jobs = SQLAlchemyJobStore(engine=store.engine, tablename=JOBS_TABLE)
    jobs.start(BackgroundScheduler(), "default")
    job = jobs.lookup_job(f"window-{window_id}")
    job._modify(next_run_time=datetime.now(UTC) - timedelta(minutes=10))
    jobs.update_job(job)

    runner, incidents = Runner(), RecordingIncidents()
    back = scheduler(store, runner, incidents)
    back.start()
    try:
        assert back.done.wait(30)
    finally:
        back.stop()
    assert runner.calls == []  # not run late
    with store.session() as s:
        [missed] = occurrences(s, window_id)
    assert missed["status"] == "missed" and "not run late" in missed["detail"]
    [incident] = incidents.opened
    assert incident.cause == "update_window_missed" and incident.severity == "warning"


def test_window_runs_canary_first_and_halts_on_a_rollback(store: Database) -> None:
    now = datetime.now(UTC)
    with store.session() as s:  # a daily window that started this minute
        window_id = add_window(s, name="now", target="client:acme", playbook="bitrix-modules-update",
                               cron=f"{now.minute} {now.hour} * * *", duration_minutes=120, timezone="UTC",
                               variables={}, now=time.time()).id
    runner = Runner({"web2": "ROLLED_BACK"})
    sched = scheduler(store, runner, RecordingIncidents())
    sched.start(paused=True)
    sched.scheduler.modify_job(f"window-{window_id}", next_run_time=datetime.now(UTC))
    sched.scheduler.resume()
    try:
        assert sched.done.wait(30)
    finally:
        sched.stop()
    assert runner.calls == ["canary", "web2"]  # web3 not started after web2 rolled back
    with store.session() as s:
        [occurrence] = occurrences(s, window_id)
    assert occurrence["status"] == "halted" and occurrence["run_ids"] == [1, 2]


def test_last_start_of_a_weekly_window_seen_days_later() -> None:
    # Saturdays 03:00 Moscow time (00:00 UTC); asked on Wednesday 2026-12-02 12:00 UTC.
    window = UpdateWindow(name="sat-night", target="client:acme", playbook="p", cron="0 3 * * 6",
                          duration_minutes=120, timezone="Europe/Moscow", variables={})
    wednesday = datetime(2026, 12, 2, 12, 0, tzinfo=UTC).timestamp()
    assert last_start(window, wednesday) == datetime(2026, 11, 28, 0, 0, tzinfo=UTC).timestamp()
    saturday_start = datetime(2026, 12, 5, 0, 0, tzinfo=UTC).timestamp()
    assert last_start(window, saturday_start) == saturday_start
    yearly = UpdateWindow(name="new-year", target="h", playbook="p", cron="0 3 1 1 *",
                          duration_minutes=60, timezone="UTC", variables={})
    assert last_start(yearly, wednesday) == datetime(2026, 1, 1, 3, 0, tzinfo=UTC).timestamp()


def test_host_whose_expected_duration_does_not_fit_is_not_started(store: Database) -> None:
    with store.session() as s:  # web3's updates took 3 hours before
        for i in range(3):
            s.add(WorkflowRun(host="web3", playbook="bitrix-modules-update", playbook_path="/p", variables={},
                              dry_run=False, lock_token=f"t{i}", state="SUCCEEDED", phase_status="done",
                              captured={}, created_at=0.0, updated_at=0.0, finished_at=3 * 3600.0))
    window_id = make_window(store, duration=120)
    runner = Runner()
    sched = scheduler(store, runner, RecordingIncidents())
    with store.session() as s:
        window = s.get(UpdateWindow, window_id)
        assert window is not None
        s.expunge(window)
    sched.clock = lambda: last_start(window, time.time()) + 60  # one minute into the window
    sched.run_window(window_id)
    assert runner.calls == ["canary", "web2"]
    with store.session() as s:
        [occurrence] = occurrences(s, window_id)
    assert "web3: not started: expected 180 min no longer fits" in occurrence["detail"]


def test_windows_cli_add_and_list(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    from pathlib import Path

    import yaml

    from controller.cli import main

    base = Path(str(tmp_path))
    cfg = base / "c.yaml"
    cfg.write_text(yaml.safe_dump({"state_dir": str(base), "database": f"sqlite:///{base}/bk.db",
                                   "clients": [{"name": "acme", "timezone": "Europe/Moscow",
                                                "hosts": [{"name": "portal-01"}]}]}))
    assert main(["--config", str(cfg), "windows", "add", "sat", "--client", "acme", "--playbook",
                 "bitrix-modules-update", "--cron", "0 3 * * 6", "--duration", "120"]) == 0
    assert "Europe/Moscow" in capsys.readouterr().out  # the client's zone by default
    assert main(["--config", str(cfg), "windows", "add", "bad", "--host", "portal-01", "--playbook", "p",
                 "--cron", "soon", "--duration", "5"]) == 2
    capsys.readouterr()
    assert main(["--config", str(cfg), "windows", "list", "--json"]) == 0
    [window] = __import__("json").loads(capsys.readouterr().out)
    assert window["target"] == "client:acme" and window["cron"] == "0 3 * * 6"


def test_a_window_left_started_by_a_stopped_controller_is_marked_interrupted(store: Database) -> None:
    from controller.workflows.models import WindowOccurrence

    with store.session() as s:
        window = add_window(s, name="nightly", target="web1", playbook="bitrix-modules-update",
                            cron="0 3 * * *", duration_minutes=60, timezone="UTC", variables={}, now=0.0)
        s.add(WindowOccurrence(window_id=window.id, scheduled_for=1_000.0, status="started", detail="",
                               run_ids=[], recorded_at=1_000.0))
        s.add(WindowOccurrence(window_id=window.id, scheduled_for=2_000.0, status="done", detail="ok",
                               run_ids=[], recorded_at=2_000.0))
        window_id = window.id
    windows = WindowScheduler(store, hosts_of=lambda t: [t], run_host=lambda w, h, e: "refused",
                              incidents=RecordingIncidents(), silence=no_silence, lift=no_lift)
    assert windows.close_interrupted() == 1
    with store.read_session() as s:
        found = occurrences(s, window_id)
    assert [o["status"] for o in found] == ["interrupted", "done"]
    assert "controller running this window stopped" in found[0]["detail"]
