"""Raw (YAML-decoded) mappings → the config's frozen structs, with errors that name the key.

:func:`convert` validates one mapping into a msgspec Struct. Every failure becomes one
:class:`~agent.errors.ConfigError` naming the file, the key path, what was expected and the value
given, whatever raised it:

- msgspec's own messages ("Expected `bool`, got `str` - at `$.verify_tls`", "Object missing
  required field `url`", "Object contains unknown field `adress`"): the path is walked through the
  struct types to the key's annotation, whose ``expected`` words (see :mod:`agent.configtypes`)
  replace msgspec's Python type names; an unknown key lists the keys the struct has;
- a value type's parser (through ``dec_hook``): its ValueError's text is the expectation;
- a struct's ``__post_init__`` (keys that do not fit together): :class:`~agent.errors.SpecError`
  names the key.

The value given is looked up in the raw mapping along the same path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal, Optional, TypeVar, Union, get_args, get_origin

import msgspec

from agent.configtypes import NATIVE_EXPECTED, dec_hook
from agent.errors import ConfigError, SpecError

T = TypeVar("T", bound=msgspec.Struct)

_WHERE = re.compile(r"^(?P<message>.*) - at `\$(?P<path>.*)`$", re.DOTALL)
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<key>.+)`$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(?P<key>.+)`$", re.DOTALL)
_MSGSPEC_OWN = ("Expected `", "Invalid enum value")
_ABSENT = object()


class _NotShown:
    def __repr__(self) -> str:
        return "a value not shown here (it may hold a password)"


NOT_SHOWN: Any = _NotShown()


def convert(spec: type[T], raw: Mapping[str, Any], *, source: str, path: str = "") -> T:
    """``raw`` as a ``spec``; ``path`` is where ``raw`` sits in the file (``checks[2]``)."""
    try:
        return msgspec.convert(raw, spec, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:
        raise config_error(exc, spec, raw, source=source, path=path) from None
    except SpecError as exc:  # a rule between keys, from the struct's __post_init__
        got = raw.get(exc.key, ...) if isinstance(raw, Mapping) else ...
        raise ConfigError(source, join(path, exc.key), exc.expected, got) from None


def config_error(
    exc: msgspec.ValidationError, spec: type[msgspec.Struct], raw: object, *, source: str, path: str = "",
) -> ConfigError:
    """The :class:`ConfigError` for msgspec's ``exc`` raised converting ``raw`` into ``spec``."""
    text = str(exc)
    where = _WHERE.match(text)
    message, location = (where["message"], where["path"]) if where else (text, "")
    tp: Any = spec
    value: Any = raw
    for name, index in _SEGMENT.findall(location):
        key: Union[str, int] = name if name else int(index)
        path = join(path, key)
        tp = _key_type(tp, key)
        value = _lookup(value, key)

    unknown = _UNKNOWN.match(message)
    if unknown:
        allowed = sorted(f.encode_name for f in msgspec.structs.fields(_struct(tp) or spec))
        return ConfigError(source, join(path, unknown["key"]),
                           "no such key; expected one of " + ", ".join(allowed))
    missing = _MISSING.match(message)
    if missing:
        key_type = _key_type(tp, missing["key"])
        return ConfigError(source, join(path, missing["key"]), expected_text(key_type) + " (required)")
    expected = expected_text(tp) if message.startswith(_MSGSPEC_OWN) else message
    if getattr(_optional(tp), "secret", False) and value is not _ABSENT:
        value = NOT_SHOWN  # a value that may hold a password is not echoed
    return ConfigError(source, path or "(top level)", expected, ... if value is _ABSENT else value)


def expected_text(tp: Any) -> str:
    """The words for what a key of type ``tp`` holds ("a duration such as 10s, 5m or 1h")."""
    tp = _optional(tp)
    if _struct(tp) is not None:
        return "a mapping of keys to values"
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(str(a) for a in get_args(tp))
    text = getattr(tp, "expected", None)
    if isinstance(text, str):
        return text
    return NATIVE_EXPECTED.get(tp, "a value")


def join(path: str, key: Union[str, int]) -> str:
    """``checks[2]`` + ``timeout`` → ``checks[2].timeout``; ``checks`` + 2 → ``checks[2]``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _optional(tp: Any) -> Any:
    """``X | None`` → ``X``."""
    if get_origin(tp) is Union:  # X | None and Optional[X] (the agent spells it Optional: Python 3.9)
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _struct(tp: Any) -> Optional[type[msgspec.Struct]]:
    tp = _optional(tp)
    return tp if isinstance(tp, type) and issubclass(tp, msgspec.Struct) else None


def _key_type(tp: Any, key: Union[str, int]) -> Any:
    """The annotation of ``key`` in struct ``tp`` (by its name in the file); None if unknown."""
    struct = _struct(tp)
    if struct is None or isinstance(key, int):
        return None
    for f in msgspec.structs.fields(struct):
        if f.encode_name == key:
            return f.type
    return None


def _lookup(value: object, key: Union[str, int]) -> object:
    if isinstance(key, str) and isinstance(value, Mapping):
        return value.get(key, _ABSENT)
    if isinstance(key, int) and isinstance(value, (list, tuple)) and 0 <= key < len(value):
        return value[key]
    return _ABSENT
