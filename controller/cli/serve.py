"""``boxkeeper serve``: the API, /metrics and the background work (detection, notifications,
run reconciliation, update windows), on the database migrated to the newest schema."""

from __future__ import annotations

import argparse
import logging
import os

from controller.cli.common import Cli, config_path
from controller.config import load


def register(cli: Cli) -> None:
    p = cli.command("serve", "run the controller (API, metrics, monitor)", cmd_serve)
    p.add_argument("--listen", metavar="ADDR", help="override listen (e.g. 127.0.0.1:8470; port 0 = any)")
    p.add_argument("--ready-file", metavar="F", help="write the bound address here once listening")
    p.add_argument("--no-monitor", action="store_true",
                   help="API only: no detection, notifications, run reconciliation, update windows")
    p.add_argument("--workers", type=int, default=int(os.environ.get("BOXKEEPER_WORKERS", "1")),
                   help="API worker processes sharing the socket (default 1; $BOXKEEPER_WORKERS)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def cmd_serve(args: argparse.Namespace) -> int:
    from controller.server import LOG_FORMAT, serve  # uvicorn and the app: only for this command

    overrides: dict[str, object] = {"listen": args.listen} if args.listen else {}
    cfg = load(config_path(args), overrides=overrides)
    logging.basicConfig(level=getattr(logging, args.log_level.upper()), format=LOG_FORMAT)
    return serve(cfg, ready_file=args.ready_file, monitor=not args.no_monitor, log_level=args.log_level,
                 workers=max(1, args.workers))
