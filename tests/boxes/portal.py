"""The portal's file tree (Bitrix layout), its pristine snapshot, and the staged release."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from .errors import BoxCommandError, UnknownNameError
from .layout import DB_NAME, DB_USER, BoxLayout

SOURCE = Path(__file__).with_name("portal")
RELEASES_DIR = Path(__file__).with_name("releases")
# Directories the portal needs that hold no file in the repository (git keeps no empty directory).
EMPTY_DIRS = (
    "bitrix/updates", "bitrix/backup", "bitrix/stack_cache", "bitrix/tmp",
    "bitrix/php_interface", "bitrix/modules/main/admin",
)


def releases() -> list[str]:
    return sorted(p.name for p in RELEASES_DIR.iterdir() if (p / "release.json").exists())


def _php_str(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def build(layout: BoxLayout, db_password: str) -> None:
    """Write the docroot: the portal sources plus the files that hold this box's DB credentials."""
    shutil.copytree(SOURCE, layout.docroot)
    for sub in EMPTY_DIRS:
        (layout.docroot / sub).mkdir(parents=True, exist_ok=True)
    host = _php_str(f"{layout.address}:{layout.db_port}")
    (layout.docroot / "bitrix/.settings.php").write_text(f"""<?php
return array (
  'utf_mode' => array ('value' => true, 'readonly' => true),
  'connections' => array (
    'value' => array (
      'default' => array (
        'className' => '\\\\Bitrix\\\\Main\\\\DB\\\\MysqliConnection',
        'host' => {host},
        'database' => {_php_str(DB_NAME)},
        'login' => {_php_str(DB_USER)},
        'password' => {_php_str(db_password)},
        'options' => 2,
      ),
    ),
    'readonly' => true,
  ),
  'exception_handling' => array ('value' => array ('debug' => false), 'readonly' => false),
);
""")
    (layout.docroot / "bitrix/php_interface/dbconn.php").write_text(f"""<?php
define("DBPersistent", false);
$DBType = "mysql";
$DBHost = {host};
$DBLogin = {_php_str(DB_USER)};
$DBPassword = {_php_str(db_password)};
$DBName = {_php_str(DB_NAME)};
$DBDebug = false;
$DBDebugToFile = false;
define("BX_UTF", true);
define("BX_FILE_PERMISSIONS", 0664);
define("BX_DIR_PERMISSIONS", 0775);
""")
    layout.backup_dir.mkdir(parents=True, exist_ok=True)
    _cp(["chown", "-R", "bitrix:bitrix", str(layout.root / "home/bitrix")])


SHOP_PAGE = """<?php
// Public page of the second site (ext_www/shop): the same kernel and DB, through the link to bitrix/.
require $_SERVER['DOCUMENT_ROOT'] . '/bitrix/modules/main/include/prolog_before.php';
$res = bx_query("SELECT TITLE, OPPORTUNITY FROM b_crm_deal ORDER BY ID");
?><!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Shop</title></head>
<body><h1>Shop</h1><ul>
<?php while ($row = $res->fetch_assoc()): ?><li><?= htmlspecialchars($row['TITLE']) ?></li>
<?php endwhile; ?></ul>
<p>SM_VERSION: <span id="sm-version"><?= SM_VERSION ?></span></p>
<p id="status">SHOP_OK</p>
</body></html>
"""


def add_link_site(layout: BoxLayout) -> None:
    """A second site as bitrix-env's "link" sites are laid out [unverified]: its own public files in
    /home/bitrix/ext_www/<site>, and bitrix/ and upload/ as symlinks to the default site's."""
    site = layout.ext_site_docroot
    site.mkdir(parents=True, exist_ok=True)
    (site / "index.php").write_text(SHOP_PAGE)
    for name in ("bitrix", "upload"):
        link = site / name
        if not link.is_symlink():
            link.symlink_to(Path("../../www") / name)
    _cp(["chown", "-R", "-h", "bitrix:bitrix", str(site.parent)])


def _cp(argv: list[str]) -> None:
    res = subprocess.run(argv, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise BoxCommandError(argv, res.returncode, res.stderr)


def snapshot(layout: BoxLayout) -> None:
    """Keep /home/bitrix as it is now (right after `up`) for `reset`."""
    layout.pristine.mkdir(parents=True, exist_ok=True)
    _cp(["cp", "-a", str(layout.root / "home/bitrix"), str(layout.pristine / "bitrix")])


def restore(layout: BoxLayout) -> None:
    """Put /home/bitrix (docroot, backups, anything a test left there) back to the snapshot."""
    home = layout.root / "home/bitrix"
    shutil.rmtree(home, ignore_errors=True)
    _cp(["cp", "-a", str(layout.pristine / "bitrix"), str(home)])


def stage(layout: BoxLayout, release: str | None) -> None:
    """Publish a release on the box's update server (None: nothing to install)."""
    target = layout.update_server / "release"
    shutil.rmtree(target, ignore_errors=True)
    if release in (None, "", "none"):
        return
    source = RELEASES_DIR / release
    if not (source / "release.json").exists():
        raise UnknownNameError(
            f"unknown release {release!r}; known: {', '.join(releases())}", box=layout.name
        )
    payload = json.loads((source / "release.json").read_text()).get("payload_from")
    layout.update_server.mkdir(parents=True, exist_ok=True)
    if payload:
        shutil.copytree(RELEASES_DIR / payload, target)
        shutil.copy2(source / "release.json", target / "release.json")
    else:
        shutil.copytree(source, target)
    layout.update_server.chmod(0o755)
