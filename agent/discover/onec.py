"""A 1C:Enterprise server on the box: platform install dirs, systemd units, cluster registry,
ports. Found and listed only; the 1C checks themselves are a later issue.

Ports: ``--port``/``-port`` (ras, ragent) and ``-regport`` (rmngr) in the unit files, the number
in the registry directory's name (``reg_1541``: rmngr), else the documented defaults 1540 (ragent),
1541 (rmngr), 1545 (ras).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Optional

from agent.discover.boxroot import BoxRoot
from agent.discover.model import OneC, Service
from agent.discover.services import UNIT_DIRS

PLATFORM_GLOBS = ("/opt/1cv8/x86_64/*", "/opt/1C/v8.3/x86_64")
UNIT_GLOBS = ("srv1cv8-*.service", "ras-*.service")
INIT_SCRIPT = "/etc/init.d/srv1cv83"
REGISTRY_PARENT = "/home/usr1cv8/.1cv8/1C/1cv8"
DEFAULT_PORTS = {"ragent": 1540, "rmngr": 1541, "ras": 1545}
_PORT = re.compile(r"(?:^|\s)--?port[= ](\d+)")
_REGPORT = re.compile(r"(?:^|\s)--?regport[= ](\d+)")


def find_onec(root: BoxRoot, processes: Sequence[Service]) -> Optional[OneC]:
    platforms = [p for pattern in PLATFORM_GLOBS for p in root.glob(pattern) if root.is_dir(p)]
    units = [u for d in UNIT_DIRS for pattern in UNIT_GLOBS for u in root.glob(f"{d}/{pattern}")]
    if root.exists(INIT_SCRIPT):
        units.append(INIT_SCRIPT)
    registries = [p for p in root.glob(f"{REGISTRY_PARENT}/reg_*") if root.is_dir(p)]
    registry = f"{REGISTRY_PARENT}/reg_1541" if f"{REGISTRY_PARENT}/reg_1541" in registries else (
        registries[0] if registries else None)
    if not (platforms or units or registry or processes):
        return None
    ports: dict[str, int] = {}
    sources: list[str] = []
    for unit in units:
        text = " ".join(line.partition("=")[2] for line in (root.read_text(unit) or "").splitlines()
                        if line.strip().startswith("ExecStart"))
        role = "ras" if os.path.basename(unit).startswith("ras-") else "ragent"
        if (m := _PORT.search(text)) and role not in ports:
            ports[role] = int(m.group(1))
            sources.append(unit)
        if role == "ragent" and (m := _REGPORT.search(text)) and "rmngr" not in ports:
            ports["rmngr"] = int(m.group(1))
    if registry and "rmngr" not in ports and (m := re.search(r"reg_(\d+)$", registry)):
        ports["rmngr"] = int(m.group(1))
        sources.append(registry)
    source = ", ".join(dict.fromkeys(sources)) if sources else "the documented defaults"
    if sources and len(ports) < len(DEFAULT_PORTS):
        source += "; others: the documented defaults"
    ordered = tuple((role, ports.get(role, port)) for role, port in DEFAULT_PORTS.items())
    return OneC(tuple(platforms), tuple(dict.fromkeys(units)), registry, ordered, source, tuple(processes))
