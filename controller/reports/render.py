"""Renderers of the report dict (:func:`controller.reports.build.build_report`): json, md, csv, html.

They format; they compute nothing but layout (the chart's pixel positions). HTML is one
self-contained file (inline CSS and SVG, no URL to fetch), rendered by jinja2 with autoescape on,
so host names, summaries and notes are always escaped.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

FORMATS = ("html", "md", "csv", "json")
MEDIA_TYPES = {"html": "text/html; charset=utf-8", "md": "text/markdown; charset=utf-8",
               "csv": "text/csv; charset=utf-8", "json": "application/json"}
CHART_WIDTH = 720.0
CHART_BAR = 22.0
MIN_MARK = 1.5  # px: a one-minute outage is still visible


def render(report: dict[str, Any], fmt: str) -> str:
    """The report in ``fmt`` (one of :data:`FORMATS`)."""
    renderers: dict[str, Callable[[dict[str, Any]], str]] = {
        "json": render_json, "md": render_md, "csv": render_csv, "html": render_html}
    if fmt not in renderers:
        raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    return renderers[fmt](report)


def render_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------------- formatting


def duration(seconds: float | None) -> str:
    """``3 h 05 min``, ``12 min``, ``45 s``, ``2 d 4 h``; ``-`` for none."""
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    minutes = s // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f} %"


def when(text: str | None) -> str:
    """``2026-11-03T14:05:00+03:00`` → ``2026-11-03 14:05`` (the report states its zone once)."""
    if not text:
        return "-"
    return datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M")


# ---------------------------------------------------------------------------------- chart


@dataclass(frozen=True)
class Mark:
    x: float
    width: float
    kind: str  # up, unmonitored, outage, planned-outage, maintenance
    title: str


@dataclass(frozen=True)
class Chart:
    width: float
    bar: float
    marks: tuple[Mark, ...]
    ticks: tuple[tuple[float, str], ...]  # x, day label (every day a line; some labelled)


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def chart(report: dict[str, Any], item: dict[str, Any]) -> Chart:
    """Pixel layout of one host's (or portal's) month: monitored time, maintenance, outages."""
    start, end = _stamp(report["period"]["start"]), _stamp(report["period"]["end"])
    span = max(end - start, 1.0)

    def x(stamp: float) -> float:
        return round((min(max(stamp, start), end) - start) / span * CHART_WIDTH, 2)

    def mark(a: str, b: str, kind: str, title: str) -> Mark:
        left, right = x(_stamp(a)), x(_stamp(b))
        return Mark(left, round(max(right - left, MIN_MARK), 2), kind, title)

    marks = [Mark(0.0, CHART_WIDTH, "unmonitored", "not monitored (before the host was added, or not yet)")]
    if item["period_seconds"] > 0:
        marks.append(mark(item["period_start"], item["period_end"], "up", "up"))
    for p in item["maintenance"]:
        marks.append(mark(p["start"], p["end"], "maintenance",
                          f"{p['label']}: {when(p['start'])} – {when(p['end'])}"))
    for o in item["outages"]:
        kind = "planned-outage" if o["planned_seconds"] >= o["seconds"] else "outage"
        marks.append(mark(o["start"], o["end"], kind,
                          f"down {duration(o['seconds'])} from {when(o['start'])} ({', '.join(o['kinds'])}); "
                          f"planned {duration(o['planned_seconds'])}"))
    zone = ZoneInfo(report["timezone"])
    day = datetime.fromtimestamp(start, zone).replace(hour=0, minute=0, second=0)
    ticks: list[tuple[float, str]] = []
    while day.timestamp() < end:
        ticks.append((x(day.timestamp()), str(day.day) if day.day in (1, 8, 15, 22, 29) else ""))
        day = (day + timedelta(days=1, hours=3)).replace(hour=0, tzinfo=zone)
    return Chart(CHART_WIDTH, CHART_BAR, tuple(marks), tuple(ticks))


# ---------------------------------------------------------------------------------- html


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("controller.reports", "templates"),
                      autoescape=select_autoescape(["html", "j2"], default=True), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(duration=duration, percent=percent, when=when)
    return env


def render_html(report: dict[str, Any]) -> str:
    charts = {a["host"]: chart(report, a) for a in report["availability"]["hosts"]}
    return _environment().get_template("report.html.j2").render(r=report, charts=charts)


# ---------------------------------------------------------------------------------- markdown


def _cell(value: object) -> str:
    text = "-" if value is None or value == "" else str(value)
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
            .replace("\r", " ").replace("\n", " "))


def _table(head: list[str], rows: list[list[object]]) -> list[str]:
    if not rows:
        return ["(none)", ""]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def render_md(r: dict[str, Any]) -> str:
    p = r["period"]
    out = [f"# Monthly report: {_cell(r['client'])}, {r['month']}", "",
           f"Time zone: **{r['timezone']}**. Period {when(p['start'])} – {when(p['end'])} "
           f"({p['hours']:g} h); figures as of {when(p['as_of'])}"
           + ("" if p["complete"] else " (the month is not over yet)") + ".", ""]
    if not r["hosts"]:
        out += ["This client has no hosts: nothing was monitored or updated.", ""]
    a = r["availability"]
    out += ["## Availability", "", f"Rule: {a['rule']}.", ""]
    out += _table(["host", "availability", "down", "planned down", "unplanned down", "maintenance"],
                  [[h["host"], percent(h["availability_percent"]), duration(h["down_seconds"]),
                    duration(h["planned_down_seconds"]), duration(h["unplanned_down_seconds"]),
                    duration(h["planned_seconds"])] for h in a["hosts"]])
    out += ["### Portals", ""]
    out += _table(["host", "portal", "availability", "down", "planned down", "unplanned down"],
                  [[h["host"], h["portal"], percent(h["availability_percent"]), duration(h["down_seconds"]),
                    duration(h["planned_down_seconds"]), duration(h["unplanned_down_seconds"])]
                   for h in a["portals"]])
    out += ["### Outages", ""]
    out += _table(["host", "from", "to", "down", "planned", "kinds", "incidents"],
                  [[h["host"] + (f" / {h['portal']}" if "portal" in h else ""), when(o["start"]),
                    when(o["end"]), duration(o["seconds"]), duration(o["planned_seconds"]),
                    ", ".join(o["kinds"]),
                    ", ".join(f"#{i}" for i in o["incidents"])]
                   for h in [*a["hosts"], *a["portals"]] for o in h["outages"]])
    out += ["### Maintenance", ""]
    out += _table(["host", "from", "to", "length", "what"],
                  [[h["host"], when(m["start"]), when(m["end"]), duration(m["seconds"]), m["label"]]
                   for h in a["hosts"] for m in h["maintenance"]])
    i = r["incidents"]
    out += ["## Incidents", "",
            f"Opened: {i['opened']} ({', '.join(f'{k}: {v}' for k, v in i['by_kind'].items()) or 'none'}); "
            f"still open: {i['still_open']}.", "",
            f"Time to acknowledge: median {duration(i['acknowledge']['median_seconds'])}, worst "
            f"{duration(i['acknowledge']['worst_seconds'])} ({i['acknowledge']['count']} acknowledged).", "",
            f"Time to resolve: median {duration(i['resolve']['median_seconds'])}, worst "
            f"{duration(i['resolve']['worst_seconds'])} ({i['resolve']['count']} resolved).", ""]
    out += _table(["id", "host", "kind", "severity", "opened", "acknowledged after", "resolved after",
                   "summary"],
                  [[f"#{x['id']}", x["host"], x["kind"], x["severity"], when(x["opened_at"]),
                    duration(x["acknowledge_seconds"]), duration(x["resolve_seconds"]), x["summary"]]
                   for x in i["list"]])
    out += ["### Longest incidents", ""]
    for x in i["longest"]:
        out += [f"**#{x['id']} {_cell(x['host'])}, {x['kind']}: {duration(x['duration_seconds'])}** — "
                f"{_cell(x['summary'])} ({x['notifications']} notifications)", ""]
        out += [f"- {when(e['at'])} {e['kind']}" + (f" ({_cell(e['actor'])})" if e["actor"] else "")
                + (f": {_cell(e['message'])}" if e["message"] else "") for e in x["timeline"]]
        out += ([f"- … {x['timeline_more']} more events"] if x["timeline_more"] else []) + [""]
    u = r["updates"]
    out += ["## Updates", "", f"Runs: {u['total']}; rolled back: {u['rolled_back']}.", ""]
    out += _table(["run", "host", "playbook", "started", "duration", "versions", "outcome", "reason"],
                  [[f"#{x['id']}", x["host"], x["playbook"], when(x["started_at"]),
                    duration(x["duration_seconds"]), _versions_text(x["versions"]), x["outcome"], x["reason"]]
                   for x in u["runs"]])
    held = u["releases_held"]
    out += ["### Releases held", ""]
    if not held["available"]:
        out += [held["note"], ""]
    else:
        out += _table(["playbook", "release", "held", "by", "reason", "released"],
                      [[h["playbook"], h["release"], f"{when(h['held_at'])} {h['host'] or ''}".strip(),
                        h["held_by"], h["reason"],
                        f"{when(h['released_at'])} by {h['released_by']}" if h["released_at"]
                        else "still held"]
                       for h in held["items"]])
    b = r["backups"]
    out += ["## Backups and restore drills", ""]
    out += _table(["host", "last drill success", "drills", "drills failed", "last update backup",
                   "backup check now"],
                  [[h["host"], when(h["last_drill_success"]), h["drills"], h["drills_failed"],
                    when(h["last_update_backup"]),
                    "; ".join(f"{c['name']} {c['status']}: {c['summary']}" for c in h["backup_checks_now"])]
                   for h in b["hosts"]])
    out += ["### Failures", ""]
    out += _table(["when", "host", "what", "detail"],
                  [[when(f["at"]), f["host"], f["what"], f["detail"]] for f in b["failures"]])
    w = r["worklog"]
    out += ["## Work log", "", f"Total: **{w['total_hours']}** ({w['total_minutes']} min); "
            f"free-form entries: {w['free_form_minutes']} min.", ""]
    out += _table(["operator", "minutes", "hours"],
                  [[x["operator"], x["minutes"], x["hours"]] for x in w["by_operator"]])
    out += _table(["incident", "minutes"], [[f"#{x['incident_id']}", x["minutes"]] for x in w["by_incident"]])
    out += _table(["run", "minutes"], [[f"#{x['run_id']}", x["minutes"]] for x in w["by_run"]])
    out += _table(["when", "operator", "minutes", "about", "text"],
                  [[when(e["at"]), e["operator"], e["minutes"], _about(e), e["text"]] for e in w["entries"]])
    return "\n".join(out).rstrip() + "\n"


def _versions_text(versions: list[dict[str, Any]]) -> str:
    return "; ".join(f"{v['name']} {v['before'] or '?'} → {v['after'] or '?'}" for v in versions)


def _about(entry: dict[str, Any]) -> str:
    if entry["incident_id"] is not None:
        return f"incident #{entry['incident_id']}"
    if entry["run_id"] is not None:
        return f"run #{entry['run_id']}"
    return entry["host"] or "-"


# ---------------------------------------------------------------------------------- csv


def _label(item: dict[str, Any], index: int) -> str:
    for key in ("portal", "id", "incident_id", "run_id", "operator", "host", "name"):
        if key in item and item[key] is not None:
            return f"{item['host']}/{item[key]}" if key == "portal" else str(item[key])
    return str(index)


def _flat(value: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """(subject path, field, scalar) for every scalar under ``value``."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if isinstance(inner, (dict, list)):
                yield from _flat(inner, f"{path}.{key}" if path else key)
            else:
                yield path, key, inner
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            here = f"{path}[{_label(inner, index) if isinstance(inner, dict) else index}]"
            if isinstance(inner, (dict, list)):
                yield from _flat(inner, here)
            else:
                yield path, str(index), inner


def render_csv(report: dict[str, Any]) -> str:
    """Long form, one figure a row: ``section,subject,field,value`` (every figure of the json)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["section", "subject", "field", "value"])
    for key, value in report.items():
        if isinstance(value, (dict, list)):
            for subject, field, scalar in _flat(value, ""):
                writer.writerow([key, subject, field, "" if scalar is None else scalar])
        else:
            writer.writerow(["report", "", key, value])
    return buffer.getvalue()
