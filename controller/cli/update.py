"""``boxkeeper update|runs|hosts trust|hosts unquarantine`` (registered into C's ``boxkeeper`` CLI).

::

    boxkeeper update run PLAYBOOK --host H [--var k=v ...] [--dry-run] [--json]
    boxkeeper update reconcile                 finish runs left unfinished by a controller crash
    boxkeeper runs [--json] [--limit N]
    boxkeeper runs show ID [--json]
    boxkeeper hosts trust HOST [--yes] [--replace]
    boxkeeper hosts unquarantine HOST

Exit codes of ``update run``: 0 SUCCEEDED, 1 FAILED (nothing changed), 2 config/usage error,
3 refused (host busy or quarantined), 4 ROLLED_BACK, 5 QUARANTINED.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from controller.cli_common import add_config_argument, open_db
from controller.config import HostConfig
from controller.workflows import hostkeys
from controller.workflows import runs as store
from controller.workflows.errors import ExecutorError, RunRefused, UnknownRunError
from controller.workflows.loader import parse_var_args
from controller.workflows.runs import RunSummary
from controller.workflows.runtime import (
    PLAYBOOKS_ENV,
    SHIPPED_PLAYBOOKS,
    WorkflowRuntime,
    host_config,
    known_hosts_file,
    ssh_executor,
)
from controller.workflows.ssh import parse_jump
from controller.workflows.state import EXIT_CODES, RunState

REFUSED = 3
SubParsers = argparse._SubParsersAction  # argparse has no public name for it


def register(subparsers: SubParsers[argparse.ArgumentParser]) -> None:
    """Add ``update``, ``runs`` and ``hosts trust|unquarantine`` to the ``boxkeeper`` parser."""
    common = argparse.ArgumentParser(add_help=False)
    add_config_argument(common)

    update = subparsers.add_parser("update", parents=[common], help="update workflows (playbooks over SSH)")
    usub = update.add_subparsers(dest="update_command", required=True, metavar="ACTION")
    p = usub.add_parser("run", parents=[common], help="run a playbook on one host")
    p.add_argument("playbook", help="a playbook name from the playbooks dir, or a file")
    p.add_argument("--host", required=True)
    p.add_argument("--var", action="append", metavar="K=V", help="override a playbook variable (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="preflight only: changes nothing")
    p.add_argument("--playbooks-dir", default=None, help=f"default: ${PLAYBOOKS_ENV} or {SHIPPED_PLAYBOOKS}")
    p.add_argument("--known-hosts", default=None, help="pinned host keys (default: <state_dir>/known_hosts)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_update_run)
    p = usub.add_parser("reconcile", parents=[common], help="finish runs a controller crash left unfinished")
    p.add_argument("--known-hosts", default=None)
    p.set_defaults(func=cmd_update_reconcile)

    runs_p = subparsers.add_parser("runs", parents=[common], help="update runs and their audit trail")
    runs_p.add_argument("--json", action="store_true")
    runs_p.add_argument("--limit", type=int, default=50)
    runs_p.set_defaults(func=cmd_runs)
    rsub = runs_p.add_subparsers(dest="runs_command", required=False, metavar="ACTION")
    p = rsub.add_parser("show", parents=[common], help="one run with its timeline")
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs_show)

    from controller.workflows import windows_cli

    windows_cli.register(subparsers, common)

    hosts = subparsers.choices.get("hosts") or subparsers.add_parser("hosts", parents=[common], help="hosts")
    hsub = _subparsers_of(hosts) or hosts.add_subparsers(dest="hosts_command", required=True,
                                                         metavar="ACTION")
    p = hsub.add_parser("trust", parents=[common], help="pin a host's SSH key (shows the fingerprint)")
    p.add_argument("host")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--replace", action="store_true", help="replace a different pinned key (key rotation)")
    p.add_argument("--known-hosts", default=None)
    p.set_defaults(func=cmd_hosts_trust)
    p = hsub.add_parser("unquarantine", parents=[common], help="allow automation on a quarantined host again")
    p.add_argument("host")
    p.set_defaults(func=cmd_hosts_unquarantine)


def _subparsers_of(parser: argparse.ArgumentParser) -> SubParsers[argparse.ArgumentParser] | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


# ---------------------------------------------------------------------------------------------- helpers


def runtime(args: argparse.Namespace) -> WorkflowRuntime:
    cfg, db = open_db(args)
    return WorkflowRuntime(cfg, db, known_hosts=getattr(args, "known_hosts", None),
                           playbooks_dir=getattr(args, "playbooks_dir", None))


def format_summary(run: RunSummary) -> str:
    dry = " (dry run: preflight only)" if run.dry_run else ""
    lines = [f"run {run.id}: {run.playbook} on {run.host}: {run.state}{dry}"]
    for e in run.timeline:
        when = time.strftime("%H:%M:%S", time.localtime(e.started_at))
        if e.kind == "transition":
            lines.append(f"{when}  == {e.name}")
            continue
        if e.kind == "note":
            lines.append(f"{when}  -- {e.name}")
            continue
        code = "" if e.exit_code is None else f" exit={e.exit_code}"
        took = "" if e.duration is None else f" {e.duration:.1f}s"
        message = f": {e.message}" if e.message else ""
        lines.append(f"{when}  {e.status:<6} {e.phase}/{e.name}{code}{took}{message}")
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


# ---------------------------------------------------------------------------------------------- commands


def cmd_update_run(args: argparse.Namespace) -> int:
    rt = runtime(args)
    try:
        result = rt.run(args.playbook, args.host, parse_var_args(args.var), dry_run=args.dry_run)
    except RunRefused as exc:
        print(f"boxkeeper: refused: {exc}", file=sys.stderr)
        return REFUSED
    print(json.dumps(result.to_dict(), indent=2) if args.json else format_summary(result))
    return EXIT_CODES[RunState(result.state)]


def cmd_update_reconcile(args: argparse.Namespace) -> int:
    results = runtime(args).reconcile()
    for run in results:
        print(f"run {run.id} on {run.host}: {run.state}")
    print(f"{len(results)} unfinished run(s) reconciled")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    _cfg, db = open_db(args)
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


def cmd_runs_show(args: argparse.Namespace) -> int:
    _cfg, db = open_db(args)
    try:
        with db.read_session() as s:
            run = store.summary(s, args.id)
    except UnknownRunError as exc:
        print(f"boxkeeper: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(run.to_dict(), indent=2) if args.json else format_summary(run))
    return 0


def cmd_hosts_trust(args: argparse.Namespace) -> int:
    from controller.cli_common import config_path
    from controller.config import load

    cfg = load(config_path(args))
    host = host_config(cfg, args.host)
    assert host.ssh_address is not None
    address, port = host.ssh_address
    known = known_hosts_file(cfg, args.known_hosts)
    try:
        if host.ssh_jump:
            user, jump_host, jump_port = parse_jump(host.ssh_jump, host.ssh_user or "root")
            jump = HostConfig(name=f"{host.name} (jump)", ssh_address=(jump_host, jump_port), ssh_user=user,
                              ssh_key_file=host.ssh_key_file)
            executor = ssh_executor(jump, known)
            conn = executor._connection()
            assert conn.transport is not None
            channel = conn.transport.open_channel("direct-tcpip", (address, port), ("127.0.0.1", 0))
            key = hostkeys.fetch_host_key(address, port, sock=channel)
            executor.close()
        else:
            key = hostkeys.fetch_host_key(address, port)
    except ExecutorError as exc:
        print(f"boxkeeper: {exc}", file=sys.stderr)
        return 1
    shown = hostkeys.fingerprint(key)
    pinned = hostkeys.pinned_keys(known, address, port)
    print(f"{host.name} ({address}:{port}) presents {key.get_name()} {shown}")
    if any(k.asbytes() == key.asbytes() for k in pinned):
        print(f"already trusted in {known}")
        return 0
    if pinned:
        print(f"WARNING: a DIFFERENT key is pinned for this host: {hostkeys.fingerprint(pinned[0])}. "
              "Unless the host was reinstalled or its key rotated, this may be a man in the middle.")
        if not args.replace:
            print("refused: pass --replace to replace the pinned key", file=sys.stderr)
            return 1
    if not args.yes:
        answer = input("Trust this key? Compare it with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` "
                       "run on the host [yes/no]: ")
        if answer.strip().lower() not in ("y", "yes"):
            print("not trusted")
            return 1
    hostkeys.pin(known, address, port, key)
    print(f"trusted: {shown} pinned in {known}")
    return 0


def cmd_hosts_unquarantine(args: argparse.Namespace) -> int:
    _cfg, db = open_db(args)
    with db.session() as s:
        cleared = store.unquarantine(s, args.host)
    print(f"{args.host}: quarantine cleared" if cleared else f"{args.host}: was not quarantined")
    return 0
