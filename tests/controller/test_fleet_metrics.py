"""Fleet metrics exposition: families merged across hosts, valid for promtool, own names protected."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from agent.report import SCHEMA, CheckReport, Facts, Report, Sample, Status, to_json
from controller import ingest, inventory
from controller.config import parse
from controller.fleet_metrics import FleetCollector
from controller.store.db import Database

pytestmark = pytest.mark.integration

CFG = parse({"clients": [{"name": "acme", "hosts": [{"name": "h1"}, {"name": "h2"}]},
                         {"name": "globex", "hosts": [{"name": "h3"}]}]})


def _report(host: str, samples: tuple[Sample, ...], status: int = 0) -> bytes:
    return to_json(Report(
        schema=SCHEMA, host=host, agent_version="0.1.0", seq=1, sent_at=1.0, push_interval_seconds=15.0,
        checks=(CheckReport("portal", "http", Status(status), True, False, "x", 0.1),),
        samples=samples, facts=Facts("h", "Debian 12", "6.1"),
    ))


@pytest.fixture
def exposition(tmp_path: Path) -> str:
    db = Database(f"sqlite:///{tmp_path}/m.db")
    db.upgrade()
    inventory.sync_config(CFG, db)
    tokens = {h: inventory.add_host(db, h, c) for h, c in (("h1", "acme"), ("h2", "acme"), ("h3", "globex"))}
    ingest.ingest(db, tokens["h1"], _report("h1", (
        Sample("boxkeeper_cpu_seconds_total", 10.0, "counter", {"mode": "user"}),
        Sample("boxkeeper_filesystem_size_bytes", 1e9, "gauge", {"mountpoint": "/"}),
        Sample("boxkeeper_odd", 1.0, "gauge", {}),
        Sample("boxkeeper_labelled", 1.0, "gauge", {"host": "inner", "client": "x"}),
        Sample("boxkeeper_host_up", 0.0, "gauge", {}),  # a controller name: not re-exposed
        # the series of the agent's Bitrix checks, as a report carries them
        Sample("boxkeeper_bitrix_licence_remaining_seconds", 864000.0, "gauge", {"site": "default"}),
        Sample("boxkeeper_bitrix_agents_lag_seconds", 1380.0, "gauge", {"site": "shop"}),
        Sample("boxkeeper_bitrix_update_errors_total", 2.0, "counter", {"site": "default"}),
        Sample("boxkeeper_mysql_threads_connected", 12.0, "gauge", {"check": "bitrix-mysql"}),
    )))
    ingest.ingest(db, tokens["h2"], _report("h2", (
        # another label set than h1's for the same name
        Sample("boxkeeper_cpu_seconds_total", 20.0, "counter", {"mode": "user", "cpu": "0"}),
        Sample("boxkeeper_filesystem_size_bytes", 2e9, "gauge", {"mountpoint": "/", "fstype": "xfs"}),
        Sample("boxkeeper_odd", 5.0, "counter", {}),  # disagrees with h1 about the type
    ), status=2))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(CFG, db, clock=lambda: 10.0))
    text = generate_latest(registry).decode()
    db.dispose()
    return text


def test_promtool_accepts_the_exposition(exposition: str) -> None:
    proc = subprocess.run(["promtool", "check", "metrics"], input=exposition.encode(), capture_output=True,
                          timeout=60, check=False)
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, b"")


def test_samples_of_one_name_form_one_family_with_their_own_labels(exposition: str) -> None:
    assert exposition.count("# TYPE boxkeeper_cpu_seconds_total counter") == 1
    assert 'boxkeeper_cpu_seconds_total{client="acme",host="h1",mode="user"} 10.0' in exposition
    assert 'boxkeeper_cpu_seconds_total{client="acme",cpu="0",host="h2",mode="user"} 20.0' in exposition
    assert 'boxkeeper_filesystem_size_bytes{client="acme",host="h1",mountpoint="/"} 1e+09' in exposition
    assert "# TYPE boxkeeper_odd untyped" in exposition  # hosts disagree: untyped, not a lie


def test_the_bitrix_checks_series_are_re_exposed_with_client_and_host(exposition: str) -> None:
    assert ('boxkeeper_bitrix_licence_remaining_seconds{client="acme",host="h1",site="default"} 864000.0'
            in exposition)
    assert 'boxkeeper_bitrix_agents_lag_seconds{client="acme",host="h1",site="shop"} 1380.0' in exposition
    assert "# TYPE boxkeeper_bitrix_update_errors_total counter" in exposition
    assert 'boxkeeper_bitrix_update_errors_total{client="acme",host="h1",site="default"} 2.0' in exposition
    assert ('boxkeeper_mysql_threads_connected{check="bitrix-mysql",client="acme",host="h1"} 12.0'
            in exposition)


def test_agent_labels_named_client_or_host_are_renamed(exposition: str) -> None:
    assert ('boxkeeper_labelled{client="acme",exported_client="x",exported_host="inner",host="h1"} 1.0'
            in exposition)


def test_controller_families(exposition: str) -> None:
    assert exposition.count("# TYPE boxkeeper_host_up gauge") == 1
    assert 'boxkeeper_host_up{client="acme",host="h1"} 1.0' in exposition
    assert 'boxkeeper_host_up{client="globex",host="h3"} 0.0' in exposition  # never reported
    assert 'boxkeeper_check_status{check="portal",client="acme",host="h2",type="http"} 2.0' in exposition
    assert 'boxkeeper_host_state{client="acme",host="h2",state="critical"} 1.0' in exposition
    assert "boxkeeper_host_last_report_timestamp_seconds{" in exposition


def test_update_runs_rollbacks_and_holds_are_counted_from_the_stored_runs(tmp_path: Path) -> None:
    from controller.workflows import later, releases
    from controller.workflows import runs as store

    db = Database(f"sqlite:///{tmp_path}/m.db")
    db.upgrade()

    def finished(host: str, playbook: str, state: str, *, dry_run: bool = False,
                 aborted: bool = False) -> int:
        run_id = store.create_run(db.session, host=host, playbook=playbook, playbook_path="/p.yaml",
                                  variables={}, dry_run=dry_run, now=1.0)
        with db.session() as s:
            store.get_run(s, run_id).state = state
            if aborted:  # as the engine records an operator's abort it acted on
                store.get_run(s, run_id).abort_requested_by = "cli:ops"
                store.get_run(s, run_id).aborted_at = 2.0
            store.release_lease(s, host, run_id)
        return run_id

    good = finished("h1", "bitrix-modules-update", "SUCCEEDED")
    finished("h2", "bitrix-modules-update", "ROLLED_BACK")
    finished("h2", "bitrix-modules-update", "SKIPPED")
    finished("h2", "bitrix-modules-update", "ABORTED", aborted=True)
    finished("h2", "bitrix-modules-update", "ROLLED_BACK", aborted=True)  # aborted during the update
    finished("h3", "bitrix-modules-update", "SUCCEEDED", dry_run=True)  # a dry run is not counted
    finished("h3", "1c-config-update", "QUARANTINED")
    finished("h3", "1c-config-update", "LOCK")  # still running: not counted
    undone = finished("h1", "bitrix-modules-update", "ROLLED_BACK")
    with db.session() as s:  # a later rollback of the good run
        s.add(later.LaterRollback(run_id=undone, of_run_id=good, requested_by="cli:ops", requested_at=2.0))
        releases.hold(s, playbook="1c-config-update", release="3.1.10.1", actor="cli:ops", now=1.0)

    def sample(name: str, **labels: str) -> float | None:
        registry = CollectorRegistry(auto_describe=False)  # a fresh collector: what a restart sees
        registry.register(FleetCollector(CFG, db, clock=lambda: 10.0))
        return registry.get_sample_value(name, labels)

    b = "bitrix-modules-update"
    assert sample("boxkeeper_update_runs_total", playbook=b, outcome="SUCCEEDED") == 1.0
    assert sample("boxkeeper_update_runs_total", playbook=b, outcome="ROLLED_BACK") == 3.0
    assert sample("boxkeeper_update_runs_total", playbook=b, outcome="ABORTED") == 1.0
    assert sample("boxkeeper_update_rollbacks_total", playbook=b, kind="aborted") == 1.0
    assert sample("boxkeeper_update_runs_total", playbook=b, outcome="SKIPPED") == 1.0
    assert sample("boxkeeper_update_runs_total", playbook=b, outcome="FAILED") == 0.0
    assert sample("boxkeeper_update_runs_total", playbook="1c-config-update", outcome="QUARANTINED") == 1.0
    assert sample("boxkeeper_update_rollbacks_total", playbook=b, kind="automatic") == 1.0
    assert sample("boxkeeper_update_rollbacks_total", playbook=b, kind="later") == 1.0
    assert sample("boxkeeper_release_holds", playbook="1c-config-update") == 1.0
    assert sample("boxkeeper_release_holds", playbook=b) is None
    db.dispose()
