"""TEST DOUBLES of the 1C:Enterprise tools, which cannot be installed here.

`rac.py` stands in for `rac`, `designer.py` for `1cv8 DESIGNER` / `1cv8c ENTERPRISE`, `units.py`
for the server's systemd units (behind the box's `systemctl`); their state
is in files (state.py) and the infobase content in the box's real PostgreSQL. On a box started
with --with-1c they are installed as <box>/opt/1cv8/x86_64/8.3.27.1000/{rac,1cv8,1cv8c} (also on
PATH in SSH sessions) with ready-made configuration updates under <box>/var/lib/1c-double/updates.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..info import PgInfo
from ..layout import BoxLayout
from . import units
from .state import ClusterState, make_update

HERE = Path(__file__).resolve().parent
PLATFORM = "8.3.27.1000"
#: under the box root: the cluster registry (DOMAIN.md) and Apache's config with the publication's line
REGISTRY = "home/usr1cv8/.1cv8/1C/1cv8/reg_1541"
APACHE_CONF = "etc/apache2/apache2.conf"


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
    platforms = layout.root / "opt/1cv8/x86_64"
    if platforms.is_dir():  # a version a test installed side by side goes; PLATFORM is rewritten
        for other in platforms.iterdir():
            shutil.rmtree(other, ignore_errors=True)
    platform = install_platform(platforms / PLATFORM, layout.onec_state)
    layout.bin.mkdir(parents=True, exist_ok=True)
    for name in ("rac", "1cv8", "1cv8c"):
        link = layout.bin / name
        link.unlink(missing_ok=True)
        link.symlink_to(platform / name)
    units.create(layout.onec_state, PLATFORM)
    registry = layout.root / REGISTRY
    shutil.rmtree(registry, ignore_errors=True)
    registry.mkdir(parents=True)
    cluster = state.read()["cluster"]  # the real file's format is the vendor's: not reproduced
    (registry / "1CV8Clst.lst").write_text(f"TEST DOUBLE cluster registry {cluster}: infobase buh\n")
    apache = layout.root / APACHE_CONF
    apache.parent.mkdir(parents=True, exist_ok=True)
    apache.write_text(f'ServerRoot "/etc/apache2"\n# what webinst -publish -apache24 writes\n'
                      f'LoadModule _1cws_module "{platform / "wsap24.so"}"\n')
    return state


def install_platform(directory: Path, state_dir: Path) -> Path:
    """One platform version's directory of TEST DOUBLES: rac, 1cv8, 1cv8c (the doubles), ragent and
    ras (stubs that only need to exist for the units double), wsap24.so (a placeholder file)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, script in (("rac", "rac.py"), ("1cv8", "designer.py"), ("1cv8c", "designer.py")):
        wrapper = directory / name
        wrapper.write_text(
            f"#!/bin/sh\n# TEST DOUBLE of 1C {name} (boxkeeper tests), not the vendor's binary.\n"
            f'ONEC_DOUBLE_STATE={state_dir} exec /usr/bin/python3 {HERE / script} "$@"\n'
        )
        wrapper.chmod(0o755)
    for name in ("ragent", "ras"):
        stub = directory / name
        stub.write_text(f"#!/bin/sh\n# TEST DOUBLE stub of 1C {name}: the units double checks it is there.\n")
        stub.chmod(0o755)
    (directory / "wsap24.so").write_text("TEST DOUBLE placeholder of the 1C Apache module\n")
    return directory
