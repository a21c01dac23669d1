"""The contract every registered host collector keeps, run over agent/collectors/registry.py: on this
machine (real psutil, /proc, statvfs) it returns samples with valid Prometheus names, label names,
finite values and a known kind, under its registered name; and when it fails, HostSampler keeps the
others' samples and counts the failure under its name."""

from __future__ import annotations

import math
import re

import psutil
import pytest

from agent.collectors import HostSampler
from agent.collectors.registry import COLLECTOR_TYPES, CollectorType, HostSources, build_collectors
from agent.report import Sample

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
IDS = [t.name for t in COLLECTOR_TYPES]


def test_registered_names_are_unique() -> None:
    assert len(set(IDS)) == len(IDS)


@pytest.mark.parametrize("kind", COLLECTOR_TYPES, ids=IDS)
def test_each_collector_gives_well_formed_samples_on_this_machine(kind: CollectorType) -> None:
    collector = kind.build(HostSources(psutil))
    assert collector.name == kind.name
    samples = collector.collect()
    assert isinstance(samples, tuple) and samples, f"{kind.name} collected nothing on this machine"
    for sample in samples:
        assert isinstance(sample, Sample)
        assert METRIC_NAME.match(sample.name) and sample.name.startswith("boxkeeper_"), sample
        assert sample.kind in ("gauge", "counter"), sample
        assert sample.kind != "counter" or sample.name.endswith("_total"), sample
        assert isinstance(sample.value, float) and math.isfinite(sample.value), sample
        for label, value in sample.labels.items():
            assert LABEL_NAME.match(label) and not label.startswith("__"), sample
            assert isinstance(value, str), sample


class Failing:
    """A registered collector's stand-in that fails as a broken /proc read would."""

    def __init__(self, name: str) -> None:
        self.name = name

    def collect(self) -> tuple[Sample, ...]:
        raise OSError(5, "Input/output error")


@pytest.mark.parametrize("kind", COLLECTOR_TYPES, ids=IDS)
def test_a_failing_collector_is_isolated_and_counted(kind: CollectorType) -> None:
    collectors = [Failing(c.name) if c.name == kind.name else c
                  for c in build_collectors(HostSources(psutil))]
    sampler = HostSampler(collectors, max_age=0)
    sampler.samples()
    samples = sampler.samples()
    errors = {s.labels["collector"]: s.value for s in samples if s.name == "boxkeeper_collector_errors_total"}
    assert errors == {c.name: (2.0 if c.name == kind.name else 0.0) for c in COLLECTOR_TYPES}
    others = {s.name for c in collectors if c.name != kind.name for s in c.collect()}
    assert others <= {s.name for s in samples}
