"""Data dictionaries: XML loading, component/group resolution, shipped dictionaries, dialects."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fastfix.cli import main as cli_main
from fastfix.dictionary import DataDictionary, FieldDef, GroupDef, Member, MessageDef
from fastfix.errors import ConfigError

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SHARED_SPEC = SHARED / "fix" / "spec"

# A broker/KRX dialect layered on FIX.4.4: see the comment in the file.
DIALECT = Path(__file__).parent / "data" / "krx44_dialect.xml"


@pytest.fixture(scope="module")
def fix44() -> DataDictionary:
    return DataDictionary.load("FIX.4.4")


@pytest.fixture(scope="module")
def fix42() -> DataDictionary:
    return DataDictionary.load("FIX.4.2")


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_shipped_dictionaries_load(fix44: DataDictionary, fix42: DataDictionary) -> None:
    assert fix44.begin_string == "FIX.4.4"
    assert fix42.begin_string == "FIX.4.2"
    assert DataDictionary.load("FIX44") is fix44  # cached, alias accepted
    assert len(fix44.messages) == 93 and len(fix42.messages) == 46
    with pytest.raises(ConfigError, match="no shipped data dictionary"):
        DataDictionary.load("FIX.9.9")


def test_fields_and_enums(fix44: DataDictionary) -> None:
    side = fix44.field(54)
    assert side == fix44.field("Side") == fix44.fields_by_name["Side"]
    assert isinstance(side, FieldDef)
    assert (side.tag, side.name, side.type) == (54, "Side", "CHAR")
    assert side.enums["1"] == "BUY" and side.enums["2"] == "SELL"
    assert fix44.field("38").name == "OrderQty"
    assert fix44.field(11).enums == {}
    with pytest.raises(KeyError):
        fix44.field("NoSuchField")


def test_header_trailer(fix44: DataDictionary) -> None:
    h = fix44.header
    assert [m.tag for m in h.members][:5] == [8, 9, 35, 49, 56]
    assert h.required == frozenset({8, 9, 35, 49, 56, 34, 52})
    assert fix44.is_header_field(52) and fix44.is_header_field(627)
    assert not fix44.is_header_field(11)
    assert fix44.is_trailer_field(10) and not fix44.is_trailer_field(52)
    hops = next(m for m in h.members if m.tag == 627)
    assert hops.group is not None and hops.group.delimiter == 628
    assert fix44.trailer.required == frozenset({10})


def test_message_flattened_components(fix44: DataDictionary, fix42: DataDictionary) -> None:
    d = fix44.message("D")
    assert d is fix44.message("NewOrderSingle") is fix44.messages_by_name["NewOrderSingle"]
    assert isinstance(d, MessageDef) and d.category == "app" and d.name == "NewOrderSingle"
    tags = [m.tag for m in d.members]
    # Parties (453) comes from a component, Instrument's Symbol (55) too, in XML order.
    assert tags.index(11) < tags.index(453) < tags.index(55) < tags.index(54)
    assert d.required == frozenset({11, 54, 60, 40})
    assert fix42.message("D").required == frozenset({11, 21, 40, 54, 55, 60})
    # Instrument is a required component but Symbol itself is optional.
    assert 55 not in d.required
    assert fix44.message("0").category == "admin"
    assert fix44.message(b"A").name == "Logon"
    with pytest.raises(KeyError):
        fix44.message("ZZ")


def test_nested_groups(fix44: DataDictionary) -> None:
    e = fix44.message("E")
    no_orders = next(m for m in e.members if m.tag == 73)
    assert no_orders.required
    g = no_orders.group
    assert isinstance(g, GroupDef)
    assert (g.count_tag, g.name, g.delimiter) == (73, "NoOrders", 11)
    by_tag = {m.tag: m for m in g.members}
    assert by_tag[11] == Member(11, True, None)
    assert by_tag[67].required  # ListSeqNo
    parties = by_tag[453].group
    assert parties is not None and parties.delimiter == 448
    sub = {m.tag: m for m in parties.members}[802].group
    assert sub is not None and (sub.name, sub.delimiter) == ("NoPartySubIDs", 523)
    # Fields of components inside a group entry are never required (QuickFIX rule).
    assert not by_tag[55].required


def test_fix42_groups(fix42: DataDictionary) -> None:
    e = fix42.message("E")
    g = next(m for m in e.members if m.tag == 73).group
    assert g is not None and g.delimiter == 11
    assert {m.tag for m in g.members} >= {11, 67, 55, 54, 38, 40, 44}
    assert fix42.field(73).type == "INT"


def test_data_fields(fix44: DataDictionary) -> None:
    assert fix44.data_fields[95] == 96
    assert fix44.data_fields[90] == 91
    assert fix44.data_fields[212] == 213


@pytest.mark.parametrize("version,name", [("FIX.4.4", "FIX44.xml"), ("FIX.4.2", "FIX42.xml")])
def test_shipped_equal_to_shared_xml(version: str, name: str) -> None:
    xml = SHARED_SPEC / name
    if not xml.exists():
        pytest.skip("../shared is absent")
    assert DataDictionary.from_xml(xml) == DataDictionary.load(version)


def test_compile_roundtrip(tmp_path: Path, fix42: DataDictionary) -> None:
    out = tmp_path / "x.json"
    out.write_bytes(fix42.compile())
    again = DataDictionary.from_compiled(out)
    assert again == fix42 and again is not fix42


def test_dialect_extend(tmp_path: Path, fix44: DataDictionary) -> None:
    xml = DIALECT
    dd = fix44.extend(xml)
    assert dd is not fix44 and 5001 not in fix44.fields
    assert dd.field("KrxBoardID").tag == 5001
    assert dd.field(5002).enums == {"1": "PRE_OPEN", "2": "CONTINUOUS"}
    # Enum values are added to the base's, not replacing them.
    assert dd.field(40).enums["X"] == "KRX_CONDITIONAL_LIMIT"
    assert dd.field(40).enums["2"] == "LIMIT"
    d = dd.message("D")
    assert [m.tag for m in d.members][-1] == 5001
    assert d.required == fix44.message("D").required
    u1 = dd.message("KrxMarketStatus")
    assert u1.msg_type == "U1" and u1.category == "app"
    assert u1.required == frozenset({5001})
    assert 55 in {m.tag for m in u1.members}  # base component resolved
    g = next(m for m in u1.members if m.tag == 5003).group
    assert g is not None and g.delimiter == 5004
    assert "U1" in dd.field(35).enums
    assert DataDictionary.from_xml(xml, base=fix44) == dd


def test_full_custom_dictionary(tmp_path: Path) -> None:
    xml = write(tmp_path, "tiny.xml", """\
        <fix major='4' minor='4'>
         <header><field name='BeginString' required='Y'/><field name='MsgType' required='Y'/></header>
         <trailer><field name='CheckSum' required='Y'/></trailer>
         <messages>
          <message name='Ping' msgtype='P' msgcat='admin'>
           <component name='Body' required='Y'/>
          </message>
         </messages>
         <components>
          <component name='Body'><field name='Note' required='Y'/><component name='Inner' required='N'/></component>
          <component name='Inner'><field name='Extra' required='Y'/></component>
         </components>
         <fields>
          <field number='8' name='BeginString' type='STRING'/>
          <field number='35' name='MsgType' type='STRING'/>
          <field number='10' name='CheckSum' type='STRING'/>
          <field number='58' name='Note' type='STRING'/>
          <field number='7000' name='Extra' type='INT'/>
         </fields>
        </fix>
        """)
    dd = DataDictionary.from_xml(xml)
    p = dd.message("P")
    assert [m.tag for m in p.members] == [58, 7000]
    assert p.required == frozenset({58})  # Extra's component is optional
    assert p.category == "admin"


@pytest.mark.parametrize("body,match", [
    ("<fix major='4' minor='4'><fields>", "could not parse"),
    ("<fox/>", "no <fix>"),
    ("<fix major='4' minor='4'><header/><trailer/><messages/></fix>", "<fields> section"),
    ("<fix major='4' minor='4'><fields><field number='1' name='A' type='INT'/></fields>"
     "<header/><trailer/><messages><message name='M' msgtype='M'><field name='B' required='Y'/>"
     "</message></messages></fix>", "field B not defined"),
    ("<fix major='4' minor='4'><fields><field number='1' name='A' type='INT'/></fields>"
     "<header/><trailer/><messages><message name='M' msgtype='M'><component name='C' required='Y'/>"
     "</message></messages></fix>", "component not found: C"),
    ("<fix major='4' minor='4'><fields><field name='A' type='INT'/></fields></fix>",
     "A does not have a valid number"),
])
def test_loading_errors_name_the_file(tmp_path: Path, body: str, match: str) -> None:
    xml = write(tmp_path, "broken.xml", body)
    with pytest.raises(ConfigError, match=match) as exc:
        DataDictionary.from_xml(xml)
    assert "broken.xml" in str(exc.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.xml"):
        DataDictionary.from_xml(tmp_path / "nope.xml")


def test_cli_compile_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    xml = DIALECT
    out = tmp_path / "KRX44.json"
    assert cli_main(["dictionary", "compile", str(xml), str(out), "--base", "FIX.4.4"]) == 0
    dd = DataDictionary.from_compiled(out)
    assert dd.field(5001).name == "KrxBoardID"
    capsys.readouterr()
    assert cli_main(["dictionary", "show", str(out), "U1"]) == 0
    shown = capsys.readouterr().out
    assert "U1 KrxMarketStatus (app)" in shown and "5001 KrxBoardID STRING required" in shown
    assert cli_main(["dictionary", "show", "FIX.4.2", "Side"]) == 0
    assert "1 = BUY" in capsys.readouterr().out
    assert cli_main(["dictionary", "show", "FIX.4.4", "Nope"]) == 1
    assert cli_main(["dictionary", "show", "FIX.4.4", "D"]) == 0
    assert "453 NoPartyIDs (group, delimiter 448)" in capsys.readouterr().out
