"""Property tests: random valid bodies built from the dictionary survive JSON -> FIX -> JSON,
and the generated JSON Schema accepts every body the mapper accepts."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastfix.dictionary import DataDictionary, Member
from fastfix.jsonfix import JsonCodec

jsonschema = pytest.importorskip("jsonschema")

DD = DataDictionary.load("FIX.4.4")
CODEC = JsonCodec(DD)
HEADER = [(49, "CLIENT"), (56, "HUB"), (34, 1), (52, "20240102-09:00:00.000")]

_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x01"),
                min_size=1, max_size=10)
_PRINTABLE = st.sampled_from([chr(c) for c in range(0x21, 0x7F)])
_DATE = st.dates().map(lambda d: f"{d.year:04d}{d.month:02d}{d.day:02d}")
_TIME = st.tuples(st.integers(0, 23), st.integers(0, 59), st.integers(0, 59),
                  st.sampled_from(["", ".123", ".000001", ".999999999"])).map(
    lambda t: f"{t[0]:02d}:{t[1]:02d}:{t[2]:02d}{t[3]}")


def _value(tag: int) -> st.SearchStrategy[Any]:
    f = DD.fields[tag]
    t = f.type
    if f.enums and t not in ("MULTIPLEVALUESTRING", "MULTIPLECHARVALUE", "MULTIPLESTRINGVALUE"):
        return st.sampled_from(sorted(f.enums))
    if t.startswith("MULTIPLE"):
        token = st.sampled_from(sorted(f.enums)) if f.enums else _PRINTABLE
        return st.lists(token, min_size=1, max_size=3).map(" ".join)
    if t == "INT":
        return st.one_of(st.integers(-10**6, 10**6).map(str), st.integers(-10**6, 10**6))
    if t in ("SEQNUM", "TAGNUM", "LENGTH"):
        return st.integers(0, 10**6).map(str)
    if t == "DAYOFMONTH":
        return st.integers(1, 31).map(str)
    if t in ("FLOAT", "QTY", "PRICE", "PRICEOFFSET", "AMT", "PERCENTAGE"):
        return st.from_regex(r"-?[0-9]{1,9}(\.[0-9]{1,6})?", fullmatch=True)
    if t == "CHAR":
        return _PRINTABLE
    if t == "BOOLEAN":
        return st.sampled_from(["Y", "N"])
    if t == "UTCTIMESTAMP":
        return st.tuples(_DATE, _TIME).map("-".join)
    if t == "UTCTIMEONLY":
        return _TIME
    if t in ("UTCDATEONLY", "LOCALMKTDATE"):
        return _DATE
    if t == "MONTHYEAR":
        return st.tuples(_DATE, st.sampled_from([0, 6, 8])).map(
            lambda x: x[0][: x[1]] if x[1] else x[0][:6] + "w2")
    return _TEXT


def _usable(m: Member) -> bool:
    # DATA fields need their length field kept in step; they are covered by example tests
    return DD.fields[m.tag].type not in ("DATA", "LENGTH")


def _object(members: tuple[Member, ...], delimiter: int | None, depth: int
            ) -> st.SearchStrategy[dict[str, Any]]:
    must = [m for m in members if (m.required or m.tag == delimiter) and _usable(m)]
    optional = [m for m in members if not (m.required or m.tag == delimiter) and _usable(m)
                and (m.group is None or depth < 2)]

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        chosen = must + draw(st.lists(st.sampled_from(optional), max_size=6, unique_by=id)
                             if optional else st.just([]))
        out: dict[str, Any] = {}
        for m in chosen:
            name = DD.fields[m.tag].name
            if m.group is not None:
                entry = _object(m.group.members, m.group.delimiter, depth + 1)
                out[name] = draw(st.lists(entry, min_size=0 if not m.required else 1, max_size=2))
            else:
                out[name] = draw(_value(m.tag))
        return out

    return build()


def _as_strings(body: Any) -> Any:
    """What FIX -> JSON gives back: every value a string."""
    if isinstance(body, dict):
        return {k: _as_strings(v) for k, v in body.items()}
    if isinstance(body, list):
        return [_as_strings(v) for v in body]
    return str(body)


BODIES = {t: _object(DD.messages[t].members, None, 0) for t in ("D", "E", "8", "G", "F", "9")}
VALIDATORS = {t: jsonschema.Draft202012Validator(CODEC.json_schema(t)) for t in BODIES}
_SETTINGS = settings(max_examples=60, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("msg_type", sorted(BODIES))
def test_json_fix_json_round_trip(msg_type: str) -> None:
    @_SETTINGS
    @given(BODIES[msg_type])
    def check(body: dict[str, Any]) -> None:
        wire = CODEC.body_to_fix(msg_type, msgspec.json.encode(body), header=HEADER)
        assert msgspec.json.decode(CODEC.fix_body_to_json(wire)) == _as_strings(body)
        # the whole message maps back to the same wire bytes
        assert CODEC.json_to_fix(CODEC.fix_to_json(wire)) == wire

    check()


@pytest.mark.parametrize("msg_type", sorted(BODIES))
def test_schema_accepts_what_the_mapper_accepts(msg_type: str) -> None:
    @_SETTINGS
    @given(BODIES[msg_type])
    def check(body: dict[str, Any]) -> None:
        CODEC.body_to_fix(msg_type, msgspec.json.encode(body))
        VALIDATORS[msg_type].validate(body)
        # and the strings-only form the gateway emits
        VALIDATORS[msg_type].validate(_as_strings(body))

    check()
