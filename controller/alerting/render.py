"""Human text for a notification payload (plain text and Telegram HTML); pure."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any

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


def subject(payload: dict[str, Any]) -> str:
    """One line: ``[FIRING] critical acme/portal-01: portal down: HTTP 502 …``."""
    incident = payload["incident"]
    head = HEADLINES.get(payload["event"], payload["event"].upper())
    line = f"[{head}] {incident['severity']} {where(incident)}: {incident['summary']}"
    return line if len(line) <= 200 else line[:199] + "…"


def body(payload: dict[str, Any]) -> str:
    """The plain-text message (e-mail body, webhook ``text``)."""
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
    incident = payload["incident"]
    head = HEADLINES.get(payload["event"], payload["event"].upper())
    esc = html.escape
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
