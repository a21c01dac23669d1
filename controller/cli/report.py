"""``boxkeeper report``: the monthly client report, from the stored history (read-only).

::

    boxkeeper report --client acme --month 2026-11 [--format html|md|csv|json] [--out FILE]

Without ``--format`` the format comes from ``--out``'s suffix (.html, .md, .csv, .json), else md.
The month is the client's (its ``timezone``): local midnight to local midnight. How each figure
is computed: docs/reports.md. Exit codes: 0 ok, 1 no such client (or the database is not
migrated), 2 usage (a month not written YYYY-MM names ``--month`` and the form).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from controller.cli.common import Cli, read_db
from controller.reports.build import build_report
from controller.reports.period import BadMonthError, parse_month
from controller.reports.render import FORMATS, render

SUFFIXES = {".html": "html", ".htm": "html", ".md": "md", ".csv": "csv", ".json": "json"}


def month_arg(value: str) -> str:
    try:
        parse_month(value)
    except BadMonthError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value.strip()


def register(cli: Cli) -> None:
    p = cli.command("report", "the monthly client report (availability, incidents, updates, backups, "
                    "work log)", cmd_report)
    p.add_argument("--client", required=True, help="the client")
    p.add_argument("--month", required=True, type=month_arg, metavar="YYYY-MM",
                   help="the month, in the client's time zone, e.g. 2026-11")
    p.add_argument("--format", choices=FORMATS, help="default: from --out's suffix, else md")
    p.add_argument("--out", metavar="FILE", help="write to FILE (default: standard output)")


def output_format(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    if args.out:
        return SUFFIXES.get(Path(args.out).suffix.lower(), "md")
    return "md"


def write_atomically(path: Path, text: str) -> None:
    """The whole file or the old one: a half-written report is never left behind."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cmd_report(args: argparse.Namespace) -> int:
    cfg, db = read_db(args)
    with db.read_session() as session:
        report = build_report(session, client=args.client, month=args.month, now=time.time(),
                              windows=tuple(cfg.maintenance))
    fmt = output_format(args)
    text = render(report, fmt)
    if not args.out:
        sys.stdout.write(text)
        return 0
    path = Path(args.out)
    if not path.parent.is_dir():
        print(f"boxkeeper: --out: no directory {str(path.parent)!r}", file=sys.stderr)
        return 2
    write_atomically(path, text)
    print(f"wrote {path} ({fmt}, {len(text.encode('utf-8'))} bytes): {report['client']} {report['month']}, "
          f"times in {report['timezone']}")
    return 0
