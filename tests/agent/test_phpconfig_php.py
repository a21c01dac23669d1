"""agent/bitrix/phpconfig.py held to PHP itself: random settings files of PHP literals (nested
arrays, strings in both quotes with escapes and any characters, numbers, booleans, null, comments)
are read by our reader and by ``php`` (``json_encode(include $file)``), and must agree; random
text never makes the reader fail other than with PhpSyntaxError."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.bitrix.phpconfig import PhpArray, PhpSyntaxError, returned_value

PHP = shutil.which("php")
PHP_BITS = "<?php return array()[]'\"\\$=>,;.-/*#\n x1aTRUE"

# what a PHP literal may hold here; floats are left out (PHP and Python print them differently)
keys = st.one_of(st.text(min_size=1, max_size=12), st.integers(min_value=0, max_value=50))
scalars = st.one_of(st.text(max_size=30), st.integers(min_value=-(2**40), max_value=2**40), st.booleans(),
                    st.none())
values = st.recursive(scalars, lambda inner: st.dictionaries(keys, inner, max_size=5), max_leaves=20)


def single_quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def double_quoted(text: str) -> str:
    out = []
    for ch in text:
        if ch in '\\"$':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 32 or ch == "\x7f":
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) > 127 and ord(ch) % 3 == 0:
            out.append(f"\\u{{{ord(ch):x}}}")  # some as \u{...}
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def php_literal(value: Any, depth: int = 0) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "false"
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return double_quoted(value) if len(value) % 2 else single_quoted(value)
    pad = "  " * (depth + 1)
    items = [f"{pad}{php_literal(k, depth + 1)} => {php_literal(v, depth + 1)}, // c\n"
             for k, v in value.items()]
    opener, closer = ("array (", ")") if depth % 2 else ("[", "]")
    return opener + "\n" + "".join(items) + "  " * depth + closer


def as_php_sees_it(value: Any) -> Any:
    """What json_encode of PHP's array gives back (keys as strings, lists for 0..n-1 keys)."""
    if isinstance(value, dict):
        normal: dict[Any, Any] = {}
        for k, v in value.items():
            if isinstance(k, str) and (k == "0" or (k[:1] in "123456789" and k.isdigit() and k.isascii())):
                k = int(k)  # PHP turns "8" into 8
            normal[k] = as_php_sees_it(v)
        if normal and list(normal) == list(range(len(normal))):
            return [normal[i] for i in range(len(normal))]
        return {str(k): v for k, v in normal.items()} if normal else []
    return value


def ours(text: str) -> Any:
    return as_php_sees_it(_plain(returned_value(text)))


def _plain(value: Any) -> Any:
    if isinstance(value, PhpArray):
        return {k: _plain(v) for k, v in value.items()}
    return value


@pytest.mark.skipif(PHP is None, reason="needs php-cli")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.dictionaries(keys, values, max_size=6))
def test_the_reader_agrees_with_php(tmp_path: Path, data: dict[Any, Any]) -> None:
    text = "<?php\n/* settings */\n# generated\nreturn " + php_literal(data) + ";\n"
    path = tmp_path / "settings.php"
    path.write_text(text, encoding="utf-8")
    res = subprocess.run([str(PHP), "-r", f"echo json_encode(include {single_quoted(str(path))});"],
                         capture_output=True, text=True, timeout=30, check=False)
    assert res.returncode == 0, res.stderr
    assert ours(text) == json.loads(res.stdout)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list(PHP_BITS)), max_size=80))
def test_any_text_reads_or_fails_with_a_syntax_error(text: str) -> None:
    with contextlib.suppress(PhpSyntaxError):
        returned_value("<?php " + text)
