"""``boxkeeper update run|reconcile``: run a playbook on a host; finish runs a crash left unfinished.

::

    boxkeeper update run PLAYBOOK --host H [--site S] [--var k=v ...] [--chain k=v ...] [--dry-run] [--json]
    boxkeeper update run PLAYBOOK --hosts A,B,C | --client C | --all [--canary H] [--batch-size N|P%]
                                  [--max-failures N] [--var k=v ...] [--dry-run] [--json]
    boxkeeper update reconcile

Exit codes of ``update run``: 0 SUCCEEDED, 1 FAILED (nothing changed), 2 config/usage error,
3 refused (host busy or quarantined), 4 ROLLED_BACK, 5 QUARANTINED, 6 SKIPPED (release held),
7 ABORTED (``boxkeeper runs abort ID`` — or Ctrl-C of ``update run --host`` — before the update
began; nothing changed). A rollout (``--hosts``,
``--client``, ``--all``) exits 0 when it SUCCEEDED, 6 when it FINISHED with failures or STOPPED,
7 when an operator ABORTED it. With ``--chain`` the playbook
runs once per value, in order; the first run that does not succeed stops the chain and gives the
exit code (a 1C configuration chain 3.1.9 → 3.1.10 → 3.1.11: each release verified on its own).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator

from controller.cli.common import Cli, actor, open_db
from controller.errors import ConfigError
from controller.runtime import PLAYBOOKS_ENV, SHIPPED_PLAYBOOKS, WorkflowRuntime
from controller.workflows import aborts, rollouts
from controller.workflows import runs as runstore
from controller.workflows.errors import RunRefused, RunStateError
from controller.workflows.follow import Follower, Progress, ProgressThread
from controller.workflows.loader import parse_var_args
from controller.workflows.rollouts import ABORTED, FINISHED, STOPPED, SUCCEEDED, RolloutSummary
from controller.workflows.runs import RunSummary, TimelineEntry
from controller.workflows.state import EXIT_CODES, TERMINAL, RunState

REFUSED = 3
TERMINAL_STATES = {s.value for s in TERMINAL}
ROLLOUT_EXIT = {SUCCEEDED: 0, FINISHED: 6, STOPPED: 6, ABORTED: 7}


def register(cli: Cli) -> None:
    _, verbs = cli.group("update", "update workflows (playbooks over SSH)")
    p = verbs.command("run", "run a playbook on one host, or as a rollout over many", cmd_run)
    p.add_argument("playbook", help="a playbook name from the playbooks dir, or a file")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--host", help="one host")
    which.add_argument("--hosts", metavar="A,B,C", help="a rollout over these hosts, in this order")
    which.add_argument("--client", help="a rollout over every host of the client that has an SSH address")
    which.add_argument("--all", action="store_true", help="a rollout over every host with an SSH address")
    p.add_argument("--canary", metavar="HOST", default=None,
                   help="rollouts: the host run first, alone (default: the first host)")
    p.add_argument("--batch-size", default="1", metavar="N|P%",
                   help="rollouts: hosts run at once after the canary, a number or a percentage of "
                        "all hosts (default 1)")
    p.add_argument("--max-failures", type=int, default=0, metavar="N",
                   help="rollouts: failed hosts allowed before the rollout stops (default 0: stop after "
                        "the first); a failed canary always stops it")
    p.add_argument("--site", default=None,
                   help="one of the host's sites (config: clients[].hosts[].sites[].name): its docroot, "
                        "portal_url and vars win over the host's")
    p.add_argument("--var", action="append", metavar="K=V", help="override a playbook variable (repeatable)")
    p.add_argument("--chain", action="append", metavar="K=V",
                   help="one run per value, in order, each to SUCCEEDED before the next "
                        "(a 1C release chain: --chain update_dir=/u/3.1.10 --chain update_dir=/u/3.1.11)")
    p.add_argument("--dry-run", action="store_true", help="preflight only: changes nothing")
    p.add_argument("--playbooks-dir", default=None, help=f"default: ${PLAYBOOKS_ENV} or {SHIPPED_PLAYBOOKS}")
    p.add_argument("--known-hosts", default=None, help="pinned host keys (default: <state_dir>/known_hosts)")
    p.add_argument("--json", action="store_true",
                   help="one JSON document at the end (the run, or the rollout with its hosts); no progress")
    p = verbs.command("reconcile", "finish runs a controller crash left unfinished", cmd_reconcile)
    p.add_argument("--known-hosts", default=None)


def runtime(args: argparse.Namespace) -> WorkflowRuntime:
    cfg, db = open_db(args)
    return WorkflowRuntime(cfg, db, known_hosts=getattr(args, "known_hosts", None),
                           playbooks_dir=getattr(args, "playbooks_dir", None))


def _clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


def format_entry(e: TimelineEntry, host: str | None = None) -> str:
    """One timeline row: time, [host,] step, outcome, duration (a transition: ``== A → B``)."""
    where = f"{host:<14} " if host is not None else ""
    if e.kind == "transition":
        return f"{_clock(e.started_at)}  {where}== {e.name}"
    if e.kind == "note":
        return f"{_clock(e.started_at)}  {where}-- {e.name}"
    code = "" if e.exit_code is None else f" exit={e.exit_code}"
    took = "" if e.duration is None else f" {e.duration:.1f}s"
    message = f": {e.message}" if e.message else ""
    return f"{_clock(e.started_at)}  {where}{e.status:<6} {e.phase}/{e.name}{code}{took}{message}"


def format_failure(e: TimelineEntry) -> list[str]:
    """A failed step's command and the tail of its output."""
    lines = []
    if e.command:
        lines.append(f"            $ {e.command[:300]}")
    for tail in (e.stdout_tail, e.stderr_tail):
        for text in tail.strip().splitlines()[-8:]:
            lines.append(f"            | {text[:200]}")
    return lines


def format_header(run: RunSummary) -> str:
    dry = " (dry run: preflight only)" if run.dry_run else ""
    by = f" (started by {run.started_by})" if run.started_by else ""
    return f"run {run.id}: {run.playbook} on {run.host}: {run.state}{dry}{by}"


def format_outcome(run: RunSummary) -> list[str]:
    lines = []
    if run.state == RunState.ABORTED:
        lines.append(f"ABORTED by {run.abort_requested_by} before the update began: nothing on the box was "
                     "changed")
    elif run.state == RunState.ROLLED_BACK and run.aborted_at is not None:
        lines.append(f"the update was ROLLED BACK on the abort of {run.abort_requested_by} (the release is "
                     "not held)")
    elif run.state == RunState.ROLLED_BACK:
        lines.append("the release was ROLLED BACK: this is a failure (see the incident)")
    elif run.abort_requested_by and run.aborted_at is None and run.state not in TERMINAL_STATES:
        lines.append(f"abort requested by {run.abort_requested_by}: taken when the step going now ends")
    if run.error and run.state != RunState.SUCCEEDED:
        lines.append(f"error: {run.error[:1000]}")
    return lines


def format_summary(run: RunSummary) -> str:
    lines = [format_header(run)]
    for e in run.timeline:
        lines.append(format_entry(e))
        if e.kind not in ("transition", "note") and e.status != "ok":
            lines.extend(format_failure(e))
    return "\n".join(lines + format_outcome(run))


def format_host_line(run: RunSummary) -> str:
    """The one-line summary of a host's run at the end of ``update run`` / a rollout."""
    took = f"{run.finished_at - run.created_at:.1f}s" if run.finished_at is not None else "-"
    failed = f"  at {run.failed_step}" if run.failed_step and run.state != RunState.SUCCEEDED else ""
    return f"{run.host:<14} run {run.id:<5} {run.state:<12} {took:>8}{failed}"


class Printer:
    """Progress lines on stdout as steps finish (one lock: batches print from several threads)."""

    def __init__(self, with_host: bool) -> None:
        self.with_host = with_host
        self.lock = threading.RLock()  # the Ctrl-C handler may print while the main thread prints

    def step(self, p: Progress) -> None:
        lines = [format_entry(p.entry, p.host if self.with_host else None)]
        if p.entry.kind not in ("transition", "note") and p.entry.status != "ok":
            lines.extend(format_failure(p.entry))
        self.say("\n".join(lines))

    def say(self, text: str) -> None:
        with self.lock:
            print(text, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    rt = runtime(args)
    given = parse_var_args(args.var)
    if args.host is None:
        return _rollout(rt, args, given)
    chain = [_chain_item(item, given) for item in args.chain or []]
    if args.dry_run:
        chain = chain[:1]  # a later release's preflight needs the earlier ones applied
    code = 0
    for i, step in enumerate(chain or [{}]):
        if chain:
            print(f"chain {i + 1}/{len(chain)}: {', '.join(f'{k}={v}' for k, v in step.items())}")
        try:
            result = _one(rt, args, {**given, **step})
        except RunRefused as exc:
            print(f"boxkeeper: refused: {exc}", file=sys.stderr)
            return REFUSED
        code = EXIT_CODES[RunState(result.state)]
        if result.state != RunState.SUCCEEDED:
            if i + 1 < len(chain):
                print(f"chain stopped: {len(chain) - i - 1} later release(s) not run")
            break
    return code


def _one(rt: WorkflowRuntime, args: argparse.Namespace, given: dict[str, str]) -> RunSummary:
    """One host's run; its steps printed as they finish (not with --json), then its outcome."""
    if args.json:
        result = rt.run(args.playbook, args.host, given, dry_run=args.dry_run, site=args.site,
                        started_by=actor())
        print(json.dumps(result.to_dict(), indent=2))
        return result
    follower = Follower(rt.db.read_session)
    printer = Printer(with_host=False)
    started: list[int] = []

    def begun(run_id: int) -> None:
        started.append(run_id)
        follower.add(run_id, args.host)

    def abort() -> str:
        if not started:
            return "the run has not started yet: nothing to abort"
        try:
            with rt.db.session() as s:
                return aborts.request_abort(s, started[0], actor=actor(), now=time.time())
        except RunStateError as exc:
            return f"not aborted: {exc}"

    with ProgressThread(follower, printer.step), _on_interrupt(abort, printer):
        result = rt.run(args.playbook, args.host, given, dry_run=args.dry_run, site=args.site,
                        started_by=actor(), on_start=begun)
    print("\n".join([format_header(result), *format_outcome(result)]))
    return result


def _rollout(rt: WorkflowRuntime, args: argparse.Namespace, given: dict[str, str]) -> int:
    if args.chain:
        raise ConfigError("--chain", "chain", "one --host (a release chain runs on one host)")
    if args.site:
        raise ConfigError("--site", "site", "one --host (sites are a host's)")
    hosts = rt.fleet_hosts(hosts=[h.strip() for h in (args.hosts or "").split(",") if h.strip()],
                           client=args.client, everything=args.all)
    who = actor()
    rollout_id = rt.prepare_rollout(args.playbook, hosts, given, canary=args.canary, batch=args.batch_size,
                                    max_failures=args.max_failures, started_by=who)
    follower = Follower(rt.db.read_session)
    printer = Printer(with_host=True)
    if args.json:
        done = rt.drive_rollout(rollout_id, args.playbook, given, dry_run=args.dry_run, started_by=who)
        with rt.db.read_session() as s:
            runs = {h.run_id: runstore.summary(s, h.run_id, with_timeline=False).to_dict()
                    for h in done.hosts if h.run_id is not None}
        print(json.dumps({**done.to_dict(), "runs": list(runs.values())}, indent=2))
        return ROLLOUT_EXIT[done.state]
    with rt.db.read_session() as s:
        plan = rollouts.summary(s, rollout_id)
    printer.say(f"rollout {rollout_id}: {args.playbook} on {len(plan.hosts)} host(s): canary {plan.canary}, "
                f"then {plan.batches - 1} batch(es) of up to {plan.batch_size}, {plan.max_failures} "
                f"failure(s) allowed (boxkeeper rollouts pause|abort {rollout_id})")
    with ProgressThread(follower, printer.step), _abort_on_interrupt(rt, rollout_id, printer):
        done = rt.drive_rollout(rollout_id, args.playbook, given, dry_run=args.dry_run, started_by=who,
                                on_start=follower.add, on_event=printer.say)
    print(format_rollout_hosts(rt, done))
    return ROLLOUT_EXIT[done.state]


@contextlib.contextmanager
def _on_interrupt(abort: Callable[[], str], printer: Printer) -> Iterator[None]:
    """Ctrl-C during one host's run asks for the run's abort (taken at its next step boundary:
    ABORTED before the update, rolled back after) instead of killing it mid-step; a second Ctrl-C
    stops waiting (`boxkeeper update reconcile` then finishes the run)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    asked = threading.Event()

    def interrupted(signum: int, frame: object) -> None:
        if asked.is_set():
            raise KeyboardInterrupt
        asked.set()
        printer.say("interrupted: asking for an abort (Ctrl-C again to stop waiting)")
        threading.Thread(target=lambda: printer.say(abort()), name="run-abort", daemon=True).start()

    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _abort_on_interrupt(rt: WorkflowRuntime, rollout_id: int, printer: Printer) -> Iterator[None]:
    """Ctrl-C during a rollout asks for an abort (runs going finish their workflow) instead of
    killing runs mid-update; a second Ctrl-C stops waiting (`boxkeeper update reconcile` then
    finishes the runs left behind)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    asked = threading.Event()

    def abort() -> None:
        with rt.db.session() as s:
            rollouts.request(s, rollout_id, "abort", actor=actor(), now=time.time())

    def interrupted(signum: int, frame: object) -> None:
        if asked.is_set():
            raise KeyboardInterrupt
        asked.set()
        printer.say(f"interrupted: abort of rollout {rollout_id} requested; runs going finish their "
                    "workflow (Ctrl-C again to stop waiting)")
        threading.Thread(target=abort, name="rollout-abort", daemon=True).start()

    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def format_rollout_hosts(rt: WorkflowRuntime, done: RolloutSummary) -> str:
    lines = [f"rollout {done.id}: {done.state}: {done.failures} failed of {len(done.hosts)}"]
    with rt.db.read_session() as s:
        for h in done.hosts:
            if h.run_id is not None:
                lines.append(format_host_line(runstore.summary(s, h.run_id, with_timeline=False)))
            else:
                note = f"  {h.note[:200]}" if h.note else ""
                lines.append(f"{h.host:<14} {'-':<9} {h.outcome:<12} {'-':>8}{note}")
    return "\n".join(lines)


def _chain_item(item: str, given: dict[str, str]) -> dict[str, str]:
    """``K=V`` of one ``--chain``; K must not also be a ``--var`` (which one would win?)."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError("--chain", item, "KEY=VALUE")
    if key in given:
        raise ConfigError("--chain", key, "a variable not also given with --var", item)
    return {key: value}


def cmd_reconcile(args: argparse.Namespace) -> int:
    results = runtime(args).reconcile()
    for run in results:
        print(f"run {run.id} on {run.host}: {run.state}")
    print(f"{len(results)} unfinished run(s) reconciled")
    return 0
