"""A careful reader of the PHP *literals* in Bitrix's configuration files — never PHP itself.

``bitrix/.settings.php`` is ``<?php return array(...);`` (or ``[...]``) of strings, numbers,
booleans and nested arrays; ``bitrix/php_interface/dbconn.php`` is a list of statements such as
``$DBHost = "localhost";``. The agent must not run PHP (it would run the portal's code as the
agent's user), so this module reads the literal subset of PHP those files use:

- strings in single quotes (escapes ``\\'`` and ``\\\\`` only) and in double quotes (``\\n``,
  ``\\t``, ``\\r``, ``\\v``, ``\\e``, ``\\f``, ``\\\\``, ``\\$``, ``\\"``, octal ``\\101``, hex
  ``\\x41``, ``\\u{41}``; any other backslash stays as it is, as in PHP); a double-quoted string
  that interpolates a variable (``"$x"``, ``"{$x}"``) is not a literal;
- integers (decimal, ``0x``, ``0o``/leading 0, ``0b``, ``_`` separators) and floats; ``true``,
  ``false``, ``null`` in any case; ``array(...)`` and ``[...]`` with or without ``key =>``;
  string concatenation of literals (``'a' . 'b'``);
- comments (``//``, ``#``, ``/* */``), the open tag and ``?>``.

Anything else in a value (a constant, a function call such as ``getenv('DB_PASSWORD')``, a
variable) is read as :class:`Unparsed`, so the caller can say *which key* it could not use
without ever echoing the text (it may hold a secret). The rest of the file is still read.
Errors (:class:`PhpSyntaxError`) name the line, never the text around it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Union

PhpValue = Union[str, int, float, bool, None, "PhpArray", "Unparsed"]


class PhpArray(dict):  # type: ignore[type-arg]  # keys: str | int, values: PhpValue
    """A PHP array: insertion-ordered keys (strings or integers) → values."""


@dataclass(frozen=True)
class Unparsed:
    """A value that is not a literal (an expression, a constant, a call). ``line``: where it starts."""

    line: int


class PhpSyntaxError(ValueError):
    def __init__(self, line: int, what: str) -> None:
        self.line = line
        super().__init__(f"line {line}: {what}")


@dataclass(frozen=True)
class Token:
    kind: str  # str, num, name, var, punct, other, end
    value: object
    line: int


_TOKEN = re.compile(
    r"""(?xs)
    (?P<ws>\s+)
  | (?P<comment>//[^\n]*?(?=\?>|\n|$)|\#(?!\[)[^\n]*?(?=\?>|\n|$)|/\*.*?\*/)
  | (?P<open><\?php|<\?=|<\?)
  | (?P<close>\?>)
  | (?P<sq>'(?:[^'\\]|\\.)*')
  | (?P<dq>"(?:[^"\\]|\\.)*")
  | (?P<num>0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+
            |(?:\d[\d_]*)?\.\d[\d_]*(?:[eE][+-]?\d+)?|\d[\d_]*(?:[eE][+-]?\d+)?)
  | (?P<var>\$[A-Za-z_\x80-\uffff][A-Za-z0-9_\x80-\uffff]*)
  | (?P<name>\\?[A-Za-z_\x80-\uffff][A-Za-z0-9_\x80-\uffff]*
             (?:\\[A-Za-z_\x80-\uffff][A-Za-z0-9_\x80-\uffff]*)*)
  | (?P<punct>=>|===|!==|==|!=|<=|>=|::|\?\?|&&|\|\||\.=|[()\[\],;=.?:!<>+\-*/%&|^~@{}])
    """,  # (?xs): re.VERBOSE, re.DOTALL
)
_DQ_ESCAPE = re.compile(r"\\(?:([nrtvef\\$\"])|([0-7]{1,3})|x([0-9A-Fa-f]{1,2})|u\{([0-9A-Fa-f]+)\})")
_SIMPLE = {"n": "\n", "r": "\r", "t": "\t", "v": "\v", "e": "\x1b", "f": "\f", "\\": "\\", "$": "$", '"': '"'}
_INTERPOLATION = re.compile(r"(?<!\\)(?:\\\\)*(\$[A-Za-z_{]|\{\$)")


class _NotLiteral(Exception):
    pass


def _single_quoted(body: str) -> str:
    return re.sub(r"\\([\\'])", r"\1", body)


def _double_quoted(body: str) -> str:
    if _INTERPOLATION.search(body):
        raise _NotLiteral

    def escape(m: re.Match[str]) -> str:
        simple, octal, hexa, uni = m.groups()
        if simple:
            return _SIMPLE[simple]
        if octal:
            return chr(int(octal, 8) & 0xFF)
        if hexa:
            return chr(int(hexa, 16))
        return chr(int(uni, 16))

    return _DQ_ESCAPE.sub(escape, body)


def _number(text: str) -> Union[int, float]:
    clean = text.replace("_", "")
    low = clean.lower()
    if low.startswith("0x"):
        return int(low, 16)
    if low.startswith("0b"):
        return int(low[2:], 2)
    if low.startswith("0o"):
        return int(low[2:], 8)
    if "." in low or "e" in low:
        return float(low)
    if len(low) > 1 and low.startswith("0"):
        return int(low, 8)
    return int(low)


def tokens(text: str) -> Iterator[Token]:
    """The PHP tokens of ``text`` (inline HTML outside ``<?php ... ?>`` is skipped)."""
    pos, line, in_php = 0, 1, False
    while pos < len(text):
        if not in_php:
            start = text.find("<?", pos)
            if start < 0:
                return
            line += text.count("\n", pos, start)
            pos = start
        m = _TOKEN.match(text, pos)
        if m is None:
            yield Token("other", None, line)
            line += text.count("\n", pos, pos + 1)
            pos += 1
            continue
        kind = m.lastgroup or "other"
        chunk = m.group()
        start_line = line
        line += chunk.count("\n")
        pos = m.end()
        if kind == "open":
            in_php = True
        elif kind == "close":
            in_php = False
            yield Token("punct", ";", start_line)  # ?> ends a statement
        elif kind in ("ws", "comment"):
            continue
        elif kind == "sq":
            yield Token("str", _single_quoted(chunk[1:-1]), start_line)
        elif kind == "dq":
            try:
                yield Token("str", _double_quoted(chunk[1:-1]), start_line)
            except _NotLiteral:
                yield Token("other", None, start_line)
        elif kind == "num":
            yield Token("num", _number(chunk), start_line)
        else:
            yield Token(kind, chunk, start_line)
    yield Token("end", None, line)


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = list(tokens(text))
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.toks[self.i] if self.i < len(self.toks) else Token("end", None, self.toks[-1].line)

    def take(self) -> Token:
        tok = self.tok
        self.i += 1
        return tok

    def at(self, kind: str, value: object = None) -> bool:
        tok = self.tok
        if tok.kind != kind:
            return False
        if value is None:
            return True
        return isinstance(tok.value, str) and isinstance(value, str) and tok.value.lower() == value

    def expression(self, stop: frozenset[str]) -> PhpValue:
        """A value up to (not including) a ``stop`` punctuation at this nesting level."""
        start = self.tok.line
        value = self.operand()
        while self.at("punct", "."):
            self.take()
            right = self.operand()
            value = value + right if isinstance(value, str) and isinstance(right, str) else Unparsed(start)
        if not (self.tok.kind == "end" or (self.tok.kind == "punct" and self.tok.value in stop)):
            self.skip(stop)
            return Unparsed(start)
        return value

    def operand(self) -> PhpValue:
        tok = self.tok
        if tok.kind in ("str", "num"):
            self.take()
            return tok.value  # type: ignore[return-value]
        if tok.kind == "name":
            word = str(tok.value).lower()
            if word in ("true", "false", "null"):
                self.take()
                return {"true": True, "false": False, "null": None}[word]
            after = self.toks[self.i + 1] if self.i + 1 < len(self.toks) else tok
            if word == "array" and after.kind == "punct" and after.value == "(":
                self.take()
                self.take()
                return self.array_items(")")
        if tok.kind == "punct" and tok.value == "[":
            self.take()
            return self.array_items("]")
        if tok.kind == "punct" and tok.value == "-" and self.i + 1 < len(self.toks) \
                and self.toks[self.i + 1].kind == "num":
            self.take()
            number = self.take().value
            assert isinstance(number, (int, float))
            return -number
        self.skip(frozenset({",", ")", "]", ";", "=>", "."}))
        return Unparsed(tok.line)

    def skip(self, stop: frozenset[str]) -> None:
        """Past an expression we cannot read: to the next ``stop`` at this nesting level."""
        depth = 0
        while self.tok.kind != "end":
            tok = self.tok
            if tok.kind == "punct":
                if tok.value in ("(", "[", "{"):
                    depth += 1
                elif tok.value in (")", "]", "}"):
                    if depth == 0:
                        return
                    depth -= 1
                elif depth == 0 and tok.value in stop:
                    return
            self.take()

    def array_items(self, close: str) -> PhpArray:
        items = PhpArray()
        next_index = 0
        stop = frozenset({",", close, "=>"})
        while True:
            if self.at("punct", close):
                self.take()
                return items
            if self.tok.kind == "end":
                raise PhpSyntaxError(self.tok.line, f"an array is not closed with {close!r}")
            first = self.expression(stop)
            if self.at("punct", "=>"):
                self.take()
                value = self.expression(frozenset({",", close}))
                key: object = first
            else:
                value, key = first, next_index
            if key is None:
                key = ""
            elif isinstance(key, (bool, float)):
                key = int(key)
            if isinstance(key, str) and re.fullmatch(r"-?[1-9]\d*|0", key):
                key = int(key)  # PHP turns "8" into 8
            if isinstance(key, (int, str)):
                items[key] = value
                if isinstance(key, int):
                    next_index = max(next_index, key + 1)
            if self.at("punct", ","):
                self.take()
            elif not self.at("punct", close):
                raise PhpSyntaxError(self.tok.line, f"expected ',' or {close!r} in an array")


def returned_value(text: str) -> PhpValue:
    """The value of the file's top-level ``return ...;`` (``.settings.php``)."""
    parser = _Parser(text)
    depth = 0
    while parser.tok.kind != "end":
        tok = parser.tok
        if tok.kind == "punct" and tok.value in ("(", "[", "{"):
            depth += 1
        elif tok.kind == "punct" and tok.value in (")", "]", "}"):
            depth -= 1
        elif tok.kind == "name" and str(tok.value).lower() == "return" and depth == 0:
            parser.take()
            return parser.expression(frozenset({";"}))
        parser.take()
    raise PhpSyntaxError(parser.tok.line, "no top-level 'return' statement")


def assignments(text: str, names: frozenset[str]) -> dict[str, PhpValue]:
    """The values assigned to the variables ``names`` (without ``$``) by ``$name = value;``
    statements, the last assignment winning (``dbconn.php``)."""
    parser = _Parser(text)
    found: dict[str, PhpValue] = {}
    while parser.tok.kind != "end":
        tok = parser.take()
        if tok.kind == "var" and str(tok.value)[1:] in names and parser.at("punct", "="):
            parser.take()
            found[str(tok.value)[1:]] = parser.expression(frozenset({";"}))
    return found
