"""``boxkeeper-agent``: validate a config, run the checks once, or run the agent.

::

    boxkeeper-agent validate --config F          "config OK: N checks", exit 0 (broken config: 2)
    boxkeeper-agent check --config F [--json]    run every check once; exit = worst Nagios code
    boxkeeper-agent run --config F [--listen A]  run the agent (checks, /metrics, push)

Exit codes: ``check`` exits 0/1/2/3 like a Nagios plugin (worst state); a config or token file
that cannot be used exits 2 with the reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TextIO

from agent import __version__
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
    scheduler = CheckScheduler([(c, build_check(c)) for c in cfg.checks], max_workers=8)
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
