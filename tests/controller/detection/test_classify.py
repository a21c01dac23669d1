"""Classification, liveness and the detection config: pure functions, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from controller.config import parse
from controller.detection.classify import HostView, evaluate, host_state
from controller.detection.config import DetectionConfig, HostDetection
from controller.detection.liveness import is_silent, silence_after
from controller.detection.probes import ProbeResult
from controller.errors import ConfigError

CFG = DetectionConfig()


@dataclass(frozen=True)
class Check:
    name: str
    status: int
    hard: bool = True
    flapping: bool = False
    summary: str = "HTTP 502 from http://127.0.0.1/"


@dataclass(frozen=True)
class State:
    last_report_at: float | None
    push_interval_seconds: float | None = 15.0


SSH_OK = ProbeResult("ssh", "203.0.113.5:22", True, "TCP 203.0.113.5:22 open", 0.0)
SSH_FAIL = ProbeResult("ssh", "203.0.113.5:22", False, "203.0.113.5:22: timed out", 0.0)
PORTAL_FAIL = ProbeResult("portal", "https://portal/", False, "https://portal/: connection refused", 0.0)


def view(
    *,
    silent: bool = False,
    probes: tuple[ProbeResult, ...] | None = (),
    checks: tuple[Check, ...] = (),
    reported: bool = True,
) -> HostView:
    return HostView(
        host="portal-01",
        client="acme",
        reported=reported,
        silent=silent,
        silent_for=50.0 if silent else 3.0,
        probes=probes,
        checks=checks,
    )


def test_silent_agent_and_every_probe_failing_is_host_unreachable() -> None:
    result = evaluate(view(silent=True, probes=(SSH_FAIL, PORTAL_FAIL)), CFG)
    [cause] = result.causes
    assert (cause.key, cause.kind, cause.severity) == ("portal-01:unreachable", "unreachable", "critical")
    assert "no report for 50 s" in cause.summary and "timed out" in cause.summary
    assert result.hold_checks and result.inhibited_by == "portal-01:unreachable"


def test_silent_agent_with_a_probe_answering_is_agent_down() -> None:
    [cause] = evaluate(view(silent=True, probes=(SSH_OK, PORTAL_FAIL)), CFG).causes
    assert (cause.key, cause.kind, cause.severity) == ("portal-01:agent_down", "agent_down", "critical")
    assert "host answers (TCP 203.0.113.5:22 open)" in cause.summary


def test_silent_agent_without_probes_is_agent_down_saying_why() -> None:
    [cause] = evaluate(view(silent=True, probes=()), CFG).causes
    assert cause.kind == "agent_down" and "no probe configured" in cause.summary
    severity = DetectionConfig(agent_down_severity="warning")
    assert evaluate(view(silent=True, probes=()), severity).causes[0].severity == "warning"


def test_probes_still_running_change_nothing() -> None:
    result = evaluate(view(silent=True, probes=None), CFG)
    assert result.causes == () and result.hold_host and result.hold_checks


def test_hard_critical_check_of_a_live_agent_is_check_down() -> None:
    [cause] = evaluate(view(checks=(Check("portal", 2), Check("disk", 0))), CFG).causes
    assert (cause.key, cause.kind, cause.severity) == ("portal-01:check:portal", "check", "critical")
    assert cause.summary == "portal down: HTTP 502 from http://127.0.0.1/"


def test_soft_and_unknown_states_hold_instead_of_paging_or_resolving() -> None:
    result = evaluate(view(checks=(Check("portal", 2, hard=False), Check("db", 3))), CFG)
    assert result.causes == ()
    assert result.held_keys == {"portal-01:check:portal", "portal-01:check:db"}


def test_hard_warning_opens_a_warning_incident_unless_disabled() -> None:
    [cause] = evaluate(view(checks=(Check("disk", 1, summary="91% used"),)), CFG).causes
    assert (cause.severity, cause.summary) == ("warning", "disk warning: 91% used")
    assert evaluate(view(checks=(Check("disk", 1),)), DetectionConfig(warning_incidents=False)).causes == ()


def test_flapping_check_is_one_warning_incident() -> None:
    [cause] = evaluate(view(checks=(Check("portal", 2, flapping=True),)), CFG).causes
    assert (cause.kind, cause.severity) == ("flapping", "warning")
    assert cause.summary.startswith("portal is flapping")


def test_host_state_words() -> None:
    assert host_state(checks=[], reported=False, silent=False) == "unknown"
    assert host_state(checks=[Check("a", 0)], reported=True, silent=False) == "ok"
    assert host_state(checks=[Check("a", 1)], reported=True, silent=False) == "warning"
    assert host_state(checks=[Check("a", 2)], reported=True, silent=False) == "critical"
    assert host_state(checks=[], reported=True, silent=True) == "agent_down"
    assert host_state(checks=[], reported=True, silent=True, open_kinds=["unreachable"]) == "unreachable"
    assert host_state(checks=[], reported=True, silent=True, probes=(SSH_FAIL,)) == "unreachable"
    assert host_state(checks=[Check("a", 2)], reported=True, silent=False, muted=True) == "maintenance"


def test_silence_is_three_push_intervals_with_overrides() -> None:
    assert silence_after(CFG, 15.0) == 45.0
    assert silence_after(CFG, 1.0) == 10.0  # min_silence
    assert silence_after(CFG, None) == 45.0  # unknown interval: the agent default (15 s)
    per_host = DetectionConfig(silence_after=120.0, hosts={"portal-01": HostDetection(silence_after=30.0)})
    assert silence_after(per_host, 15.0, "portal-01") == 30.0
    assert silence_after(per_host, 15.0, "other") == 120.0
    assert not is_silent(State(1000.0), 1044.0, CFG)
    assert is_silent(State(1000.0), 1045.0, CFG)


def test_a_host_that_never_reported_is_unknown_not_down_unless_configured() -> None:
    assert not is_silent(State(None), 1e9, CFG)
    assert not is_silent(None, 1e9, CFG)
    assert is_silent(State(None), 1e9, DetectionConfig(never_reported="silent"))


def parse_detection(source: str, raw: object) -> DetectionConfig:
    return parse({"detection": raw}, source).detection


def test_detection_config_parses_and_names_bad_keys() -> None:
    cfg = parse_detection(
        "c.yaml",
        {
            "evaluate_interval": "1s",
            "silence_after": "2m",
            "agent_down_severity": "warning",
            "hosts": {"portal-01": {"silence_after": "90s", "probes": False}},
        },
    )
    assert (
        cfg.evaluate_interval == 1.0 and cfg.silence_after == 120.0 and cfg.agent_down_severity == "warning"
    )
    assert cfg.for_host("portal-01") == HostDetection(silence_after=90.0, probes=False)
    assert parse_detection("c.yaml", None) == DetectionConfig()
    with pytest.raises(ConfigError, match=r"c.yaml: detection.probe_timeout: expected a duration"):
        parse_detection("c.yaml", {"probe_timeout": "soon"})
    with pytest.raises(ConfigError, match=r"detection.hosts.portal-01.silence: expected no such key"):
        parse_detection("c.yaml", {"hosts": {"portal-01": {"silence": "1m"}}})
    with pytest.raises(ConfigError, match=r"detection.agent_down_severity: expected one of critical"):
        parse_detection("c.yaml", {"agent_down_severity": "page"})
