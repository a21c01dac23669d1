"""Time intervals ``(start, end)`` in unix seconds, half-open: union, intersection, clipping, length."""

from __future__ import annotations

from collections.abc import Iterable

Interval = tuple[float, float]


def union(items: Iterable[Interval]) -> list[Interval]:
    """Sorted, non-overlapping intervals covering the same time (empty ones dropped; touching ones joined)."""
    merged: list[list[float]] = []
    for start, end in sorted(i for i in items if i[1] > i[0]):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def clip(items: Iterable[Interval], lo: float, hi: float) -> list[Interval]:
    """The parts of ``items`` inside ``[lo, hi)``, as a union."""
    return union((max(a, lo), min(b, hi)) for a, b in items)


def intersect(left: Iterable[Interval], right: Iterable[Interval]) -> list[Interval]:
    """The time both cover."""
    a, b = union(left), union(right)
    found: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            found.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return found


def total(items: Iterable[Interval]) -> float:
    """Seconds covered (overlaps counted once)."""
    return sum(b - a for a, b in union(items))
