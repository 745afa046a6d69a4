"""OpenAPI 3.1 document of the REST API, and the /docs page.

The request schemas are the JSON Schemas of the FIX-JSON mapper, built from the
same data dictionary that validates the requests: nothing is written twice.
"""

from __future__ import annotations

import copy
import html
from typing import Any

__all__ = ["build_openapi", "docs_page"]

_ORDER_VIEW: dict[str, Any] = {
    "type": "object",
    "description": "An order as the gateway knows it (FIX-JSON names, string values).",
    "properties": {
        "ClOrdID": {"type": "string"},
        "state": {"type": "string", "examples": ["PendingNew", "New", "PartiallyFilled", "Filled"]},
        "OrdStatus": {"type": "string", "description": "OrdStatus (39) code"},
        "broker": {"type": "string"},
        "Symbol": {"type": "string"}, "Side": {"type": "string"}, "OrdType": {"type": "string"},
        "OrderQty": {"type": "string"}, "Price": {"type": "string"}, "Account": {"type": "string"},
        "CumQty": {"type": "string"}, "LeavesQty": {"type": "string"}, "AvgPx": {"type": "string"},
        "ListID": {"type": "string"}, "OrigClOrdID": {"type": "string"}, "ReplacedBy": {"type": "string"},
        "OrderID": {"type": "string"}, "Text": {"type": "string"},
        "pending": {"type": "string", "enum": ["cancel", "replace"]},
        "created": {"type": "string", "format": "date-time"},
        "updated": {"type": "string", "format": "date-time"},
        "executions": {"type": "array", "items": {"type": "object"}},
        "TimeInForce": {"type": "string"}, "ExecInst": {"type": "string"},
        "OrdStatusReqID": {"type": "string", "description": "the answer of POST .../status: the request's id"},
    },
    "required": ["ClOrdID", "state", "OrdStatus", "broker"],
}

_ACCEPTED: dict[str, Any] = {
    "type": "object",
    "properties": {
        "ClOrdID": {"type": "string"}, "ListID": {"type": "string"}, "OrigClOrdID": {"type": "string"},
        "state": {"type": "string"}, "OrdStatus": {"type": "string"}, "broker": {"type": "string"},
        "created": {"type": "string", "format": "date-time"},
        "orders": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["state"],
}

_ERROR: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "errors": {"type": "array", "items": {
            "type": "object",
            "properties": {"field": {"type": "string"}, "reason": {"type": "string"},
                           "path": {"type": "string"}},
            "required": ["field", "reason"]}},
    },
    "required": ["error", "message"],
}

_INSTRUMENT: dict[str, Any] = {
    "type": "object",
    "description": "An instrument (prices in KRW, as text).",
    "properties": {
        "Symbol": {"type": "string", "description": "KRX short code"},
        "name": {"type": "string"}, "market": {"type": "string", "examples": ["KOSPI", "KOSDAQ"]},
        "SecurityID": {"type": "string", "description": "ISIN"},
        "tick_size": {"type": "string", "description": "tick size at the current price"},
        "base_price": {"type": "string", "description": "base price (the previous close)"},
        "lower_limit": {"type": "string"}, "upper_limit": {"type": "string"},
        "TradingSessionID": {"type": "string"}, "TradingSessionSubID": {"type": "string"},
        "session": {"type": "object", "description": "the latest TradingSessionStatus (35=h) that applies",
                    "additionalProperties": {"type": "string"}},
        "source": {"type": "string", "enum": ["exchange", "static"]},
    },
    "required": ["Symbol", "source"],
}

_MASS_CANCEL_SENT: dict[str, Any] = {
    "type": "object",
    "properties": {"ClOrdID": {"type": "string"}, "broker": {"type": "string"},
                   "MassCancelRequestType": {"type": "string"}, "Symbol": {"type": "string"},
                   "Side": {"type": "string"}, "Account": {"type": "string"},
                   "state": {"const": "Sent"}},
    "required": ["ClOrdID", "broker", "MassCancelRequestType", "state"],
}

_ROUTING = ("The broker is named by `DeliverToCompID` in the Body (or in a `Header` object when "
            "the request is a whole FIX-JSON message `{\"Header\": {...}, \"Body\": {...}}`); it may be "
            "left out when the client is allowed a single broker.")


def _err(desc: str) -> dict[str, Any]:
    return {"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _body(name: str, routed: bool) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{name}"}
    schema: dict[str, Any] = ref
    if routed:
        schema = {"allOf": [ref], "description": _ROUTING}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


_WRITE_ERRORS = {
    "400": _err("Malformed JSON"),
    "401": _err("Missing or invalid API key"),
    "403": _err("Broker or account not allowed for this client"),
    "409": _err("ClOrdID/ListID already used with a different request, or the order is closed"),
    "413": _err("Body too large"),
    "422": _err("Invalid request: every problem is listed in `errors`"),
    "429": _err("Throttled (see Retry-After)"),
    "503": _err("FIX session to the hub is not logged on"),
}


_INQUIRY_ERRORS = {
    "400": _err("Invalid query: broker required (several brokers) or unknown"),
    "401": _err("Missing or invalid API key"),
    "403": _err("Broker or account not allowed for this client"),
    "422": _err("The request the gateway would send is not valid"),
    "502": _err("The hub or the broker refused the request"),
    "503": _err("FIX session to the hub is not logged on"),
    "501": _err("The FIX version of the session has no such request (FIX 4.2: positions, balance, "
                "instruments)"),
    "504": _err("No answer from the broker within inquiry_timeout"),
}


def build_openapi(mapper: Any, begin_string: str) -> dict[str, Any]:
    """The OpenAPI document; ``mapper`` supplies the message Body schemas (``components``)."""
    dd = mapper.codec.dictionary
    types = [t for t in ("D", "E", "G", "F", "K", "H", "q", "8", "9", "N", "j", "3", "r", "h", "AO", "AP", "BA")
             if t in dd.messages]
    comps = mapper.components(types)
    names = {t: dd.message(t).name for t in types}
    # The gateway removes DeliverToCompID from the Body before validating it.
    schemas = comps["schemas"]
    for t in ("D", "E"):
        s = schemas[names[t]]
        s.setdefault("properties", {})["DeliverToCompID"] = {
            "type": "string", "description": "DeliverToCompID (128): the broker to route to"}
        # The gateway fills these when they are absent.
        s["required"] = [r for r in s.get("required", []) if r not in ("TransactTime", "HandlInst",
                                                                       "TotNoOrders", "BidType")]
    k = schemas[names["K"]]  # the path names the list; the gateway fills TransactTime
    k["required"] = [r for r in k.get("required", []) if r not in ("ListID", "TransactTime")]
    g = schemas[names["G"]]
    g["required"] = [r for r in g.get("required", []) if r in ("ClOrdID",)]
    schemas["Error"] = _ERROR
    schemas["Order"] = _ORDER_VIEW
    schemas["Accepted"] = _ACCEPTED
    if "q" in names:
        # The dictionary's OrderMassCancelRequest, plus what the gateway takes besides: the broker
        # and an Account (a FIX 5.0 member the venue reads); the gateway fills the rest.
        mc = copy.deepcopy(schemas[names["q"]])
        mc.setdefault("properties", {}).update({
            "broker": {"type": "string", "description": "the broker; optional when the client has one"},
            "DeliverToCompID": {"type": "string", "description": "the broker (as broker)"},
            "Account": {"type": "string", "minLength": 1, "description": "only this account's orders"}})
        # (pairs such as EncodedTextLen/EncodedText stay checked by the gateway; the fuzzers of
        # schemas cannot generate a body with dependentRequired and no required member)
        mc.pop("dependentRequired", None)
        required = [r for r in mc.pop("required", []) if r not in ("ClOrdID", "TransactTime",
                                                                   "MassCancelRequestType")]
        if required:
            mc["required"] = required
        mc["description"] = ("OrderMassCancelRequest body: MassCancelRequestType 1 (one Symbol, the default "
                             "with Symbol) or 7 (all, the default without); ClOrdID made when absent")
        schemas["MassCancelRequest"] = mc
    else:
        schemas["MassCancelRequest"] = {"type": "object", "description": "not available in this FIX version"}
    schemas["Instrument"] = _INSTRUMENT
    schemas["MassCancelSent"] = _MASS_CANCEL_SENT
    broker_q = {"name": "broker", "in": "query", "schema": {"type": "string"},
                "description": "the broker to ask; optional when the client has one"}
    acct = {"name": "Account", "in": "path", "required": True, "schema": {"type": "string"}}
    accepted = {"description": "Persisted and handed to the FIX session",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}}}
    order = {"description": "The order",
             "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Order"}}}}
    cl = {"name": "ClOrdID", "in": "path", "required": True, "schema": {"type": "string"}}
    lid = {"name": "ListID", "in": "path", "required": True, "schema": {"type": "string"}}
    ro = {"401": _err("Missing or invalid API key"), "404": _err("Not found")}
    paths: dict[str, Any] = {
        "/v1/orders": {
            "post": {"summary": "New order (NewOrderSingle, 35=D)", "operationId": "newOrder",
                     "requestBody": _body(names["D"], True), "responses": {"202": accepted, **_WRITE_ERRORS}},
            "get": {"summary": "List the client's orders", "operationId": "listOrders",
                    "parameters": [
                        {"name": "status", "in": "query", "schema": {"type": "string"},
                         "description": "state name (Filled) or OrdStatus code (2)"},
                        {"name": "symbol", "in": "query", "schema": {"type": "string"}},
                        {"name": "broker", "in": "query", "schema": {"type": "string"}},
                        {"name": "since", "in": "query", "schema": {"type": "string"},
                         "description": "created at or after: ISO 8601 time or epoch milliseconds"},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                                   "maximum": 1000}},
                        {"name": "cursor", "in": "query", "schema": {"type": "string"},
                         "description": "`next` of the previous page"}],
                    "responses": {"200": {"description": "A page of orders", "content": {"application/json": {
                        "schema": {"type": "object", "properties": {
                            "orders": {"type": "array", "items": {"$ref": "#/components/schemas/Order"}},
                            "next": {"type": ["string", "null"]}}}}}}, "400": _err("Invalid query parameter"),
                        "401": _err("Missing or invalid API key")}},
        },
        "/v1/orders/{ClOrdID}": {
            "parameters": [cl],
            "get": {"summary": "Order state, quantities and executions", "operationId": "getOrder",
                    "responses": {"200": order, **ro}},
            "delete": {"summary": "Cancel the order (OrderCancelRequest, 35=F); alias of POST .../cancel",
                       "operationId": "deleteOrder", "responses": {"202": order, **ro, **_WRITE_ERRORS}},
        },
        "/v1/orders/{ClOrdID}/replace": {
            "parameters": [cl],
            "post": {"summary": "Replace (OrderCancelReplaceRequest, 35=G): new ClOrdID and changed fields; "
                                "the others are taken from the order",
                     "operationId": "replaceOrder", "requestBody": _body(names["G"], False),
                     "responses": {"202": accepted, **ro, **_WRITE_ERRORS}},
        },
        "/v1/orders/{ClOrdID}/cancel": {
            "parameters": [cl],
            "post": {"summary": "Cancel (OrderCancelRequest, 35=F); optional body {\"ClOrdID\": ...} "
                                "names the cancel request",
                     "operationId": "cancelOrder", "responses": {"202": order, **ro, **_WRITE_ERRORS}},
        },
        "/v1/order-lists": {
            "post": {"summary": "New order list (NewOrderList, 35=E)", "operationId": "newOrderList",
                     "requestBody": _body(names["E"], True), "responses": {"202": accepted, **_WRITE_ERRORS}},
        },
        "/v1/order-lists/{ListID}": {
            "parameters": [lid],
            "get": {"summary": "List status and its orders", "operationId": "getOrderList",
                    "responses": {"200": {"description": "The list"}, **ro}},
        },
        "/v1/order-lists/{ListID}/cancel": {
            "parameters": [lid],
            "post": {"summary": "Cancel every order of the list (ListCancelRequest, 35=K); an optional body "
                                "gives its fields (Text, TransactTime). A refusal by the broker (ListStatus "
                                "ListOrderStatus 7) is pushed and leaves the list as it was: try again",
                     "operationId": "cancelOrderList",
                     "requestBody": {"required": False, "content": {"application/json": {"schema": {
                         "$ref": f"#/components/schemas/{names['K']}"}}}},
                     "responses": {"202": {"description": "The list"}, **ro,
                                                                    **_WRITE_ERRORS}},
        },
        "/v1/orders/{ClOrdID}/status": {
            "parameters": [cl],
            "post": {"summary": "Ask the broker for the order's status (OrderStatusRequest, 35=H); its "
                                "ExecutionReport (ExecType I) is pushed on the stream and refreshes the order",
                     "operationId": "orderStatus", "responses": {"202": order, **ro, **_WRITE_ERRORS}},
        },
        "/v1/orders/mass-cancel": {
            "post": {"summary": "Cancel the client's open orders at one broker (OrderMassCancelRequest, 35=q): "
                                "of one Symbol (MassCancelRequestType 1) or all (7), optionally of one Side or "
                                "Account; the OrderMassCancelReport (35=r) and each cancel are pushed",
                     "operationId": "massCancel",
                     "requestBody": {"required": True, "content": {"application/json": {"schema": {
                         "$ref": "#/components/schemas/MassCancelRequest"}}}},
                     "responses": {"202": {"description": "Sent to the broker", "content": {"application/json": {
                         "schema": {"$ref": "#/components/schemas/MassCancelSent"}}}},
                         **{k: v for k, v in _WRITE_ERRORS.items() if k != "409"},
                         "501": _err("The FIX version of the session has no mass cancel (FIX 4.2)")}},
        },
        "/v1/instruments": {
            "get": {"summary": "Instruments: code, name, market, tick size at the current price, base price, "
                               "daily limits, trading-session state (SecurityListRequest 35=x through the broker; "
                               "the gateway's static file when the broker cannot answer)",
                    "operationId": "listInstruments", "parameters": [broker_q],
                    "responses": {"200": {"description": "Instruments", "content": {"application/json": {
                        "schema": {"type": "object", "properties": {
                            "instruments": {"type": "array", "items": {"$ref": "#/components/schemas/Instrument"}},
                            "fallback_reason": {"type": "string", "description": "why the static file answered"}},
                            "required": ["instruments"]}}}}, **_INQUIRY_ERRORS}},
        },
        "/v1/instruments/{Symbol}": {
            "parameters": [{"name": "Symbol", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": {"summary": "One instrument (as in the list)", "operationId": "getInstrument",
                    "parameters": [broker_q],
                    "responses": {"200": {"description": "The instrument", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Instrument"}}}}, **_INQUIRY_ERRORS,
                        "404": _err("No such instrument")}},
        },
        "/v1/accounts/{Account}/positions": {
            "parameters": [acct],
            "get": {"summary": "Positions of one of the client's accounts (RequestForPositions 35=AN -> "
                               "RequestForPositionsAck 35=AO and PositionReport 35=AP, as FIX-JSON)",
                    "operationId": "getPositions",
                    "parameters": [broker_q, {"name": "symbol", "in": "query", "schema": {"type": "string"},
                                              "description": "one instrument only"}],
                    "responses": {"200": {"description": "The broker's answer", "content": {"application/json": {
                        "schema": {"type": "object", "properties": {
                            "Account": {"type": "string"}, "broker": {"type": "string"},
                            **({"RequestForPositionsAck": {"$ref": f"#/components/schemas/{names['AO']}"},
                                "PositionReports": {"type": "array", "items": {
                                    "$ref": f"#/components/schemas/{names['AP']}"}}} if "AO" in names else {})},
                            "required": ["Account", "broker"]}}}}, **_INQUIRY_ERRORS,
                        "404": _err("The broker has no such account")}},
        },
        "/v1/accounts/{Account}/balance": {
            "parameters": [acct],
            "get": {"summary": "Cash and buying power of one of the client's accounts (CollateralInquiry 35=BB "
                               "-> CollateralReport 35=BA as FIX-JSON; MarginExcess is the buying power)",
                    "operationId": "getBalance", "parameters": [broker_q],
                    "responses": {"200": {"description": "The broker's answer", "content": {"application/json": {
                        "schema": {"type": "object", "properties": {
                            "Account": {"type": "string"}, "broker": {"type": "string"},
                            **({"CollateralReport": {"$ref": f"#/components/schemas/{names['BA']}"}}
                               if "BA" in names else {})},
                            "required": ["Account", "broker"]}}}}, **_INQUIRY_ERRORS,
                        "404": _err("The broker has no such account")}},
        },
        "/v1/brokers": {
            "get": {"summary": "Routing targets allowed to the client, with FIX session state",
                    "operationId": "listBrokers", "responses": {"200": {"description": "Brokers"},
                                                               "401": _err("Missing or invalid API key")}},
        },
        "/healthz": {"get": {"summary": "Process is up", "security": [],
                             "responses": {"200": {"description": "OK"}}}},
        "/readyz": {"get": {"summary": "A FIX session is logged on", "security": [],
                            "responses": {"200": {"description": "Ready"}, "503": {"description": "Not ready"}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "security": [],
                             "responses": {"200": {"description": "text/plain exposition format"}}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "fastfix order gateway", "version": "1",
                 "description": f"REST orders to FIX ({begin_string}) through the STP-HUB. Bodies are FIX-JSON "
                                "Body objects (field names as in the FIX repository, values as strings). "
                                "Order reports are pushed on the WebSocket stream `/v1/stream`."},
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "servers": [{"url": "/"}],
        "security": [{"apiKey": []}, {"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                                "bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def docs_page(doc: dict[str, Any]) -> str:
    """A self-contained HTML page describing the API (no external scripts)."""
    rows = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            body = ""
            rb = op.get("requestBody")
            if rb:
                ref = rb["content"]["application/json"]["schema"]
                ref = ref.get("$ref") or ref.get("allOf", [{}])[0].get("$ref", "")
                name = ref.rsplit("/", 1)[-1]
                schema = doc["components"]["schemas"].get(name, {})
                req = set(schema.get("required", []))
                fields = ", ".join(
                    f"<b>{html.escape(k)}</b>" if k in req else html.escape(k)
                    for k in schema.get("properties", {}))
                body = f"<div class=body>Body <code>{html.escape(name)}</code>: {fields}</div>"
            codes = " ".join(f"<span class=code>{c}</span>" for c in op.get("responses", {}))
            rows.append(f"<tr><td class=m>{method.upper()}</td><td><code>{html.escape(path)}</code></td>"
                        f"<td>{html.escape(op.get('summary', ''))}{body}</td><td>{codes}</td></tr>")
    return ("<!doctype html><html><head><meta charset=utf-8><title>fastfix order gateway API</title><style>"
            "body{font-family:sans-serif;margin:2em;max-width:80em}td{vertical-align:top;padding:.4em;"
            "border-bottom:1px solid #ddd}.m{font-weight:bold}.code{display:inline-block;padding:0 .3em;"
            "background:#eee;margin:1px}.body{color:#555;font-size:90%;margin-top:.3em}</style></head><body>"
            f"<h1>{html.escape(doc['info']['title'])}</h1><p>{html.escape(doc['info']['description'])}</p>"
            "<p>Authenticate with the <code>X-API-Key</code> header. Required fields in bold. "
            "Machine-readable: <a href=/openapi.json>/openapi.json</a>.</p>"
            "<table><tr><th>Method</th><th>Path</th><th>What</th><th>Answers</th></tr>"
            + "".join(rows) + "</table></body></html>")
