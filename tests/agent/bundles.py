"""Building the agent's bundle in tests (``python -m agent.bundle``), and a deliberately broken one.

Downloaded wheels are cached in the builder's default cache (``~/.cache/boxkeeper/wheels``), which
survives between test runs; on a clean machine the first build downloads them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def build(out: Path, *extra: str, version: str | None = None, source: Path | None = None) -> list[Path]:
    """Run ``python -m agent.bundle --out OUT ...``; the files it printed."""
    argv = [sys.executable, "-m", "agent.bundle", "--out", str(out), *extra]
    if version:
        argv += ["--version", version]
    if source:
        argv += ["--source", str(source)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, cwd=REPO, check=False)
    assert proc.returncode == 0, proc.stderr
    return [Path(line) for line in proc.stdout.splitlines()]


def broken_agent_source(tmp: Path) -> Path:
    """A copy of the agent whose ``run`` exits at once with an error: installs and answers
    ``--version`` (so the installer takes it), never reports."""
    source = tmp / "broken-agent"
    shutil.copytree(REPO / "agent", source, ignore=shutil.ignore_patterns("__pycache__", "bundle"))
    cli = source / "cli.py"
    text, count = re.subn(r"^def main\(argv: Optional\[list\[str\]\] = None\) -> int:\n",
                          "def main(argv: Optional[list[str]] = None) -> int:\n"
                          "    if argv is None and sys.argv[1:2] == ['run']:\n"
                          "        sys.exit('deliberately broken agent (tests/agent/bundles.py)')\n",
                          cli.read_text(), flags=re.M)
    assert count == 1
    cli.write_text(text)
    return source
