"""``boxkeeper runs [--json] [--limit N] [--client C] [--host H] [--state S] [--since T] [--until T]``
and ``runs show ID``: update runs and their audit trail (read-only); ``runs rollback ID``: restore
the backup a succeeded run took (controller/workflows/later.py; exit codes as ``update run``)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from controller.cli.common import Cli, actor, read_db
from controller.cli.incidents import instant_arg
from controller.cli.update import format_summary, runtime
from controller.workflows import later
from controller.workflows import runs as store
from controller.workflows.errors import RunRefused, UnknownRunError
from controller.workflows.state import EXIT_CODES, RunState


def add_filters(p: argparse.ArgumentParser, states: str) -> None:
    """``--client --host --state --since --until`` of ``runs``."""
    p.add_argument("--client", help="only this client's hosts")
    p.add_argument("--host", help="only this host")
    p.add_argument("--state", help=states)
    p.add_argument("--since", type=instant_arg, metavar="WHEN", help="from this date or ISO time (UTC unless "
                   "it names a zone)")
    p.add_argument("--until", type=instant_arg, metavar="WHEN", help="before this date or ISO time")


def register(cli: Cli) -> None:
    p, verbs = cli.group("runs", "update runs and their audit trail", cmd_list)
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, default=50)
    add_filters(p, "SUCCEEDED, ROLLED_BACK, FAILED, QUARANTINED, SKIPPED, … (a run state)")
    p = verbs.command("show", "one run with its timeline", cmd_show)
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true")
    p = verbs.command("rollback", "restore the backup a succeeded run took (while it is kept)", cmd_rollback)
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true")
    p.add_argument("--known-hosts", default=None, help="pinned host keys (default: <state_dir>/known_hosts)")


def cmd_list(args: argparse.Namespace) -> int:
    cfg, db = read_db(args)
    state = args.state.upper() if args.state else None
    if state is not None and state not in RunState.__members__:
        print(f"boxkeeper: --state: expected one of {', '.join(RunState)}, got {args.state!r}",
              file=sys.stderr)
        return 2
    hosts: set[str] | None = None
    if args.client is not None:
        client = cfg.client(args.client)
        hosts = {h.name for h in client.hosts} if client else set()
    if args.host is not None:
        hosts = {args.host} if hosts is None else hosts & {args.host}
    with db.read_session() as s:
        listed = store.list_runs(s, args.limit, hosts=hosts, state=state, since=args.since, until=args.until)
        rows = later.annotate(s, [r.to_dict() for r in listed])
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'ID':>5}  {'HOST':<20} {'PLAYBOOK':<28} {'STATE':<16} STARTED")
    for r, row in zip(listed, rows, strict=True):
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.created_at))
        state = r.state + (" (dry)" if r.dry_run else "")
        kind = f"  {row['kind']} by {row['requested_by']}" if row["rollback_of"] else ""
        print(f"{r.id:>5}  {r.host:<20} {r.playbook:<28} {state:<16} {started}{kind}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    _cfg, db = read_db(args)
    try:
        with db.read_session() as s:
            run = store.summary(s, args.id)
            [data] = later.annotate(s, [run.to_dict()])
    except UnknownRunError as exc:
        print(f"boxkeeper: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(format_summary(run))
    if data["rollback_of"]:
        print(f"{data['kind']}, asked by {data['requested_by']}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    rt = runtime(args)
    try:
        result = rt.rollback(args.id, actor())
    except RunRefused as exc:
        print(f"boxkeeper: not rolled back: {exc}", file=sys.stderr)
        return 3
    print(json.dumps(result.to_dict(), indent=2) if args.json else format_summary(result))
    if result.state == RunState.FAILED:
        print(f"boxkeeper: run {args.id} was NOT rolled back, nothing changed: {result.error}",
              file=sys.stderr)
    # ROLLED_BACK is what was asked for here: exit 0; FAILED 1, QUARANTINED 5
    return 0 if result.state == RunState.ROLLED_BACK else EXIT_CODES[RunState(result.state)]
