"""Two versions of the agent side by side: same checks, same stand-ins, the same minutes.

Command (from the repository root; ``--cycles 20``: about 6 minutes)::

    git archive HEAD agent | tar -x -C /tmp/agent-before     # the version to compare with
    .venv/bin/python bench/agent_ab.py --before /tmp/agent-before --cycles 20 [--after-first]

agent_bench.py measures one agent beside node_exporter; two of its runs of different code are
minutes apart, and this VM's speed moves by ±20 % in that time (node_exporter's own CPU per scrape
moved from 14.9 to 12.0 ms between two runs of session 7). Here both agents run at once with the
example config as it is (15 s cycles, one push each, both scraped once per cycle), the older one
imported from ``--before`` (PYTHONPATH), the other from this checkout, so the machine's speed is
the same for both; ``--after-first`` starts this checkout's agent first (the other 0.37 s later),
to show that the order does not make the difference. Printed: CPU per cycle of each (schedstat,
all threads, as agent_bench.py), cycle by cycle, and RSS/PSS at the end. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import agent_bench as bench
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.agent.agentproc import AgentProcess, free_port, wait_for  # noqa: E402
from tests.agent.pushsink import PushSink  # noqa: E402

PERIOD = 15.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--before", type=Path, required=True, help="a directory holding the other agent/")
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--after-first", action="store_true", help="start this checkout's agent first")
    args = parser.parse_args()
    if not (args.before / "agent" / "__init__.py").is_file() or not 1 <= args.cycles <= 240:
        parser.error("--before DIR with DIR/agent/__init__.py; --cycles 1..240")
    with tempfile.TemporaryDirectory(prefix="boxkeeper-ab-") as tmp:
        workdir = Path(tmp)
        portal = bench.Portal(bench.HOST)
        portal.start()
        sink = PushSink(bench.HOST, token=bench.TOKEN, keep_alive=True).start()
        listener = bench.closing_listener(bench.HOST)
        backup = workdir / "backup" / "bench.tar.gz"
        backup.parent.mkdir()
        backup.write_bytes(os.urandom(1024 * 1024 + 1))
        token = workdir / "agent.token"
        token.write_text(bench.TOKEN + "\n")
        token.chmod(0o600)
        checks = bench.bench_checks(portal, listener.getsockname()[1], str(backup.parent / "*.tar.gz"), None)
        agents = {
            label: AgentProcess(workdir, {
                "host": f"bench-{label}", "interval": "15s", "listen": f"127.0.0.1:{free_port('127.0.0.1')}",
                "controller": {"url": sink.url, "token_file": str(token), "push_interval": "15s"},
                "spool": {"dir": str(workdir / f"spool-{label}"), "max_bytes": "64MiB"}, "checks": checks,
            }, f"agent-{label}")
            for label in ("before", "after")
        }
        order = ["after", "before"] if args.after_first else ["before", "after"]
        try:
            with bench.stand_in_processes(workdir):
                for i, label in enumerate(order):
                    if i:
                        time.sleep(0.37)
                    env = os.environ.pop("PYTHONPATH", None)
                    if label == "before":
                        os.environ["PYTHONPATH"] = str(args.before.resolve())
                    agents[label].start()  # (the child takes the environment as it is now)
                    os.environ.pop("PYTHONPATH", None)
                    if env is not None:
                        os.environ["PYTHONPATH"] = env
                for agent in agents.values():
                    agent.wait_ready()
                wait_for("a report of each", lambda: len(sink.seqs()) >= 2, 60)
                time.sleep(3)
                procs = {label: psutil.Process(a.proc.pid) for label, a in agents.items() if a.proc}
                first = {label: bench.task_cpu_ns(p.pid) for label, p in procs.items()}
                last = dict(first)
                cycles: dict[str, list[float]] = {label: [] for label in procs}
                load = os.getloadavg()[0]
                start = time.monotonic()
                for cycle in range(args.cycles):
                    for agent in agents.values():
                        bench.scrape(agent.metrics_url)
                    time.sleep(max(0.0, start + (cycle + 1) * PERIOD - time.monotonic()))
                    for label, p in procs.items():
                        now = bench.task_cpu_ns(p.pid)
                        cycles[label].append(bench.task_cpu_delta(last[label], now)[0] * 1000)
                        last[label] = now
                print(f"{args.cycles} cycles of {PERIOD:g} s, started {' then '.join(order)}; "
                      f"load average {load:.2f} -> {os.getloadavg()[0]:.2f}")
                for label, p in procs.items():
                    seconds, _ = bench.task_cpu_delta(first[label], bench.task_cpu_ns(p.pid))
                    total = seconds / args.cycles * 1000
                    mem = p.memory_full_info()
                    per_cycle = " ".join(f"{x:.1f}" for x in cycles[label])
                    print(f"{label:6s}: {total:.2f} ms per cycle, RSS {mem.rss / 2**20:.1f} MiB, "
                          f"PSS {mem.pss / 2**20:.1f} MiB; cycles: {per_cycle}")
                print(f"after / before: x{sum(cycles['after']) / sum(cycles['before']):.3f}")
                for agent in agents.values():
                    agent.terminate()
        finally:
            for agent in agents.values():
                agent.stop()
            sink.stop()
            portal.stop()
            listener.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
