"""Several boxes in one state dir: started in parallel, found again, taken down together."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import procs
from .box import Box, prepare
from .errors import BoxError
from .layout import BoxLayout


def ensure_state_dir(state_dir: Path, *, with_1c: bool) -> Path:
    if os.geteuid() != 0:
        raise BoxError("test boxes need root (sshd, mount, cgroups, chown to bitrix/postgres)")
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    state_dir.chmod(0o755)
    # PHP-FPM workers and cron run as `bitrix`, PostgreSQL as `postgres`: they must reach the boxes.
    for parent in state_dir.parents:
        if not parent.stat().st_mode & 0o001:
            raise BoxError(
                f"{parent} is not searchable by other users (needs o+x): PHP as `bitrix`"
                f"{' and PostgreSQL as `postgres`' if with_1c else ''} could not reach the boxes"
            )
    if len(str(state_dir)) > 60:
        raise BoxError(f"state dir path too long for unix sockets (max 60 chars): {state_dir}")
    return state_dir


def up(state_dir: Path, count: int, *, with_1c: bool = False, cron_interval: float = 60.0) -> list[Box]:
    """Start `count` boxes in parallel; on any failure, take the started ones down and raise."""
    state_dir = ensure_state_dir(state_dir, with_1c=with_1c)
    prepare()
    if with_1c:
        from . import postgres

        postgres.template()
    with ThreadPoolExecutor(max_workers=max(1, count)) as pool:
        futures = [
            pool.submit(Box.create, state_dir, with_1c=with_1c, cron_interval=cron_interval)
            for _ in range(count)
        ]
        results: list[Box] = []
        errors: list[BaseException] = []
        for future in futures:
            try:
                results.append(future.result())
            except Exception as exc:
                errors.append(exc)
    if errors:
        for box in results:
            box.down()
        raise errors[0]
    return results


def load_all(state_dir: Path) -> list[Box]:
    boxes = []
    for path in sorted(state_dir.glob("box*/box.json")):
        boxes.append(Box.load(state_dir, path.parent.name))
    return boxes


def down(state_dir: Path) -> list[str]:
    """Stop every box in the state dir; return what is still alive (should be empty)."""
    state_dir = state_dir.resolve()
    boxes = load_all(state_dir)
    with ThreadPoolExecutor(max_workers=max(1, len(boxes))) as pool:
        list(pool.map(lambda b: b.down(), boxes))
    # Directories of boxes that failed half-way have no box.json: stop what their pid files name.
    for root in state_dir.glob("box*"):
        if not (root / "box.json").exists() and root.name[3:].isdigit():
            layout = BoxLayout(state_dir, int(root.name[3:]))
            for pid_file in layout.run.glob("*.pid"):
                procs.stop(pid_file)
    return leftovers(state_dir, boxes)


def leftovers(state_dir: Path, boxes: list[Box]) -> list[str]:
    found = [f"pid {p.pid}: {' '.join(p.cmdline())}" for p in procs.processes_of(state_dir)]
    for box in boxes:
        lay = box.layout
        for port in (lay.ssh_port, lay.http_port, lay.ext_http_port, lay.db_port, lay.pg_port):
            if procs.port_open(lay.address, port):
                found.append(f"{lay.address}:{port} still listening")
    return found


def write_infos(state_dir: Path, boxes: list[Box]) -> None:
    (state_dir / "boxes.json").write_text(
        json.dumps([b.info.to_dict() for b in load_all(state_dir)], indent=2)
    )
