"""The monthly client report, on a month of history built through the real functions (inventory,
ingest, incidents, silences, the run engine on a scripted host, the work log) with a fixed clock,
on SQLite and PostgreSQL. Every figure of the report is checked against arithmetic written out
here; then the renderers (html parsed, csv parsed), the CLI and the API.

The story (client acme, Europe/Moscow = UTC+3 all year; November 2026 = 30 days = 2,592,000 s):

web1 (added in September)
  I0 unreachable   Oct 31 23:00 – Nov  1 00:30   1,800 s inside the month (opened in October)
  I1 unreachable   Nov  3 10:00 – 11:30          5,400 s; operator silence 11:00–12:00 → 1,800 s planned
                   acked 10:12 (720 s) and again 10:20 (the first ack counts)
  I2 unreachable   Nov 10 02:30 – 03:30          3,600 s, inside maintenance window 02:00–04:00 → planned
  I3 check portal  Nov 20 14:00 – 14:45          2,700 s portal only, acked 14:05 (300 s)
  I4 agent_down    Nov 30 22:00 – Dec 1 01:00    7,200 s inside the month, 10,800 s to resolve
  runs: drill #1 Nov 5 04:00 (300 s, ok); update #2 Nov 15 03:00 (600 s, 25.100.200 → 25.100.300);
        drill #4 Nov 25 04:00 (300 s, ROLLED_BACK → incident backup_unrestorable, left open)
web2 (added Nov 16 00:00: period 15 days = 1,296,000 s)
  I5 check portal  Nov 22 03:10 – 03:40          1,800 s, inside update window 03:00–04:00 → planned
  I6 unreachable   Nov 25 12:00 – 12:20          1,200 s, acked 12:02 (120 s)
  I7 check portal-shop  Nov 26 10:00 warning, 10:20 critical, 10:50 warning, 11:00 resolved: 1,800 s down
  run #3 update Nov 22 03:05, ROLLED_BACK after 1,200 s → incident release_rolled_back (acked 09:00,
        resolved Nov 23 10:00: 1 d 6 h 35 min)
update window "acme-sunday" (client:acme) occurrence Nov 22 03:00, 60 min: planned on web1 and web2

client globex, Europe/Berlin, October 2026 (DST ends Oct 25: 31 days + 1 h = 745 h = 2,682,000 s):
  db1 unreachable Oct 25 01:30 CEST – 03:30 CET = 3 h real; maintenance "0 3 * * 0" 1 h → Oct 4, 11,
  18, 25 (03:00 CET = 02:00Z); overlap 02:00Z–02:30Z = 1,800 s planned.
"""

from __future__ import annotations

import csv
import io
import json
import re
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy.orm import Session

from agent.report import SCHEMA, CheckReport, Facts, Report, Status, to_json
from controller import inventory, operators
from controller.alerting import incidents as service
from controller.alerting.silences import Owner, silence
from controller.api import create_app
from controller.cli import main
from controller.config import ControllerConfig, parse
from controller.ingest import store_report
from controller.reports import worklog
from controller.reports.build import build_report
from controller.reports.models import WorkLogEntry
from controller.reports.period import BadMonthError, month_in
from controller.reports.render import render
from controller.store.db import Database
from controller.workflows.engine import Engine
from controller.workflows.loader import load_playbook
from controller.workflows.models import UpdateWindow, WindowOccurrence
from controller.workflows.outcomes import IncidentRequest
from tests.controller.workflows.fakes import FakeExecutor

MSK = ZoneInfo("Europe/Moscow")
BER = ZoneInfo("Europe/Berlin")
NOW_DEC3 = datetime(2026, 12, 3, 12, 0, tzinfo=MSK).timestamp()  # the report is made on Dec 3


def msk(month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return datetime(2026, month, day, hour, minute, tzinfo=MSK).timestamp()


def nov(day: int, hour: int = 0, minute: int = 0) -> float:
    return msk(11, day, hour, minute)


PLAYBOOK = """
name: {name}
backup_location: "/backup/run-{{{{ run_id }}}}"
{failure}
phases:
  preflight:
    - name: version before
      run:
        command: read-version
        capture: {{name: version_before, regex: 'VERSION=(\\S+)'}}
  backup:
    - name: dump
      run: make-backup
  backup_verify:
    - name: check backup
      run: {{command: verify-backup, success_regex: 'backup ok'}}
  update:
    - name: update modules
      run: do-update
  verify:
    - name: version moved
      after: update
      run:
        command: version-moved
        capture: {{name: version_after, regex: 'VERSION=(\\S+)'}}
    - name: version restored
      after: rollback
      run: version-is {{{{ captured.version_before }}}}
  rollback:
    - name: restore
      run: restore
"""
DRILL_FAILURE = """failure_incident:
  cause: backup_unrestorable
  summary: "backups of {{ host }} cannot be restored"
  severity: critical"""


class Clock:
    """The one clock of the story: every function is handed it (or a time read from it)."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def passes(self, seconds: float, answer: tuple[int, str, str] = (0, "", "")) -> Any:
        """A scripted command that takes ``seconds`` of the clock's time, then answers."""
        def run(_command: str) -> tuple[int, str, str]:
            self.t += seconds
            return answer
        return run


class ClockedIncidents:
    """The engine's incident sink: the real open_incident, at the story's time."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def open(self, session: Session, request: IncidentRequest) -> None:
        service.open_incident(session, host=request.host, key=request.key, cause=request.cause,
                              severity=request.severity, summary=request.summary, details=request.details,
                              now=self.clock())


def raw_config(tmp_path: Path, database_url: str) -> dict[str, Any]:
    return {
        "state_dir": str(tmp_path / "state"),
        "database": database_url,
        "clients": [
            {"name": "acme", "timezone": "Europe/Moscow", "hosts": [{"name": "web1"}]},
            {"name": "globex", "timezone": "Europe/Berlin", "hosts": [{"name": "db1"}]},
            {"name": "empty", "timezone": "Asia/Yekaterinburg"},
        ],
        "maintenance": [
            {"name": "nov-maint", "hosts": ["web1"], "start": "2026-11-10 02:00", "end": "2026-11-10 04:00",
             "timezone": "Europe/Moscow"},
            {"name": "sunday", "clients": ["globex"], "cron": "0 3 * * 0", "duration": "1h",
             "timezone": "Europe/Berlin"},
        ],
    }


def config(tmp_path: Path, database_url: str) -> ControllerConfig:
    return parse(raw_config(tmp_path, database_url), str(tmp_path / "controller.yaml"))


def push(db: Database, token: str, host: str, seq: int, at: float,
         checks: dict[str, tuple[str, int, str]]) -> None:
    report = Report(
        schema=SCHEMA, host=host, agent_version="0.1.0", seq=seq, sent_at=at, push_interval_seconds=15.0,
        checks=tuple(CheckReport(name=name, type=kind, status=Status(status), hard=True, flapping=False,
                                 summary=summary, duration_seconds=0.01, attempt=1, max_attempts=3,
                                 last_change=at, perfdata=())
                     for name, (kind, status, summary) in checks.items()),
        samples=(), facts=Facts(hostname=host, os="Debian 12", kernel="6.1.0", boot_time=at - 86400))
    with db.engine.connect() as conn:
        owner = inventory.token_owner(conn, token)
    assert owner is not None
    store_report(db, owner, report, to_json(report), clock=lambda: at)


@dataclass
class Story:
    cfg: ControllerConfig
    db: Database
    ids: dict[str, int]


def outage(db: Database, host: str, kind: str, opened: float, resolved: float | None, *,
           check: str | None = None, acks: tuple[tuple[str, float], ...] = ()) -> int:
    """An incident opened, acknowledged (by whom, when) and resolved, as detection and operators do."""
    key = f"{host}:check:{check}" if check else f"{host}:{kind}"
    with db.session() as s:
        incident = service.open_incident(s, host=host, key=key, cause=kind, severity="critical",
                                         summary=f"{check or kind} down on {host}", now=opened,
                                         details={"check": check} if check else None)
        incident_id = incident.id
    for who, at in acks:
        ack(db, incident_id, who, at)
    if resolved is not None:
        with db.session() as s:
            service.resolve_incident(s, key=key, now=resolved)
    return incident_id


def ack(db: Database, incident_id: int, who: str, at: float) -> None:
    with db.session() as s:
        service.acknowledge(s, incident_id, actor=who, now=at)


def run_playbook(db: Database, clock: Clock, path: Path, host: str, start: float, *, fail: bool,
                 update_seconds: float, restore_seconds: float = 0.0) -> int:
    clock.t = start
    ex = FakeExecutor(host=host)
    ex.on(r"^read-version", (0, "VERSION=25.100.200\n", ""))
    ex.on(r"^verify-backup", (0, "backup ok\n", ""))
    ex.on(r"^version-moved", (0, "VERSION=25.100.300\n", ""))
    ex.on(r"^version-is", (0, "", ""))
    if fail:
        ex.on(r"^do-update", clock.passes(update_seconds, (1, "", "ERROR 1146 table b_user_field missing")))
        ex.on(r"^restore", clock.passes(restore_seconds))
    else:
        ex.on(r"^do-update", clock.passes(update_seconds))
    engine = Engine(db.session, incidents=ClockedIncidents(clock), clock=clock, sleep=lambda _s: None)
    return engine.run(load_playbook(path), host, ex, {}).id


@pytest.fixture
def story(tmp_path: Path, database_url: str) -> Iterator[Story]:
    cfg = config(tmp_path, database_url)
    db = Database(database_url)
    db.upgrade()
    ids: dict[str, int] = {}
    try:
        inventory.sync_config(cfg, db, clock=lambda: msk(9, 1))
        web1 = inventory.issue_token(db, "web1", "acme", clock=lambda: msk(9, 1))
        web2 = inventory.add_host(db, "web2", "acme", clock=lambda: nov(16))
        push(db, web1, "web1", 1, nov(1, 9), {"portal": ("http", 0, "HTTP 200"),
                                              "backup": ("bitrix_backup", 0, "newest backup 5 h old")})
        push(db, web2, "web2", 1, nov(16, 9), {"portal": ("http", 0, "HTTP 200")})

        # web1
        ids["I0"] = outage(db, "web1", "unreachable", msk(10, 31, 23), nov(1, 0, 30))
        ids["I1"] = outage(db, "web1", "unreachable", nov(3, 10), nov(3, 11, 30),
                           acks=(("alice", nov(3, 10, 12)), ("bob", nov(3, 10, 20))))
        with db.session() as s:
            silence(s, host="web1", until=nov(3, 12), reason="moving the rack", owner=Owner.operator("alice"),
                    now=nov(3, 11))
        ids["I2"] = outage(db, "web1", "unreachable", nov(10, 2, 30), nov(10, 3, 30))
        ids["I3"] = outage(db, "web1", "check", nov(20, 14), nov(20, 14, 45), check="portal",
                           acks=(("alice", nov(20, 14, 5)),))
        ids["I4"] = outage(db, "web1", "agent_down", nov(30, 22), msk(12, 1, 1))

        # runs (ids 1..4 in this order)
        clock = Clock(0.0)
        update = tmp_path / "update.yaml"
        update.write_text(textwrap.dedent(PLAYBOOK.format(name="bitrix-modules-update", failure="")))
        drill = tmp_path / "drill.yaml"
        drill.write_text(textwrap.dedent(PLAYBOOK.format(name="bitrix-backup-drill", failure=DRILL_FAILURE)))
        ids["drill_ok"] = run_playbook(db, clock, drill, "web1", nov(5, 4), fail=False, update_seconds=300)
        ids["update_ok"] = run_playbook(db, clock, update, "web1", nov(15, 3), fail=False, update_seconds=600)
        ids["update_rb"] = run_playbook(db, clock, update, "web2", nov(22, 3, 5), fail=True,
                                        update_seconds=900, restore_seconds=300)
        ids["drill_bad"] = run_playbook(db, clock, drill, "web1", nov(25, 4), fail=True, update_seconds=200,
                                        restore_seconds=100)
        with db.session() as s:
            window = UpdateWindow(name="acme-sunday", target="client:acme", playbook="bitrix-modules-update",
                                  cron="0 3 * * 0", duration_minutes=60, timezone="Europe/Moscow",
                                  variables={}, enabled=True, created_at=msk(10, 1))
            s.add(window)
            s.flush()
            s.add(WindowOccurrence(window_id=window.id, scheduled_for=nov(22, 3), status="done", detail="",
                                   run_ids=[ids["update_rb"]], recorded_at=nov(22, 4)))

        # web2
        ids["I5"] = outage(db, "web2", "check", nov(22, 3, 10), nov(22, 3, 40), check="portal")
        ids["I6"] = outage(db, "web2", "unreachable", nov(25, 12), nov(25, 12, 20),
                           acks=(("bob", nov(25, 12, 2)),))
        with db.session() as s:  # a check incident that is critical only for a while (detection's passes)
            for severity, at in (("warning", nov(26, 10)), ("critical", nov(26, 10, 20)),
                                 ("warning", nov(26, 10, 50))):
                ids["I7"] = service.open_incident(s, host="web2", key="web2:check:portal-shop", cause="check",
                                                  severity=severity, summary=f"portal-shop {severity}",
                                                  now=at).id
            service.resolve_incident(s, key="web2:check:portal-shop", now=nov(26, 11))
        with db.session() as s:
            from controller.alerting.models import Incident
            rolled = s.query(Incident).filter(Incident.cause == "release_rolled_back").one()
            backup = s.query(Incident).filter(Incident.cause == "backup_unrestorable").one()
            ids["release"], ids["backup"] = rolled.id, backup.id
        ack(db, ids["release"], "alice", nov(22, 9))
        with db.session() as s:
            service.resolve_incident(s, incident_id=ids["release"], actor="alice", now=nov(23, 10))

        # work log
        with db.session() as s:
            worklog.note(s, ids["I1"], actor="alice", text="rebooted the switch", now=nov(3, 11, 45),
                         minutes=30)
            worklog.add_entry(s, worklog.WorkItem("acme", run_id=ids["update_rb"]), minutes=45,
                              text="read the updater log", actor="bob", now=nov(22, 10))
            worklog.add_entry(s, worklog.WorkItem("acme"), minutes=90, text="monthly review <b>call</b>",
                              actor="alice", now=nov(28, 15))
            worklog.note(s, ids["I6"], actor="bob", text="called the ISP", now=nov(25, 12, 30), minutes=20)
            worklog.add_entry(s, worklog.WorkItem("acme", host="web1"), minutes=15, text="October work",
                              actor="alice", now=msk(10, 31, 23, 30))
            worklog.add_entry(s, worklog.WorkItem("acme", host="web1"), minutes=10, text="December work",
                              actor="alice", now=msk(12, 1, 0, 10))
            worklog.add_entry(s, worklog.WorkItem("globex"), minutes=50, text="not acme's",
                              actor="alice", now=nov(10, 12))

        # globex, October, Berlin
        ids["G1"] = outage(db, "db1", "unreachable", datetime(2026, 10, 25, 1, 30, tzinfo=BER).timestamp(),
                           datetime(2026, 10, 25, 3, 30, tzinfo=BER).timestamp() + 0)
        with db.session() as s:
            worklog.add_entry(s, worklog.WorkItem("globex", host="db1"), minutes=25, text="after the outage",
                              actor="carol", now=datetime(2026, 10, 25, 12, 0, tzinfo=BER).timestamp())
        yield Story(cfg, db, ids)
    finally:
        db.dispose()


def report_of(story: Story, client: str, month: str) -> dict[str, Any]:
    with story.db.read_session() as s:
        return build_report(s, client=client, month=month, now=NOW_DEC3, windows=story.cfg.maintenance)


def iso(stamp: float, zone: ZoneInfo = MSK) -> str:
    return datetime.fromtimestamp(stamp, zone).isoformat(timespec="seconds")


def test_berlin_fold_is_where_the_story_says() -> None:
    """The DST arithmetic the globex figures rely on, checked against the zone database itself."""
    opened = datetime(2026, 10, 25, 1, 30, tzinfo=BER).timestamp()
    resolved = datetime(2026, 10, 25, 3, 30, tzinfo=BER).timestamp()
    assert resolved - opened == 3 * 3600  # 01:30 CEST → 02:00 CEST=02:00 CET … 03:30 CET: 3 h real
    m = month_in("2026-10", "Europe/Berlin")
    assert m.seconds == (31 * 24 + 1) * 3600


def test_every_figure_of_the_month(story: Story) -> None:
    r = report_of(story, "acme", "2026-11")
    ids = story.ids
    month = 30 * 86400
    assert month == 2_592_000
    assert (r["client"], r["month"], r["timezone"]) == ("acme", "2026-11", "Europe/Moscow")
    assert r["period"] == {"start": "2026-11-01T00:00:00+03:00", "end": "2026-12-01T00:00:00+03:00",
                           "seconds": month, "hours": 720, "as_of": "2026-12-01T00:00:00+03:00",
                           "complete": True}
    assert r["hosts"] == ["web1", "web2"] and r["host_count"] == 2

    # ---- availability: web1 host
    web1, web2 = r["availability"]["hosts"]
    down1 = 1800 + 5400 + 3600 + 7200  # I0 (in-month part) + I1 + I2 + I4 (in-month part)
    planned_down1 = 1800 + 3600  # I1 ∩ silence 11:00–11:30, I2 ∩ nov-maint
    assert down1 == 18000 and planned_down1 == 5400
    maint1 = 7200 + 3600 + 300 + 600 + 300 + 3600  # nov-maint, silence, drill 1, update, drill 2, window
    assert web1["host"] == "web1"
    assert web1["period_seconds"] == month
    assert web1["down_seconds"] == down1
    assert web1["planned_down_seconds"] == planned_down1
    assert web1["unplanned_down_seconds"] == 18000 - 5400 == 12600
    assert web1["planned_seconds"] == maint1 == 15600
    assert web1["availability"] == pytest.approx((2_592_000 - 18000) / (2_592_000 - 5400))  # 0.99512874…
    assert web1["availability_percent"] == 99.513
    assert [(o["start"], o["end"], o["seconds"], o["planned_seconds"], o["kinds"], o["incidents"])
            for o in web1["outages"]] == [
        (iso(nov(1)), iso(nov(1, 0, 30)), 1800, 0, ["unreachable"], [ids["I0"]]),
        (iso(nov(3, 10)), iso(nov(3, 11, 30)), 5400, 1800, ["unreachable"], [ids["I1"]]),
        (iso(nov(10, 2, 30)), iso(nov(10, 3, 30)), 3600, 3600, ["unreachable"], [ids["I2"]]),
        (iso(nov(30, 22)), iso(msk(12, 1)), 7200, 0, ["agent_down"], [ids["I4"]]),
    ]
    assert [(p["source"], p["start"], p["seconds"]) for p in web1["maintenance"]] == [
        ("silence", iso(nov(3, 11)), 3600),
        ("run", iso(nov(5, 4)), 300),
        ("maintenance", iso(nov(10, 2)), 7200),
        ("run", iso(nov(15, 3)), 600),
        ("window", iso(nov(22, 3)), 3600),
        ("run", iso(nov(25, 4)), 300),
    ]
    assert web1["maintenance"][0]["label"] == "silence by operator alice: moving the rack"
    assert web1["maintenance"][2]["label"] == "maintenance window nov-maint"

    # ---- web2: added Nov 16 00:00, so 15 days
    period2 = 15 * 86400
    assert web2["period_start"] == iso(nov(16)) and web2["period_seconds"] == period2 == 1_296_000
    assert web2["down_seconds"] == 1200 and web2["planned_down_seconds"] == 0
    assert web2["availability"] == pytest.approx((1_296_000 - 1200) / 1_296_000)  # 0.99907407…
    assert web2["availability_percent"] == 99.907
    assert web2["planned_seconds"] == 3600  # the window 03:00–04:00; run #3 03:05–03:25 lies inside it

    # ---- portals: a portal check is down, or its host unreachable
    p1, p2, p3 = r["availability"]["portals"]
    assert (p1["host"], p1["portal"], p2["host"], p2["portal"]) == ("web1", "portal", "web2", "portal")
    # I3 + unreachable I0, I1, I2 (agent_down I4 is not the portal's)
    assert p1["down_seconds"] == 2700 + 1800 + 5400 + 3600 == 13500
    assert p1["planned_down_seconds"] == 5400
    assert p1["availability"] == pytest.approx((2_592_000 - 13500) / (2_592_000 - 5400))
    assert p1["availability_percent"] == 99.687  # 2578500 / 2586600 = 0.996868…
    assert p2["down_seconds"] == 1800 + 1200 == 3000  # I5 (in the window) + unreachable I6
    assert p2["planned_down_seconds"] == 1800
    assert p2["availability"] == pytest.approx((1_296_000 - 3000) / (1_296_000 - 1800))
    assert p2["availability_percent"] == 99.907  # 1293000 / 1294200 = 0.999072…
    # portal-shop: critical 10:20–10:50 only (the warnings before and after are not down) + unreachable I6
    assert (p3["host"], p3["portal"]) == ("web2", "portal-shop")
    assert p3["down_seconds"] == 1800 + 1200 == 3000 and p3["planned_down_seconds"] == 0
    assert p3["availability"] == pytest.approx((1_296_000 - 3000) / 1_296_000)
    assert p3["availability_percent"] == 99.769  # 1293000 / 1296000 = 0.997685…
    assert [(o["start"], o["end"]) for o in p3["outages"]] == [
        (iso(nov(25, 12)), iso(nov(25, 12, 20))), (iso(nov(26, 10, 20)), iso(nov(26, 10, 50)))]

    # ---- incidents opened in November (I0 was opened in October)
    i = r["incidents"]
    assert i["opened"] == 9
    assert i["by_kind"] == {"agent_down": 1, "backup_unrestorable": 1, "check": 3, "release_rolled_back": 1,
                            "unreachable": 3}
    assert i["still_open"] == 1  # the failed drill's incident
    # acknowledged after: I1 720 (first ack), I3 300, I6 120, release 09:00 − 03:25 = 20,100
    assert sorted(x["acknowledge_seconds"] for x in i["list"] if x["acknowledge_seconds"] is not None) == \
        [120, 300, 720, 20100]
    assert i["acknowledge"] == {"count": 4, "median_seconds": (300 + 720) / 2, "worst_seconds": 20100}
    # resolved after: I6 1200, I5 1800, I3 2700, I2 3600, I7 3600, I1 5400, I4 10800,
    # release Nov 23 10:00 − Nov 22 03:25;
    # sorted, the median of 8 is the mean of the 4th and 5th: (3600 + 3600) / 2
    release_resolve = nov(23, 10) - nov(22, 3, 25)
    assert release_resolve == 86400 + 6 * 3600 + 35 * 60 == 110100  # 1 d 6 h 35 min
    assert i["resolve"] == {"count": 8, "median_seconds": 3600, "worst_seconds": 110100}
    by_id = {x["id"]: x for x in i["list"]}
    assert by_id[ids["I4"]]["resolve_seconds"] == 10800 and by_id[ids["release"]]["resolve_seconds"] == 110100
    # longest: the open drill incident runs to the month's end (Dec 1 00:00 − Nov 25 04:05);
    # I2 and I7 both last 3600 s: the lower id first
    assert nov(30) + 86400 - nov(25, 4, 5) == 503700
    assert [(x["id"], x["duration_seconds"]) for x in i["longest"]] == [
        (ids["backup"], 503700), (ids["release"], 110100), (ids["I4"], 10800), (ids["I1"], 5400),
        (ids["I2"], 3600)]
    i1 = i["longest"][3]
    assert [(e["kind"], e["actor"]) for e in i1["timeline"]] == [
        ("opened", "boxkeeper"), ("acknowledged", "alice"), ("acknowledged", "bob"), ("resolved", "auto"),
        ("note", "alice")]
    assert i1["timeline"][4]["message"] == "rebooted the switch [+30 min]"

    # ---- updates (drills are in the backups section)
    u = r["updates"]
    assert u["total"] == 2 and u["rolled_back"] == 1
    assert u["by_outcome"] == {"ROLLED_BACK": 1, "SUCCEEDED": 1}
    ok, rb = u["runs"]
    assert (ok["id"], ok["host"], ok["outcome"], ok["duration_seconds"], ok["reason"]) == \
        (ids["update_ok"], "web1", "SUCCEEDED", 600, None)
    assert ok["versions"] == [{"name": "version", "before": "25.100.200", "after": "25.100.300"}]
    assert (rb["id"], rb["host"], rb["outcome"], rb["duration_seconds"], rb["rolled_back"]) == \
        (ids["update_rb"], "web2", "ROLLED_BACK", 900 + 300, True)
    assert rb["versions"] == [{"name": "version", "before": "25.100.200", "after": None}]
    assert rb["reason"] is not None and rb["reason"].startswith("failed at update/update modules")
    assert rb["started_at"] == iso(nov(22, 3, 5)) and rb["finished_at"] == iso(nov(22, 3, 25))
    assert u["releases_held"] == {"available": True, "note": "", "items": []}  # the story holds nothing

    # ---- backups and drills
    b1, b2 = r["backups"]["hosts"]
    assert b1 == {"host": "web1", "last_drill_success": iso(nov(5, 4, 5)), "drills": 2, "drills_failed": 1,
                  "last_update_backup": iso(nov(15, 3, 10)),
                  "backup_checks_now": [{"name": "backup", "status": "OK", "summary": "newest backup 5 h old",
                                         "updated_at": iso(nov(1, 9))}]}
    assert b2 == {"host": "web2", "last_drill_success": None, "drills": 0, "drills_failed": 0,
                  "last_update_backup": iso(nov(22, 3, 25)), "backup_checks_now": []}
    assert [(f["at"], f["host"], f["what"]) for f in r["backups"]["failures"]] == [
        (iso(nov(25, 4)), "web1", f"restore drill run {ids['drill_bad']} ended ROLLED_BACK"),
        (iso(nov(25, 4, 5)), "web1", f"incident {ids['backup']} (backup_unrestorable)"),
    ]

    # ---- work log: October, December and globex entries stay out
    w = r["worklog"]
    assert [(e["operator"], e["minutes"]) for e in w["entries"]] == [
        ("alice", 30), ("bob", 45), ("bob", 20), ("alice", 90)]
    assert w["by_operator"] == [{"operator": "alice", "minutes": 30 + 90, "hours": "2:00"},
                                {"operator": "bob", "minutes": 45 + 20, "hours": "1:05"}]
    assert w["by_incident"] == [{"incident_id": ids["I1"], "minutes": 30},
                                {"incident_id": ids["I6"], "minutes": 20}]
    assert w["by_run"] == [{"run_id": ids["update_rb"], "minutes": 45}]
    assert w["free_form_minutes"] == 90
    assert w["total_minutes"] == 30 + 45 + 20 + 90 == 185 and w["total_hours"] == "3:05"
    assert w["entries"][1]["host"] == "web2"  # logged against run #3, whose host it takes


def test_a_month_with_a_dst_change(story: Story) -> None:
    r = report_of(story, "globex", "2026-10")
    seconds = (31 * 24 + 1) * 3600
    assert seconds == 2_682_000
    assert r["period"]["start"] == "2026-10-01T00:00:00+02:00"
    assert r["period"]["end"] == "2026-11-01T00:00:00+01:00"
    assert r["period"]["seconds"] == seconds and r["period"]["hours"] == 745
    [db1] = r["availability"]["hosts"]
    assert db1["period_seconds"] == seconds
    assert db1["planned_seconds"] == 4 * 3600  # Sundays Oct 4, 11, 18, 25 at 03:00 local, 1 h each
    assert [m["start"] for m in db1["maintenance"]] == [
        "2026-10-04T03:00:00+02:00", "2026-10-11T03:00:00+02:00", "2026-10-18T03:00:00+02:00",
        "2026-10-25T03:00:00+01:00"]
    assert db1["down_seconds"] == 3 * 3600 == 10800
    assert db1["planned_down_seconds"] == 1800  # 03:00–03:30 CET
    assert db1["availability"] == pytest.approx((2_682_000 - 10800) / (2_682_000 - 1800))
    assert db1["availability_percent"] == 99.664  # 2671200 / 2680200 = 0.996642…
    assert r["incidents"]["opened"] == 1 and r["incidents"]["resolve"]["worst_seconds"] == 10800
    assert r["worklog"]["total_minutes"] == 25 and r["worklog"]["by_operator"][0]["operator"] == "carol"


class Page(HTMLParser):
    """Collects what the checks below need; raises on a mismatched closing tag (invalid nesting)."""

    VOID = frozenset({"meta", "br", "hr", "img", "input", "link"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        open_tag = self.stack[-1] if self.stack else None
        assert open_tag == tag, f"</{tag}> closes <{open_tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_html(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    assert page.stack == [], f"unclosed: {page.stack}"
    return page


def test_html_is_valid_self_contained_and_escaped(story: Story) -> None:
    with story.db.session() as s:  # a host-like name and a note that would be markup if not escaped
        worklog.note(s, story.ids["I3"], actor="<script>alert(1)</script>", text="<img src=x onerror=y>",
                     now=nov(20, 15), minutes=5)
    r = report_of(story, "acme", "2026-11")
    text = render(r, "html")
    page = parse_html(text)
    assert text.startswith("<!DOCTYPE html>")
    svgs = [a for t, a in page.tags if t == "svg"]
    assert [a["aria-label"] for a in svgs] == ["availability of web1 in 2026-11",
                                               "availability of web2 in 2026-11"]
    assert not [t for t, _ in page.tags if t in ("script", "img", "link", "iframe")]
    assert not [a for _, a in page.tags for k, v in a.items() if k in ("src", "href") and v]
    assert not re.search(r"https?://|url\(|@import", text)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "&lt;img src=x onerror=y&gt;" in text
    assert "&lt;b&gt;call&lt;/b&gt;" in text
    assert "@media print" in text and "Europe/Moscow" in "".join(page.text)
    # the chart marks web1's outages (red, or amber when planned) where they were
    rects = [(a.get("class"), a) for t, a in page.tags if t == "rect"]
    outage_marks = [a for c, a in rects if c in ("outage", "planned-outage")]
    assert len(outage_marks) == 4 + 1  # web1's four outages, web2's one
    assert [c for c, _ in rects].count("planned-outage") == 1  # I2, wholly inside nov-maint
    first, last = outage_marks[0], outage_marks[3]  # I0: 30 min from the start, drawn at the minimum width
    assert (float(first["x"] or -1), float(first["width"] or -1)) == (0.0, 1.5)
    # I4: from Nov 30 22:00, 29 d 22 h = 2,584,800 s into the month → x = 2584800/2592000 × 720 = 718.0,
    # 2 h wide → 7200/2592000 × 720 = 2.0 px
    assert (float(last["x"] or -1), float(last["width"] or -1)) == (718.0, 2.0)
    text_md = render(r, "md")
    assert "| web1 | 99.513 % |" in text_md and "&lt;script&gt;" in text_md


def test_csv_and_md_carry_the_json_figures(story: Story) -> None:
    r = report_of(story, "acme", "2026-11")
    rows = list(csv.DictReader(io.StringIO(render(r, "csv"))))
    assert rows[0].keys() == {"section", "subject", "field", "value"}
    value = {(row["section"], row["subject"], row["field"]): row["value"] for row in rows}
    assert value[("availability", "hosts[web1]", "availability_percent")] == "99.513"
    assert value[("availability", "portals[web2/portal]", "down_seconds")] == "3000.0"
    assert value[("incidents", "resolve", "median_seconds")] == "3600.0"
    assert value[("worklog", "", "total_minutes")] == "185"
    assert value[("updates", f"runs[{story.ids['update_rb']}]", "outcome")] == "ROLLED_BACK"
    assert value[("report", "", "timezone")] == "Europe/Moscow"
    # json round-trips to the same dict
    assert json.loads(render(r, "json")) == r
    md = render(r, "md")
    assert "Time zone: **Europe/Moscow**" in md and "Total: **3:05** (185 min)" in md
    assert "| web2 / portal |" in md and "bitrix-modules-update" in md


def test_a_client_without_hosts_gets_a_clear_empty_report(story: Story) -> None:
    r = report_of(story, "empty", "2026-11")
    assert r["hosts"] == [] and r["host_count"] == 0 and r["timezone"] == "Asia/Yekaterinburg"
    assert r["period"]["start"] == "2026-11-01T00:00:00+05:00"
    assert r["availability"]["hosts"] == [] and r["incidents"]["opened"] == 0
    assert r["worklog"]["total_minutes"] == 0
    html = render(r, "html")
    page = parse_html(html)
    assert "This client has no hosts" in "".join(page.text)
    assert not [t for t, _ in page.tags if t == "svg"]
    assert "This client has no hosts" in render(r, "md")
    rows = [tuple(row) for row in csv.reader(io.StringIO(render(r, "csv")))]
    assert ("report", "", "host_count", "0") in rows


def test_a_bad_month_names_the_form(story: Story) -> None:
    expected = r"expected a month as YYYY-MM, e.g. 2026-11, got '2026-13'"
    with story.db.read_session() as s, pytest.raises(BadMonthError, match=expected):
        build_report(s, client="acme", month="2026-13", now=NOW_DEC3)


def write_config(tmp_path: Path, story: Story) -> Path:
    path = tmp_path / "cli.yaml"
    path.write_text(json.dumps(raw_config(tmp_path, story.db.url.render_as_string(hide_password=False))))
    return path


def test_cli_report_worklog_and_incident_minutes(story: Story, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(write_config(tmp_path, story))
    out = tmp_path / "acme-2026-11.html"
    assert main(["--config", cfg, "report", "--client", "acme", "--month", "2026-11", "--out", str(out)]) == 0
    assert "times in Europe/Moscow" in capsys.readouterr().out
    page = parse_html(out.read_text())
    assert len([t for t, _ in page.tags if t == "svg"]) == 2
    assert main(["--config", cfg, "report", "--client", "acme", "--month", "2026-11",
                 "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["availability"]["hosts"][0]["availability_percent"] == 99.513

    with pytest.raises(SystemExit) as exited:
        main(["--config", cfg, "report", "--client", "acme", "--month", "11/2026"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument --month: expected a month as YYYY-MM, e.g. 2026-11, got '11/2026'" in err
    assert main(["--config", cfg, "report", "--client", "nobody", "--month", "2026-11"]) == 1
    assert "no client 'nobody'" in capsys.readouterr().err

    # worklog and incidents note --minutes at the real time: listed in the current month
    now_month = datetime.fromtimestamp(time.time(), MSK).strftime("%Y-%m")
    assert main(["--config", cfg, "worklog", "add", "--client", "acme", "--host", "web1", "--minutes", "45",
                 "patched nginx"]) == 0
    assert "logged 45 min for acme on web1" in capsys.readouterr().out
    assert main(["--config", cfg, "incidents", "note", str(story.ids["I3"]), "--minutes", "30",
                 "post-mortem"]) == 0
    assert "noted (30 min logged)" in capsys.readouterr().out
    assert main(["--config", cfg, "worklog", "add", "--client", "globex", "--host", "web1", "--minutes", "5",
                 "x"]) == 1
    assert "host 'web1' is not a host of client 'globex'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--config", cfg, "worklog", "add", "--client", "acme", "--minutes", "0", "x"])
    assert "expected a whole number of minutes from 1 to 1440, got '0'" in capsys.readouterr().err
    assert main(["--config", cfg, "worklog", "list", "--client", "acme", "--month", now_month, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)[-2:]
    actor = listed[0]["operator"]
    assert actor.startswith("cli:")
    assert [(e["minutes"], e["host"], e["incident_id"], e["text"]) for e in listed] == [
        (45, "web1", None, "patched nginx"), (30, "web1", story.ids["I3"], "post-mortem")]
    with story.db.read_session() as s:
        assert s.query(WorkLogEntry).filter(WorkLogEntry.incident_id == story.ids["I3"]).one().actor == actor


def test_api_report_and_note_minutes(story: Story, tmp_path: Path, live_server: Any) -> None:
    token = operators.add_operator(Path(story.cfg.operator_tokens_file), "dora")
    app = create_app(story.cfg, story.db, clock=lambda: NOW_DEC3)
    url = live_server(app)
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=auth, timeout=30) as client:
        assert httpx.get(url + "/api/v1/clients/acme/report", params={"month": "2026-11"}).status_code == 401
        got = client.get("/api/v1/clients/acme/report", params={"month": "2026-11"})
        assert got.status_code == 200 and got.json() == report_of(story, "acme", "2026-11")
        html = client.get("/api/v1/clients/acme/report", params={"month": "2026-11", "format": "html"})
        assert html.headers["content-type"].startswith("text/html")
        assert len([t for t, _ in parse_html(html.text).tags if t == "svg"]) == 2
        md = client.get("/api/v1/clients/acme/report", params={"month": "2026-11", "format": "md"})
        assert md.headers["content-type"].startswith("text/markdown") and "| web1 | 99.513 % |" in md.text
        rows = list(csv.reader(io.StringIO(
            client.get("/api/v1/clients/acme/report", params={"month": "2026-11", "format": "csv"}).text)))
        assert ["worklog", "", "total_minutes", "185"] in rows
        bad = client.get("/api/v1/clients/acme/report", params={"month": "2026-13"})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "month"]
        assert client.get("/api/v1/clients/nobody/report", params={"month": "2026-11"}).status_code == 404

        noted = client.post(f"/api/v1/incidents/{story.ids['I6']}/notes",
                            json={"text": "ISP ticket closed", "minutes": 15})
        assert noted.status_code == 200
        assert noted.json()["timeline"][-1]["message"] == "ISP ticket closed [+15 min]"
        assert client.post(f"/api/v1/incidents/{story.ids['I6']}/notes",
                           json={"text": "x", "minutes": 0}).status_code == 422

        listed = client.get("/api/v1/clients/acme/worklog", params={"month": "2026-11"}).json()
        assert [(e["operator"], e["minutes"]) for e in listed] == [
            ("alice", 30), ("bob", 45), ("bob", 20), ("alice", 90)]
        added = client.post("/api/v1/clients/acme/worklog",
                            json={"minutes": 40, "text": "rollback review", "run_id": story.ids["update_rb"]})
        assert added.status_code == 201
        assert {k: added.json()[k] for k in ("client", "host", "run_id", "minutes", "operator", "at")} == \
            {"client": "acme", "host": "web2", "run_id": story.ids["update_rb"], "minutes": 40,
             "operator": "dora", "at": NOW_DEC3}
        wrong = client.post("/api/v1/clients/globex/worklog",
                            json={"minutes": 5, "text": "x", "host": "web1"})
        assert wrong.status_code == 400 and "not a host of client 'globex'" in wrong.json()["detail"]
        nobody = client.post("/api/v1/clients/nobody/worklog", json={"minutes": 5, "text": "x"})
        assert nobody.status_code == 404
        assert client.get("/api/v1/clients/acme/worklog", params={"month": "26-11"}).status_code == 422
    with story.db.read_session() as s:
        entry = s.query(WorkLogEntry).filter(WorkLogEntry.text == "ISP ticket closed").one()
        assert (entry.actor, entry.minutes, entry.client_name, entry.host_name, entry.at) == \
            ("dora", 15, "acme", "web2", NOW_DEC3)


def test_worklog_refuses_what_it_cannot_bill(story: Story) -> None:
    with story.db.session() as s:
        with pytest.raises(worklog.WorkLogError, match="no client 'nobody'"):
            worklog.add_entry(s, worklog.WorkItem("nobody"), minutes=5, text="x", actor="a", now=nov(2))
        with pytest.raises(worklog.WorkLogError, match="run 3 ran on 'web2', not on 'web1'"):
            worklog.add_entry(s, worklog.WorkItem("acme", host="web1", run_id=story.ids["update_rb"]),
                              minutes=5, text="x", actor="a", now=nov(2))
        with pytest.raises(worklog.WorkLogError, match="no run with id 999"):
            worklog.add_entry(s, worklog.WorkItem("acme", run_id=999), minutes=5, text="x", actor="a",
                              now=nov(2))
        with pytest.raises(ValueError, match="minutes: expected a whole number from 1 to 1440, got 2000"):
            worklog.add_entry(s, worklog.WorkItem("acme"), minutes=2000, text="x", actor="a", now=nov(2))


HOLDS_DDL = """CREATE TABLE IF NOT EXISTS release_holds (
    id INTEGER PRIMARY KEY, playbook VARCHAR(200) NOT NULL, "release" TEXT NOT NULL,
    state VARCHAR(16) NOT NULL,
    reason TEXT NOT NULL, run_id INTEGER, host VARCHAR(100), held_by VARCHAR(100) NOT NULL,
    held_at FLOAT NOT NULL, released_by VARCHAR(100), released_at FLOAT)"""


def test_release_holds_of_the_clients_hosts_when_holds_are_recorded(story: Story) -> None:
    """The holds table belongs to the release holds of the workflows (issue #17): created here as
    they define it when this branch runs alone, left as it is when it is there."""
    from sqlalchemy import text

    rb = story.ids["update_rb"]
    with story.db.session() as s:
        s.execute(text(HOLDS_DDL))
        s.execute(text('INSERT INTO release_holds (id, playbook, "release", state, reason, run_id, host, '
                       "held_by, held_at, released_by, released_at) VALUES (:id, :pb, :rel, :state, :reason, "
                       ":run, :host, :by, :at, :rby, :rat)"), [
            {"id": 101, "pb": "bitrix-modules-update", "rel": "crm=25.100.300 main=25.100.300",
             "state": "held", "reason": "rolled back on web2 <run 3>", "run": rb, "host": "web2",
             "by": "boxkeeper", "at": nov(22, 3, 25), "rby": None, "rat": None},
            {"id": 102, "pb": "os-packages-update", "rel": "nginx=1.24", "state": "released", "reason": "x",
             "run": None, "host": "web1", "by": "alice", "at": msk(10, 2), "rby": "alice",
             "rat": msk(10, 3)},
            {"id": 103, "pb": "1c-config-update", "rel": "3.1.10", "state": "held", "reason": "y",
             "run": None, "host": "db1", "by": "carol", "at": nov(2), "rby": None, "rat": None},
        ])
    held = report_of(story, "acme", "2026-11")["updates"]["releases_held"]
    assert held["available"] is True
    # 102 was released in October, 103 is another client's
    assert [(h["id"], h["run_id"], h["host"], h["state"], h["held_at"], h["released_at"])
            for h in held["items"]] == [(101, rb, "web2", "held", iso(nov(22, 3, 25)), None)]
    r = report_of(story, "acme", "2026-11")
    html = render(r, "html")
    parse_html(html)
    assert "crm=25.100.300 main=25.100.300" in html and "rolled back on web2 &lt;run 3&gt;" in html
    assert "| bitrix-modules-update | crm=25.100.300 main=25.100.300 |" in render(r, "md")
