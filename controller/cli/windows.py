"""``boxkeeper windows add|list|scheduler``: update windows (scheduled runs).

::

    boxkeeper windows add NAME (--host H | --client C) --playbook P --cron "0 3 * * 6" --duration 120
                          [--timezone Europe/Moscow] [--var k=v ...]
    boxkeeper windows list [--json]    (read-only)
    boxkeeper windows edit NAME [--host H | --client C] [--playbook P] [--cron C] [--duration M]
                           [--timezone Z] [--var k=v ...]      (--var replaces the window's variables)
    boxkeeper windows disable|enable|delete NAME
    boxkeeper windows changes [NAME] [--json]   who added, edited, disabled, enabled, deleted (read-only)
    boxkeeper windows scheduler        run the window scheduler in the foreground (Ctrl-C stops it)

Every change is recorded with the operator (``cli:<login>``); a running ``boxkeeper serve`` picks
it up within 30 s. Exit codes: 0 ok, 1 no such window, 2 a wrong value.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time

from controller.cli.common import Cli, actor, open_db, read_db
from controller.cli.incidents import when
from controller.workflows import window_changes
from controller.workflows.loader import parse_var_args
from controller.workflows.windows import (
    UnknownWindowError,
    add_window,
    delete_window,
    describe_windows,
    edit_window,
    set_enabled,
)


def register(cli: Cli) -> None:
    _, verbs = cli.group("windows", "update windows (scheduled runs)")
    p = verbs.command("add", "add an update window", cmd_add)
    p.add_argument("name")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--host")
    target.add_argument("--client")
    p.add_argument("--playbook", required=True)
    p.add_argument("--cron", required=True, help='5 fields in the window\'s time zone, e.g. "0 3 * * 6"')
    p.add_argument("--duration", type=int, required=True, help="minutes")
    p.add_argument("--timezone", default=None, help="default: the client's (or host's) time zone")
    p.add_argument("--var", action="append", metavar="K=V")
    p = verbs.command("list", "windows, next start and recent occurrences", cmd_list)
    p.add_argument("--json", action="store_true")
    p = verbs.command("edit", "change a window (only the options given)", cmd_edit)
    p.add_argument("name")
    target = p.add_mutually_exclusive_group()
    target.add_argument("--host")
    target.add_argument("--client")
    p.add_argument("--playbook")
    p.add_argument("--cron")
    p.add_argument("--duration", type=int, help="minutes")
    p.add_argument("--timezone")
    p.add_argument("--var", action="append", metavar="K=V", help="replaces the window's variables")
    for verb, text, handler in (
            ("disable", "stop a window from starting (kept, with its history)", cmd_disable),
            ("enable", "let a disabled window start again", cmd_enable),
            ("delete", "delete a window and its occurrences", cmd_delete)):
        p = verbs.command(verb, text, handler)
        p.add_argument("name")
    p = verbs.command("changes", "who changed which window, and how", cmd_changes)
    p.add_argument("name", nargs="?")
    p.add_argument("--json", action="store_true")
    p = verbs.command("scheduler", "run the window scheduler in the foreground", cmd_scheduler)
    p.add_argument("--known-hosts", default=None)


def cmd_add(args: argparse.Namespace) -> int:
    cfg, db = open_db(args)
    if args.client:
        client = cfg.client(args.client)
        target, zone = f"client:{args.client}", client.timezone if client else "UTC"
    else:
        found = cfg.host(args.host)
        target, zone = args.host, found[1].timezone if found else "UTC"
    with db.session() as s:
        window = add_window(s, name=args.name, target=target, playbook=args.playbook, cron=args.cron,
                            duration_minutes=args.duration, timezone=args.timezone or zone,
                            variables=parse_var_args(args.var), now=time.time(), actor=actor())
        print(f"window {window.name}: {target}, {window.playbook}, '{window.cron}' {window.timezone}, "
              f"{window.duration_minutes} min")
    return 0


def cmd_edit(args: argparse.Namespace) -> int:
    cfg, db = open_db(args)
    target = f"client:{args.client}" if args.client else args.host
    if args.client and cfg.client(args.client) is None:
        print(f"boxkeeper: unknown client {args.client!r}", file=sys.stderr)
        return 2
    try:
        with db.session() as s:
            changes = edit_window(s, args.name, actor=actor(), now=time.time(), target=target,
                                  playbook=args.playbook, cron=args.cron, duration_minutes=args.duration,
                                  timezone=args.timezone,
                                  variables=parse_var_args(args.var) if args.var is not None else None)
    except UnknownWindowError as exc:
        print(f"boxkeeper: {exc}", file=sys.stderr)
        return 1
    if not changes:
        print(f"window {args.name}: nothing changed")
    for key, (before, after) in changes.items():
        print(f"window {args.name}: {key}: {before!r} -> {after!r}")
    return 0


def _switch(args: argparse.Namespace, enabled: bool) -> int:
    _cfg, db = open_db(args)
    try:
        with db.session() as s:
            changed = set_enabled(s, args.name, enabled, actor=actor(), now=time.time())
    except UnknownWindowError as exc:
        print(f"boxkeeper: {exc}", file=sys.stderr)
        return 1
    word = "enabled" if enabled else "disabled"
    print(f"window {args.name}: {word}" if changed else f"window {args.name}: already {word}")
    return 0


def cmd_disable(args: argparse.Namespace) -> int:
    return _switch(args, False)


def cmd_enable(args: argparse.Namespace) -> int:
    return _switch(args, True)


def cmd_delete(args: argparse.Namespace) -> int:
    _cfg, db = open_db(args)
    try:
        with db.session() as s:
            delete_window(s, args.name, actor=actor(), now=time.time())
    except UnknownWindowError as exc:
        print(f"boxkeeper: {exc}", file=sys.stderr)
        return 1
    print(f"window {args.name}: deleted")
    return 0


def cmd_changes(args: argparse.Namespace) -> int:
    _cfg, db = read_db(args)
    with db.read_session() as s:
        rows = window_changes.history(s, args.name)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        detail = ", ".join(f"{k}: {b!r} -> {a!r}" for k, (b, a) in r["changes"].items())
        shown = f" ({detail})" if detail else ""
        print(f"{when(r['at'])}  {r['window']}: {r['action']} by {r['actor']}{shown}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    _cfg, db = read_db(args)
    with db.read_session() as s:
        rows = describe_windows(s)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for w in rows:
        print(f"{w['name']}: {w['target']} {w['playbook']} '{w['cron']}' {w['timezone']} "
              f"{w['duration_minutes']} min" + ("" if w["enabled"] else " (DISABLED)"))
        for o in w["occurrences"]:
            at = time.strftime("%Y-%m-%d %H:%M", time.localtime(o["scheduled_for"]))
            print(f"    {at} {o['status']}: {o['detail']}")
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    from controller.runtime import WorkflowRuntime

    cfg, db = open_db(args)
    scheduler = WorkflowRuntime(cfg, db, known_hosts=getattr(args, "known_hosts", None)).window_scheduler()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    scheduler.start()
    print("window scheduler running (Ctrl-C stops it)")
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        scheduler.stop()
    return 0
