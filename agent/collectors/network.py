"""Network interface counters: ``boxkeeper_network_{receive,transmit}_bytes_total{device}``.

Loopback and the virtual interfaces that come and go with containers (veth*, docker*, br-*,
cali*, flannel*, cni*, virbr*) are skipped by default so the ``device`` label stays bounded.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from agent.report import Sample

DEFAULT_DEVICE_EXCLUDE = r"^(lo|veth.*|docker.*|br-.*|cali.*|flannel.*|cni.*|virbr.*|ifb\d+)$"


class NetworkSource(Protocol):
    def net_io_counters(self, pernic: bool = False, nowrap: bool = True) -> Any: ...


class NetworkCollector:
    name = "network"

    def __init__(self, ps: NetworkSource, *, device_exclude: str = DEFAULT_DEVICE_EXCLUDE) -> None:
        self._ps = ps
        self._exclude = re.compile(device_exclude)

    def collect(self) -> tuple[Sample, ...]:
        # nowrap=False: as in the diskio collector
        counters = self._ps.net_io_counters(pernic=True, nowrap=False) or {}
        samples: list[Sample] = []
        for device in sorted(counters):
            if self._exclude.match(device):
                continue
            io = counters[device]
            labels = {"device": device}
            samples += [
                Sample("boxkeeper_network_receive_bytes_total", float(io.bytes_recv), "counter", labels),
                Sample("boxkeeper_network_transmit_bytes_total", float(io.bytes_sent), "counter", labels),
            ]
        return tuple(samples)
