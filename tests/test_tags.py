"""fastfix.tags against the shipped data dictionaries, and the compiled modules against fastfix.tags."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import pytest

from fastfix import tags
from fastfix.codec import encode, parse
from fastfix.dictionary import DataDictionary, Member

SHIPPED = ("FIX.4.2", "FIX.4.4")
PXD = Path(tags.__file__).with_name("_tags.pxd")

# FIXT.1.1 and FIX 5.0 fields: the shipped FIX 4.x dictionaries do not define them.
LATER_NAMES = {
    1128: "ApplVerID", 1129: "CstmApplVerID", 1156: "ApplExtID", 1137: "DefaultApplVerID",
    969: "MinPriceIncrement", 1148: "LowLimitPrice", 1149: "HighLimitPrice",
}  # fmt: skip


def _all_tags(members: Iterable[Member]) -> set[int]:
    """Tags of these members and, for a group, of its entries (at any depth)."""
    out: set[int] = set()
    for m in members:
        out.add(m.tag)
        if m.group is not None:
            out |= _all_tags(m.group.members)
    return out


def _snake(fix_name: str) -> str:
    """``ClOrdID`` -> ``CL_ORD_ID``, ``SecurityIDSource`` -> ``SECURITY_ID_SOURCE``,
    ``NoPartyIDs`` -> ``NO_PARTY_IDS``."""
    words = re.sub(r"IDs(?![a-z])", "Ids", fix_name)
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", words).upper()


def test_header_tags_are_the_dictionaries_headers_plus_fixt() -> None:
    from_dicts = set().union(*(_all_tags(DataDictionary.load(v).header.members) for v in SHIPPED))
    assert tags.HEADER_TAGS == from_dicts | tags.FIXT_HEADER_TAGS
    assert not tags.FIXT_HEADER_TAGS & from_dicts


def test_fixt_header_tags_are_not_fix4_fields() -> None:
    for v in SHIPPED:
        assert not tags.FIXT_HEADER_TAGS & set(DataDictionary.load(v).fields)


def test_trailer_tags_are_each_dictionarys_trailer() -> None:
    for v in SHIPPED:
        assert tags.TRAILER_TAGS == _all_tags(DataDictionary.load(v).trailer.members), v


def test_hops_group_is_the_fix44_header_group() -> None:
    (hops,) = [m for m in DataDictionary.load("FIX.4.4").header.members if m.group is not None]
    assert hops.tag == tags.NO_HOPS
    assert tags.HOPS_GROUP_TAGS == _all_tags(hops.group.members)


def test_session_and_frame_sets_are_header_or_trailer_tags() -> None:
    assert tags.SESSION_HEADER_TAGS <= tags.HEADER_TAGS
    assert tags.FRAME_TAGS <= tags.HEADER_TAGS | tags.TRAILER_TAGS


@pytest.mark.parametrize(("name", "tag"), sorted(tags.tag_numbers().items()))
def test_constant_is_named_after_its_field(name: str, tag: int) -> None:
    names = {_snake(DataDictionary.load(v).fields[tag].name) for v in SHIPPED
             if tag in DataDictionary.load(v).fields}  # fmt: skip
    if tag in LATER_NAMES:
        names.add(_snake(LATER_NAMES[tag]))
    assert name in names


@pytest.mark.parametrize(("fix_name", "snake"), [
    ("ClOrdID", "CL_ORD_ID"), ("SecurityIDSource", "SECURITY_ID_SOURCE"), ("NoPartyIDs", "NO_PARTY_IDS"),
    ("TotNoRelatedSym", "TOT_NO_RELATED_SYM"), ("HeartBtInt", "HEART_BT_INT"), ("PosReqID", "POS_REQ_ID"),
])  # fmt: skip
def test_snake_case_of_field_names(fix_name: str, snake: str) -> None:
    assert _snake(fix_name) == snake


def test_later_version_names_are_not_shipped_fields() -> None:
    # A tag the shipped dictionaries define is checked against them, not against this table.
    for v in SHIPPED:
        assert not set(LATER_NAMES) & set(DataDictionary.load(v).fields), v


def test_tag_numbers_are_distinct() -> None:
    numbers = tags.tag_numbers()
    assert len(set(numbers.values())) == len(numbers)


def _pxd_constants(text: str) -> dict[str, int]:
    return {m[1]: int(m[2]) for m in re.finditer(r"^\s+([A-Z][A-Z0-9_]*) = (\d+)\s*$", text, re.M)}


def test_pxd_constants_equal_the_python_ones() -> None:
    text = PXD.read_text()
    assert _pxd_constants(text) == tags.tag_numbers()
    # setup.py regenerates it from tags.py; a stale copy means the build was skipped.
    assert text == tags._pxd_source()


@pytest.mark.parametrize("tag", sorted(tags.HEADER_TAGS - tags.FRAME_TAGS))
def test_encoder_moves_every_header_tag_into_the_header(tag: int) -> None:
    msg = parse(encode("FIX.4.4", "D", [(tags.CL_ORD_ID, "A"), (tag, "1"), (tags.SIGNATURE, "S")]))
    assert [t for t, _ in msg.fields()] == [
        tags.BEGIN_STRING, tags.BODY_LENGTH, tags.MSG_TYPE, tag, tags.CL_ORD_ID, tags.SIGNATURE,
        tags.CHECK_SUM,
    ]  # fmt: skip


@pytest.mark.parametrize("version", SHIPPED)
def test_dictionary_knows_every_header_and_trailer_tag(version: str) -> None:
    dd = DataDictionary.load(version)
    assert all(dd.is_header_field(t) for t in tags.HEADER_TAGS)
    assert all(dd.is_trailer_field(t) for t in tags.TRAILER_TAGS)
    assert not dd.is_header_field(tags.CL_ORD_ID) and not dd.is_trailer_field(tags.CL_ORD_ID)
