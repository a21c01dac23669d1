"""``boxkeeper rollouts [--json] [--limit N]``, ``rollouts show ID [--json]`` and
``rollouts pause|resume|abort ID``: rollouts (one playbook over many hosts, started with
``boxkeeper update run --hosts|--client|--all``, the API or an update window).

Pause: no new batch starts; runs going finish. Resume: go on. Abort: no new run starts; runs going
finish their workflow normally (never cut off mid-update). The process driving the rollout reads the
request between runs, so these work from any shell. ``abort ID --runs`` also asks each run going
to abort (``boxkeeper runs abort``: taken at its next step boundary). Exit 1 for an unknown rollout
or one whose state does not allow the request (it has ended, it is not paused).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from controller.cli.common import Cli, actor, open_db, read_db, table
from controller.workflows import aborts, rollouts
from controller.workflows import runs as runstore
from controller.workflows.errors import RolloutStateError, UnknownRolloutError


def register(cli: Cli) -> None:
    p, verbs = cli.group("rollouts", "rollouts: one playbook over many hosts", cmd_list)
    p.add_argument("--json", action="store_true")
    p.add_argument("--limit", type=int, default=50)
    p = verbs.command("show", "one rollout: its hosts, batches, state and each run's outcome", cmd_show)
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true")
    for action, text in (("pause", "no new batch starts; runs going finish"),
                         ("resume", "resume a paused rollout"),
                         ("abort", "no new run starts; runs going finish their workflow")):
        p = verbs.command(action, text, cmd_control)
        p.add_argument("id", type=int)
        p.set_defaults(action=action)
        if action == "abort":
            p.add_argument("--runs", action="store_true",
                           help="also abort the runs going (before the update: ABORTED; after: rolled back)")


def cmd_list(args: argparse.Namespace) -> int:
    _cfg, db = read_db(args)
    with db.read_session() as s:
        listed = rollouts.list_rollouts(s, args.limit)
    if args.json:
        print(json.dumps([r.to_dict() for r in listed], indent=2))
        return 0
    rows = [["ID", "PLAYBOOK", "STATE", "HOSTS", "FAILED", "BATCH", "STARTED", "STARTED BY"]]
    for r in listed:
        state = r.state + (f" ({r.control} requested)" if r.control and r.state not in rollouts.ENDED else "")
        rows.append([str(r.id), r.playbook, state, str(len(r.hosts)), str(r.failures), str(r.batch_size),
                     time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.created_at)), r.started_by])
    print(table(rows))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    _cfg, db = read_db(args)
    try:
        with db.read_session() as s:
            r = rollouts.summary(s, args.id)
            runs = {h.run_id: runstore.summary(s, h.run_id, with_timeline=False)
                    for h in r.hosts if h.run_id is not None}
    except UnknownRolloutError as exc:
        print(f"boxkeeper: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({**r.to_dict(), "runs": [run.to_dict() for run in runs.values()]}, indent=2))
        return 0
    control = f" ({r.control} requested)" if r.control and r.state not in rollouts.ENDED else ""
    print(f"rollout {r.id}: {r.playbook}: {r.state}{control}")
    print(f"started by {r.started_by} at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(r.created_at))}"
          f"; canary {r.canary}, batches of up to {r.batch_size}, {r.max_failures} failure(s) allowed, "
          f"{r.failures} failed" + (f"; incident {r.incident_id}" if r.incident_id else ""))
    rows = [["HOST", "BATCH", "RUN", "OUTCOME", "TOOK", "NOTE"]]
    for h in r.hosts:
        run = runs.get(h.run_id) if h.run_id is not None else None
        took = f"{run.finished_at - run.created_at:.1f}s" if run and run.finished_at else "-"
        note = (run.failed_step or "") if run and run.state != "SUCCEEDED" else h.note
        batch = "canary" if h.batch == 0 else str(h.batch)
        rows.append([h.host, batch, str(h.run_id or "-"), h.outcome, took,
                     note.splitlines()[0][:120] if note else ""])
    print(table(rows))
    if r.detail:
        print(r.detail)
    return 0


def cmd_control(args: argparse.Namespace) -> int:
    _cfg, db = open_db(args)
    try:
        with db.session() as s:
            said = rollouts.request(s, args.id, args.action, actor=actor(), now=time.time())
            if getattr(args, "runs", False):
                asked = aborts.abort_rollout_runs(s, args.id, actor=actor(), now=time.time())
                said += f"; abort asked of run(s) {', '.join(map(str, asked)) or 'none going'}"
    except (UnknownRolloutError, RolloutStateError) as exc:
        print(f"boxkeeper: {exc}", file=sys.stderr)
        return 1
    print(f"rollout {args.id}: {said}")
    return 0
