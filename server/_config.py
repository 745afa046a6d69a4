"""TOML configuration shared by the services: typed tables, errors that name file and key.

A service describes its file with :class:`Table` structs (msgspec): field types,
defaults, ranges (``Annotated[int, Meta(ge=0)]``) and choices (``Literal``). An
unknown key in any table is an error. :func:`convert` checks a parsed document
against them; each problem becomes a :class:`ConfigError` that names the file and
the key path (``gateway.toml: clients[1].rate: Expected float, got str``), so an
operator can fix the file without reading code. Checks between keys (a client
naming an unknown broker) stay in the services, through :func:`config_error`.

Paths are :class:`~pathlib.Path` fields; :func:`convert` makes the relative ones
relative to the file's directory.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import msgspec

from fastfix.errors import ConfigError

__all__ = ["FixSettings", "LogLevel", "Port", "Table", "config_error", "convert", "existing_file", "read_toml"]

T = TypeVar("T")

Port = Annotated[int, msgspec.Meta(ge=0, le=65535, description="a TCP port, 0 = any free port")]
LogLevel = Literal["debug", "info", "warning", "error"]
FixSettings = Annotated[Path, msgspec.Meta(description="a QuickFIX-style settings file")]


class Table(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A table of a service's TOML file: keys are the fields, any other key is an error."""


def read_toml(path: str | Path) -> dict[str, Any]:
    """The parsed TOML document at ``path``."""
    p = Path(path)
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None


def config_error(where: str, key: str, reason: str) -> ConfigError:
    """``where: key: reason`` (``where`` names the file, ``key`` the key path in it)."""
    return ConfigError(f"{where}: {key}: {reason}" if key else f"{where}: {reason}")


def convert(data: dict[str, Any], kind: type[T], where: str, base: Path) -> T:
    """``data`` (a parsed TOML document) as a ``kind`` struct, relative paths taken from ``base``.

    Raises :class:`ConfigError` ``where: key.path: reason`` for the first problem.
    """
    try:
        out = msgspec.convert(data, kind, dec_hook=_path_hook)
    except msgspec.ValidationError as exc:
        key, reason = _describe(str(exc), data, kind)
        raise config_error(where, key, reason) from None
    _resolve_paths(out, base)
    return out


def existing_file(where: str, key: str, value: Path | None) -> None:
    """Key ``key`` of file ``where``, when given, must name an existing file."""
    if value is not None and not value.is_file():
        raise config_error(where, key, f"file not found: {value}")


# ----------------------------------------------------------------------------- internals


def _path_hook(kind: type, value: Any) -> Any:
    if kind is Path:
        if not isinstance(value, str) or not value:
            raise TypeError(f"Expected a path (a non-empty string), got {value!r}")
        return Path(value)
    raise NotImplementedError


def _resolve_paths(obj: Any, base: Path) -> None:
    """Make every relative :class:`Path` below ``obj`` (defaults included) relative to ``base``."""
    if isinstance(obj, msgspec.Struct):
        for name in obj.__struct_fields__:
            value = getattr(obj, name)
            if isinstance(value, Path):
                if not value.is_absolute():
                    setattr(obj, name, base / value)
            else:
                _resolve_paths(value, base)
    elif isinstance(obj, list):
        for item in obj:
            _resolve_paths(item, base)
    elif isinstance(obj, dict):
        for item in obj.values():
            _resolve_paths(item, base)


_MESSAGE = re.compile(r"^(?P<reason>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+)\]|\[\.\.\.\]")
_FIELD = re.compile(r"^Object (?P<what>contains unknown|missing required) field `(?P<name>[^`]+)`$")


def _describe(message: str, data: Any, kind: Any) -> tuple[str, str]:
    """msgspec's error as (key path, reason) in the file's terms."""
    m = _MESSAGE.match(message)
    assert m is not None  # the pattern matches any text
    reason, path = m["reason"], m["path"] or ""
    segments: list[str | int | None] = []  # field or key, list index, or None: some key of a table
    for s in _SEGMENT.finditer(path):
        segments.append(s[1] if s[1] is not None else int(s[2]) if s[2] is not None else None)
    if None in segments:  # msgspec does not say which key of a table: find it
        segments = _find_key(data, kind, segments)
    field = _FIELD.match(reason)
    if field:
        segments.append(field["name"])
    key = "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in segments).lstrip(".")
    kind_at = _type_at(kind, segments)
    if field and field["what"] == "contains unknown":
        value = _value_at(data, segments)
        table = isinstance(value, dict) or (isinstance(value, list) and value and isinstance(value[0], dict))
        return key, "unknown table" if table and len(segments) == 1 else "unknown key"
    if field:
        inner = _unwrap(kind_at)
        if isinstance(inner, type) and issubclass(inner, msgspec.Struct):
            return "", f"missing [{key}] table"
        reason = "is required"
    else:
        reason = reason.replace("`", "")
        choices = _literal_values(kind_at)
        if choices:
            reason += f" (one of: {', '.join(map(repr, choices))})"
    description = _description(kind_at)
    return key, f"{reason} ({description})" if description else reason


def _find_key(data: Any, kind: Any, segments: list[str | int | None]) -> list[str | int | None]:
    """``segments`` with each unnamed table key (None) replaced by the first key whose value fails."""
    out: list[str | int | None] = []
    for i, seg in enumerate(segments):
        if seg is None:
            table, value_kind = _value_at(data, out), _type_at(kind, [*out, None])
            for k, v in (table.items() if isinstance(table, dict) else ()):
                try:
                    msgspec.convert(v, value_kind, dec_hook=_path_hook)
                except msgspec.ValidationError:
                    seg = k
                    break
            if seg is None:
                return out + segments[i:]
        out.append(seg)
    return out


def _value_at(data: Any, segments: list[str | int | None]) -> Any:
    for seg in segments:
        try:
            data = data[seg]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _layers(kind: Any) -> Iterator[Any]:
    """``kind``, then the types under its ``Annotated`` and ``X | None`` layers."""
    while True:
        yield kind
        if get_origin(kind) is Annotated:
            kind = get_args(kind)[0]
        elif get_origin(kind) in (Union, UnionType):
            members = [a for a in get_args(kind) if a is not type(None)]
            if len(members) != 1:
                return
            kind = members[0]
        else:
            return


def _unwrap(kind: Any) -> Any:
    """The type under ``Annotated`` and ``X | None``."""
    *_, inner = _layers(kind)
    return inner


def _type_at(kind: Any, segments: list[str | int | None]) -> Any:
    """The declared type at key path ``segments`` below ``kind`` (None where it cannot tell)."""
    for seg in segments:
        kind = _unwrap(kind)
        origin = get_origin(kind)
        if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
            kind = {f.name: f.type for f in msgspec.structs.fields(kind)}.get(str(seg))
        elif origin is list:
            kind = get_args(kind)[0]
        elif origin is dict:
            kind = get_args(kind)[1]
        else:
            return None
    return kind


def _literal_values(kind: Any) -> tuple[Any, ...]:
    kind = _unwrap(kind)
    return get_args(kind) if get_origin(kind) is Literal else ()


def _description(kind: Any) -> str:
    """The ``Meta(description=...)`` of the key's type, if any."""
    for layer in _layers(kind):
        for meta in get_args(layer)[1:] if get_origin(layer) is Annotated else ():
            if isinstance(meta, msgspec.Meta) and meta.description:
                return meta.description
    return ""
