"""A playbook's own failure incident (``failure_incident``), as the restore drill uses it: loading
and its errors, the incident each outcome opens, and the drill run by an update window.

The engine runs on scripted hosts (FakeExecutor); the drill on real boxes is test_backup_drill.py.
"""

from __future__ import annotations

import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from controller.config import parse
from controller.errors import ConfigError
from controller.runtime import WorkflowRuntime
from controller.store.db import Database
from controller.workflows.engine import Engine
from controller.workflows.executor import Executor
from controller.workflows.loader import load_playbook
from controller.workflows.models import UpdateWindow
from controller.workflows.runs import RunSummary
from controller.workflows.windows import WindowScheduler, add_window, occurrences
from tests.controller.workflows.conftest import TEST_PLAYBOOK, RecordingIncidents
from tests.controller.workflows.drillkit import DRILL
from tests.controller.workflows.fakes import Crash, FakeExecutor

DRILL_INCIDENT = """
failure_incident:
  cause: backup_unrestorable
  summary: "backups of {{ host }} cannot be restored"
  detail_regex: 'CAUSE: .*'
"""


def playbook_with(tmp_path: Path, block: str) -> Path:
    path = tmp_path / "pb.yaml"
    path.write_text(textwrap.dedent(TEST_PLAYBOOK) + textwrap.dedent(block))
    return path


def healthy_host() -> FakeExecutor:
    ex = FakeExecutor()
    ex.on(r"^read-version", (0, "VERSION=1.0\n", ""))
    ex.on(r"^read-password", (0, "PASSWORD=pw\n", ""))
    ex.on(r"^verify-backup", (0, "backup ok\n", ""))
    return ex


def run(store: Database, incidents: RecordingIncidents, path: Path, ex: FakeExecutor) -> RunSummary:
    return Engine(store.session, incidents=incidents, sleep=lambda _s: None).run(
        load_playbook(path), "box1", ex, {})


def test_failure_incident_loads_with_its_defaults(tmp_path: Path) -> None:
    fi = load_playbook(playbook_with(tmp_path, DRILL_INCIDENT)).failure_incident
    assert fi is not None
    assert (fi.cause, fi.severity) == ("backup_unrestorable", "critical")
    assert fi.summary == "backups of {{ host }} cannot be restored"
    assert fi.detail_regex is not None and fi.detail_regex.pattern == "CAUSE: .*"
    assert load_playbook(playbook_with(tmp_path, "")).failure_incident is None


@pytest.mark.parametrize(("block", "message"), [
    ("failure_incident: {cause: Backup Broken, summary: x}",
     "failure_incident.cause: expected an incident cause of lower-case letters, digits and _"),
    ("failure_incident: {cause: bad_backup, summary: 'backups of {{ hots }}'}",
     "failure_incident.summary: expected only declared variables, run_id, host, or captured.<name>"),
    ("failure_incident: {cause: bad_backup, summary: x, severity: fatal}",
     "failure_incident.severity: expected one of critical, warning, info"),
    ("failure_incident: {cause: bad_backup, summary: x, detail_regex: '(unclosed'}",
     "failure_incident.detail_regex: expected"),
    ("failure_incident: {cause: bad_backup, summary: x, page: yes}",
     "failure_incident.page: expected no such key"),
    ("failure_incident: {summary: x}", "failure_incident.cause: expected"),
])
def test_failure_incident_mistakes_are_named(tmp_path: Path, block: str, message: str) -> None:
    path = playbook_with(tmp_path, block)
    with pytest.raises(ConfigError) as err:
        load_playbook(path)
    assert str(err.value).startswith(f"{path}: {message}"), str(err.value)


def test_failed_and_rolled_back_runs_open_the_playbooks_incident_once_per_host(
    store: Database, incidents: RecordingIncidents, tmp_path: Path
) -> None:
    path = playbook_with(tmp_path, DRILL_INCIDENT)
    failed = healthy_host().on(r"^verify-backup", (1, "reading\nCAUSE: unexpected end of file\nmore\n", ""))
    rolled = healthy_host().on(r"do-update", (1, "", "CAUSE: Unknown collation\n"))

    first, second = run(store, incidents, path, failed), run(store, incidents, path, rolled)

    assert (first.state, second.state) == ("FAILED", "ROLLED_BACK")
    a, b = incidents.opened
    assert a.cause == b.cause == "backup_unrestorable" and a.severity == b.severity == "critical"
    assert a.key == b.key == "workflow:backup_unrestorable:box1"  # a second failure adds to the open one
    assert a.summary == ("backups of box1 cannot be restored: test-update on box1 (run 1) ended FAILED "
                         "at backup_verify/check backup: CAUSE: unexpected end of file")
    assert b.summary == ("backups of box1 cannot be restored: test-update on box1 (run 2) ended ROLLED_BACK "
                         "at update/update modules: CAUSE: Unknown collation")
    assert a.details["failed_output"].startswith("reading")  # the whole output stays in the details


def test_success_and_quarantine_keep_their_own_meaning(
    store: Database, incidents: RecordingIncidents, tmp_path: Path
) -> None:
    path = playbook_with(tmp_path, DRILL_INCIDENT)
    assert run(store, incidents, path, healthy_host()).state == "SUCCEEDED"
    assert incidents.opened == []
    stuck = healthy_host().on(r"do-update", (1, "", "")).on(r"^DB_PASSWORD=\S+ restore", (1, "", "disk gone"))
    assert run(store, incidents, path, stuck).state == "QUARANTINED"
    [incident] = incidents.opened
    assert incident.cause == "host_quarantined"  # scratch copies that cannot be dropped need a person


def drill_host(fault: str = "") -> FakeExecutor:
    """A scripted Bitrix box answering the drill's captures; ``fault``: ``truncated`` (gzip -t
    fails) or ``collation`` (the dump does not load)."""
    ex = FakeExecutor()
    for key, value in (("host", "127.0.0.1"), ("port", "3306"), ("database", "portal"), ("login", "bitrix"),
                       ("password", "pw")):
        ex.on(rf'\["{key}"\]', (0, f"VALUE={value}\n", ""))
    ex.on(r"h\[1\] \?\? ", (0, "VALUE=3306\n", ""))
    ex.on(r"SELECT 1", (0, "1\n", ""))
    ex.on(r"@@datadir", (0, "DATADIR=/var/lib/mysql/\n", ""))
    pair = "/home/bitrix/backup/archive/boxkeeper-run-7"
    found = f"PAIR={pair}\nDB_DUMP={pair}/db.sql.gz\nFILES_ARCHIVE={pair}/files.tar.gz\n"
    ex.on(r"boxkeeper-run-\*", (0, found, ""))
    ex.on(r"AGE_HOURS", (0, "AGE_HOURS=20\n", ""))
    ex.on(r"SELECTS_A_DATABASE", (0, "last: -- Dump completed on 2026-12-05 03:00:01\n", ""))
    ex.on(r"version\.php$", (0, 'define("SM_VERSION","25.100.200");\n', ""))
    ex.on(r"dump\.counts", (0, "RESTORED: 7 tables, 27 rows\nMATCH: every row was restored\n", ""))
    ex.on(r"live\.counts", (0, "LIVE: 7 tables, 28 rows; backup: 7 tables, 27 rows\n", ""))
    if fault == "truncated":
        ex.on(r"^gzip -t", (1, "", "gzip: /home/bitrix/backup/archive/boxkeeper-run-7/db.sql.gz: "
                                   "unexpected end of file\n"))
    if fault == "collation":
        ex.on(r"default-character-set=utf8mb4 \"\$db\"", (1, "", "ERROR 1273 (HY000) at line 25: Unknown "
                                                                   "collation: 'utf8mb4_0900_ai_ci'\n"))
    return ex


def test_the_drill_runs_in_an_update_window_on_every_host(
    store: Database, incidents: RecordingIncidents, tmp_path: Path
) -> None:
    """Unlike a release, a drill that ends ROLLED_BACK on one host does not stop the window."""
    hosts = {"portal-a": drill_host(), "portal-b": drill_host("truncated"),
             "portal-c": drill_host("collation"), "portal-d": drill_host()}
    clients = [{"name": "acme", "hosts": [{"name": h} for h in hosts]}]
    cfg = parse({"state_dir": str(tmp_path), "clients": clients}, "c.yaml")
    runtime = WorkflowRuntime(cfg, store)  # which playbooks are releases: the shipped ones, as loaded
    assert runtime.is_release("bitrix-modules-update") and not runtime.is_release("bitrix-backup-drill")
    engine = Engine(store.session, incidents=incidents, sleep=lambda _s: None)

    def run_host(window: UpdateWindow, host: str, ends_at: float) -> RunSummary:
        executor: Executor = hosts[host]
        return engine.run(runtime.playbook(window.playbook), host, executor, dict(window.variables))

    sched = WindowScheduler(store, hosts_of=lambda target: list(hosts), run_host=run_host,
                            incidents=incidents, silence=lambda host, owner, until, reason: None,
                            lift=lambda owner, host: None, is_release=runtime.is_release)
    now = datetime.now(UTC)
    with store.session() as s:  # a nightly drill window that started this minute
        window_id = add_window(s, name="drill", target="client:acme", playbook="bitrix-backup-drill",
                               cron=f"{now.minute} {now.hour} * * *", duration_minutes=120, timezone="UTC",
                               variables={"backup_dir": "/home/bitrix/backup/archive"}, now=time.time()).id
    sched.run_window(window_id)

    with store.session() as s:
        [occurrence] = occurrences(s, window_id)
    assert occurrence["status"] == "done" and occurrence["run_ids"] == [1, 2, 3, 4]
    assert occurrence["detail"] == ("rollout 1; portal-a: run 1 SUCCEEDED; portal-b: run 2 FAILED; "
                                    "portal-c: run 3 ROLLED_BACK; portal-d: run 4 SUCCEEDED")
    truncated, unloadable = incidents.opened
    assert (truncated.host, unloadable.host) == ("portal-b", "portal-c")
    assert truncated.cause == unloadable.cause == "backup_unrestorable"
    assert truncated.summary.endswith(
        "ended FAILED at backup_verify/both archives are intact (gzip -t): gzip: "
        "/home/bitrix/backup/archive/boxkeeper-run-7/db.sql.gz: unexpected end of file")
    assert unloadable.summary.endswith(
        "ended ROLLED_BACK at update/load the dump into the scratch database: "
        "ERROR 1273 (HY000) at line 25: Unknown collation: 'utf8mb4_0900_ai_ci'")
    for ex in hosts.values():  # every host's scratch copies were dropped (finally), the lock released
        assert ex.ran(r"DROP DATABASE IF EXISTS .*rm -rf .*boxkeeper-drill-.*scratch copies dropped") == 1
        assert ex.ran(r"^if \[ \"\$\(cat .*boxkeeper-update\.lock") == 1
    # portal-c's rollback dropped the scratch copies and its verify checked that they are gone
    assert hosts["portal-c"].ran(r"SELECT COUNT\(\*\) FROM information_schema\.schemata") == 1


def test_a_drill_cut_short_by_a_controller_crash_is_not_reported_as_a_bad_backup(
    store: Database, incidents: RecordingIncidents
) -> None:
    playbook = load_playbook(DRILL)
    first = drill_host().on(r"default-character-set=utf8mb4 \"\$db\"", Crash(), once=True)  # while loading
    with pytest.raises(Crash):
        Engine(store.session, incidents=RecordingIncidents(), sleep=lambda _s: None).run(
            playbook, "box1", first, {})

    second = drill_host()
    restarted = Engine(store.session, incidents=incidents, sleep=lambda _s: None)
    [result] = restarted.reconcile(lambda host: second, lambda path: load_playbook(path))

    assert result.state == "ROLLED_BACK"
    assert second.ran(r"DROP DATABASE IF EXISTS .*boxkeeper-drill-1$") == 1  # the rollback dropped it
    assert second.ran(r"schema_name = '\$db'") == 1  # and checked that it is gone
    [incident] = incidents.opened
    assert (incident.cause, incident.severity) == ("run_interrupted", "warning")
    assert incident.summary == ("bitrix-backup-drill on box1 (run 1) was interrupted by a controller restart "
                                "and ended ROLLED_BACK after its rollback and final steps; nothing was found "
                                "wrong, but nothing was proven either: run it again")
