"""``boxkeeper windows add|list|scheduler``: update windows (scheduled runs).

::

    boxkeeper windows add NAME (--host H | --client C) --playbook P --cron "0 3 * * 6" --duration 120
                          [--timezone Europe/Moscow] [--var k=v ...]
    boxkeeper windows list [--json]    (read-only)
    boxkeeper windows scheduler        run the window scheduler in the foreground (Ctrl-C stops it)
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time

from controller.cli.common import Cli, open_db, read_db
from controller.workflows.loader import parse_var_args
from controller.workflows.windows import add_window, describe_windows


def register(cli: Cli) -> None:
    _, verbs = cli.group("windows", "update windows (scheduled runs)")
    p = verbs.command("add", "add an update window", cmd_add)
    p.add_argument("name")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--host")
    target.add_argument("--client")
    p.add_argument("--playbook", required=True)
    p.add_argument("--cron", required=True, help='5 fields in the window\'s time zone, e.g. "0 3 * * 6"')
    p.add_argument("--duration", type=int, required=True, help="minutes")
    p.add_argument("--timezone", default=None, help="default: the client's (or host's) time zone")
    p.add_argument("--var", action="append", metavar="K=V")
    p = verbs.command("list", "windows, next start and recent occurrences", cmd_list)
    p.add_argument("--json", action="store_true")
    p = verbs.command("scheduler", "run the window scheduler in the foreground", cmd_scheduler)
    p.add_argument("--known-hosts", default=None)


def cmd_add(args: argparse.Namespace) -> int:
    cfg, db = open_db(args)
    if args.client:
        client = cfg.client(args.client)
        target, zone = f"client:{args.client}", client.timezone if client else "UTC"
    else:
        found = cfg.host(args.host)
        target, zone = args.host, found[1].timezone if found else "UTC"
    with db.session() as s:
        window = add_window(s, name=args.name, target=target, playbook=args.playbook, cron=args.cron,
                            duration_minutes=args.duration, timezone=args.timezone or zone,
                            variables=parse_var_args(args.var), now=time.time())
        print(f"window {window.name}: {target}, {window.playbook}, '{window.cron}' {window.timezone}, "
              f"{window.duration_minutes} min")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    _cfg, db = read_db(args)
    with db.read_session() as s:
        rows = describe_windows(s)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for w in rows:
        print(f"{w['name']}: {w['target']} {w['playbook']} '{w['cron']}' {w['timezone']} "
              f"{w['duration_minutes']} min")
        for o in w["occurrences"]:
            at = time.strftime("%Y-%m-%d %H:%M", time.localtime(o["scheduled_for"]))
            print(f"    {at} {o['status']}: {o['detail']}")
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    from controller.runtime import WorkflowRuntime

    cfg, db = open_db(args)
    scheduler = WorkflowRuntime(cfg, db, known_hosts=getattr(args, "known_hosts", None)).window_scheduler()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    scheduler.start()
    print("window scheduler running (Ctrl-C stops it)")
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        scheduler.stop()
    return 0
