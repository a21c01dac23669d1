"""``boxkeeper incidents`` and ``boxkeeper maintenance`` (registered by ``controller.cli``).

::

    boxkeeper incidents [--open] [--json] [--client C] [--host H] [--limit N]
    boxkeeper incidents show ID [--json]                 the incident with its timeline
    boxkeeper incidents ack ID [--expires 2h] [--message M]
    boxkeeper incidents resolve ID [--message M]
    boxkeeper incidents note ID TEXT
    boxkeeper maintenance mute HOST --for 2h [--reason R] mute a host's notifications
    boxkeeper maintenance unmute HOST
    boxkeeper maintenance list [--json]                  active mutes and configured windows

Exit codes: 0 ok, 1 no such incident/host, 2 config or usage error.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

from controller import inventory
from controller.cli_common import add_config_argument, open_db
from controller.configkit import duration
from controller.incidents import queries, service
from controller.incidents.models import Incident
from controller.incidents.mutes import active_mutes, mute_host, unmute_host
from controller.notify.enqueue import NotifyPolicy
from controller.notify.maintenance import is_active
from controller.store.models import Host


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _duration_arg(value: str) -> float:
    try:
        return duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected {exc}") from None


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def register(subparsers: Any) -> None:
    """Add ``incidents`` and ``maintenance`` to the ``boxkeeper`` subcommands."""
    p = subparsers.add_parser("incidents", help="list, show, acknowledge, resolve incidents")
    p.add_argument("--open", action="store_true", help="only incidents not resolved")
    p.add_argument("--json", action="store_true", help="JSON: id, host, key, severity, status, summary …")
    p.add_argument("--client", help="only this client")
    p.add_argument("--host", help="only this host")
    p.add_argument("--limit", type=int, default=200)
    p.set_defaults(func=cmd_list)
    add_config_argument(p)
    sub = p.add_subparsers(dest="incidents_command", metavar="ACTION")

    s = sub.add_parser("show", help="one incident with its timeline")
    add_config_argument(s)
    s.add_argument("id", type=int)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_show)
    s = sub.add_parser("ack", help="acknowledge: stop repeats (until --expires)")
    add_config_argument(s)
    s.add_argument("id", type=int)
    s.add_argument("--expires", type=_duration_arg, metavar="DURATION", help="e.g. 2h; then it pages again")
    s.add_argument("--message", default="")
    s.set_defaults(func=cmd_ack)
    s = sub.add_parser("resolve", help="resolve by hand")
    add_config_argument(s)
    s.add_argument("id", type=int)
    s.add_argument("--message", default="")
    s.set_defaults(func=cmd_resolve)
    s = sub.add_parser("note", help="add a note to the timeline")
    add_config_argument(s)
    s.add_argument("id", type=int)
    s.add_argument("text")
    s.set_defaults(func=cmd_note)

    m = subparsers.add_parser("maintenance", help="mute a host's notifications for a while")
    add_config_argument(m)
    msub = m.add_subparsers(dest="maintenance_command", required=True, metavar="ACTION")
    s = msub.add_parser("mute", help="mute a host's notifications (incidents are still recorded)")
    add_config_argument(s)
    s.add_argument("host")
    s.add_argument("--for", dest="span", type=_duration_arg, required=True, metavar="DURATION")
    s.add_argument("--reason", default="maintenance")
    s.set_defaults(func=cmd_mute)
    s = msub.add_parser("unmute", help="end a host's mutes now")
    add_config_argument(s)
    s.add_argument("host")
    s.set_defaults(func=cmd_unmute)
    s = msub.add_parser("list", help="active mutes and configured maintenance windows")
    add_config_argument(s)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_maintenance_list)


def _print_table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())


def cmd_list(args: argparse.Namespace) -> int:
    _, db = open_db(args)
    with db.read_session() as session:
        flt = queries.IncidentFilter(open_only=args.open, client=args.client, host=args.host,
                                     limit=max(1, args.limit))
        items = [queries.incident_dict(i) for i in queries.list_incidents(session, flt)]
    if args.json:
        print(json.dumps(items, indent=2, ensure_ascii=False))
        return 0
    if not items:
        print("no incidents" + (" open" if args.open else ""))
        return 0
    rows = [["ID", "SEVERITY", "STATUS", "CLIENT", "HOST", "OPENED", "SUMMARY"]]
    for i in items:
        status = i["status"] + (" (suppressed)" if i["suppressed"] and i["status"] != "resolved" else "")
        rows.append([str(i["id"]), i["severity"], status, i["client"] or "-", i["host"] or "-",
                     _when(i["opened_at"]), i["summary"][:100]])
    _print_table(rows)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    _, db = open_db(args)
    with db.read_session() as session:
        incident = session.get(Incident, args.id)
        if incident is None:
            print(f"boxkeeper: no incident #{args.id}", file=sys.stderr)
            return 1
        data = queries.incident_dict(incident)
        data["timeline"] = [queries.event_dict(e) for e in queries.timeline(session, args.id)]
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    print(f"#{data['id']} {data['severity']} {data['status']}  {data['key']}")
    print(f"  {data['summary']}")
    for event in data["timeline"]:
        actor = f" ({event['actor']})" if event["actor"] else ""
        print(f"  {_when(event['at'])}  {event['kind']:<13}{actor} {event['message']}")
    return 0


def _change(args: argparse.Namespace, action: str) -> int:
    cfg, db = open_db(args)
    policy = NotifyPolicy(channels=tuple(cfg.notify), windows=tuple(cfg.maintenance))
    now = time.time()
    try:
        with db.session() as session:
            if action == "ack":
                service.acknowledge(session, args.id, actor=_actor(), expires_in=args.expires,
                                    message=args.message, now=now, policy=policy)
            elif action == "resolve":
                service.resolve_incident(session, incident_id=args.id, actor=_actor(),
                                         message=args.message or "resolved by hand", now=now, policy=policy)
            else:
                service.add_note(session, args.id, actor=_actor(), text=args.text, now=now)
    except service.IncidentNotFoundError as exc:
        print(f"boxkeeper: {exc}", file=sys.stderr)
        return 1
    done = {"ack": "acknowledged", "resolve": "resolved", "note": "noted"}[action]
    print(f"incident #{args.id} {done}")
    return 0


def cmd_ack(args: argparse.Namespace) -> int:
    return _change(args, "ack")


def cmd_resolve(args: argparse.Namespace) -> int:
    return _change(args, "resolve")


def cmd_note(args: argparse.Namespace) -> int:
    return _change(args, "note")


def cmd_mute(args: argparse.Namespace) -> int:
    cfg, db = open_db(args)
    inventory.sync_config(cfg, db)  # hosts of the config exist even before the first `serve`
    now = time.time()
    try:
        with db.session() as session:
            mute_host(session, host=args.host, until=now + args.span, reason=args.reason, actor=_actor(),
                      now=now)
    except LookupError as exc:
        print(f"boxkeeper: {exc}", file=sys.stderr)
        return 1
    print(f"{args.host}: notifications muted until {_when(now + args.span)} ({args.reason})")
    return 0


def cmd_unmute(args: argparse.Namespace) -> int:
    _, db = open_db(args)
    with db.session() as session:
        removed = unmute_host(session, host=args.host)
    print(f"{args.host}: {removed} mute(s) ended")
    return 0


def cmd_maintenance_list(args: argparse.Namespace) -> int:
    cfg, db = open_db(args)
    now = time.time()
    with db.read_session() as session:
        mutes = active_mutes(session, now)
        names = {h.id: h.name for h in session.query(Host).filter(Host.id.in_(list(mutes)))}
        items: list[dict[str, Any]] = [
            {"kind": "mute", "host": names.get(host_id), "until": m.until, "reason": m.reason}
            for host_id, m in mutes.items()
        ]
    for w in cfg.maintenance:
        items.append({"kind": "window", "name": w.name, "clients": w.clients, "hosts": w.hosts,
                      "cron": w.cron, "duration": w.duration, "start": w.start, "end": w.end,
                      "timezone": w.timezone, "active": is_active(w, now)})
    if args.json:
        print(json.dumps(items, indent=2))
        return 0
    if not items:
        print("no mutes, no maintenance windows")
    for item in items:
        if item["kind"] == "mute":
            print(f"mute    {item['host']}: until {_when(item['until'])} ({item['reason']})")
        else:
            if item["cron"]:
                when = f"cron '{item['cron']}' for {item['duration']:.0f}s"
            else:
                when = f"{_when(item['start'])} … {_when(item['end'])}"
            scope = ",".join((item["clients"] or ()) + (item["hosts"] or ())) or "all hosts"
            print(f"window  {item['name']}: {when} {item['timezone']} on {scope}"
                  f"{' (active now)' if item['active'] else ''}")
    return 0
