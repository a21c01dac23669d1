"""The portal's DB settings read from its docroot: PHP literals (never PHP itself), .settings.php
then dbconn.php, Bitrix's reading of ``host``, and errors that never quote a value."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from agent.bitrix.phpconfig import PhpArray, PhpSyntaxError, Unparsed, assignments, returned_value
from agent.bitrix.settings import PortalDbSettings, SettingsError, read_db_settings, split_host
from tests.agent.conftest import REPO
from tests.boxes.box import Box

SECRET = "s3cr'et\\pa$$"


def docroot(tmp_path: Path, settings: str | None = None, dbconn: str | None = None) -> Path:
    root = tmp_path / "www"
    (root / "bitrix/php_interface").mkdir(parents=True, exist_ok=True)
    if settings is not None:
        (root / "bitrix/.settings.php").write_text(settings)
    if dbconn is not None:
        (root / "bitrix/php_interface/dbconn.php").write_text(dbconn)
    return root


def settings_php(host: str = "'localhost'", password: str = "'pw'", extra: str = "") -> str:  # noqa: S107
    return f"""<?php
return array (
  'utf_mode' => array ('value' => true, 'readonly' => true),
  'connections' => array (
    'value' => array (
      'default' => array (
        'className' => '\\\\Bitrix\\\\Main\\\\DB\\\\MysqliConnection',
        'host' => {host},
        'database' => 'sitemanager',
        'login' => 'bitrix0',
        'password' => {password},
        'options' => 2,{extra}
      ),
    ),
    'readonly' => true,
  ),
);
"""


# -- the PHP literal reader -------------------------------------------------------------------------


def test_strings_in_both_quotes_with_their_escapes() -> None:
    value = returned_value(r"""<?php return [
        'a' => 'it\'s \\ \n literal',
        'b' => "tab\there \"q\" \$x \x41\101\u{263A} \q",
        'c' => 'con' . "cat" . 'ed',
    ];""")
    assert value == {"a": "it's \\ \\n literal", "b": 'tab\there "q" $x AA\u263a \\q', "c": "concated"}


def test_numbers_booleans_null_nested_and_short_arrays() -> None:
    value = returned_value("""<?php
    // a comment with 'quotes' and ?php
    # another
    /* block 'x' => 1 */
    return array('i' => 42, 'neg' => -7, 'hex' => 0x1F, 'oct' => 0755, 'bin' => 0b101, 'f' => 1.5e2,
                 'u' => 1_000, 'T' => TRUE, 'n' => null, 'list' => [1, 'x' => 2, 3],
                 5 => 'five', '6' => 'six');
    """)
    assert isinstance(value, PhpArray)
    assert value == {"i": 42, "neg": -7, "hex": 31, "oct": 493, "bin": 5, "f": 150.0, "u": 1000, "T": True,
                     "n": None, "list": {0: 1, "x": 2, 1: 3}, 5: "five", 6: "six"}


def test_expressions_are_unparsed_and_the_rest_is_still_read() -> None:
    value = returned_value("""<?php
return [
  'from_env' => getenv('DB_PASSWORD'),
  'constant' => BX_DB_HOST . ':3306',
  'interpolated' => "pw-$suffix",
  'nested' => ['call' => strtolower('X'), 'plain' => 'ok'],
  'after' => 'still read',
];""")
    assert isinstance(value, PhpArray)
    assert isinstance(value["from_env"], Unparsed) and value["from_env"].line == 3
    assert isinstance(value["constant"], Unparsed)
    assert isinstance(value["interpolated"], Unparsed)
    assert value["nested"] == {"call": Unparsed(6), "plain": "ok"}
    assert value["after"] == "still read"


def test_dbconn_assignments_last_one_wins_and_others_are_ignored() -> None:
    found = assignments("""<?php
define("DBPersistent", false);
$DBType = "mysql";
$DBHost = "localhost";
$DBLogin = 'user';
$DBPassword = "first";
if ($x == 1) { $DBPassword = 'second'; }
$DBName = "db";
$DBDebug = false;
?>
<html>$DBHost = "not php";</html>
""", frozenset({"DBHost", "DBLogin", "DBPassword", "DBName"}))
    assert found == {"DBHost": "localhost", "DBLogin": "user", "DBPassword": "second", "DBName": "db"}


def test_syntax_errors_name_the_line_not_the_text() -> None:
    with pytest.raises(PhpSyntaxError) as err:
        returned_value("<?php\nreturn ['password' => 'secret-value', 'x' => 1\n")
    assert "line" in str(err.value) and "secret-value" not in str(err.value)
    with pytest.raises(PhpSyntaxError, match="no top-level 'return'"):
        returned_value("<?php $a = ['return' => 1];")


# -- host as Bitrix and mysqli read it --------------------------------------------------------------


def test_host_forms(tmp_path: Path) -> None:
    sock = tmp_path / "mysqld.sock"
    sock.write_text("")
    sockets = (str(tmp_path / "absent.sock"), str(sock))
    assert split_host("localhost", None, sockets) == ("localhost", 3306, str(sock))
    assert split_host("localhost:3306", None, sockets) == ("localhost", 3306, str(sock))  # mysqli: socket
    assert split_host("localhost", "/run/given.sock", sockets) == ("localhost", 3306, "/run/given.sock")
    given = "/var/lib/mysqld/mysqld.sock"
    assert split_host(f"localhost:{given}") == ("localhost", 3306, given)
    assert split_host("127.0.0.1:3307") == ("127.0.0.1", 3307, None)
    assert split_host("db.example.lan") == ("db.example.lan", 3306, None)
    assert split_host("10.0.0.5:33x") == ("10.0.0.5", 33, None)  # PHP's intval()
    assert split_host("10.0.0.5:") == ("10.0.0.5", 3306, None)


# -- reading a docroot --------------------------------------------------------------------------------


def test_settings_php_wins_over_dbconn(tmp_path: Path) -> None:
    root = docroot(tmp_path, settings_php("'127.0.0.1:3307'", "'from-settings'"),
                   '<?php $DBHost = "other"; $DBLogin = "x"; $DBPassword = "from-dbconn"; $DBName = "y";')
    s = read_db_settings(root)
    assert (s.host, s.port, s.socket) == ("127.0.0.1", 3307, None)
    assert (s.user, s.database) == ("bitrix0", "sitemanager")
    assert s.password == "from-settings"
    assert s.source == str(root / "bitrix/.settings.php")
    assert "from-settings" not in repr(s)


def test_dbconn_is_the_fallback(tmp_path: Path) -> None:
    root = docroot(tmp_path, "<?php return ['cache' => ['value' => []]];",
                   '<?php $DBHost = "localhost:/tmp/my.sock"; $DBLogin = "legacy"; $DBPassword = \'pw\'; '
                   '$DBName = "old";')
    s = read_db_settings(root)
    assert (s.socket, s.user, s.database, s.password) == ("/tmp/my.sock", "legacy", "old", "pw")
    assert s.source.endswith("dbconn.php")


def test_a_password_with_quotes_and_backslashes(tmp_path: Path) -> None:
    php = "'" + SECRET.replace("\\", "\\\\").replace("'", "\\'") + "'"
    assert read_db_settings(docroot(tmp_path, settings_php(password=php))).password == SECRET


@pytest.mark.parametrize(("files", "words"), [
    ({}, "no database settings"),
    ({"settings": settings_php(password="getenv('DB_PW')")},
     "connections.value.default.password (line 11) is an expression"),
    ({"settings": settings_php().replace("MysqliConnection", "PgsqlConnection")}, "not MySQL"),
    ({"settings": settings_php().replace("'login' => 'bitrix0',", "")},
     "connections.value.default.login is missing"),
    ({"settings": "<?php return ['connections' => ['value' => ['default' => "
                  "['host' => 'x', 'password' => 'pw'"},
     "cannot read it as PHP literals"),
])
def test_errors_say_which_file_and_key_and_never_the_password(
    tmp_path: Path, files: dict[str, str], words: str,
) -> None:
    root = docroot(tmp_path, files.get("settings"), files.get("dbconn"))
    with pytest.raises(SettingsError) as err:
        read_db_settings(root)
    assert words in str(err.value)
    assert "'pw'" not in str(err.value) and "DB_PW" not in str(err.value)


@pytest.mark.skipif(os.geteuid() != 0 or not all(os.stat(p).st_mode & 0o001 for p in (REPO, *REPO.parents)),
                    reason="needs root to drop privileges, and a checkout user nobody can reach")
def test_an_unreadable_settings_file_says_how_to_grant_access() -> None:
    shared = Path(tempfile.mkdtemp(prefix="bk-settings-"))  # pytest's tmp_path is private to root
    shared.chmod(0o755)
    root = docroot(shared, settings_php())
    (root / "bitrix/.settings.php").chmod(0o600)
    code = ("from agent.bitrix.settings import read_db_settings, SettingsError\n"
            f"try:\n    read_db_settings({str(root)!r})\nexcept SettingsError as e:\n    print(e)\n")
    out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          str(Path(".venv/bin/python").resolve()), "-c", code],
                         capture_output=True, text=True, timeout=30, check=False,
                         cwd=REPO)
    shutil.rmtree(shared)
    assert "permission denied" in out.stdout and "usermod -aG bitrix" in out.stdout, out.stderr


def test_settings_are_read_again_only_when_a_file_changes(tmp_path: Path) -> None:
    root = docroot(tmp_path, settings_php(password="'one'"))
    reader = PortalDbSettings(root)
    first = reader.get()
    assert reader.get() is first
    (root / "bitrix/.settings.php").write_text(settings_php(password="'two-longer'"))
    assert reader.get().password == "two-longer"


@pytest.mark.integration
def test_the_test_boxs_real_files(box: Box, tmp_path: Path) -> None:
    """What the box's portal (PHP, mysqli) connects with is what the reader reads: both files."""
    info = box.info
    s = read_db_settings(info.docroot)
    assert (s.host, s.port, s.user, s.database, s.password) == (
        info.db.host, info.db.port, info.db.user, info.db.name, info.db.password)
    legacy = docroot(tmp_path)
    (legacy / "bitrix/php_interface/dbconn.php").write_bytes(
        (Path(info.docroot) / "bitrix/php_interface/dbconn.php").read_bytes())
    d = read_db_settings(legacy)
    assert d == dataclasses.replace(s, source=d.source)
