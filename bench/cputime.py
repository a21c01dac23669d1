"""CPU seconds of process trees and of the whole machine, for the benchmarks that report CPU per
unit of work (bench/ingest_bench.py, bench/fleet_bench.py)."""

from __future__ import annotations

from collections.abc import Iterable


def tree_cpu(pids: Iterable[int]) -> float:
    """CPU seconds (user + system) of these processes, their reaped children and live descendants."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
            for child in proc.children(recursive=True):
                try:
                    c = child.cpu_times()
                    total += c.user + c.system
                except psutil.NoSuchProcess:
                    pass
        except psutil.NoSuchProcess:
            pass
    return total


def machine_cpu() -> float:
    """CPU seconds the whole machine spent busy (not idle, iowait or guests)."""
    import psutil

    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0)
                 - getattr(t, "guest_nice", 0.0))
