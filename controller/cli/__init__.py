"""``boxkeeper``: the controller's command line.

::

    boxkeeper serve [--listen ADDR] [--ready-file F] [--no-monitor]
    boxkeeper migrate
    boxkeeper hosts add NAME --client C [--json]     prints the new agent token once
    boxkeeper hosts list [--json]
    boxkeeper hosts revoke NAME
    boxkeeper status [--json]                        fleet table
    boxkeeper operators add NAME                     prints the new operator token once
    boxkeeper operators list | remove NAME
    boxkeeper incidents ... | maintenance ...        (controller.incidents.cli)
    boxkeeper update ... | runs ... | windows ...    (controller.workflows.cli)

Every subcommand takes ``--config F`` (default ``$BOXKEEPER_CONFIG``). Exit codes: 0 ok,
1 the operation failed (unknown host, database error), 2 the config (or a usage) is wrong.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from controller import inventory, operators
from controller.cli_common import add_config_argument, close_all, config_path, load_config, open_db
from controller.config import load
from controller.errors import ConfigError, InventoryError, OperatorTokenError
from controller.fleet import load_fleet


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    add_config_argument(common)
    parser = argparse.ArgumentParser(prog="boxkeeper", description="boxkeeper controller")
    add_config_argument(parser, subcommand=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", parents=[common], help="run the controller (API, metrics, monitor)")
    p.add_argument("--listen", metavar="ADDR", help="override listen (e.g. 127.0.0.1:8470; port 0 = any)")
    p.add_argument("--ready-file", metavar="F", help="write the bound address here once listening")
    p.add_argument("--no-monitor", action="store_true",
                   help="API only: no detection, notifications, run reconciliation, update windows")
    p.add_argument("--workers", type=int, default=int(os.environ.get("BOXKEEPER_WORKERS", "1")),
                   help="API worker processes sharing the socket (default 1; $BOXKEEPER_WORKERS)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("migrate", parents=[common], help="apply database migrations and sync the config")
    p.set_defaults(func=cmd_migrate)

    hosts = sub.add_parser("hosts", parents=[common], help="hosts and their agent tokens")
    hsub = hosts.add_subparsers(dest="hosts_command", required=True, metavar="ACTION")
    p = hsub.add_parser("add", parents=[common], help="add a host (or re-issue a revoked one's token)")
    p.add_argument("name")
    p.add_argument("--client", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_hosts_add)
    p = hsub.add_parser("list", parents=[common], help="list hosts")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_hosts_list)
    p = hsub.add_parser("revoke", parents=[common], help="revoke a host's agent token")
    p.add_argument("name")
    p.set_defaults(func=cmd_hosts_revoke)

    p = sub.add_parser("status", parents=[common], help="fleet status table")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    ops = sub.add_parser("operators", parents=[common], help="operator API tokens")
    osub = ops.add_subparsers(dest="operators_command", required=True, metavar="ACTION")
    p = osub.add_parser("add", parents=[common], help="add an operator; prints the token once")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_operators_add)
    p = osub.add_parser("list", parents=[common], help="list operators")
    p.set_defaults(func=cmd_operators_list)
    p = osub.add_parser("remove", parents=[common], help="remove an operator (its token stops working)")
    p.add_argument("name")
    p.set_defaults(func=cmd_operators_remove)

    # Subcommands of the other parts of the controller: incidents + maintenance, and update
    # workflows (update, runs, windows, hosts trust|unquarantine).
    for module in ("controller.incidents.cli", "controller.workflows.cli"):
        importlib.import_module(module).register(sub)
    for action in sub.choices.values():  # their parsers get --config too
        if not any("--config" in a.option_strings for a in action._actions):
            add_config_argument(action)
    return parser


def cmd_serve(args: argparse.Namespace) -> int:
    from controller.server import serve

    overrides: dict[str, object] = {"listen": args.listen} if args.listen else {}
    cfg = load(config_path(args), overrides=overrides)
    logging.basicConfig(level=getattr(logging, args.log_level.upper()),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return serve(cfg, ready_file=args.ready_file, monitor=not args.no_monitor, log_level=args.log_level,
                 workers=max(1, args.workers))


def cmd_migrate(args: argparse.Namespace) -> int:
    cfg, db = open_db(args)
    inventory.sync_config(cfg, db)
    print(f"database {db!r} is at the newest schema")
    return 0


def cmd_hosts_add(args: argparse.Namespace) -> int:
    cfg, db = open_db(args)
    token = inventory.add_host(db, args.name, args.client, cfg=cfg)
    if args.json:
        print(json.dumps({"host": args.name, "client": args.client, "token": token}))
    else:
        print(f"host {args.name} (client {args.client}) added. Agent token (shown once, store it in the "
              f"agent's token_file, mode 0600):\n{token}")
    return 0


def _age(ts: float | None, now: float) -> str:
    if ts is None:
        return "never"
    seconds = max(0, int(now - ts))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows)
    return "\n".join(lines)


def cmd_hosts_list(args: argparse.Namespace) -> int:
    cfg, db = open_db(args)
    inventory.sync_config(cfg, db)
    rows = inventory.list_hosts(db)
    if args.json:
        print(json.dumps([
            {"host": r.name, "client": r.client, "token": r.has_token,
             "last_report_at": r.last_report_at, "last_seq": r.last_seq} for r in rows
        ], indent=2))
        return 0
    now = time.time()
    table = [["HOST", "CLIENT", "TOKEN", "LAST REPORT"]]
    table += [
        [r.name, r.client, "active" if r.has_token else "none", _age(r.last_report_at, now)] for r in rows
    ]
    print(_table(table))
    return 0


def cmd_hosts_revoke(args: argparse.Namespace) -> int:
    _cfg, db = open_db(args)
    count = inventory.revoke_host(db, args.name)
    print(f"host {args.name}: {count} token(s) revoked" if count else f"host {args.name}: no active token")
    return 0


def _checks_summary(checks: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for c in checks:
        counts[c["status_name"]] = counts.get(c["status_name"], 0) + 1
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "-"


def cmd_status(args: argparse.Namespace) -> int:
    cfg, db = open_db(args)
    inventory.sync_config(cfg, db)
    now = time.time()
    with db.read_session() as session:
        fleet = [h.as_dict() for h in load_fleet(session, cfg, now)]
    if args.json:
        print(json.dumps(fleet, indent=2))
        return 0
    if not fleet:
        print("no hosts yet: add one with `boxkeeper hosts add NAME --client C`")
        return 0
    table = [["HOST", "CLIENT", "STATE", "LAST REPORT", "OPEN INCIDENTS", "CHECKS"]]
    for h in fleet:
        table.append([h["host"], h["client"], h["state"], _age(h["last_report_at"], now),
                      str(h["open_incidents"]), _checks_summary(h["checks"])])
    print(_table(table))
    return 0


def cmd_operators_add(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    token = operators.add_operator(Path(cfg.operator_tokens_file), args.name)
    if args.json:
        print(json.dumps({"operator": args.name, "token": token}))
    else:
        print(f"operator {args.name} added to {cfg.operator_tokens_file}. Token (shown once):\n{token}")
    return 0


def cmd_operators_list(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    for op in operators.read_file(Path(cfg.operator_tokens_file)):
        print(op.name)
    return 0


def cmd_operators_remove(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    operators.remove_operator(Path(cfg.operator_tokens_file), args.name)
    print(f"operator {args.name} removed")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except (ConfigError, OperatorTokenError) as exc:
        print(f"boxkeeper: config error: {exc}", file=sys.stderr)
        return 2
    except InventoryError as exc:
        print(f"boxkeeper: {exc}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        print(f"boxkeeper: database error: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
              file=sys.stderr)
        return 1
    finally:
        close_all()


if __name__ == "__main__":
    sys.exit(main())
