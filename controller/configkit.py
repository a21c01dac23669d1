"""The controller's one validation path: YAML → frozen pydantic models, errors that name the place.

Every config section, playbook and plug-in option set of the controller is a :class:`ConfigModel`
(frozen, unknown keys refused) built from the scalar types below, and read with :func:`validate`.
A failure becomes one :class:`~controller.errors.ConfigError` that names the file, the key path,
what was expected and what was given::

    controller.yaml: notify[1].min_severity: expected one of critical, warning, info, got 'high'

How the expected value is worded: a scalar type carries its wording (:class:`Expect`), which is
used for every error on that key; otherwise pydantic's error type is put in words
(:data:`_WORDS`); a ``ValueError`` raised by a parser or a model's own check is its message.
Containers are lax (a YAML list fills a tuple), scalars strict (``"5"`` is not an integer, ``1``
is not ``true``).

A plug-in point (notification channels, playbook step kinds, executors) keeps a registry of its
option models; a section holding plug-ins is a tuple of a discriminated union built from that
registry (:func:`one_of`).
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    Strict,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import CoreSchema, core_schema

from controller.errors import ConfigError

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class ConfigModel(BaseModel):
    """Base of every config model: frozen values, unknown keys refused, a key given as ``null``
    (``notify:`` with nothing after it) read as absent: its default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and any(v is None for v in data.values()):
            return {k: v for k, v in data.items() if v is not None}
        return data


class Invalid(ValueError):
    """A model's own rule (between keys) failed: names the key (relative to the model) to blame."""

    def __init__(self, key: str, expected: str, got: object = ...) -> None:
        super().__init__(expected)
        self.key = key
        self.expected = expected
        self.got = got


@dataclass(frozen=True)
class Expect:
    """Annotation metadata of a scalar type: what its value should look like, in words, and
    optionally the parser that turns the raw YAML value into it (a ValueError or TypeError from
    the parser becomes "expected <text>")."""

    text: str
    parse: Callable[[object], Any] | None = None

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        schema = handler(source)
        if self.parse is None:
            return schema
        parse, text = self.parse, self.text

        def before(value: object) -> Any:
            try:
                return parse(value)
            except (ValueError, TypeError):
                raise ValueError(text) from None

        return core_schema.no_info_before_validator_function(before, schema)


class Secret:
    """Annotation metadata of a key whose value may be a credential (a database URL with its
    password, a webhook URL): an error on that key never shows the value given."""

    def __repr__(self) -> str:
        return "Secret()"


class _NotShown:
    def __repr__(self) -> str:
        return "a value not shown here (it may hold a credential)"


#: what a :class:`ConfigError` says it got for a :class:`Secret` key
NOT_SHOWN: Any = _NotShown()


# ---------------------------------------------------------------------------------------------
# Scalar parsers (pure)

SEVERITIES: tuple[str, ...] = ("critical", "warning", "info")
_SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE_RE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|KB|MB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kib": 1024, "mib": 1024**2, "kb": 1000, "mb": 1000**2, None: 1}
_ADDRESS_RE = re.compile(r"\[([0-9a-fA-F:.]+)\]:(\d+)|([^:\s\[\]]+):(\d+)")


def severity_rank(severity: str) -> int:
    """Order of severities: info < warning < critical (unknown names rank lowest)."""
    return _SEVERITY_RANK.get(severity, -1)


def parse_text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("a non-empty string")
    return value


def parse_name(value: object) -> str:
    name = parse_text(value)
    if not _NAME_RE.match(name):
        raise ValueError("a name")
    return name


def parse_duration(value: object) -> float:
    """``15s``, ``5m``, ``2h``, ``1d``, ``500ms`` or a number of seconds → seconds (> 0)."""
    if isinstance(value, bool):
        raise ValueError("a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION_RE.match(str(value))
        if not m:
            raise ValueError("a duration")
        seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    if not 0 < seconds < float("inf"):
        raise ValueError("a duration greater than zero")
    return seconds


def parse_instant(value: str) -> float:
    """``2026-11-30`` (midnight UTC) or an ISO time (``2026-11-30T14:00``, UTC unless it names a zone,
    ``…+03:00``) → unix seconds; ValueError otherwise (the ``--since`` / ``--until`` filters)."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError("a date (2026-11-30) or an ISO time (2026-11-30T14:00[+03:00])") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def parse_size(value: object) -> int:
    """``1MiB``, ``512KiB``, ``4096`` (bytes) → bytes, at least 1 KiB."""
    m = _SIZE_RE.match(str(value)) if not isinstance(value, bool) else None
    if not m:
        raise ValueError("a size")
    size = int(m.group(1)) * _SIZE_UNITS[m.group(2).lower() if m.group(2) else None]
    if size < 1024:
        raise ValueError("a size of at least 1KiB")
    return size


def parse_address(value: object) -> tuple[str, int]:
    """``127.0.0.1:8470``, ``[::1]:8470``, ``smtp.example:587`` → (host, port 0-65535)."""
    m = _ADDRESS_RE.fullmatch(str(value).strip()) if isinstance(value, str | int) else None
    if not m or not 0 <= int(m.group(2) or m.group(4)) < 65536:
        raise ValueError("an address")
    return (m.group(1) or m.group(3)), int(m.group(2) or m.group(4))


def parse_url(value: object) -> str:
    url = parse_text(value)
    if not re.match(r"^https?://[^/\s]+", url):
        raise ValueError("an http:// or https:// URL")
    return url


def parse_timezone(value: object) -> str:
    """An IANA time zone name that this machine's tz database knows."""
    zone = parse_text(value)
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("an IANA time zone") from None
    return zone


def parse_severity(value: object) -> str:
    if value not in SEVERITIES:
        raise ValueError("a severity")
    return str(value)


def parse_names(value: object) -> tuple[str, ...]:
    """A string or a non-empty list of strings."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items or not all(isinstance(v, str) and v for v in items):
        raise ValueError("names")
    return tuple(items)


# ---------------------------------------------------------------------------------------------
# Scalar types (annotations for config models)

Text = Annotated[str, Expect("a non-empty string", parse_text)]
Name = Annotated[str, Expect("a name of letters, digits, '_', '.', ':' or '-' (at most 100)", parse_name)]
Duration = Annotated[float, Expect("a duration such as 10s, 5m or 1h", parse_duration)]
Size = Annotated[int, Expect("a size such as 1MiB or 512KiB (at least 1KiB)", parse_size)]
Url = Annotated[str, Expect("an http:// or https:// URL", parse_url)]
SecretUrl = Annotated[str, Expect("an http:// or https:// URL", parse_url), Secret()]
TimeZone = Annotated[str, Expect("an IANA time zone such as Europe/Moscow", parse_timezone)]
Severity = Annotated[str, Expect("one of " + ", ".join(SEVERITIES), parse_severity)]
Names = Annotated[tuple[str, ...], Expect("a non-empty list of names, e.g. [acme, globex]", parse_names)]
FilePath = Annotated[Path, Expect("a file path", lambda v: v if isinstance(v, Path) else Path(parse_text(v)))]
Bool = Annotated[bool, Strict(), Expect("true or false")]
PositiveInt = Annotated[int, Strict(), Field(ge=1), Expect("an integer of 1 or more")]
PositiveNumber = Annotated[float, Field(gt=0), Expect("a number greater than zero")]


# ---------------------------------------------------------------------------------------------
# Reading


def read_yaml(path: str | Path, what: str = "a readable YAML file") -> Any:
    """The YAML document of a file; ConfigError for an unreadable file or bad YAML (line, column)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, "(file)", what, exc.strerror or str(exc)) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "(file)"
        raise ConfigError(source, where, "valid YAML", getattr(exc, "problem", None) or str(exc)) from None


@lru_cache(maxsize=64)
def _adapter(tp: Any) -> TypeAdapter[Any]:
    return TypeAdapter(tp)


def validate(tp: type[T], raw: object, *, source: str, path: str = "") -> T:
    """``raw`` validated as ``tp`` (a model, or any type pydantic knows); ConfigError naming the place
    (``path`` is put before the key paths of errors: ``phases.update[0]``)."""
    if raw is None and issubclass(tp, BaseModel):
        raw = {}
    adapter: TypeAdapter[T] = _adapter(cast(Hashable, tp))
    try:
        value = adapter.validate_python(raw, context={"source": source, "path": path})
    except ValidationError as exc:
        raise translate(exc, tp, raw, source, path) from None
    return value


# ---------------------------------------------------------------------------------------------
# From pydantic's error to ours

_WORDS = {
    "missing": "a value",
    "string_type": "a string",
    "string_too_short": "a non-empty string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "tuple_type": "a list",
    "list_type": "a list",
    "too_short": "a non-empty list",
    "dict_type": "a mapping of keys to values",
    "model_type": "a mapping of keys to values",
    "model_attributes_type": "a mapping of keys to values",
    "enum": "one of the listed values",
}


def translate(exc: ValidationError, tp: Any, raw: object, source: str, prefix: str = "") -> ConfigError:
    """The first of pydantic's errors as a :class:`ConfigError` (key path, expectation, value)."""
    error = exc.errors(include_url=False)[0]
    kind = error["type"]
    where = _walk(tp, raw, tuple(error["loc"]))
    key = _join(prefix, where.path) or "(top level)"
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        allowed = ", ".join(sorted(where.parent_fields)) or "none"
        return ConfigError(source, key, f"no such key; expected one of {allowed}")
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        field = str(ctx.get("discriminator", "'type'")).strip("'")
        tags = ", ".join(where.tags) or str(ctx.get("expected_tags", ""))
        got = ctx.get("tag", ...)
        required = " (required)" if got is ... else ""
        return ConfigError(source, _join(key, field), f"one of {tags}{required}", got)
    problem = ctx.get("error")
    if isinstance(problem, Invalid):
        value = where.value.get(problem.key) if isinstance(where.value, Mapping) else None
        blamed = _join(_join(prefix, where.path), problem.key) or "(top level)"
        got = value if problem.got is ... else problem.got
        return ConfigError(source, blamed, problem.expected, NOT_SHOWN if where.secret else got)
    if kind == "value_error" and problem is not None:
        expected = str(problem)
    elif where.expect is not None:
        expected = where.expect
    elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = next(iter(ctx.values()), "")
        words = {"greater_than_equal": "or more", "greater_than": "exclusive, or more",
                 "less_than_equal": "or less", "less_than": "exclusive, or less"}[kind]
        expected = f"a number of {bound} {words}"
    elif kind == "literal_error":
        expected = "one of " + str(ctx.get("expected", "")).replace("'", "")
    else:
        expected = _WORDS.get(kind) or error["msg"][:1].lower() + error["msg"][1:]
    if kind == "missing":
        return ConfigError(source, key, expected + " (required)")
    return ConfigError(source, key, expected, NOT_SHOWN if where.secret else where.value)


def _join(prefix: str, path: str) -> str:
    if not prefix:
        return path
    if not path:
        return prefix
    return prefix + path if path.startswith("[") else f"{prefix}.{path}"


@dataclass(frozen=True)
class _Place:
    path: str
    value: object
    expect: str | None
    parent_fields: tuple[str, ...]
    tags: tuple[str, ...]
    secret: bool = False


def _walk(tp: Any, raw: object, loc: tuple[str | int, ...]) -> _Place:
    """Follow pydantic's error location through the type and the raw data at once."""
    path = ""
    value: object = raw
    current: Any = tp
    parent: tuple[str, ...] = _fields(tp)
    for item in loc:
        members = _tagged_members(current)
        if members and isinstance(item, str) and item in members:
            current = members[item]  # a discriminated union's tag: not a key of the data
            parent = _fields(current)
            continue
        parent = _fields(current)
        if isinstance(item, int):
            path += f"[{item}]"
            inside = isinstance(value, list | tuple) and -len(value) <= item < len(value)
            value = value[item] if inside and isinstance(value, list | tuple) else None
            current = _item_type(current)
        else:
            path = f"{path}.{item}" if path else str(item)
            value = value.get(item) if isinstance(value, Mapping) else None
            current = _field_type(current, item)
    return _Place(path, value, _expect(current), parent, tuple(_tagged_members(current)),
                  any(isinstance(item, Secret) for item in _strip(current)[1]))


def _strip(tp: Any) -> tuple[Any, list[Any]]:
    """(the type without Annotated and Optional, the Annotated metadata)."""
    metadata: list[Any] = []
    while True:
        if typing.get_origin(tp) is Annotated:
            args = typing.get_args(tp)
            tp, metadata = args[0], [*metadata, *args[1:]]
            continue
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
        return tp, metadata


def _expect(tp: Any) -> str | None:
    for item in _strip(tp)[1]:
        if isinstance(item, Expect):
            return item.text
    return None


def _fields(tp: Any) -> tuple[str, ...]:
    bare = _strip(tp)[0]
    if isinstance(bare, type) and issubclass(bare, BaseModel):
        return tuple(f.alias or name for name, f in bare.model_fields.items())
    return ()


def _field_type(tp: Any, key: str) -> Any:
    bare = _strip(tp)[0]
    if isinstance(bare, type) and issubclass(bare, BaseModel):
        for name, info in bare.model_fields.items():
            if key in (name, info.alias):
                return Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        return None
    args = typing.get_args(bare)
    return args[1] if typing.get_origin(bare) in (dict, Mapping) and len(args) == 2 else None


def _item_type(tp: Any) -> Any:
    bare = _strip(tp)[0]
    args = typing.get_args(bare)
    return args[0] if typing.get_origin(bare) in (tuple, list) and args else None


def _tagged_members(tp: Any) -> dict[str, Any]:
    """tag → model of a union of models that each have a ``Literal`` ``type`` (or ``kind``) field."""
    bare = _strip(tp)[0]
    if typing.get_origin(bare) not in (typing.Union, types.UnionType):
        return {}
    found: dict[str, Any] = {}
    for member in typing.get_args(bare):
        if isinstance(member, type) and issubclass(member, BaseModel):
            for field in ("type", "kind"):
                info = member.model_fields.get(field)
                if info is not None and typing.get_origin(info.annotation) is typing.Literal:
                    found.update({str(tag): member for tag in typing.get_args(info.annotation)})
    return found


def one_of(models: tuple[type[BaseModel], ...], field: str = "type") -> Any:
    """A discriminated union of plug-in option models (each has ``field: Literal["name"]``)."""
    if len(models) == 1:
        return models[0]
    return Annotated[typing.Union[models], Field(discriminator=field)]  # noqa: UP007 (built at run time)
