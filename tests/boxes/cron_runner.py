"""Minimal crond of a test box: every --interval seconds runs the `* * * * *` lines of
<root>/etc/crontab and <root>/etc/cron.d/* (format: 5 time fields, user, command). Commented
lines do not run, so a playbook pauses the site's cron by commenting its line, as on a BitrixVM.
Other schedules are ignored. Runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import pwd
import signal
import subprocess
import time
from pathlib import Path


def lines(root: Path) -> list[tuple[str, str]]:
    files = [root / "etc/crontab", *sorted((root / "etc/cron.d").glob("*"))]
    jobs = []
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        for raw in text.splitlines():
            fields = raw.split(None, 6)
            if raw.lstrip().startswith("#") or len(fields) < 7 or fields[:5] != ["*"] * 5:
                continue
            jobs.append((fields[5], fields[6]))
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--path", default="/usr/sbin:/usr/bin:/sbin:/bin")
    args = parser.parse_args()
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    env = {"PATH": args.path, "BOX_ROOT": str(args.root), "LANG": "C.UTF-8", "HOME": "/"}
    while not stopping:
        started = time.monotonic()
        for user, command in lines(args.root):
            try:
                pw = pwd.getpwnam(user)
            except KeyError:
                pw = pwd.getpwnam("root")
            res = subprocess.run(
                ["/bin/sh", "-c", command],
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
                user=pw.pw_uid,
                group=pw.pw_gid,
                extra_groups=[],
            )
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            print(
                f"{stamp} ({user}) {command} -> {res.returncode} {res.stdout.strip()} {res.stderr.strip()}",
                flush=True,
            )
        while not stopping and time.monotonic() - started < args.interval:
            time.sleep(0.2)
    os._exit(0)


if __name__ == "__main__":
    main()
