"""/metrics: host samples, check states, perfdata in base units, agent health; promtool-clean."""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.registry import CollectorRegistry

from agent.collectors import HostSampler
from agent.collectors.registry import HostSources, build_collectors
from agent.metrics import AgentCollector, SelfCollector, build_registry, render, serve, shutdown, to_base_unit
from agent.push import PushStats
from agent.report import CheckReport, PerfValue, Status
from agent.spool import SpoolStats
from tests.agent.fakes import FakePsutil, FakeStatvfs

HOST = "127.0.1.102"

CHECKS = [
    CheckReport(
        "portal",
        "http",
        Status.CRITICAL,
        True,
        False,
        "HTTP 502",
        0.25,
        attempt=3,
        max_attempts=3,
        last_change=1_764_300_000.0,
        perfdata=(PerfValue("time", 250, "ms"), PerfValue("size", 2, "KB")),
    ),
    CheckReport(
        "nginx",
        "process",
        Status.OK,
        True,
        False,
        "3 processes",
        0.01,
        perfdata=(PerfValue("count", 3), PerfValue("rss", 12_000_000, "B"), PerfValue("cpu", 4.5, "s")),
    ),
    CheckReport(
        "swap",
        "command",
        Status.WARNING,
        False,
        True,
        "SWAP WARNING",
        0.03,
        perfdata=(
            PerfValue("swap", 512, "MB"),
            PerfValue("swap_free", 85, "%"),
            PerfValue("swap", 1, "MB"),
            PerfValue("procs", 17),
        ),
    ),
    CheckReport("hung", "command", Status.UNKNOWN, False, False, "timed out after 10s", 10.0),
]


def registry(**overrides: object) -> CollectorRegistry:
    options: dict[str, object] = {
        "version": "0.1.0",
        "host_samples": HostSampler(
            build_collectors(HostSources(FakePsutil(), statvfs=FakeStatvfs()))).samples,
        "checks": lambda: CHECKS,
        "spool_stats": lambda: SpoolStats(reports=4, bytes=4096, dropped_total=2, rejected_total=1),
        "push_stats": lambda: PushStats(10, 7, 1, {"connection": 2, "http_4xx": 1}, 1_764_300_001.0),
    }
    options.update(overrides)
    return build_registry(AgentCollector(**options))  # type: ignore[arg-type]


def test_registry_is_fresh_and_nothing_is_registered_at_import() -> None:
    from prometheus_client import REGISTRY

    assert REGISTRY.get_sample_value("boxkeeper_agent_info", {"version": "0.1.0"}) is None
    assert registry().get_sample_value("boxkeeper_agent_info", {"version": "0.1.0"}) == 1.0


def test_own_process_metrics_are_what_prometheus_client_reports() -> None:
    from prometheus_client.process_collector import ProcessCollector

    ours = {m.name: m for m in SelfCollector().collect()}
    theirs = {m.name: m for m in ProcessCollector(registry=None).collect()}
    assert set(ours) == set(theirs)
    for name, family in theirs.items():
        assert (ours[name].type, ours[name].documentation) == (family.type, family.documentation)
        [mine], [reference] = ours[name].samples, family.samples
        assert mine.name == reference.name and mine.labels == reference.labels == {}
        if name in ("process_start_time_seconds", "process_max_fds"):
            assert mine.value == reference.value
        else:  # read a moment apart: memory, CPU and fds may move a little
            assert mine.value == pytest.approx(reference.value, rel=0.2, abs=2.0), name


def test_check_states() -> None:
    reg = registry()
    assert reg.get_sample_value("boxkeeper_check_status", {"check": "portal"}) == 2
    assert reg.get_sample_value("boxkeeper_check_status", {"check": "hung"}) == 3
    assert reg.get_sample_value("boxkeeper_check_hard_state", {"check": "portal"}) == 1
    assert reg.get_sample_value("boxkeeper_check_hard_state", {"check": "swap"}) == 0
    assert reg.get_sample_value("boxkeeper_check_flapping", {"check": "swap"}) == 1
    assert reg.get_sample_value("boxkeeper_check_duration_seconds", {"check": "hung"}) == 10.0
    changed = reg.get_sample_value("boxkeeper_check_last_change_timestamp_seconds", {"check": "portal"})
    assert changed == 1_764_300_000


def test_perfdata_in_base_units_and_process_stats() -> None:
    reg = registry()

    def perf(check: str, label: str) -> float | None:
        return reg.get_sample_value("boxkeeper_check_perfdata", {"check": check, "label": label})

    assert perf("portal", "time") == pytest.approx(0.25)
    assert perf("portal", "size") == 2048
    assert perf("swap", "swap") == 512 * 2**20  # a duplicate label in plugin output: first one wins
    assert perf("swap", "swap_free") == pytest.approx(0.85)
    assert perf("swap", "procs") == 17
    assert perf("nginx", "count") is None  # process stats have their own names
    assert reg.get_sample_value("boxkeeper_processes", {"check": "nginx"}) == 3
    assert reg.get_sample_value("boxkeeper_process_resident_memory_bytes", {"check": "nginx"}) == 12_000_000
    assert reg.get_sample_value("boxkeeper_process_cpu_seconds_total", {"check": "nginx"}) == 4.5
    assert to_base_unit(PerfValue("t", 5, "us")) == pytest.approx(5e-6)
    assert to_base_unit(PerfValue("d", 1, "GB")) == 2**30
    assert to_base_unit(PerfValue("x", 3, "furlongs")) == 3


def test_host_and_agent_health_metrics() -> None:
    reg = registry()
    assert reg.get_sample_value("boxkeeper_load1") == 0.5
    assert reg.get_sample_value("boxkeeper_cpu_seconds_total", {"mode": "idle"}) == 1000.0
    root = {"mountpoint": "/", "fstype": "ext4"}
    assert reg.get_sample_value("boxkeeper_filesystem_avail_bytes", root) == 300 * 4096
    assert reg.get_sample_value("boxkeeper_spool_reports") == 4
    assert reg.get_sample_value("boxkeeper_spool_bytes") == 4096
    assert reg.get_sample_value("boxkeeper_spool_dropped_reports_total") == 2
    assert reg.get_sample_value("boxkeeper_reports_rejected_total") == 1
    assert reg.get_sample_value("boxkeeper_pushes_total") == 10
    assert reg.get_sample_value("boxkeeper_push_errors_total", {"reason": "connection"}) == 2
    assert reg.get_sample_value("boxkeeper_last_push_success_timestamp_seconds") == 1_764_300_001.0
    assert reg.get_sample_value("process_resident_memory_bytes") is not None  # the agent's own


def test_without_a_controller_there_are_no_push_metrics() -> None:
    text = render(registry(spool_stats=None, push_stats=None))
    assert "boxkeeper_spool" not in text and "boxkeeper_push" not in text
    assert "boxkeeper_check_status" in text


@pytest.fixture
def served() -> Iterator[str]:
    server, thread = serve(registry(), HOST, 0)
    try:
        yield f"http://{HOST}:{server.server_port}/metrics"
    finally:
        shutdown(server, thread)


@pytest.mark.integration
def test_live_scrape_passes_promtool(served: str) -> None:
    with urllib.request.urlopen(served, timeout=10) as response:  # noqa: S310 - our own test server
        text = response.read()
    assert b"boxkeeper_check_status" in text
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")


@pytest.mark.integration
def test_every_series_a_check_type_declares_is_promtool_clean_with_its_help() -> None:
    """The checks' own series (CheckResult.samples) of every registered type, as one scrape shows
    them: named by Prometheus' rules (promtool), each family with its type's HELP text."""
    from agent.checks.registry import sample_help
    from agent.report import Sample

    helps = sample_help()
    samples = [Sample(name, 1.0, "counter" if name.endswith("_total") else "gauge", {"site": "default"})
               for name in helps]
    collector = AgentCollector(version="0.1.0", check_samples=lambda: samples, sample_help=helps)
    text = render(build_registry(collector, process_metrics=False))
    for name, help_text in helps.items():
        family = name.removesuffix("_total") if name.endswith("_total") else name
        assert f"# HELP {family}" in text and help_text.replace("\\", "\\\\") in text, name
        assert f'{name}{{site="default"}} 1.0' in text
    result = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True,
                            timeout=60, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
