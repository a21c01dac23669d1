"""``boxkeeper operators add|set|list|remove``: operator API tokens, roles and clients (a file, not
the database; see :mod:`controller.operators`).

The CLI itself runs on the controller host with the config and the database at hand: whoever can
run it can do what an ``admin`` can, so its commands take no operator token and check no role.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from controller import operators
from controller.cli.common import Cli, load_config
from controller.errors import InventoryError


def _client_list(text: str) -> frozenset[str]:
    names = frozenset(c.strip() for c in text.split(",") if c.strip())
    if not names:
        raise argparse.ArgumentTypeError("a comma-separated list of client names, e.g. acme,beta")
    return names


def register(cli: Cli) -> None:
    _, verbs = cli.group("operators", "operator API tokens, roles and clients")
    p = verbs.command("add", "add an operator; prints the token once", cmd_add)
    p.add_argument("name")
    p.add_argument("--role", choices=operators.ROLES, default=operators.LEGACY_ROLE,
                   help="viewer (read), operator (+ ack, notes, runs), admin (+ windows, hosts, tokens); "
                        "default: admin")
    p.add_argument("--clients", type=_client_list, metavar="A,B",
                   help="only these clients' hosts (default: every client)")
    p.add_argument("--json", action="store_true")
    p = verbs.command("set", "change an operator's role or clients (the token stays)", cmd_set)
    p.add_argument("name")
    p.add_argument("--role", choices=operators.ROLES)
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--clients", type=_client_list, metavar="A,B", help="only these clients' hosts")
    scope.add_argument("--all-clients", action="store_true", help="every client")
    p = verbs.command("list", "list operators with their role and clients", cmd_list)
    p.add_argument("--json", action="store_true")
    p = verbs.command("remove", "remove an operator (its token stops working)", cmd_remove)
    p.add_argument("name")


def _known_clients(args: argparse.Namespace, clients: frozenset[str] | None) -> None:
    cfg = load_config(args)
    unknown = sorted((clients or frozenset()) - {c.name for c in cfg.clients})
    if unknown:
        raise InventoryError(f"unknown client(s) {', '.join(unknown)} (not in {cfg.source})")


def _scope(op: operators.Operator) -> str:
    return "every client" if op.clients is None else ",".join(sorted(op.clients))


def cmd_add(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    _known_clients(args, args.clients)
    path = Path(cfg.operator_tokens_file)
    token = operators.add_operator(path, args.name, role=args.role, clients=args.clients)
    if args.json:
        print(json.dumps({"operator": args.name, "role": args.role,
                          "clients": sorted(args.clients) if args.clients else None, "token": token}))
    else:
        scope = "every client" if args.clients is None else ",".join(sorted(args.clients))
        print(f"operator {args.name} ({args.role}, {scope}) added to {cfg.operator_tokens_file}. "
              f"Token (shown once):\n{token}")
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    if args.role is None and args.clients is None and not args.all_clients:
        raise InventoryError("nothing to change: give --role, --clients or --all-clients")
    _known_clients(args, args.clients)
    op = operators.set_operator(Path(cfg.operator_tokens_file), args.name, role=args.role,
                                clients=args.clients, all_clients=args.all_clients)
    print(f"operator {op.name}: {op.role}, {_scope(op)}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    ops = operators.read_file(Path(cfg.operator_tokens_file))
    if args.json:
        print(json.dumps([{"name": op.name, "role": op.role,
                           "clients": sorted(op.clients) if op.clients is not None else None} for op in ops]))
        return 0
    for op in ops:
        print(f"{op.name}\t{op.role}\t{_scope(op)}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    operators.remove_operator(Path(cfg.operator_tokens_file), args.name)
    print(f"operator {args.name} removed")
    return 0
