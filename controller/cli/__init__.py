"""``boxkeeper``: the controller's command line, one module per noun.

::

    boxkeeper serve [--listen ADDR] [--ready-file F] [--no-monitor] [--workers N]
    boxkeeper migrate
    boxkeeper status [--json]                                   fleet table
    boxkeeper hosts add|list|revoke|trust|unquarantine ...
    boxkeeper operators add|list|remove ...
    boxkeeper incidents [--open] ... | incidents show|ack|resolve|note ID
    boxkeeper maintenance mute|unmute|list ...
    boxkeeper update run|reconcile ...                         (--hosts/--client/--all: a rollout)
    boxkeeper runs [--json] [--client C] [--host H] [--state S] [--since T] [--until T]
    boxkeeper runs show|follow|rollback ID
    boxkeeper rollouts [--json] | rollouts show|pause|resume|abort ID
    boxkeeper windows add|list|edit|disable|enable|delete|changes|scheduler ...
    boxkeeper releases list|hold|release ...
    boxkeeper report --client C --month YYYY-MM [--format F] [--out FILE]
    boxkeeper worklog add|list ...

Every command takes ``--config F`` (default ``$BOXKEEPER_CONFIG``). Exit codes: 0 ok, 1 the
operation failed (unknown host, database error or not migrated), 2 the config (or a usage) is
wrong; ``update run`` has its own (see controller/cli/update.py). Adding a command: a module
with ``register(cli)`` (see :mod:`controller.cli.common`) and one line in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sqlalchemy.exc import SQLAlchemyError

from controller.cli import (
    hosts,
    incidents,
    maintenance,
    migrate,
    operators,
    releases,
    report,
    rollouts,
    runs,
    serve,
    status,
    update,
    windows,
    worklog,
)
from controller.cli.common import Cli, SchemaError, add_config_argument, close_all
from controller.errors import ConfigError, InventoryError, OperatorTokenError

COMMANDS = (serve, migrate, status, hosts, operators, incidents, maintenance, update, runs, rollouts,
            windows, releases, report, worklog)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="boxkeeper", description="boxkeeper controller")
    add_config_argument(root, subcommand=False)
    cli = Cli(root.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    for module in COMMANDS:
        module.register(cli)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except (ConfigError, OperatorTokenError) as exc:
        print(f"boxkeeper: config error: {exc}", file=sys.stderr)
        return 2
    except (InventoryError, SchemaError) as exc:
        print(f"boxkeeper: {exc}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        print(f"boxkeeper: database error: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
              file=sys.stderr)
        return 1
    finally:
        close_all()
