"""The detection sweep figures an operator reads: the histogram on /metrics and the minute's log line."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import generate_latest

from controller.detection.sweeps import SweepTimes


def test_a_minute_of_sweeps_is_one_log_line_with_median_and_longest(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    sweeps = SweepTimes(clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="boxkeeper.detection"):
        for seconds in (0.2, 0.4, 1.5):
            now[0] += 20.0
            sweeps.record(seconds, 10_000)
        now[0] += 2.0
        sweeps.record(0.3, 10_000)  # the next minute's first
    lines = [r.getMessage() for r in caplog.records if r.name == "boxkeeper.detection"]
    assert lines == ["detection sweeps in the last 60 s: 3 over 10000 hosts, median 0.400 s, max 1.500 s"]
    exposed = generate_latest(sweeps.registry).decode()
    assert "boxkeeper_detection_sweep_seconds_count 4.0" in exposed
    assert 'boxkeeper_detection_sweep_seconds_bucket{le="1.0"} 3.0' in exposed
