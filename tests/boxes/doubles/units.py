#!/usr/bin/env python3
"""TEST DOUBLE of the systemd units of the 1C server (8.3.21+: `srv1cv8-<version>@default`,
`ras-<version>`; DOMAIN.md), behind the test box's `systemctl`. Not systemd, not the vendor's units.

    systemctl start|stop|restart|enable|disable|is-active|is-enabled|status UNIT

State: $ONEC_DOUBLE_STATE/units.json ({unit: {"active": bool, "enabled": bool}}). The cluster (what
rac and the designer doubles answer for) is up while a `srv1cv8-*` and a `ras-*` unit are active:
cluster.json's `agent_up` follows the units. Only one version's units run at a time, as on a real
server where both would bind ports 1540/1541/1545.

Assumed, as systemd does for any unit (not 1C-specific): starting a unit whose ExecStart binary is
missing fails (`Job for X.service failed …`, exit 1) — here `ragent` (srv1cv8) or `ras` (ras) in
/opt/1cv8/x86_64/<version>/; a unit of a version not installed at all is "could not be found" (exit 5).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

if __package__:
    from .state import ClusterState
else:  # run as a script on the box: import from its own directory
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from state import ClusterState  # type: ignore[import-not-found,no-redef]

UNIT = re.compile(r"^(srv1cv8-(?P<srv>[\d.]+)@default|ras-(?P<ras>[\d.]+))$")


def platform_dir(state_dir: Path, version: str) -> Path:
    """<box root>/opt/1cv8/x86_64/<version> (the state dir is <box root>/var/lib/1c-double)."""
    return state_dir.parents[2] / "opt/1cv8/x86_64" / version


def units_file(state_dir: Path) -> Path:
    return state_dir / "units.json"


def create(state_dir: Path, version: str) -> None:
    """The units of the installed platform, enabled and running."""
    units = {f"srv1cv8-{version}@default": {"active": True, "enabled": True},
             f"ras-{version}": {"active": True, "enabled": True}}
    units_file(state_dir).write_text(json.dumps(units, indent=2))


def main(argv: list[str]) -> int:
    state_dir = Path(os.environ.get("ONEC_DOUBLE_STATE", "."))
    if len(argv) < 2:
        print("usage: systemctl VERB UNIT", file=sys.stderr)
        return 1
    action, name = argv[0], argv[1].removesuffix(".service")
    m = UNIT.match(name)
    version = (m.group("srv") or m.group("ras")) if m else None
    binary = "ragent" if m and m.group("srv") else "ras"
    if version is None or not units_file(state_dir).exists() or not platform_dir(state_dir, version).is_dir():
        print(f"Unit {name}.service could not be found.", file=sys.stderr)
        return 5
    units = json.loads(units_file(state_dir).read_text())
    unit = units.setdefault(name, {"active": False, "enabled": False})
    if action in ("start", "restart"):
        exe = platform_dir(state_dir, version) / binary
        if not os.access(exe, os.X_OK):
            print(f"Job for {name}.service failed because the control process exited with error code.\n"
                  f'See "systemctl status {name}.service" and "journalctl -xeu {name}.service" for details.',
                  file=sys.stderr)
            unit["active"] = False
            code = 1
        else:
            unit["active"] = True
            code = 0
    elif action == "stop":
        unit["active"], code = False, 0
    elif action in ("enable", "disable"):
        unit["enabled"], code = action == "enable", 0
    elif action in ("is-active", "status"):
        print("active" if unit["active"] else "inactive")
        return 0 if unit["active"] else 3
    elif action == "is-enabled":
        print("enabled" if unit["enabled"] else "disabled")
        return 0 if unit["enabled"] else 1
    else:
        print(f"Unknown command verb {action}.", file=sys.stderr)
        return 1
    units_file(state_dir).write_text(json.dumps(units, indent=2))
    up = any(u["active"] for n, u in units.items() if n.startswith("srv1cv8-")) and any(
        u["active"] for n, u in units.items() if n.startswith("ras-"))
    ClusterState(state_dir).set_agent_up(up)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
