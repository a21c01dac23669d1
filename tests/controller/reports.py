"""Building agent reports for the controller tests (the real schema from ``agent.report``)."""

from __future__ import annotations

import time
from typing import Any

from agent.report import SCHEMA, CheckReport, Facts, PerfValue, Report, Sample, Status, to_json


def make_report(
    host: str,
    seq: int,
    *,
    checks: int = 3,
    samples: int = 5,
    status: int = 0,
    statuses: dict[str, int] | None = None,
    hard: bool = True,
    sent_at: float | None = None,
) -> Report:
    names = [f"check_{i}" for i in range(checks)]
    check_list = tuple(
        CheckReport(
            name=name,
            type="http",
            status=Status((statuses or {}).get(name, status)),
            hard=hard,
            flapping=False,
            summary=f"{name} of {host} at seq {seq}",
            duration_seconds=0.01,
            attempt=1,
            max_attempts=3,
            last_change=1764300000.0,
            perfdata=(PerfValue("time", 0.01, "s", 1.0, 2.0, 0.0, None),),
        )
        for name in names
    )
    sample_list = tuple(
        Sample(
            name=f"boxkeeper_test_metric_{i % 10}",
            value=float(seq * 1000 + i),
            kind="gauge",
            labels={"index": str(i)},
        )
        for i in range(samples)
    )
    return Report(
        schema=SCHEMA,
        host=host,
        agent_version="0.1.0",
        seq=seq,
        sent_at=sent_at if sent_at is not None else time.time(),
        push_interval_seconds=15.0,
        checks=check_list,
        samples=sample_list,
        facts=Facts(hostname=f"{host}.example", os="Debian 12", kernel="6.1.0", boot_time=1764200000.0),
    )


def body(report: Report) -> bytes:
    return to_json(report)


def headers(token: str) -> dict[str, Any]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
