"""``boxkeeper maintenance``: silence a host's notifications for a while (incidents are still recorded).

::

    boxkeeper maintenance mute HOST --for 2h [--reason R]   an operator's silence
    boxkeeper maintenance unmute HOST [--all]              end the operators' silences of the host
                                                           (--all: also those of runs and windows)
    boxkeeper maintenance list [--json]                    silences in force and config windows (read-only)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from controller import inventory
from controller.alerting import silences
from controller.alerting.maintenance import is_active
from controller.alerting.models import OWNER_KINDS
from controller.cli.common import Cli, actor, open_db, read_db
from controller.cli.incidents import duration_arg, when


def register(cli: Cli) -> None:
    _, verbs = cli.group("maintenance", "silence a host's notifications for a while")
    s = verbs.command("mute", "silence a host's notifications (incidents are still recorded)", cmd_mute)
    s.add_argument("host")
    s.add_argument("--for", dest="span", type=duration_arg, required=True, metavar="DURATION")
    s.add_argument("--reason", default="maintenance")
    s = verbs.command("unmute", "end the operators' silences of a host now", cmd_unmute)
    s.add_argument("host")
    s.add_argument("--all", action="store_true", help="also the silences of update runs and windows")
    s = verbs.command("list", "silences in force and configured maintenance windows", cmd_list)
    s.add_argument("--json", action="store_true")


def cmd_mute(args: argparse.Namespace) -> int:
    cfg, db = open_db(args)
    inventory.sync_config(cfg, db)  # hosts of the config exist even before the first `serve`
    now = time.time()
    try:
        with db.session() as session:
            silences.silence(session, host=args.host, until=now + args.span, reason=args.reason,
                             owner=silences.Owner.operator(actor()), now=now)
    except LookupError as exc:
        print(f"boxkeeper: {exc}", file=sys.stderr)
        return 1
    print(f"{args.host}: notifications muted until {when(now + args.span)} ({args.reason})")
    return 0


def cmd_unmute(args: argparse.Namespace) -> int:
    _, db = open_db(args)
    with db.session() as session:
        removed = silences.lift_host(session, args.host, kinds=OWNER_KINDS if args.all else ("operator",))
        left = [s for name, s in silences.active(session, time.time()) if name == args.host]
    print(f"{args.host}: {removed} silence(s) ended")
    for s in left:
        print(f"{args.host}: still silenced until {when(s.until)} by {s.owner_kind} {s.owner_ref} "
              f"({s.reason}); "
              "it ends with its run or window (or use --all)")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    cfg, db = read_db(args)
    now = time.time()
    with db.read_session() as session:
        items: list[dict[str, Any]] = [
            {"kind": "silence", "host": host, "until": s.until, "reason": s.reason,
             "owner": f"{s.owner_kind} {s.owner_ref}"}
            for host, s in silences.active(session, now)
        ]
    for w in cfg.maintenance:
        items.append({"kind": "window", "name": w.name, "clients": w.clients, "hosts": w.hosts,
                      "cron": w.cron, "duration": w.duration, "start": w.starts_at, "end": w.ends_at,
                      "timezone": w.timezone, "active": is_active(w, now)})
    if args.json:
        print(json.dumps(items, indent=2))
        return 0
    if not items:
        print("no silences, no maintenance windows")
    for item in items:
        if item["kind"] == "silence":
            print(f"silence {item['host']}: until {when(item['until'])} by {item['owner']} "
                  f"({item['reason']})")
            continue
        if item["cron"]:
            span = f"cron '{item['cron']}' for {item['duration']:.0f}s"
        else:
            span = f"{when(item['start'])} … {when(item['end'])}"
        scope = ",".join((item["clients"] or ()) + (item["hosts"] or ())) or "all hosts"
        print(f"window  {item['name']}: {span} {item['timezone']} on {scope}"
              f"{' (active now)' if item['active'] else ''}")
    return 0
