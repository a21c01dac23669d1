"""How long the detection sweeps take: ``boxkeeper_detection_sweep_seconds`` (a histogram of full
passes over every host) and a log line a minute summing them up.

A full sweep reads every host's liveness and not-OK checks, probes the silent ones and reconciles
incidents; at 10,000 hosts it must stay well under ``evaluate_interval`` (2 s). The monitor runs in
the ``serve`` process that leads (with ``--workers N``, in the parent, whose registry no worker
serves: there the log line is the figure). ``bench/fleet_bench.py`` reads the log line.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Histogram

log = logging.getLogger("boxkeeper.detection")

#: how often the summary line is logged (seconds)
LOG_EVERY = 60.0
BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)


class SweepTimes:
    """``record(seconds, hosts)`` after each full sweep."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.histogram = Histogram(
            "boxkeeper_detection_sweep_seconds",
            "Time of a full detection sweep over every host (read, probe, reconcile).",
            buckets=BUCKETS, registry=self.registry,
        )
        self._clock = clock
        self._since = clock()
        self._window: list[float] = []
        self._hosts = 0

    def record(self, seconds: float, hosts: int) -> None:
        self.histogram.observe(seconds)
        self._window.append(seconds)
        self._hosts = hosts
        now = self._clock()
        if now - self._since >= LOG_EVERY:
            window = self._window
            log.info("detection sweeps in the last %.0f s: %d over %d hosts, median %.3f s, max %.3f s",
                     now - self._since, len(window), self._hosts, statistics.median(window), max(window))
            self._since, self._window = now, []
