"""``boxkeeper worklog``: minutes of work for a client, billed in the monthly report.

::

    boxkeeper worklog add --client acme [--host H] [--run ID] --minutes 45 "TEXT"
    boxkeeper worklog list --client acme --month 2026-11 [--json]        (read-only)

Time on an incident is logged with ``boxkeeper incidents note ID --minutes 30 "TEXT"``. Each entry
records the operator (``cli:<login>``) and the time. Exit codes: 0 ok, 1 unknown client, host or
run (or a host or run of another client), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from sqlalchemy import select

from controller.cli.common import Cli, actor, open_db, read_db, table
from controller.cli.report import month_arg
from controller.reports import worklog
from controller.reports.period import month_in
from controller.store.models import Client


def minutes_arg(value: str) -> int:
    try:
        return worklog.check_minutes(int(value))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of minutes from 1 to {worklog.MAX_MINUTES}, got {value!r}") from None


def register(cli: Cli) -> None:
    _, verbs = cli.group("worklog", "log and list minutes of work for a client")
    a = verbs.command("add", "log minutes of work (about the client, a host or an update run)", cmd_add)
    a.add_argument("--client", required=True)
    a.add_argument("--host", help="a host of the client")
    a.add_argument("--run", type=int, metavar="ID", help="an update run (its host is taken)")
    a.add_argument("--minutes", type=minutes_arg, required=True)
    a.add_argument("text", help="what was done")
    s = verbs.command("list", "a client's entries of one month (client's time zone)", cmd_list)
    s.add_argument("--client", required=True)
    s.add_argument("--month", required=True, type=month_arg, metavar="YYYY-MM")
    s.add_argument("--json", action="store_true")


def cmd_add(args: argparse.Namespace) -> int:
    _, db = open_db(args)
    item = worklog.WorkItem(client=args.client, host=args.host, run_id=args.run)
    with db.session() as session:
        entry = worklog.add_entry(session, item, minutes=args.minutes, text=args.text, actor=actor(),
                                  now=time.time())
        about = f" on {entry.host_name}" if entry.host_name else ""
        about += f" (run {entry.run_id})" if entry.run_id is not None else ""
        print(f"logged {entry.minutes} min for {entry.client_name}{about} as entry #{entry.id}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    _, db = read_db(args)
    with db.read_session() as session:
        client = session.scalars(select(Client).where(Client.name == args.client)).first()
        if client is None:
            print(f"boxkeeper: no client {args.client!r}", file=sys.stderr)
            return 1
        month = month_in(args.month, client.timezone)
        items = [worklog.entry_dict(e) for e in worklog.entries(session, client.name, month.start, month.end)]
    if args.json:
        print(json.dumps(items, indent=2, ensure_ascii=False))
        return 0
    if not items:
        print(f"no work logged for {args.client} in {args.month}")
        return 0
    rows = [["ID", "WHEN", "OPERATOR", "MINUTES", "ABOUT", "TEXT"]]
    for i in items:
        about = (f"incident #{i['incident_id']}" if i["incident_id"] is not None
                 else f"run #{i['run_id']}" if i["run_id"] is not None else i["host"] or "-")
        rows.append([str(i["id"]), month.local(i["at"]).strftime("%Y-%m-%d %H:%M"), i["operator"],
                     str(i["minutes"]), about, i["text"][:80]])
    total = sum(i["minutes"] for i in items)
    print(table(rows))
    print(f"total {total} min ({total // 60}:{total % 60:02d}), times in {month.timezone}")
    return 0
