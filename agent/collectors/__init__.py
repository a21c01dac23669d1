"""Host collectors: each reads one part of the box through an injected psutil-like object.

The contract is one small Protocol, :class:`Collector`: a ``name`` and ``collect()`` that returns
:class:`~agent.report.Sample` values with Prometheus names in base units (``_seconds``, ``_bytes``,
``_total`` for counters) and bounded label values (devices, mount points, CPU modes; never PIDs).
A collector never raises for a missing counter: it returns fewer samples. :class:`HostSampler`
runs them all, isolates failures (logged once per collector, counted in
``boxkeeper_collector_errors_total{collector}``) and caches the result: a scrape reuses a
collection at most ``max_age`` (1 s) old; a report (:meth:`HostSampler.for_report`) carries what
the latest scrape returned if that was less than one push interval ago, so a box scraped as often
as it pushes collects once per scrape and not once more per report.

Modules (one collector each): ``cpu``, ``memory`` (memory and swap), ``load``, ``filesystems``,
``diskio``, ``network``, ``facts`` (boot time and the :class:`~agent.report.Facts` of the box);
``mounts`` is the mount table the filesystem collector reads. :mod:`agent.collectors.registry`
lists them and builds them from what they read the box through.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Optional, Protocol

from agent.report import Sample

log = logging.getLogger(__name__)


class Collector(Protocol):
    @property
    def name(self) -> str: ...

    def collect(self) -> tuple[Sample, ...]: ...


class HostSampler:
    """Runs collectors, one failure at a time isolated; thread-safe; caches for ``max_age``."""

    def __init__(
        self,
        collectors: Sequence[Collector],
        *,
        max_age: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._collectors = tuple(collectors)
        self._max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[Sample, ...] = ()
        self._cached_at: Optional[float] = None
        self._scraped: tuple[Sample, ...] = ()  # what the latest scrape returned, and when
        self._scraped_at: Optional[float] = None
        self._errors: dict[str, int] = {c.name: 0 for c in self._collectors}
        self._failing: set[str] = set()

    def samples(self) -> tuple[Sample, ...]:
        """Fresh values, or the latest collection if it is younger than ``max_age`` (for a scrape)."""
        with self._lock:
            now = self._clock()
            self._scraped, self._scraped_at = self._latest(now), now
            return self._scraped

    def for_report(self, max_age: float) -> tuple[Sample, ...]:
        """The values the latest scrape returned if that was less than ``max_age`` ago (a report
        passes its push interval), else :meth:`samples`'s: a box that Prometheus scrapes as
        often as it pushes collects once per scrape instead of once more for each report. A
        report never reuses an earlier report's collection."""
        with self._lock:
            now = self._clock()
            if self._scraped_at is not None and now - self._scraped_at < max_age:
                return self._scraped
            return self._latest(now)

    def _latest(self, now: float) -> tuple[Sample, ...]:
        """The cached collection if younger than ``max_age``, else a fresh one (lock held)."""
        if self._cached_at is None or now - self._cached_at >= self._max_age:
            self._collect(now)
        return self._cached

    def _collect(self, now: float) -> None:
        collected: list[Sample] = []
        for collector in self._collectors:
            collected.extend(self._run(collector))
        collected.extend(
            Sample("boxkeeper_collector_errors_total", float(count), "counter", {"collector": name})
            for name, count in sorted(self._errors.items())
        )
        self._cached = tuple(collected)
        self._cached_at = now

    def _run(self, collector: Collector) -> tuple[Sample, ...]:
        try:
            samples = collector.collect()
        except Exception as exc:  # a broken collector must not take /metrics down
            self._errors[collector.name] = self._errors.get(collector.name, 0) + 1
            if collector.name not in self._failing:
                self._failing.add(collector.name)
                log.warning("collector %s failed: %s: %s", collector.name, type(exc).__name__, exc)
            return ()
        if collector.name in self._failing:
            self._failing.discard(collector.name)
            log.info("collector %s works again", collector.name)
        return samples
