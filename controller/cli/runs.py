"""``boxkeeper runs [--json] [--limit N] [--client C] [--host H] [--state S] [--since T] [--until T]``,
``runs show ID`` and ``runs follow ID``: update runs and their audit trail (read-only); ``runs
rollback ID``: restore the backup a succeeded run took (controller/workflows/later.py; exit codes as
``update run``). ``runs abort ID``: ask a going run to abort (controller/workflows/aborts.py): taken
at its next step boundary, never mid-step; before the update it ends ABORTED (exit 7 of ``update
run``), from the update on it rolls back. Exit 0 when recorded, 1 for an unknown run, 3 refused (the
run has ended or is rolling back already).

``runs follow ID`` attaches to a run already going (started by another ``boxkeeper`` process, the API
or a window): it polls the run's timeline in the database, prints each step as it finishes, and
exits with the run's exit code (those of ``update run``) when the run ends; with ``--json`` each step
is one JSON line and the last line is the run (without its timeline).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from controller.cli.common import Cli, actor, open_db, read_db
from controller.cli.incidents import instant_arg
from controller.cli.update import (
    format_entry,
    format_failure,
    format_header,
    format_outcome,
    format_summary,
    runtime,
)
from controller.workflows import aborts, later, rollouts
from controller.workflows import runs as store
from controller.workflows.errors import RunRefused, RunStateError, UnknownRunError
from controller.workflows.follow import Follower
from controller.workflows.state import EXIT_CODES, TERMINAL, RunState

#: `runs follow` gives up after this long (a run's host silence lasts at most as long)
FOLLOW_LIMIT = 6 * 3600.0
STILL_RUNNING = 8


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
    add_filters(p, "SUCCEEDED, ROLLED_BACK, FAILED, QUARANTINED, SKIPPED, ABORTED, … (a run state)")
    p = verbs.command("show", "one run with its timeline", cmd_show)
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true")
    p = verbs.command("follow", "print a going run's steps as they finish; exit with its exit code",
                      cmd_follow)
    p.add_argument("id", type=int)
    p.add_argument("--interval", type=float, default=0.5, help="seconds between polls (default 0.5)")
    p.add_argument("--timeout", type=float, default=FOLLOW_LIMIT,
                   help=f"stop following after this many seconds (exit {STILL_RUNNING}; default 6 h)")
    p.add_argument("--json", action="store_true", help="JSON lines: one per step, then the run")
    p = verbs.command("rollback", "restore the backup a succeeded run took (while it is kept)", cmd_rollback)
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true")
    p.add_argument("--known-hosts", default=None, help="pinned host keys (default: <state_dir>/known_hosts)")
    p = verbs.command("abort", "abort a going run at its next step boundary: before the update it ends "
                      "ABORTED, from the update on it rolls back", cmd_abort)
    p.add_argument("id", type=int)


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
    print(f"{'ID':>5}  {'HOST':<20} {'PLAYBOOK':<28} {'STATE':<16} {'STARTED':<19}  STARTED BY")
    for r, row in zip(listed, rows, strict=True):
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.created_at))
        state = r.state + (" (dry)" if r.dry_run else "")
        kind = f"  ({row['kind']} by {row['requested_by']})" if row["rollback_of"] else ""
        by = r.started_by or "-"
        print(f"{r.id:>5}  {r.host:<20} {r.playbook:<28} {state:<16} {started:<19}  {by}{kind}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    _cfg, db = read_db(args)
    try:
        with db.read_session() as s:
            run = store.summary(s, args.id)
            rollout = rollouts.rollout_of_run(s, args.id)
            [data] = later.annotate(s, [run.to_dict()])
    except UnknownRunError as exc:
        print(f"boxkeeper: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({**data, "rollout_id": rollout}, indent=2))
        return 0
    print(format_summary(run))
    if rollout is not None:
        print(f"part of rollout {rollout} (boxkeeper rollouts show {rollout})")
    if data["rollback_of"]:
        print(f"{data['kind']}, asked by {data['requested_by']}")
    return 0


def cmd_follow(args: argparse.Namespace) -> int:
    _cfg, db = read_db(args)
    try:
        with db.read_session() as s:
            run = store.summary(s, args.id, with_timeline=False)
    except UnknownRunError as exc:
        print(f"boxkeeper: {exc}", file=sys.stderr)
        return 1
    if not args.json:
        print(f"following run {run.id}: {run.playbook} on {run.host} (started by {run.started_by or '-'})",
              flush=True)
    follower = Follower(db.read_session)
    follower.add(run.id, run.host)
    deadline = time.monotonic() + args.timeout
    while True:
        with db.read_session() as s:  # read the state first: rows written before it ended are all there
            run = store.summary(s, args.id, with_timeline=False)
        for p in follower.poll():
            if args.json:
                print(json.dumps({"run_id": p.run_id, "host": p.host, **p.entry.__dict__}), flush=True)
            else:
                lines = [format_entry(p.entry)]
                if p.entry.kind not in ("transition", "note") and p.entry.status != "ok":
                    lines.extend(format_failure(p.entry))
                print("\n".join(lines), flush=True)
        if run.state in TERMINAL:
            break
        if time.monotonic() > deadline:
            print(f"boxkeeper: run {run.id} still {run.state} after {args.timeout:.0f}s; stopped following",
                  file=sys.stderr)
            return STILL_RUNNING
        time.sleep(args.interval)
    if args.json:
        print(json.dumps(run.to_dict()))
    else:
        print("\n".join([format_header(run), *format_outcome(run)]))
    return EXIT_CODES[RunState(run.state)]


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


def cmd_abort(args: argparse.Namespace) -> int:
    _cfg, db = open_db(args)
    try:
        with db.session() as s:
            said = aborts.request_abort(s, args.id, actor=actor(), now=time.time())
    except UnknownRunError as exc:
        print(f"boxkeeper: {exc}", file=sys.stderr)
        return 1
    except RunStateError as exc:
        print(f"boxkeeper: not aborted: {exc}", file=sys.stderr)
        return 3
    print(f"{said} (boxkeeper runs follow {args.id})")
    return 0
