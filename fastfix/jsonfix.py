"""FIX <-> JSON mapping ("Encoding FIX using JSON", FIX Trading Community).

A message is ``{"Header": {...}, "Body": {...}, "Trailer": {...}}``; keys are
the dictionary's field names (a user-defined field may use its tag number),
every value is a JSON string holding the FIX value, enumerations use their
code, and a repeating group is an array of objects under the name of its
NumInGroup field::

    >>> from fastfix.jsonfix import JsonCodec
    >>> codec = JsonCodec("FIX.4.4")
    >>> wire = codec.body_to_fix("D", b'{"ClOrdID":"1","Side":"1","OrdType":"2",'
    ...     b'"TransactTime":"20240102-09:00:00","Symbol":"005930","OrderQty":10,"Price":"70000"}',
    ...     header=[(49, "CLIENT"), (56, "HUB"), (34, 1), (52, "20240102-09:00:00.000")])
    >>> wire.replace(b"\x01", b"|")
    b'8=FIX.4.4|9=113|35=D|49=CLIENT|56=HUB|34=1|52=20240102-09:00:00.000|11=1|55=005930|54=1|60=20240102-09:00:00|38=10|40=2|44=70000|10=141|'
    >>> codec.fix_body_to_json(wire)
    b'{"ClOrdID":"1","Symbol":"005930","Side":"1","TransactTime":"20240102-09:00:00","OrderQty":"10","OrdType":"2","Price":"70000"}'

:class:`JsonCodec` is built once per data dictionary (like a msgspec
``Decoder``): field keys, FIX types, enumerations, required fields and group
layouts are turned into C tables, so that each conversion is a single pass.
Input is validated against the same dictionary; every problem is reported at
once in a :class:`~fastfix.errors.JsonMappingError`.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import msgspec

from fastfix._jsonfix import NUMERIC_TYPES, TYPE_CODES, CodecCore, decode_error_text
from fastfix.dictionary import DataDictionary, GroupDef, Member, MessageDef
from fastfix.errors import FieldError, JsonMappingError

__all__ = ["JsonCodec", "JsonMappingError", "FieldError", "decode_error_text"]

_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
# Tags reserved for user-defined fields start here; such a field may be keyed by its number.
_USER_DEFINED_MIN = 5000

# Value patterns (JSON Schema, ECMA-262 syntax) matching the checks made in C.
_TS = r"[0-9]{4}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])"
_TM = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]{3}([0-9]{3}([0-9]{3})?)?)?"
_PATTERNS = {
    TYPE_CODES["STRING"]: "^[^\\u0001]+$",
    TYPE_CODES["INT"]: "^-?[0-9]+$",
    TYPE_CODES["LENGTH"]: "^[0-9]+$",
    TYPE_CODES["DAYOFMONTH"]: "^(0?[1-9]|[12][0-9]|3[01])$",
    TYPE_CODES["FLOAT"]: r"^-?([0-9]+(\.[0-9]*)?|\.[0-9]+)$",
    TYPE_CODES["CHAR"]: "^[!-~]$",
    TYPE_CODES["BOOLEAN"]: "^[YN]$",
    TYPE_CODES["UTCTIMESTAMP"]: f"^{_TS}-{_TM}$",
    TYPE_CODES["UTCTIMEONLY"]: f"^{_TM}$",
    TYPE_CODES["LOCALMKTDATE"]: f"^{_TS}$",
    TYPE_CODES["MONTHYEAR"]: r"^[0-9]{4}(0[1-9]|1[0-2])((0[1-9]|[12][0-9]|3[01])|w[1-5])?$",
    TYPE_CODES["MULTIPLEVALUESTRING"]: "^[^ \\u0001]+( [^ \\u0001]+)*$",
    TYPE_CODES["MULTIPLECHARVALUE"]: "^[!-~]( [!-~])*$",
    TYPE_CODES["DATA"]: None,
}
_INT_TYPES = frozenset({TYPE_CODES["INT"], TYPE_CODES["LENGTH"], TYPE_CODES["DAYOFMONTH"]})
_BOOL = TYPE_CODES["BOOLEAN"]
_MULTI = frozenset({TYPE_CODES["MULTIPLEVALUESTRING"], TYPE_CODES["MULTIPLECHARVALUE"]})

_FIELD_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "One problem in a JSON message: where, which field, why.",
    "properties": {
        "path": {"type": "string", "examples": ["$.NoOrders[1].OrderQty"]},
        "field": {"type": "string"},
        "reason": {"type": "string"},
    },
    "required": ["path", "field", "reason"],
}


def _type_code(fix_type: str) -> int:
    return TYPE_CODES.get(fix_type.upper(), TYPE_CODES["STRING"])


class JsonCodec(CodecCore):
    """FIX <-> JSON mapper pre-built for one data dictionary.

    ``dictionary`` is a :class:`~fastfix.dictionary.DataDictionary` or a version
    string (``"FIX.4.4"``). ``max_bytes`` bounds the JSON input size and
    ``max_depth`` its nesting (the Body object is level 1, each group adds two
    levels: the array and its entries). ``allow_user_defined`` accepts fields
    keyed by a tag number of 5000 or more that the dictionary does not define.

    ``fix_to_json``, ``fix_body_to_json``, ``body_to_fix`` and ``body_fields`` are compiled
    (inherited from the Cython core); ``json_to_fix`` and the schema methods are
    plain Python. One instance may be shared by any number of callers; it keeps
    no state between calls.
    """

    def __init__(self, dictionary: DataDictionary | str = "FIX.4.4", *,
                 max_bytes: int = 64 * 1024, max_depth: int = 16,
                 allow_user_defined: bool = True) -> None:
        dd = DataDictionary.load(dictionary) if isinstance(dictionary, str) else dictionary
        self.dictionary = dd
        self._begin = dd.begin_string.encode("ascii")
        # Floats are kept as Decimal so that a JSON number keeps the digits it was sent with.
        self._decoder = msgspec.json.Decoder(float_hook=decimal.Decimal)
        self._schemas: dict[str, dict[str, Any]] = {}
        self._allow_user_defined = allow_user_defined

        fields = []
        for f in dd.fields.values():
            enums = frozenset(f.enums) if f.enums else None
            text = ", ".join(f"{code} ({desc})" for code, desc in f.enums.items()) if f.enums else None
            fields.append((f.tag, f.name, _type_code(f.type), enums, text))
        groups: list[tuple[int, int, list[tuple[int, bool, int]]]] = []
        index: dict[GroupDef, int] = {}

        def members(ms: Iterable[Member], skip: frozenset[int] = frozenset()
                    ) -> list[tuple[int, bool, int]]:
            out = []
            for m in ms:
                if m.tag in skip:
                    continue
                gi = -1
                if m.group is not None:
                    gi = index.get(m.group, -1)
                    if gi < 0:
                        gi = len(groups)
                        index[m.group] = gi
                        groups.append((m.group.count_tag, m.group.delimiter, []))
                        groups[gi][2].extend(members(m.group.members))
                out.append((m.tag, m.required, gi))
            return out

        messages = [(m.msg_type, m.name, members(m.members)) for m in dd.messages.values()]
        header = members(dd.header.members)
        trailer = members(dd.trailer.members)
        # {length tag: data tag}, whichever way round the dictionary lists the pairs
        data_fields = {}
        for a, b in dd.data_fields.items():
            if dd.fields[a].type.upper() == "DATA":
                a, b = b, a
            data_fields[a] = b
        self._length_of_data = data_fields
        self._setup(fields, groups, messages, header, trailer, data_fields, max_depth,
                    allow_user_defined, FieldError, decimal.Decimal, self._decoder, max_bytes,
                    self._begin)

    # ------------------------------------------------------------------ JSON -> FIX

    def json_to_fix(self, data: bytes, header: Sequence[tuple[int, Any]] = ()) -> bytes:
        """Validated FIX wire bytes from a whole ``{"Header","Body","Trailer"}`` JSON message.

        The Header must hold MsgType; BeginString defaults to the dictionary's.
        BodyLength and CheckSum are computed (ignored if present). ``header``
        fields are written right after MsgType, before those of the JSON Header.
        """
        obj = self._decode_json(data)
        errors: list[FieldError] = []
        if type(obj) is not dict:
            raise JsonMappingError([FieldError("$", "", f"expected an object, got {_json_type(obj)}")])
        parts: dict[str, dict[str, Any]] = {}
        for key, value in obj.items():
            if key not in ("Header", "Body", "Trailer"):
                errors.append(FieldError(f"$.{key}", key, "unknown member: expected Header, Body, Trailer"))
            elif type(value) is not dict:
                errors.append(FieldError(f"$.{key}", key, f"expected an object, got {_json_type(value)}"))
            else:
                parts[key] = value
        hdr = dict(parts.get("Header", {}))
        body = parts.get("Body")
        if body is None and "Body" not in obj:
            errors.append(FieldError("$.Body", "Body", "required member missing"))
        msg_type = hdr.pop("MsgType", None)
        begin = hdr.pop("BeginString", None)
        hdr.pop("BodyLength", None)
        trl = dict(parts.get("Trailer", {}))
        trl.pop("CheckSum", None)
        ctx = None
        if msg_type is None:
            errors.append(FieldError("$.Header.MsgType", "MsgType", "required field missing"))
        elif type(msg_type) is not str:
            errors.append(FieldError("$.Header.MsgType", "MsgType",
                                     f"expected a string, got {_json_type(msg_type)}"))
        else:
            ctx = self._ctx(msg_type)
            if ctx is None:
                errors.append(FieldError("$.Header.MsgType", "MsgType",
                                         f"unknown message type {msg_type!r}"))
        if begin is not None and (type(begin) is not str or not begin.isascii() or not begin):
            errors.append(FieldError("$.Header.BeginString", "BeginString",
                                     "expected a non-empty ASCII string"))
        if errors or ctx is None or body is None:
            raise JsonMappingError(errors)
        out = self._message_to_fix(ctx, hdr, body, trl, header,
                                   begin.encode("ascii") if begin else self._begin)
        if type(out) is list:
            raise JsonMappingError(out)
        return out

    def _format_other(self, value: Any) -> bytes:
        if isinstance(value, datetime):
            from fastfix.codec import utc_timestamp

            return utc_timestamp(value)
        return super()._format_other(value)

    # ------------------------------------------------------------------ JSON Schema

    def json_schema(self, msg_type: str) -> dict[str, Any]:
        """JSON Schema (2020-12) of the Body of ``msg_type`` (MsgType or name), as validated here."""
        mdef = self.dictionary.message(msg_type)
        schema = self._schemas.get(mdef.msg_type)
        if schema is None:
            schema = {"$schema": _SCHEMA_DIALECT, **self._message_schema(mdef)}
            self._schemas[mdef.msg_type] = schema
        return schema

    def openapi_components(self, msg_types: Iterable[str]) -> dict[str, Any]:
        """``components`` of an OpenAPI 3.1 document: one schema per message Body, named
        after the message, plus ``FieldError`` and ``JsonMappingError`` for error answers."""
        schemas: dict[str, Any] = {}
        for t in msg_types:
            mdef = self.dictionary.message(t)
            schemas[mdef.name] = self._message_schema(mdef)
        schemas["FieldError"] = _FIELD_ERROR_SCHEMA
        schemas["JsonMappingError"] = {
            "type": "object",
            "properties": {"errors": {"type": "array",
                                      "items": {"$ref": "#/components/schemas/FieldError"}}},
            "required": ["errors"],
        }
        return {"schemas": schemas}

    def _message_schema(self, mdef: MessageDef) -> dict[str, Any]:
        schema = self._object_schema(mdef.members, top=True)
        schema["title"] = mdef.name
        schema["description"] = f"Body of {mdef.name} (MsgType {mdef.msg_type})"
        return schema

    def _object_schema(self, members: Sequence[Member], top: bool,
                       delimiter: int | None = None) -> dict[str, Any]:
        fields = self.dictionary.fields
        props: dict[str, Any] = {}
        required: list[str] = []
        for m in members:
            f = fields[m.tag]
            if m.group is not None:
                entry = self._object_schema(m.group.members, top=False,
                                            delimiter=m.group.delimiter)
                props[f.name] = {"type": "array", "items": entry,
                                 "description": f"{f.name} ({f.tag}): repeating group"}
            else:
                props[f.name] = self._field_schema(m.tag)
            if m.required or m.tag == delimiter:
                required.append(f.name)
        out: dict[str, Any] = {"type": "object", "properties": props}
        if required:
            out["required"] = required
        # a length field is only valid beside the DATA field it sizes
        pairs = {fields[ln].name: [fields[dt].name] for ln, dt in self._length_of_data.items()
                 if fields[ln].name in props and fields[dt].name in props}
        if pairs:
            out["dependentRequired"] = pairs
        if top and self._allow_user_defined:
            # user-defined fields keyed by their tag number (5000 and above)
            out["patternProperties"] = {
                "^([5-9][0-9]{3}|[1-9][0-9]{4,8})$": {"type": "string", "pattern": "^[^\\u0001]+$"}}
        out["additionalProperties"] = False
        return out

    def _field_schema(self, tag: int) -> dict[str, Any]:
        f = self.dictionary.fields[tag]
        code = _type_code(f.type)
        desc = f"{f.name} ({f.tag}), {f.type}"
        out: dict[str, Any]
        if code in _INT_TYPES:
            types: list[str] = ["string", "integer"]
        elif code in NUMERIC_TYPES:
            types = ["string", "number"]
        elif code == _BOOL:
            types = ["string", "boolean"]
        else:
            types = ["string"]
        if f.enums and code not in _MULTI:
            desc += ": " + ", ".join(f"{k}={v}" for k, v in f.enums.items())
            values: list[Any] = list(f.enums)
            if code in NUMERIC_TYPES:
                values += [int(v) for v in f.enums if re.fullmatch(r"-?[0-9]+", v)]
            if code == _BOOL:
                values += [v == "Y" for v in f.enums if v in ("Y", "N")]
            out = {"type": types if len(types) > 1 else types[0], "enum": values}
        else:
            pattern = _PATTERNS.get(code, _PATTERNS[TYPE_CODES["STRING"]])
            if code in _MULTI and f.enums:
                alt = "|".join(re.escape(v) for v in f.enums)
                pattern = f"^({alt})( ({alt}))*$"
            out = {"type": types if len(types) > 1 else types[0]}
            if pattern is not None:
                out["pattern"] = pattern
            else:
                out["minLength"] = 1
            # minimum/maximum apply to JSON numbers only; strings are held by the pattern
            if code == TYPE_CODES["LENGTH"]:
                out["minimum"] = 0
            elif code == TYPE_CODES["DAYOFMONTH"]:
                out["minimum"], out["maximum"] = 1, 31
        out["description"] = desc
        return out


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, dict):
        return "object"
    if isinstance(v, list):
        return "array"
    if isinstance(v, str):
        return "string"
    return "number"
