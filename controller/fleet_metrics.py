"""Fleet metrics for Prometheus: a custom collector over the database, plus the controller's health.

Exposed families:

- every sample of every host's latest report, under its own name, with ``client`` and ``host``
  labels added (an agent label called ``client``/``host`` becomes ``exported_client``/
  ``exported_host``, as Prometheus does). Samples of one name from all hosts form one family:
  ``counter`` when every host says counter and the name ends in ``_total``, ``gauge`` when every
  host says gauge, ``untyped`` when hosts disagree. Names the controller exposes itself are skipped.
- ``boxkeeper_host_up{client,host}`` 1 when the last report is within ``silence_after``.
- ``boxkeeper_host_last_report_timestamp_seconds{client,host}`` (controller clock).
- ``boxkeeper_host_state{client,host,state}`` 1 for the host's one-word state.
- ``boxkeeper_check_status{client,host,check,type}`` 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN;
  ``boxkeeper_check_hard{client,host,check}`` 1 when the state is hard.
- ``boxkeeper_incidents_open{client,severity}``.
- ``boxkeeper_update_runs_total{playbook,outcome}``: finished update runs (not dry runs) by final
  state, counted from the stored runs on every scrape (so they survive restarts and agree across
  replicas); ``outcome`` is SUCCEEDED, FAILED, ROLLED_BACK, QUARANTINED, SKIPPED or ABORTED (an
  operator's abort before the update began).
  ``boxkeeper_update_rollbacks_total{playbook,kind}``: runs that ended ROLLED_BACK, ``kind``
  ``automatic`` (the run's own verification failed), ``later`` (``boxkeeper runs rollback``) or
  ``aborted`` (an operator's abort after the update began: ``boxkeeper runs abort``).
- ``boxkeeper_release_holds{playbook}``: releases held for the fleet now.
- ``boxkeeper_controller_ingest_requests_total{code}``, ``boxkeeper_controller_ingest_duration_seconds``
  (histogram), ``boxkeeper_controller_db_errors_total``, ``boxkeeper_controller_scrape_duration_seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from controller.alerting.queries import open_counts
from controller.config import ControllerConfig
from controller.fleet import load_fleet
from controller.store.db import Database
from controller.workflows.later import LaterRollback
from controller.workflows.models import WorkflowRun
from controller.workflows.releases import HELD, ReleaseHold

OWN_PREFIXES = ("boxkeeper_host_", "boxkeeper_check_", "boxkeeper_incidents_", "boxkeeper_controller_",
                "boxkeeper_notifications", "boxkeeper_update_runs", "boxkeeper_update_rollbacks",
                "boxkeeper_release_holds")
OUTCOMES = ("SUCCEEDED", "FAILED", "ROLLED_BACK", "QUARANTINED", "SKIPPED", "ABORTED")
ROLLBACK_KINDS = ("automatic", "later", "aborted")
STATES = ("ok", "warning", "critical", "unknown", "agent_down", "unreachable", "maintenance")


class ControllerHealth:
    """The controller's own metrics (one per app, in the app's registry)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.ingest_requests = Counter(
            "boxkeeper_controller_ingest_requests", "Report pushes answered, by HTTP status code.",
            ["code"], registry=registry,
        )
        self.ingest_duration = Histogram(
            "boxkeeper_controller_ingest_duration_seconds", "Time to answer a report push.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=registry,
        )
        self.db_errors = Counter(
            "boxkeeper_controller_db_errors", "Database errors while serving requests.", registry=registry,
        )


class FleetCollector(Collector):
    """Reads the database on every scrape (nothing cached: replicas agree)."""

    def __init__(
        self, cfg: ControllerConfig, db: Database, *, clock: Callable[[], float] = time.time,
    ) -> None:
        self.cfg = cfg
        self.db = db
        self.clock = clock

    def describe(self) -> list[Metric]:
        return []  # dynamic families: do not let the registry call collect() at registration

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        now = self.clock()
        with self.db.read_session() as session:
            hosts = load_fleet(session, self.cfg.detection, self.cfg.maintenance, now, with_samples=True)
            incidents = open_counts(session)
            runs = run_counts(session)
            holds = hold_counts(session)
        up = GaugeMetricFamily("boxkeeper_host_up",
                               "1 when the host's agent reported within silence_after.",
                               labels=["client", "host"])
        last = GaugeMetricFamily("boxkeeper_host_last_report_timestamp_seconds",
                                 "When the controller last received a report from the host (unix time).",
                                 labels=["client", "host"])
        state = GaugeMetricFamily("boxkeeper_host_state", "1 for the host's current state (one word).",
                                  labels=["client", "host", "state"])
        status = GaugeMetricFamily("boxkeeper_check_status",
                                   "Check status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
                                   labels=["client", "host", "check", "type"])
        hard = GaugeMetricFamily("boxkeeper_check_hard", "1 when the check's state is hard.",
                                 labels=["client", "host", "check"])
        for h in hosts:
            up.add_metric([h.client, h.host], 1.0 if h.up else 0.0)
            if h.last_report_at is not None:
                last.add_metric([h.client, h.host], h.last_report_at)
            for name in STATES:
                state.add_metric([h.client, h.host, name], 1.0 if h.state == name else 0.0)
            for c in h.checks:
                status.add_metric([h.client, h.host, c.name, c.type], float(c.status))
                hard.add_metric([h.client, h.host, c.name], 1.0 if c.hard else 0.0)
        incidents_open = GaugeMetricFamily("boxkeeper_incidents_open",
                                           "Open incidents by client and severity.",
                                           labels=["client", "severity"])
        for (client, severity), count in sorted(incidents.items()):
            incidents_open.add_metric([client, severity], float(count))
        yield from (up, last, state, status, hard, incidents_open)
        yield from run_families(runs, holds)
        yield from agent_families(hosts)
        scrape = GaugeMetricFamily("boxkeeper_controller_scrape_duration_seconds",
                                   "Time to build the fleet metrics of this scrape.")
        scrape.add_metric([], time.perf_counter() - started)
        yield scrape


def run_counts(session: Session) -> dict[tuple[str, str, str], int]:
    """(playbook, final state, rollback kind: automatic | later | aborted) → finished real runs."""
    later = WorkflowRun.id.in_(select(LaterRollback.run_id))
    aborted = WorkflowRun.aborted_at.is_not(None)
    stmt = (select(WorkflowRun.playbook, WorkflowRun.state, later, aborted, func.count())
            .where(WorkflowRun.dry_run.is_(False), WorkflowRun.state.in_(OUTCOMES))
            .group_by(WorkflowRun.playbook, WorkflowRun.state, later, aborted))
    counts: dict[tuple[str, str, str], int] = {}
    for p, s, k, a, n in session.execute(stmt):
        kind = "later" if k else "aborted" if a else "automatic"
        counts[(p, s, kind)] = counts.get((p, s, kind), 0) + int(n)
    return counts


def hold_counts(session: Session) -> dict[str, int]:
    stmt = (select(ReleaseHold.playbook, func.count()).where(ReleaseHold.state == HELD)
            .group_by(ReleaseHold.playbook))
    return {p: int(n) for p, n in session.execute(stmt)}


def run_families(runs: dict[tuple[str, str, str], int], holds: dict[str, int]) -> Iterator[Metric]:
    total = CounterMetricFamily("boxkeeper_update_runs",
                                "Finished update runs (not dry runs) by final state.",
                                labels=["playbook", "outcome"])
    rollbacks = CounterMetricFamily("boxkeeper_update_rollbacks",
                                    "Update runs that ended ROLLED_BACK: automatic, later on request, or on "
                                    "an operator's abort.",
                                    labels=["playbook", "kind"])
    by_outcome: dict[tuple[str, str], int] = {}
    by_kind: dict[tuple[str, str], int] = {}
    for (playbook, outcome, kind), count in runs.items():
        by_outcome[(playbook, outcome)] = by_outcome.get((playbook, outcome), 0) + count
        if outcome == "ROLLED_BACK":
            by_kind[(playbook, kind)] = by_kind.get((playbook, kind), 0) + count
    for playbook in sorted({p for p, _ in by_outcome}):
        for outcome in OUTCOMES:  # every outcome of a playbook that ran, 0 included (rate() needs it)
            total.add_metric([playbook, outcome], float(by_outcome.get((playbook, outcome), 0)))
        for kind in ROLLBACK_KINDS:
            rollbacks.add_metric([playbook, kind], float(by_kind.get((playbook, kind), 0)))
    held = GaugeMetricFamily("boxkeeper_release_holds", "Releases held for the fleet now.",
                             labels=["playbook"])
    for playbook, count in sorted(holds.items()):
        held.add_metric([playbook], float(count))
    yield from (total, rollbacks, held)


def _labels(client: str, host: str, raw: dict[str, str]) -> dict[str, str]:
    labels = {("exported_" + k if k in ("client", "host") else k): str(v) for k, v in raw.items()}
    labels["client"] = client
    labels["host"] = host
    return labels


def agent_families(hosts: list[Any]) -> Iterator[Metric]:
    """The hosts' samples grouped into one family per exposed name (see the module docstring)."""
    kinds: dict[str, set[str]] = {}
    series: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for h in hosts:
        for s in h.samples:
            name = s.get("name")
            if not isinstance(name, str) or name.startswith(OWN_PREFIXES):
                continue
            labels = _labels(h.client, h.host, s.get("labels") or {})
            kinds.setdefault(name, set()).add(str(s.get("kind", "gauge")))
            series.setdefault(name, {})[tuple(sorted(labels.items()))] = float(s.get("value", 0.0))
    for name in sorted(series):
        kind_set = kinds[name]
        if kind_set == {"counter"} and name.endswith("_total"):
            family = Metric(name[: -len("_total")], f"{name} from the agents' reports.", "counter")
        elif kind_set == {"gauge"}:
            family = Metric(name, f"{name} from the agents' reports.", "gauge")
        else:
            family = Metric(name, f"{name} from the agents' reports (mixed types).", "unknown")
        for key, value in series[name].items():
            family.add_sample(name, dict(key), value)
        yield family
