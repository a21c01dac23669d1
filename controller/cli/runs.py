"""``boxkeeper runs [--json] [--limit N]`` and ``runs show ID``: update runs and their audit trail
(read-only)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from controller.cli.common import Cli, read_db
from controller.cli.update import format_summary
from controller.workflows import runs as store
from controller.workflows.errors import UnknownRunError


def register(cli: Cli) -> None:
    p, verbs = cli.group("runs", "update runs and their audit trail", cmd_list)
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, default=50)
    p = verbs.command("show", "one run with its timeline", cmd_show)
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true")


def cmd_list(args: argparse.Namespace) -> int:
    _cfg, db = read_db(args)
    with db.read_session() as s:
        listed = store.list_runs(s, args.limit)
    if args.json:
        print(json.dumps([r.to_dict() for r in listed], indent=2))
        return 0
    print(f"{'ID':>5}  {'HOST':<20} {'PLAYBOOK':<28} {'STATE':<16} STARTED")
    for r in listed:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.created_at))
        state = r.state + (" (dry)" if r.dry_run else "")
        print(f"{r.id:>5}  {r.host:<20} {r.playbook:<28} {state:<16} {started}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    _cfg, db = read_db(args)
    try:
        with db.read_session() as s:
            run = store.summary(s, args.id)
    except UnknownRunError as exc:
        print(f"boxkeeper: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(run.to_dict(), indent=2) if args.json else format_summary(run))
    return 0
