"""The rules behind the start-up grace and replays (pure): their defaults and what they hold."""

from __future__ import annotations

from controller.detection.classify import HostView, evaluate
from controller.detection.config import DetectionConfig
from controller.detection.liveness import is_replaying, startup_grace
from tests.controller.detection.test_classify import Check


def test_default_grace_is_the_liveness_timeout_plus_the_agents_longest_retry_wait() -> None:
    cfg = DetectionConfig()
    assert startup_grace(cfg, 15.0) == 45.0 + 60.0
    assert startup_grace(DetectionConfig(silence_after=90.0), 15.0) == 150.0
    assert startup_grace(DetectionConfig(startup_grace=20.0), 15.0) == 20.0


def test_a_report_is_replayed_when_it_was_sent_longer_ago_than_the_liveness_timeout() -> None:
    cfg = DetectionConfig()
    assert not is_replaying(1000.0, 990.0, cfg, 15.0)  # 10 s in flight: live
    assert is_replaying(1000.0, 900.0, cfg, 15.0)  # sent 100 s before it arrived: from the spool
    assert not is_replaying(1000.0, 900.0, DetectionConfig(hold_replays=False), 15.0)


def test_a_silent_host_in_its_grace_opens_nothing_and_keeps_what_is_open() -> None:
    cfg = DetectionConfig()
    view = HostView(host="h", client="c", reported=True, silent=True, silent_for=300.0, probes=(),
                    starting=True)
    result = evaluate(view, cfg)
    assert result.causes == () and result.hold_host and result.hold_checks
    after = evaluate(HostView(host="h", client="c", reported=True, silent=True, silent_for=300.0, probes=()),
                     cfg)
    assert [c.kind for c in after.causes] == ["agent_down"]


def test_a_replaying_host_holds_its_check_incidents() -> None:
    down = Check("portal", 2)
    view = HostView(host="h", client="c", reported=True, silent=False, silent_for=1.0, probes=(),
                    checks=(down,), replaying=True)
    result = evaluate(view, DetectionConfig())
    assert result.causes == () and result.hold_checks and not result.hold_host
    live = evaluate(HostView(host="h", client="c", reported=True, silent=False, silent_for=1.0, probes=(),
                             checks=(down,)), DetectionConfig())
    assert [c.kind for c in live.causes] == ["check"]
