"""Nagios plugin output: summary line, long output and performance data.

Follows the Monitoring Plugins Development Guidelines:

* the first line of output is the summary; text after ``|`` on it is performance data;
* further lines are long output, except that once a later line contains ``|``, the text after it
  and every following line are more performance data (Nagios 3 multi-line format);
* performance data is a space-separated list of ``'label'=value[UOM];[warn];[crit];[min];[max]``;
  a label with spaces is single-quoted, ``''`` inside quotes is a literal quote; ``value`` may be
  ``U`` (undetermined: the item is skipped); warn/crit may be ranges (``10``, ``10:``, ``~:10``,
  ``10:20``, ``@10:20``).

Parsing is lenient: a malformed item is skipped, never fatal, because a plugin's summary and exit
code matter more than its metrics.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Optional

from agent.report import PerfValue

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_VALUE_RE = re.compile(rf"^({_NUMBER})([A-Za-z%]*)$")
_NUMBER_RE = re.compile(rf"^{_NUMBER}$")

@dataclass(frozen=True)
class PluginOutput:
    summary: str
    details: str
    perfdata: tuple[PerfValue, ...]


def parse_output(text: str) -> PluginOutput:
    """Split a plugin's stdout into summary, long output and parsed performance data."""
    lines = text.splitlines()
    first = lines[0] if lines else ""
    summary, _, perf = first.partition("|")
    perf_parts = [perf]
    long_lines: list[str] = []
    in_perf = False
    for line in lines[1:]:
        if in_perf:
            perf_parts.append(line)
            continue
        text_part, sep, rest = line.partition("|")
        if text_part.strip() or not sep:
            long_lines.append(text_part.rstrip())
        if sep:
            perf_parts.append(rest)
            in_perf = True
    return PluginOutput(
        summary=summary.strip(),
        details="\n".join(long_lines).strip("\n"),
        perfdata=parse_perfdata(" ".join(perf_parts)),
    )


def parse_perfdata(text: str) -> tuple[PerfValue, ...]:
    """Parse a perfdata string; malformed or undetermined (``U``) items are skipped."""
    items: list[PerfValue] = []
    for label, data in _tokens(text):
        item = _item(label, data)
        if item is not None:
            items.append(item)
    return tuple(items)


def _tokens(text: str) -> list[tuple[str, str]]:
    """``'a b'=1;2 c=3`` → ``[("a b", "1;2"), ("c", "3")]``."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        if text[i] == "'":
            start = i
            label_chars: list[str] = []
            i += 1
            closed = False
            while i < n:
                if text[i] == "'":
                    if i + 1 < n and text[i + 1] == "'":
                        label_chars.append("'")
                        i += 2
                        continue
                    i += 1
                    closed = True
                    break
                label_chars.append(text[i])
                i += 1
            label = "".join(label_chars)
            if not closed:  # an unterminated quote: skip just that word
                i = start
            if not closed or i >= n or text[i] != "=":
                while i < n and not text[i].isspace():
                    i += 1
                continue
        else:
            start = i
            while i < n and text[i] != "=" and not text[i].isspace():
                i += 1
            label = text[start:i]
            if i >= n or text[i] != "=":
                continue
        i += 1  # the '='
        start = i
        while i < n and not text[i].isspace():
            i += 1
        if label:
            out.append((label, text[start:i]))
    return out


def _item(label: str, data: str) -> Optional[PerfValue]:
    fields = data.split(";")
    m = _VALUE_RE.match(fields[0].replace(",", "."))
    if not m:
        return None  # "U" or garbage
    try:
        value = float(m.group(1))
    except ValueError:
        return None
    if not math.isfinite(value):  # "1e999": JSON has no infinity, the controller would refuse the report
        return None
    rest = [*fields[1:5], "", "", "", ""][:4]
    return PerfValue(
        label=label,
        value=value,
        unit=m.group(2),
        warn=_threshold(rest[0]),
        crit=_threshold(rest[1]),
        min=_number(rest[2]),
        max=_number(rest[3]),
    )


def _number(text: str) -> Optional[float]:
    text = text.strip().replace(",", ".")
    if not _NUMBER_RE.match(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def _threshold(text: str) -> Optional[float]:
    """A threshold range reduced to one number: the end of ``start:end`` (or the start of ``start:``).

    ``10`` → 10, ``~:10`` → 10, ``10:`` → 10, ``@10:20`` → 20. The report keeps one number per
    threshold; the full range semantics stay with the plugin, which already decided the status.
    """
    text = text.strip().lstrip("@")
    if not text:
        return None
    if ":" not in text:
        return _number(text)
    start, _, end = text.partition(":")
    if end.strip():
        return _number(end)
    return None if start.strip() in ("", "~") else _number(start)
