"""The SDK's types, the OpenAPI document and the AsyncAPI document describe the same API.

* The generated request Structs have the properties and required fields of the OpenAPI
  request schemas (both come from the data dictionary; this holds them together).
* The answer Structs name the properties of the OpenAPI answer schemas.
* ``/asyncapi.json`` is an AsyncAPI 3.0 document (no PyPI package ships the official
  AsyncAPI JSON Schema, so its structure is checked here: every reference resolves, every
  operation names messages of its channel, every schema is a valid Draft 2020-12 schema),
  and the frames a real stream sends validate against its payload schemas.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

import jsonschema
import msgspec
import pytest
from _client_sandbox import KEY, SandboxRun

from fastfix.client import Accepted, AsyncClient, Order, messages
from server.gateway.asyncapi import PUSHED, build_asyncapi
from server.gateway.mapping import JsonMapper
from server.gateway.openapi import build_openapi


@pytest.fixture(scope="module")
def mapper() -> JsonMapper:
    return JsonMapper("FIX.4.4")


def test_request_structs_match_the_openapi_schemas(mapper: JsonMapper) -> None:
    doc = build_openapi(mapper, "FIX.4.4")
    schemas = doc["components"]["schemas"]
    m = messages("FIX.4.4")
    for t in ("D", "E", "G"):
        cls = m.requests[t]
        schema = schemas[cls.__name__]
        assert set(cls.__struct_fields__) == set(schema["properties"]), t
        info = msgspec.inspect.type_info(cls)
        required = {f.name for f in info.fields if f.required}
        assert required == set(schema.get("required", [])), t
    for t in ("8", "9", "N", "j"):
        cls = m.reports[t]
        assert set(cls.__struct_fields__) == set(schemas[cls.__name__]["properties"]), t


def test_answer_structs_name_the_openapi_properties(mapper: JsonMapper) -> None:
    schemas = build_openapi(mapper, "FIX.4.4")["components"]["schemas"]
    for cls, name in ((Order, "Order"), (Accepted, "Accepted")):
        assert set(cls.__struct_fields__) == set(schemas[name]["properties"]), name
        info = msgspec.inspect.type_info(cls)
        assert {f.name for f in info.fields if f.required} == set(schemas[name]["required"]), name


# --------------------------------------------------------------------------- AsyncAPI

_SECURITY_TYPES = {"userPassword", "apiKey", "X509", "symmetricEncryption", "asymmetricEncryption", "httpApiKey",
                   "http", "oauth2", "openIdConnect", "plain", "scramSha256", "scramSha512", "gssapi"}


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        assert isinstance(node, dict) and part in node, f"unresolved {ref}"
        node = node[part]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return ([node["$ref"]] if isinstance(node.get("$ref"), str) else []) + [
            r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def check_asyncapi_3(doc: dict[str, Any]) -> None:
    """The parts of the AsyncAPI 3.0 specification this document uses, checked."""
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"] and doc["info"]["version"]
    for ref in _refs(doc):
        _resolve(doc, ref)
    for server in doc["servers"].values():
        assert server["host"] and server["protocol"] in ("ws", "wss")
        for var in server.get("variables", {}).values():
            assert "default" in var
    for channel in doc["channels"].values():
        assert channel["address"].startswith("/")
        for msg in channel["messages"].values():
            assert "payload" in _resolve(doc, msg["$ref"])
    for name, op in doc["operations"].items():
        assert op["action"] in ("send", "receive"), name
        channel_ref = op["channel"]["$ref"]
        assert channel_ref.startswith("#/channels/")
        for part in [op, op.get("reply", {})]:
            for msg in part.get("messages", []):
                # operation messages must be messages of the operation's channel
                assert msg["$ref"].startswith((part.get("channel") or op["channel"])["$ref"] + "/messages/"), name
    for scheme in doc["components"]["securitySchemes"].values():
        assert scheme["type"] in _SECURITY_TYPES
        if scheme["type"] == "httpApiKey":
            assert scheme["in"] in ("query", "header", "cookie") and scheme["name"]
    for name, schema in doc["components"]["schemas"].items():
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema.get("type") == "object", name


def test_asyncapi_document_structure(mapper: JsonMapper) -> None:
    doc = build_asyncapi(mapper, "FIX.4.4")
    check_asyncapi_3(doc)
    dd = mapper.codec.dictionary
    names = {dd.message(t).name for t in PUSHED}
    assert names == {"ExecutionReport", "OrderCancelReject", "ListStatus", "BusinessMessageReject", "Reject",
                     "OrderMassCancelReport", "TradingSessionStatus"}
    assert {f"{n}Event" for n in names} <= set(doc["components"]["messages"])
    ops = doc["operations"]
    assert {r["$ref"].rsplit("/", 1)[-1] for r in ops["receiveEvents"]["messages"]} == {
        f"{n}Event" for n in names} | {"GatewayEvent"}
    assert {op for op, o in ops.items() if o["action"] == "receive"} == {"auth", "subscribe", "unsubscribe", "ping"}
    # the Body schemas are the dictionary's, as in the OpenAPI document
    openapi = build_openapi(mapper, "FIX.4.4")["components"]["schemas"]
    for n in names:
        assert doc["components"]["schemas"][n] == openapi[n]


def _validator(doc: dict[str, Any], name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": doc["components"]})


def test_real_frames_match_the_asyncapi_payloads(sandbox: SandboxRun) -> None:
    with urllib.request.urlopen(sandbox.url + "/asyncapi.json", timeout=10) as r:
        served = json.loads(r.read())
    assert served == json.loads(json.dumps(build_asyncapi(JsonMapper("FIX.4.4"), "FIX.4.4")))

    async def frames() -> list[dict[str, Any]]:
        from picows.websockets.asyncio.client import connect

        async with AsyncClient(sandbox.url, KEY) as c:
            await c.new_order(DeliverToCompID="KIWOOM", Symbol="005930", Side="1", OrdType="1", OrderQty="1")
        out = []
        async with connect(sandbox.ws_url, compression=None) as ws:
            await ws.send(json.dumps({"op": "auth", "api_key": KEY, "since": 0}))
            out.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
            for _ in range(2):
                out.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
            await ws.send(json.dumps({"op": "ping"}))
            for _ in range(10_000):
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                out.append(frame)
                if frame["type"] == "pong":
                    break
            await ws.send(json.dumps({"op": "bogus"}))
            for _ in range(10_000):
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                out.append(frame)
                if frame["type"] == "error":
                    break
        return out

    got = asyncio.run(asyncio.wait_for(frames(), 60))
    kinds = {"subscribed": "Subscribed", "heartbeat": "Heartbeat", "pong": "Pong", "error": "StreamError"}
    names = {m: messages("FIX.4.4").reports[m].__name__ for m in PUSHED}
    seen = set()
    for frame in got:
        name = kinds.get(frame["type"]) or f"{names[frame['message']['Header']['MsgType']]}Event"
        _validator(served, name).validate(frame)
        seen.add(name)
    assert {"Subscribed", "ExecutionReportEvent", "Pong", "StreamError"} <= seen
    for op in ({"op": "auth", "api_key": "k", "since": 3}, {"op": "subscribe"}, {"op": "ping"}):
        _validator(served, op["op"].capitalize()).validate(op)
    with pytest.raises(jsonschema.ValidationError):
        _validator(served, "ExecutionReportEvent").validate({**got[1], "seq": 0})
