"""TEST DOUBLES of the 1C:Enterprise tools, which cannot be installed here.

`rac.py` stands in for `rac`, `designer.py` for `1cv8 DESIGNER` / `1cv8c ENTERPRISE`; their state
is in files (state.py) and the infobase content in the box's real PostgreSQL. On a box started
with --with-1c they are installed as <box>/opt/1cv8/x86_64/8.3.27.1000/{rac,1cv8,1cv8c} (also on
PATH in SSH sessions) with ready-made configuration updates under <box>/var/lib/1c-double/updates.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..info import PgInfo
from ..layout import BoxLayout
from .state import ClusterState, make_update

HERE = Path(__file__).resolve().parent
PLATFORM = "8.3.27.1000"


def install(layout: BoxLayout, pg: PgInfo | None) -> ClusterState:
    """(Re)create the doubles' state and wrappers on a box."""
    shutil.rmtree(layout.onec_state, ignore_errors=True)
    dbms = (
        None
        if pg is None
        else {"host": pg.host, "port": pg.port, "user": pg.user, "password": pg.password, "db": "buh"}
    )
    state = ClusterState.create(layout.onec_state, dbms)
    updates = layout.onec_state / "updates"
    make_update(updates / "3.1.10.100", "3.1.10.100", ["3.1.9.200", "3.1.9.190"])
    make_update(updates / "3.1.11.50", "3.1.11.50", ["3.1.10.100"])
    make_update(updates / "3.1.10.100-nothing-merged", "3.1.10.100", ["3.1.9.200"], merge=False)
    make_update(updates / "3.1.10.100-interactive-only", "3.1.10.100", ["3.1.9.200"], command_mode=False)
    platform = layout.root / "opt/1cv8/x86_64" / PLATFORM
    platform.mkdir(parents=True, exist_ok=True)
    layout.bin.mkdir(parents=True, exist_ok=True)
    for name, script in (("rac", "rac.py"), ("1cv8", "designer.py"), ("1cv8c", "designer.py")):
        wrapper = platform / name
        wrapper.write_text(
            f"#!/bin/sh\n# TEST DOUBLE of 1C {name} (boxkeeper tests), not the vendor's binary.\n"
            f'ONEC_DOUBLE_STATE={layout.onec_state} exec /usr/bin/python3 {HERE / script} "$@"\n'
        )
        wrapper.chmod(0o755)
        link = layout.bin / name
        link.unlink(missing_ok=True)
        link.symlink_to(wrapper)
    return state
