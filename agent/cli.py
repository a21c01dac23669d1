"""``boxkeeper-agent``: validate a config, run the checks once, or run the agent.

::

    boxkeeper-agent validate --config F          "config OK: N checks", exit 0 (broken config: 2)
    boxkeeper-agent check --config F [--json]    run every check once; exit = worst Nagios code
    boxkeeper-agent run --config F [--listen A]  run the agent (checks, /metrics, push)
    boxkeeper-agent discover [--root DIR] [--proc DIR] [--host NAME] [--paths-under-root]
                             [--controller-url URL [--token-file F]] [--listen ADDR]
                             [--rac] [--write FILE [--force]]
                                                 inspect the box (read-only), print a config for it

Exit codes: ``check`` exits 0/1/2/3 like a Nagios plugin (worst state); a config or token file
that cannot be used exits 2 with the reason on stderr. ``discover`` exits 0, or 1 when ``--write``
refuses to replace a file (no ``--force``), 2 on bad options (agent/discover/command.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Optional, TextIO

from agent import __version__
from agent.checks.base import Resources
from agent.checks.registry import build_check
from agent.config import AgentConfig, load
from agent.errors import ConfigError, TokenFileError
from agent.report import CheckReport, Status, worst
from agent.scheduler import CheckScheduler

EXIT_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="boxkeeper-agent",
        description="boxkeeper agent: health checks, metrics and reports for one box.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check the config file and exit")
    p.add_argument("--config", "-c", required=True, help="agent config file (YAML)")

    p = sub.add_parser("check", help="run every check once, print the results, exit with the worst code")
    p.add_argument("--config", "-c", required=True, help="agent config file (YAML)")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")

    p = sub.add_parser("run", help="run the agent: checks, /metrics and reports to the controller")
    p.add_argument("--config", "-c", required=True, help="agent config file (YAML)")
    p.add_argument("--listen", help="address for /metrics, e.g. 127.0.0.1:9847 (overrides the config)")

    p = sub.add_parser("discover", help="inspect this box (read-only) and print an agent config for it")
    p.add_argument("--root", default="/", help="the box's root directory (default /): or a copy, an image")
    p.add_argument("--proc", help="where the box's processes are seen (default: /proc when --root is /; "
                                  "under another root, its pid files are looked up here)")
    p.add_argument("--host", help="the host name to write (default: this machine's name, or the root's "
                                  "/etc/hostname)")
    p.add_argument("--paths-under-root", action="store_true",
                   help="write the paths under --root (a config run here against a copy of a box)")
    p.add_argument("--rac", action="store_true",
                   help="ask the 1C cluster for its infobases (runs the platform's rac, read-only)")
    p.add_argument("--write", metavar="FILE", help="write the config to FILE (mode 0640) instead of stdout")
    p.add_argument("--force", action="store_true", help="with --write: replace an existing FILE")
    p.add_argument("--controller-url", metavar="URL",
                   help="write a live controller: section pushing to URL (default: a commented-out one)")
    p.add_argument("--token-file", metavar="FILE",
                   help="with --controller-url: the token file (default /etc/boxkeeper/agent.token)")
    p.add_argument("--listen", metavar="ADDR", help="the /metrics address to write (default 127.0.0.1:9847)")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "discover":
        if args.force and not args.write:
            parser.error("discover: --force goes with --write FILE")
        from agent.discover.command import run as discover  # lazy: not needed by the other commands

        return discover(root=args.root, proc=args.proc, host=args.host,
                        paths_under_root=args.paths_under_root, write=args.write, force=args.force,
                        out=sys.stdout, err=sys.stderr, rac=args.rac,
                        controller_url=args.controller_url, token_file=args.token_file, listen=args.listen)
    overrides: dict[tuple[str, ...], object] = {}
    if getattr(args, "listen", None):
        overrides[("listen",)] = args.listen
    try:
        cfg = load(args.config, overrides)
        if args.command == "validate":
            print(f"config OK: {len(cfg.checks)} checks")
            return 0
        if args.command == "check":
            return check_command(cfg, as_json=args.json, out=sys.stdout)
        from agent.service import run_agent  # lazy: the service pulls in metrics, push (and logging)

        return run_agent(cfg)
    except (ConfigError, TokenFileError) as exc:
        print(f"boxkeeper-agent: {exc}", file=sys.stderr)
        return EXIT_CONFIG


def check_command(cfg: AgentConfig, *, as_json: bool, out: TextIO) -> int:
    """Run each check once (one attempt, no retries) and print the results."""
    # read-only: a log check reads from the running agent's kept offset but never moves it on
    resources = Resources(host=cfg.host, state_dir=cfg.state_dir, save_state=False)
    scheduler = CheckScheduler([(c, build_check(c, resources)) for c in cfg.checks], max_workers=8)
    try:
        reports = scheduler.run_once()
    finally:
        scheduler.stop()  # no plugin outlives the command
    if as_json:
        rows = [
            {"name": r.name, "status": r.status.name, "summary": r.summary,
             "duration_seconds": r.duration_seconds}
            for r in reports
        ]
        out.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
    else:
        out.write(format_table(reports))
    return int(worst([r.status for r in reports]))


def format_table(reports: Sequence[CheckReport]) -> str:
    if not reports:
        return "no checks configured\n"
    rows = [("NAME", "STATUS", "DURATION", "SUMMARY")]
    rows += [(r.name, r.status.name, f"{r.duration_seconds:.3f}s", r.summary) for r in reports]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]}" for row in rows
    ]
    counts = {s: sum(1 for r in reports if r.status is s) for s in Status}
    lines.append(", ".join(f"{n} {s.name}" for s, n in counts.items() if n))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
