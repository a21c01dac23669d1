"""``boxkeeper incidents``: list, show, acknowledge, resolve, note.

::

    boxkeeper incidents [--open] [--json] [--client C] [--host H] [--state S] [--since T] [--until T]
                        [--limit N]                       (read-only; T: a date or ISO time, UTC)
    boxkeeper incidents show ID [--json]                 the incident with its timeline (read-only)
    boxkeeper incidents ack ID [--expires 2h] [--message M]
    boxkeeper incidents resolve ID [--message M]
    boxkeeper incidents note ID [--minutes N] TEXT      N minutes of work go to the work log too

Exit codes: 0 ok, 1 no such incident, 2 config or usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime

from controller.alerting import incidents as service
from controller.alerting import queries
from controller.alerting.models import STATUSES, Incident
from controller.alerting.outbox import NotifyPolicy
from controller.cli.common import Cli, actor, open_db, read_db, table
from controller.configkit import parse_duration, parse_instant
from controller.reports import worklog


def duration_arg(value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a duration such as 10s, 5m or 1h") from None


def minutes_arg(value: str) -> int:
    try:
        return worklog.check_minutes(int(value))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of minutes from 1 to {worklog.MAX_MINUTES}, got {value!r}") from None


def instant_arg(value: str) -> float:
    try:
        return parse_instant(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected {exc}") from None


def when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def register(cli: Cli) -> None:
    p, verbs = cli.group("incidents", "list, show, acknowledge, resolve incidents", cmd_list)
    p.add_argument("--open", action="store_true", help="only incidents not resolved")
    p.add_argument("--json", action="store_true", help="JSON: id, host, key, severity, status, summary …")
    p.add_argument("--client", help="only this client")
    p.add_argument("--host", help="only this host")
    p.add_argument("--state", choices=STATUSES, help="only incidents in this state")
    p.add_argument("--since", type=instant_arg, metavar="WHEN", help="opened from this date or ISO time")
    p.add_argument("--until", type=instant_arg, metavar="WHEN", help="opened before this date or ISO time")
    p.add_argument("--limit", type=int, default=200)
    s = verbs.command("show", "one incident with its timeline", cmd_show)
    s.add_argument("id", type=int)
    s.add_argument("--json", action="store_true")
    s = verbs.command("ack", "acknowledge: stop repeats (until --expires)", cmd_ack)
    s.add_argument("id", type=int)
    s.add_argument("--expires", type=duration_arg, metavar="DURATION", help="e.g. 2h; then it pages again")
    s.add_argument("--message", default="")
    s = verbs.command("resolve", "resolve by hand", cmd_resolve)
    s.add_argument("id", type=int)
    s.add_argument("--message", default="")
    s = verbs.command("note", "add a note to the timeline", cmd_note)
    s.add_argument("id", type=int)
    s.add_argument("--minutes", type=minutes_arg, help="minutes spent: logged in the work log (billed)")
    s.add_argument("text")


def cmd_list(args: argparse.Namespace) -> int:
    _, db = read_db(args)
    with db.read_session() as session:
        flt = queries.IncidentFilter(open_only=args.open, client=args.client, host=args.host,
                                     limit=max(1, args.limit), status=args.state, since=args.since,
                                     until=args.until)
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
                     when(i["opened_at"]), i["summary"][:100]])
    print(table(rows))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    _, db = read_db(args)
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
        who = f" ({event['actor']})" if event["actor"] else ""
        print(f"  {when(event['at'])}  {event['kind']:<13}{who} {event['message']}")
    return 0


def _change(args: argparse.Namespace, action: str) -> int:
    cfg, db = open_db(args)
    policy = NotifyPolicy(channels=tuple(cfg.notify), windows=tuple(cfg.maintenance))
    now = time.time()
    try:
        with db.session() as session:
            if action == "ack":
                service.acknowledge(session, args.id, actor=actor(), expires_in=args.expires,
                                    message=args.message, now=now, policy=policy)
            elif action == "resolve":
                service.resolve_incident(session, incident_id=args.id, actor=actor(),
                                         message=args.message or "resolved by hand", now=now, policy=policy)
            else:
                worklog.note(session, args.id, actor=actor(), text=args.text, now=now, minutes=args.minutes)
    except (service.IncidentNotFoundError, worklog.WorkLogError) as exc:
        print(f"boxkeeper: {exc}", file=sys.stderr)
        return 1
    done = {"ack": "acknowledged", "resolve": "resolved", "note": "noted"}[action]
    if action == "note" and getattr(args, "minutes", None) is not None:
        done += f" ({args.minutes} min logged)"
    print(f"incident #{args.id} {done}")
    return 0


def cmd_ack(args: argparse.Namespace) -> int:
    return _change(args, "ack")


def cmd_resolve(args: argparse.Namespace) -> int:
    return _change(args, "resolve")


def cmd_note(args: argparse.Namespace) -> int:
    return _change(args, "note")
