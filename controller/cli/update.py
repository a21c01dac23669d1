"""``boxkeeper update run|reconcile``: run a playbook on a host; finish runs a crash left unfinished.

::

    boxkeeper update run PLAYBOOK --host H [--site S] [--var k=v ...] [--chain k=v ...] [--dry-run] [--json]
    boxkeeper update reconcile

Exit codes of ``update run``: 0 SUCCEEDED, 1 FAILED (nothing changed), 2 config/usage error,
3 refused (host busy or quarantined), 4 ROLLED_BACK, 5 QUARANTINED. With ``--chain`` the playbook
runs once per value, in order; the first run that does not succeed stops the chain and gives the
exit code (a 1C configuration chain 3.1.9 → 3.1.10 → 3.1.11: each release verified on its own).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from controller.cli.common import Cli, open_db
from controller.errors import ConfigError
from controller.runtime import PLAYBOOKS_ENV, SHIPPED_PLAYBOOKS, WorkflowRuntime
from controller.workflows.errors import RunRefused
from controller.workflows.loader import parse_var_args
from controller.workflows.runs import RunSummary
from controller.workflows.state import EXIT_CODES, RunState

REFUSED = 3


def register(cli: Cli) -> None:
    _, verbs = cli.group("update", "update workflows (playbooks over SSH)")
    p = verbs.command("run", "run a playbook on one host", cmd_run)
    p.add_argument("playbook", help="a playbook name from the playbooks dir, or a file")
    p.add_argument("--host", required=True)
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
    p.add_argument("--json", action="store_true")
    p = verbs.command("reconcile", "finish runs a controller crash left unfinished", cmd_reconcile)
    p.add_argument("--known-hosts", default=None)


def runtime(args: argparse.Namespace) -> WorkflowRuntime:
    cfg, db = open_db(args)
    return WorkflowRuntime(cfg, db, known_hosts=getattr(args, "known_hosts", None),
                           playbooks_dir=getattr(args, "playbooks_dir", None))


def format_summary(run: RunSummary) -> str:
    dry = " (dry run: preflight only)" if run.dry_run else ""
    lines = [f"run {run.id}: {run.playbook} on {run.host}: {run.state}{dry}"]
    for e in run.timeline:
        at = time.strftime("%H:%M:%S", time.localtime(e.started_at))
        if e.kind == "transition":
            lines.append(f"{at}  == {e.name}")
            continue
        if e.kind == "note":
            lines.append(f"{at}  -- {e.name}")
            continue
        code = "" if e.exit_code is None else f" exit={e.exit_code}"
        took = "" if e.duration is None else f" {e.duration:.1f}s"
        message = f": {e.message}" if e.message else ""
        lines.append(f"{at}  {e.status:<6} {e.phase}/{e.name}{code}{took}{message}")
        if e.status != "ok":
            if e.command:
                lines.append(f"            $ {e.command[:300]}")
            for tail in (e.stdout_tail, e.stderr_tail):
                for text in tail.strip().splitlines()[-8:]:
                    lines.append(f"            | {text[:200]}")
    if run.state == RunState.ROLLED_BACK:
        lines.append("the release was ROLLED BACK: this is a failure (see the incident)")
    if run.error and run.state != RunState.SUCCEEDED:
        lines.append(f"error: {run.error[:1000]}")
    return "\n".join(lines)


def cmd_run(args: argparse.Namespace) -> int:
    rt = runtime(args)
    given = parse_var_args(args.var)
    chain = [_chain_item(item, given) for item in args.chain or []]
    if args.dry_run:
        chain = chain[:1]  # a later release's preflight needs the earlier ones applied
    code = 0
    for i, step in enumerate(chain or [{}]):
        if chain:
            print(f"chain {i + 1}/{len(chain)}: {', '.join(f'{k}={v}' for k, v in step.items())}")
        try:
            result = rt.run(args.playbook, args.host, {**given, **step}, dry_run=args.dry_run,
                            site=args.site)
        except RunRefused as exc:
            print(f"boxkeeper: refused: {exc}", file=sys.stderr)
            return REFUSED
        print(json.dumps(result.to_dict(), indent=2) if args.json else format_summary(result))
        code = EXIT_CODES[RunState(result.state)]
        if result.state != RunState.SUCCEEDED:
            if i + 1 < len(chain):
                print(f"chain stopped: {len(chain) - i - 1} later release(s) not run")
            break
    return code


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
