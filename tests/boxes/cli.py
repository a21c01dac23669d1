"""`python -m tests.boxes up|stage|fault|down|service|reset` — test boxes for people and scripts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import faults, fleet, portal
from .box import Box
from .errors import BoxError
from .info import infos_to_json


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.boxes", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start N boxes, print their JSON (a list)")
    up.add_argument("--count", type=int, default=1)
    up.add_argument("--with-1c", action="store_true", help="also PostgreSQL and the 1C doubles")
    up.add_argument(
        "--cron-interval", type=float, default=60.0, help="seconds between cron runs (default 60)"
    )
    stage = sub.add_parser("stage", help="publish a release on a box's update server")
    stage.add_argument("--box", required=True)
    stage.add_argument("--release", required=True, help=f"one of: {', '.join(portal.releases())}, none")
    fault = sub.add_parser("fault", help="inject a fault (or --undo it)")
    fault.add_argument("--box", required=True)
    fault.add_argument("--fault", required=True, metavar="KIND")
    fault.add_argument("--undo", action="store_true")
    service = sub.add_parser("service", help="start|stop|restart|status a box's server (boxctl)")
    service.add_argument("--box", required=True)
    service.add_argument("action", choices=["start", "stop", "restart", "status", "is-active"])
    service.add_argument("service")
    reset = sub.add_parser("reset", help="put a box back to its pristine state")
    reset.add_argument("--box", required=True)
    sub.add_parser("info", help="print the JSON of the boxes in the state dir")
    sub.add_parser("down", help="stop every box of the state dir")
    for p in (up, stage, fault, service, reset, *sub.choices.values()):
        if not any(a.dest == "state_dir" for a in p._actions):
            p.add_argument("--state-dir", type=Path, required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except BoxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir.resolve()
    if args.command == "up":
        boxes = fleet.up(state_dir, args.count, with_1c=args.with_1c, cron_interval=args.cron_interval)
        fleet.write_infos(state_dir, boxes)
        print(infos_to_json([b.info for b in boxes]))
        return 0
    if args.command == "info":
        print(infos_to_json([b.info for b in fleet.load_all(state_dir)]))
        return 0
    if args.command == "down":
        left = fleet.down(state_dir)
        for line in left:
            print(f"left running: {line}", file=sys.stderr)
        return 1 if left else 0
    box = Box.load(state_dir, args.box)
    if args.command == "stage":
        portal.stage(box.layout, args.release)
    elif args.command == "fault":
        faults.apply(box, args.fault, undo=args.undo)
    elif args.command == "reset":
        box.reset()
    elif args.command == "service":
        return _service(box, args.action, args.service)
    return 0


def _service(box: Box, action: str, service: str) -> int:
    if action in ("status", "is-active"):
        running = box.is_running(service)
        print("active" if running else "inactive")
        return 0 if running else 3
    if action in ("stop", "restart"):
        box.stop_service(service)
    if action in ("start", "restart"):
        box.start_service(service)
    return 0
