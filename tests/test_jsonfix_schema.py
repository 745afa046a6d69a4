"""JSON Schema / OpenAPI components generated from the dictionary agree with the mapper."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from fastfix.errors import JsonMappingError
from fastfix.jsonfix import JsonCodec

jsonschema = pytest.importorskip("jsonschema")


@pytest.fixture(scope="module")
def codec() -> JsonCodec:
    return JsonCodec("FIX.4.4")


NOS = {"ClOrdID": "A", "Side": "1", "OrdType": "2", "TransactTime": "20240102-09:00:00",
       "Symbol": "005930", "OrderQty": 10, "Price": 70000.5, "LocateReqd": True,
       "ExecInst": "1 G", "AcctIDSource": 1, "5001": "user"}
NOL = {"ListID": "L", "BidType": "3", "TotNoOrders": "1",
       "NoOrders": [{"ClOrdID": "C1", "ListSeqNo": "1", "Side": "1",
                     "NoPartyIDs": [{"PartyID": "P", "PartyRole": "3",
                                     "NoPartySubIDs": [{"PartySubID": "S"}]}]}]}

VALID = [("D", NOS), ("E", NOL), ("D", dict(NOS, EncodedText="가", EncodedTextLen=3)), ("F", {"OrigClOrdID": "A", "ClOrdID": "B", "Side": "2",
                                        "TransactTime": "20240102-09:00:00.000"})]
INVALID: list[tuple[str, dict[str, Any]]] = [
    ("D", {k: v for k, v in NOS.items() if k != "Side"}),           # missing required
    ("D", dict(NOS, Side="Z")),                                     # bad enum
    ("D", dict(NOS, Bogus="1")),                                    # unknown field
    ("D", dict(NOS, BidType="1")),                                  # not in this message
    ("D", dict(NOS, ClOrdID={"x": 1})),                             # wrong JSON type
    ("D", dict(NOS, TransactTime="2024-01-02 09:00")),              # bad timestamp
    ("D", dict(NOS, OrderQty="1e3")),                               # bad decimal text
    ("D", dict(NOS, TradeDate="20241301")),                         # bad date
    ("D", dict(NOS, NoPartyIDs=[{"PartyRole": "3"}])),              # entry without delimiter
    ("D", dict(NOS, NoPartyIDs={"PartyID": "P"})),                  # group not an array
    ("E", dict(NOL, NoOrders=[{"ClOrdID": "C1", "Side": "1"}])),    # required in entry
    ("D", dict(NOS, EncodedTextLen="3")),                           # length without its data
]


def test_schema_is_valid_2020_12(codec: JsonCodec) -> None:
    for t in ("D", "E", "F", "G", "8", "9", "K"):
        schema = codec.json_schema(t)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        jsonschema.Draft202012Validator.check_schema(schema)


def test_schema_shape(codec: JsonCodec) -> None:
    s = codec.json_schema("NewOrderList")
    assert s is codec.json_schema("E")  # built once
    assert s["title"] == "NewOrderList"
    assert s["required"] == ["ListID", "BidType", "TotNoOrders", "NoOrders"]
    entry = s["properties"]["NoOrders"]["items"]
    assert s["properties"]["NoOrders"]["type"] == "array"
    assert entry["required"][:3] == ["ClOrdID", "ListSeqNo", "Side"]
    assert entry["additionalProperties"] is False
    parties = entry["properties"]["NoPartyIDs"]["items"]
    assert parties["required"] == ["PartyID"]  # the delimiter starts every entry
    side = entry["properties"]["Side"]
    assert side["enum"][:2] == ["1", "2"] and side["type"] == "string"
    assert "1=BUY" in side["description"]
    qty = entry["properties"]["OrderQty"]
    assert qty["type"] == ["string", "number"] and "pattern" in qty


@pytest.mark.parametrize(("msg_type", "body"), VALID)
def test_schema_accepts_valid_bodies(codec: JsonCodec, msg_type: str, body: dict[str, Any]) -> None:
    codec.body_to_fix(msg_type, msgspec.json.encode(body))
    jsonschema.validate(body, codec.json_schema(msg_type))


@pytest.mark.parametrize(("msg_type", "body"), INVALID)
def test_schema_and_mapper_both_reject(codec: JsonCodec, msg_type: str, body: dict[str, Any]) -> None:
    with pytest.raises(JsonMappingError):
        codec.body_to_fix(msg_type, msgspec.json.encode(body))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, codec.json_schema(msg_type))


def test_user_defined_keys_follow_the_codec_setting() -> None:
    strict = JsonCodec("FIX.4.4", allow_user_defined=False)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(NOS, strict.json_schema("D"))
    jsonschema.validate({k: v for k, v in NOS.items() if k != "5001"}, strict.json_schema("D"))


def test_openapi_components(codec: JsonCodec) -> None:
    comps = codec.openapi_components(["D", "E", "G", "F", "K", "8", "9"])
    names = set(comps["schemas"])
    assert {"NewOrderSingle", "NewOrderList", "OrderCancelReplaceRequest", "OrderCancelRequest",
            "ListCancelRequest", "ExecutionReport", "OrderCancelReject",
            "FieldError", "JsonMappingError"} <= names
    # the document is plain JSON, and each schema checks as 2020-12 (what OpenAPI 3.1 uses)
    doc = msgspec.json.decode(msgspec.json.encode({"openapi": "3.1.0", "components": comps}))
    registry_doc = {"components": doc["components"]}
    for name, schema in doc["components"]["schemas"].items():
        jsonschema.Draft202012Validator.check_schema(schema)
        assert name
    err = {"$ref": "#/components/schemas/JsonMappingError", **registry_doc}
    jsonschema.validate({"errors": [{"path": "$.Side", "field": "Side", "reason": "x"}]}, err)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"errors": [{"path": "$.Side"}]}, err)
