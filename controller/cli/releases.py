"""``boxkeeper releases list|hold|release``: releases held for the whole fleet.

::

    boxkeeper releases list [--all] [--json]          held releases (--all: released ones too; read-only)
    boxkeeper releases hold PLAYBOOK RELEASE [--reason TEXT]
    boxkeeper releases release ID                     allow a held release again

A run that rolls back holds its release (docs/workflows.md "Release holds"); runs of a held release
end SKIPPED. ``RELEASE`` is the key the playbook's ``release:`` names (shown by ``releases list``
and in the rolled-back run's incident), e.g. ``3.1.10.1`` for 1c-config-update. Exit codes: 0 ok,
1 no such held release, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from controller.cli.common import Cli, actor, open_db, read_db, table
from controller.cli.incidents import when
from controller.workflows import releases


def register(cli: Cli) -> None:
    _, verbs = cli.group("releases", "releases held for the fleet (after a rollback)")
    p = verbs.command("list", "held releases", cmd_list)
    p.add_argument("--all", action="store_true", help="released ones too")
    p.add_argument("--json", action="store_true")
    p = verbs.command("hold", "hold a release by hand: its runs end SKIPPED", cmd_hold)
    p.add_argument("playbook", help="the playbook's name, e.g. 1c-config-update")
    p.add_argument("release", help="the release key, e.g. 3.1.10.1")
    p.add_argument("--reason", default="")
    p = verbs.command("release", "allow a held release again", cmd_release)
    p.add_argument("id", type=int)


def cmd_list(args: argparse.Namespace) -> int:
    _cfg, db = read_db(args)
    with db.read_session() as s:
        holds = releases.list_holds(s, include_released=args.all)
    if args.json:
        print(json.dumps([h.to_dict() for h in holds], indent=2, ensure_ascii=False))
        return 0
    if not holds:
        print("no releases held" if not args.all else "no releases were ever held")
        return 0
    rows = [["ID", "STATE", "PLAYBOOK", "RELEASE", "HELD BY", "HELD AT", "RELEASED BY", "REASON"]]
    for h in holds:
        rows.append([str(h.id), h.state, h.playbook, h.release, h.held_by, when(h.held_at),
                     h.released_by or "-", h.reason or "-"])
    print(table(rows))
    return 0


def cmd_hold(args: argparse.Namespace) -> int:
    _cfg, db = open_db(args)
    if not releases.normalize(args.release):
        print("boxkeeper: an empty release cannot be held", file=sys.stderr)
        return 2
    with db.session() as s:
        hold, new = releases.hold(s, playbook=args.playbook, release=args.release, actor=actor(),
                                  now=time.time(), reason=args.reason or "held by hand")
    print(f"{'held' if new else 'already held'}: {hold.playbook} release {hold.release} (hold {hold.id}); "
          f"`boxkeeper releases release {hold.id}` allows it again")
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    _cfg, db = open_db(args)
    try:
        with db.session() as s:
            hold = releases.release(s, args.id, actor=actor(), now=time.time())
    except releases.UnknownHoldError as exc:
        print(f"boxkeeper: {exc}", file=sys.stderr)
        return 1
    print(f"released: {hold.playbook} release {hold.release} (hold {hold.id}) is allowed again")
    return 0
