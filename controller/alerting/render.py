"""Human text for a notification payload (plain text and Telegram HTML); pure.

A grouped payload (``group``: the incidents of one client that fired or resolved together, see
:mod:`controller.alerting.dispatcher`) reads as one message with one line per host.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any

from controller.configkit import SEVERITIES, severity_rank

HEADLINES = {"firing": "FIRING", "repeat": "STILL FIRING", "resolved": "RESOLVED"}


def _when(stamp: object) -> str:
    if not isinstance(stamp, int | float):
        return "?"
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def lasted(incident: dict[str, Any]) -> str:
    start, end = incident.get("opened_at"), incident.get("resolved_at")
    if not isinstance(start, int | float) or not isinstance(end, int | float):
        return ""
    seconds = int(max(0, end - start))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes}m {secs}s" if hours else f"{minutes}m {secs}s"


def opened(incident: dict[str, Any]) -> str:
    return _when(incident.get("opened_at"))


def where(incident: dict[str, Any]) -> str:
    host = incident.get("host") or "-"
    client = incident.get("client")
    return f"{client}/{host}" if client else str(host)


#: at most this many hosts are listed in a grouped message (the rest are counted)
GROUP_LIST_LIMIT = 100


def group(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The incidents of a grouped payload (empty for a single one)."""
    found = payload.get("group")
    return list(found) if isinstance(found, list) and len(found) > 1 else []


def _rank(severity: str) -> int:
    return severity_rank(severity) if severity in SEVERITIES else -1


def _group_headline(payload: dict[str, Any], members: list[dict[str, Any]]) -> str:
    head = HEADLINES.get(payload["event"], payload["event"].upper())
    worst = max((str(m.get("severity")) for m in members), key=_rank)
    client = members[0].get("client") or "-"
    causes = sorted({str(m.get("cause")).replace("_", " ") for m in members})
    hosts = ", ".join(str(m.get("host") or "-") for m in members[:10])
    more = f" and {len(members) - 10} more" if len(members) > 10 else ""
    return f"[{head}] {worst} {client}: {len(members)} hosts {' / '.join(causes)}: {hosts}{more}"


def subject(payload: dict[str, Any]) -> str:
    """One line: ``[FIRING] critical acme/portal-01: portal down: HTTP 502 …`` (grouped:
    ``[FIRING] critical acme: 12 hosts unreachable: h1, h2, …``)."""
    members = group(payload)
    if members:
        line = _group_headline(payload, members)
        return line if len(line) <= 200 else line[:199] + "…"
    incident = payload["incident"]
    head = HEADLINES.get(payload["event"], payload["event"].upper())
    line = f"[{head}] {incident['severity']} {where(incident)}: {incident['summary']}"
    return line if len(line) <= 200 else line[:199] + "…"


def group_lines(payload: dict[str, Any]) -> list[str]:
    """One line per host of a grouped payload: ``#12 acme/h1: agent down on h1: … (opened …)``."""
    members = group(payload)
    lines = []
    for m in members[:GROUP_LIST_LIMIT]:
        line = f"#{m.get('id')} {where(m)}: {m.get('summary')}"
        if payload["event"] == "resolved":
            line += f" (lasted {lasted(m)})"
        else:
            line += f" (opened {_when(m.get('opened_at'))})"
        lines.append(line)
    if len(members) > GROUP_LIST_LIMIT:
        lines.append(f"… and {len(members) - GROUP_LIST_LIMIT} more (boxkeeper incidents --open)")
    return lines


def body(payload: dict[str, Any]) -> str:
    """The plain-text message (e-mail body, webhook ``text``)."""
    if group(payload):
        return "\n".join([subject(payload), "", *group_lines(payload), "",
                          "Acknowledge: boxkeeper incidents ack <id>"])
    incident = payload["incident"]
    lines = [
        subject(payload),
        "",
        f"Incident #{incident['id']} ({incident['key']})",
        f"Severity: {incident['severity']}   Cause: {incident['cause']}",
        f"Client: {incident.get('client') or '-'}   Host: {incident.get('host') or '-'}",
        f"Opened: {_when(incident.get('opened_at'))}",
    ]
    if payload["event"] == "resolved":
        lines.append(f"Resolved: {_when(incident.get('resolved_at'))} (lasted {lasted(incident)})")
    lines.append("")
    lines.append(f"Acknowledge: boxkeeper incidents ack {incident['id']}")
    return "\n".join(lines)


def telegram_html(payload: dict[str, Any]) -> str:
    """Telegram ``parse_mode=HTML`` text; every interpolated value escaped."""
    esc = html.escape
    if group(payload):
        text = "\n".join([f"<b>{esc(subject(payload))}</b>", *(esc(line) for line in group_lines(payload))])
        return text if len(text) <= 4000 else text[:3990] + "…"
    incident = payload["incident"]
    head = HEADLINES.get(payload["event"], payload["event"].upper())
    parts = [
        f"<b>[{esc(head)}] {esc(str(incident['severity']))}</b> {esc(where(incident))}",
        esc(str(incident["summary"])),
        f"#{incident['id']} <code>{esc(str(incident['key']))}</code>"
        f" · opened {esc(_when(incident.get('opened_at')))}",
    ]
    if payload["event"] == "resolved":
        parts.append(f"resolved after {esc(lasted(incident))}")
    text = "\n".join(parts)
    return text if len(text) <= 4000 else text[:3990] + "…"
