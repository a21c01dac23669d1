"""``boxkeeper operators add|list|remove``: operator API tokens (a file, not the database)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from controller import operators
from controller.cli.common import Cli, load_config


def register(cli: Cli) -> None:
    _, verbs = cli.group("operators", "operator API tokens")
    p = verbs.command("add", "add an operator; prints the token once", cmd_add)
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    verbs.command("list", "list operators", cmd_list)
    p = verbs.command("remove", "remove an operator (its token stops working)", cmd_remove)
    p.add_argument("name")


def cmd_add(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    token = operators.add_operator(Path(cfg.operator_tokens_file), args.name)
    if args.json:
        print(json.dumps({"operator": args.name, "token": token}))
    else:
        print(f"operator {args.name} added to {cfg.operator_tokens_file}. Token (shown once):\n{token}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    for op in operators.read_file(Path(cfg.operator_tokens_file)):
        print(op.name)
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    operators.remove_operator(Path(cfg.operator_tokens_file), args.name)
    print(f"operator {args.name} removed")
    return 0
