"""A `good` Bitrix module update on 8 test boxes as one rollout (canary, then batches of 4), against
the slowest single-box run and against ansible-core running the same commands with ``forks: 4``.

  single    each box alone, one after another (the runtime's ``run``: the engine, state in SQLite,
            one SSH connection per run); the slowest of the 8 is the yardstick
  rollout   ``WorkflowRuntime.prepare_rollout`` + ``drive_rollout`` over the 8 boxes: the canary
            alone, then 4 at once, then the last 3 (3 batches); target: wall time <= 1.3 x the
            slowest single run x the number of batches
  ansible   the very commands each box's single run sent (recorded), as an ansible-core play over
            the 8 boxes with ``-f 4`` (shell tasks + uri checks from the controller, OpenSSH with the
            pinned known_hosts, pipelining on), like bench/update_bench.py does for one box

    .venv/bin/python bench/rollout_bench.py [--repeat 1] [--out FILE]

Runs as root (the test boxes of tests/boxes); everything it starts is stopped at the end. The
playbook is the shipped bitrix-modules-update minus its testinfra preflight step (a separate
pytest process, which ansible has no equivalent of). Every box is reset and the release staged
again before every variant. Needs ansible-core (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from update_bench import Recorder, http_urls, prepare, without_testinfra  # noqa: E402

from controller.config import ControllerConfig, load  # noqa: E402
from controller.runtime import WorkflowRuntime, executor_for, host_config  # noqa: E402
from controller.store.db import Database  # noqa: E402
from controller.workflows import runs as runstore  # noqa: E402
from controller.workflows.executor import Executor  # noqa: E402
from controller.workflows.playbook import Playbook  # noqa: E402
from controller.workflows.rollouts import RolloutSummary  # noqa: E402
from tests.boxes.box import Box  # noqa: E402
from tests.boxes.fleet import ensure_state_dir  # noqa: E402
from tests.boxes.pytest_plugin import BoxPool  # noqa: E402
from tests.controller.workflows.boxkit import bitrix_vars  # noqa: E402

BOXES = 8
BATCH = 4


def write_config(boxes: list[Box], tmp: Path) -> Path:
    hosts = [{"name": b.name, "portal_url": b.info.portal_url,
              "ssh": {"address": f"{b.info.address}:{b.info.ssh_port}", "user": b.info.ssh_user,
                      "key_file": b.info.ssh_key},
              "vars": {k: v for k, v in bitrix_vars(b).items() if k != "portal_url"}} for b in boxes]
    state = tmp / "state"
    state.mkdir()
    (state / "known_hosts").write_text("".join(b.info.known_hosts.strip() + "\n" for b in boxes))
    path = tmp / "controller.yaml"
    path.write_text(yaml.safe_dump({"state_dir": str(state), "database": f"sqlite:///{state}/bench.db",
                                    "clients": [{"name": "bench", "hosts": hosts}]}))
    return path


class Recording:
    """The runtime's executors, each wrapped in a Recorder (the commands of each host's last run)."""

    def __init__(self, cfg: ControllerConfig, known_hosts: Path) -> None:
        self.cfg, self.known_hosts = cfg, str(known_hosts)
        self.last: dict[str, Recorder] = {}

    def __call__(self, host: str) -> Executor:
        recorder = Recorder(executor_for(host_config(self.cfg, host), self.known_hosts))  # type: ignore[arg-type]
        self.last[host] = recorder
        return recorder


def unsafe(value: str) -> str:
    """A YAML scalar ansible will not template (JSON string escapes are YAML double-quoted ones)."""
    return "!unsafe " + json.dumps(value)


def ansible_files(boxes: list[Box], recorded: dict[str, Recorder], pb: Playbook, tmp: Path,
                  known: Path) -> tuple[Path, Path]:
    lines = ["boxes:", "  hosts:"]
    counts, checks = set(), set()
    for b in boxes:
        rec, i = recorded[b.name], b.info
        urls = http_urls(b, pb)
        counts.add(len(rec.commands))
        checks.add(len(urls))
        lines += [f"    {b.name}:",
                  f"      ansible_host: {i.address}", f"      ansible_port: {i.ssh_port}",
                  f"      ansible_user: {i.ssh_user}", f"      ansible_ssh_private_key_file: {i.ssh_key}",
                  "      ansible_python_interpreter: /usr/bin/python3",
                  "      ansible_ssh_common_args: "
                  f"'-o StrictHostKeyChecking=yes -o UserKnownHostsFile={known}'",
                  "      bk_cmds:"]
        lines += [f"        - {unsafe(c)}" for c in rec.commands]
        lines.append("      bk_env:")
        lines += [f"        {k}: {unsafe(v)}" for k, v in {"LANG": "C", "LC_ALL": "C", **rec.env}.items()]
        lines.append("      bk_urls:")
        lines += [f"        - {unsafe(u)}" for u in urls]
    lines += ["local:", "  hosts:", "    localhost:", "      ansible_connection: local",
              f"      ansible_python_interpreter: {sys.executable}"]
    inventory = tmp / "inventory.yaml"
    inventory.write_text("\n".join(lines) + "\n")
    tasks: list[dict[str, object]] = []
    for n in range(max(counts)):
        tasks.append({"name": f"step {n}", "ansible.builtin.shell": f"{{{{ bk_cmds[{n}] }}}}",
                      "environment": "{{ bk_env }}", "timeout": 600, "when": f"bk_cmds | length > {n}"})
    for n in range(max(checks)):
        tasks.append({"name": f"http check {n}", "ansible.builtin.uri": {"url": f"{{{{ bk_urls[{n}] }}}}",
                                                                          "status_code": 200},
                      "delegate_to": "localhost", "when": f"bk_urls | length > {n}"})
    play = tmp / "ansible-play.json"  # JSON is YAML
    play.write_text(json.dumps([{"hosts": "boxes", "gather_facts": False, "tasks": tasks}]))
    return play, inventory


def run_ansible(boxes: list[Box], play: Path, inventory: Path) -> float:
    for b in boxes:
        prepare(b, "good")
    env = {**os.environ, "ANSIBLE_PIPELINING": "1", "ANSIBLE_HOST_KEY_CHECKING": "True",
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(play.parent / "ansible-tmp"),
           "ANSIBLE_SSH_CONTROL_PATH_DIR": str(play.parent / "cp")}
    ansible = Path(sys.executable).with_name("ansible-playbook")
    started = time.monotonic()
    out = subprocess.run([str(ansible), "-f", str(BATCH), "-i", str(inventory), str(play)],
                         capture_output=True, text=True, env=env, timeout=1800, check=False)
    took = time.monotonic() - started
    if out.returncode != 0:
        raise RuntimeError(f"ansible variant failed: {out.stdout[-2000:]} {out.stderr[-500:]}")
    return took


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", default=None, help="also write the results to this file")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bk-rollout-"))
    pool = BoxPool(ensure_state_dir(Path(tempfile.mkdtemp(prefix="bxr-", dir="/tmp")), with_1c=False))
    load_before = os.getloadavg()
    try:
        boxes = pool.acquire(BOXES)
        cfg = load(str(write_config(boxes, tmp)))
        db = Database(cfg.database)
        db.upgrade()
        known = tmp / "state" / "known_hosts"
        recording = Recording(cfg, known)  # what each run sends, for the ansible variant
        runtime = WorkflowRuntime(cfg, db, executors=recording)
        pb_path = tmp / "bench-playbook.yaml"
        pb = without_testinfra(tmp)
        names = [b.name for b in boxes]
        singles: list[list[float]] = []
        walls: list[float] = []
        ansible_walls: list[float] = []
        spans: list[list[float]] = []
        for _ in range(args.repeat):  # interleaved, so load changes hit every variant alike
            took: list[float] = []
            for b in boxes:
                prepare(b, "good")
                started = time.monotonic()
                run = runtime.run(str(pb_path), b.name, {}, started_by="bench")
                took.append(time.monotonic() - started)
                assert run.state == "SUCCEEDED", (b.name, run.error)
            singles.append(took)
            for b in boxes:
                prepare(b, "good")
            started = time.monotonic()
            rollout_id = runtime.prepare_rollout(str(pb_path), names, {}, batch=BATCH, started_by="bench")
            done = runtime.drive_rollout(rollout_id, str(pb_path), {}, started_by="bench")
            walls.append(time.monotonic() - started)
            assert done.state == "SUCCEEDED", done
            spans.append(batch_spans(db, done))
            play, inventory = ansible_files(boxes, recording.last, pb, tmp, known)
            ansible_walls.append(run_ansible(boxes, play, inventory))
        batches = done.batches
        db.dispose()
        report(args.out, singles, walls, ansible_walls, spans, batches,
               len(recording.last[names[0]].commands), load_before, args.repeat)
    finally:
        for socket_path in (tmp / "cp").glob("*"):  # ansible's ControlPersist masters: stop them now
            subprocess.run(["ssh", "-S", str(socket_path), "-O", "exit", "box"], capture_output=True,
                           check=False)
        pool.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def batch_spans(db: Database, done: RolloutSummary) -> list[float]:
    """Per batch: from its first run's creation to its last run's end (the rest of the wall time is
    the rollout's own: checking every host's variables, recording, polling between batches)."""
    spans = []
    with db.read_session() as s:
        for number in range(done.batches):
            runs = [runstore.summary(s, h.run_id, with_timeline=False) for h in done.hosts
                    if h.batch == number and h.run_id is not None]
            spans.append(max(r.finished_at or 0.0 for r in runs) - min(r.created_at for r in runs))
    return spans


def report(out: str | None, singles: list[list[float]], walls: list[float], ansible: list[float],
           spans: list[list[float]], batches: int, commands: int, load_before: tuple[float, float, float],
           repeat: int) -> None:
    load = os.getloadavg()
    lines = [
        "# Rollout benchmark",
        "",
        f"Command: `.venv/bin/python bench/rollout_bench.py --repeat {repeat}` "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        f"Machine: {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"load average before {load_before[0]:.1f} / {load_before[1]:.1f} / {load_before[2]:.1f}, "
        f"after {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
        "(other sessions were running their tests at the same time)",
        "",
        f"A `good` release on {BOXES} test boxes; bitrix-modules-update without its testinfra step "
        f"({commands} remote commands per box plus the HTTP checks); every box reset before every variant.",
        "",
        "| round | slowest single | median single | rollout wall | ratio to slowest x batches | ansible -f 4 "
        "| ansible / rollout |",
        "|---|---|---|---|---|---|---|",
    ]
    for n, (single, wall, ans) in enumerate(zip(singles, walls, ansible, strict=True), 1):
        slowest = max(single)
        lines.append(f"| {n} | {slowest:.2f} s | {statistics.median(single):.2f} s | {wall:.2f} s "
                     f"| **{wall / (slowest * batches):.2f}x** ({batches} batches) | {ans:.2f} s "
                     f"| {ans / wall:.1f}x |")
    lines += ["", "Single runs (s): " + "; ".join(", ".join(f"{t:.2f}" for t in s) for s in singles),
              "", "Rollout batches, first run created → last run ended (s): "
              + "; ".join(" + ".join(f"{t:.2f}" for t in sp) + f" = {sum(sp):.2f} of {w:.2f} wall"
                          for sp, w in zip(spans, walls, strict=True)), ""]
    if out:
        Path(out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
