"""Micro-benchmark: CPU of the 7 process checks of config/agent.example.yaml sharing one
ProcessTable, one fresh scan per round (as every second in bench/agent_bench.py).

Run: .venv/bin/python bench/proc_micro.py [--rounds N]
"""

from __future__ import annotations

import argparse
import resource

from agent.checks.process import ProcessCheck, ProcessSpec
from agent.proctable import ProcessTable


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    now = [0.0]
    table = ProcessTable(clock=lambda: now[0])
    checks = [ProcessCheck(ProcessSpec(name=n, match=m), psutil=table.named(m)) for n, m in
              [("nginx", "nginx"), ("httpd", "httpd"), ("mysqld", "mysqld"), ("redis", "redis-server"),
               ("memcached", "memcached"), ("crond", "crond")]]
    checks.append(ProcessCheck(ProcessSpec(name="push-server", cmdline_regex="push-server"), psutil=table))
    for c in checks:
        c.run(10.0)
    start = _cpu()
    for _ in range(args.rounds):
        now[0] += 1.0
        for c in checks:
            c.run(10.0)
    n = len(list(table.process_iter()))
    print(f"{(_cpu() - start) / args.rounds * 1000:.3f} ms per round of 7 checks ({n} processes)")


if __name__ == "__main__":
    main()
