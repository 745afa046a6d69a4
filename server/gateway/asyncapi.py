"""AsyncAPI 3.0 document of the WebSocket event stream (served at ``/asyncapi.json``).

Like the OpenAPI document, the message Body schemas come from the FIX-JSON mapper, built
from the data dictionary that the gateway validates with; the envelope, the operations the
stream accepts (``auth``, ``subscribe``, ``unsubscribe``, ``ping``) and the frames it pushes follow
:mod:`server.gateway.ws`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_asyncapi", "PUSHED"]

# MsgTypes pushed on the stream (the client's reports, the hub's rejects, mass cancel reports,
# trading-session status).
PUSHED = ("8", "9", "N", "j", "3", "r", "h")

_SEQ = {"type": "integer", "minimum": 0}
_TS = {"type": "string", "description": "UTC time the frame was written, ISO 8601 (seconds)",
       "examples": ["2026-01-02T09:00:00Z"]}
_SINCE = {"type": "integer", "minimum": 0,
          "description": "replay the events after this sequence number (0: every event logged for the "
                         "client); omitted: live events only"}
_SUB_ID = {"type": "integer", "minimum": 1,
           "description": "the explicit subscription (subscribe op) whose filter the event matched; "
                          "absent on the connection's whole stream"}
_FILTER_VALUE = {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}
_FILTER = {"type": "object", "additionalProperties": False,
           "description": "every key given must match (one value or any of a list)",
           "properties": {
               "Account": {**_FILTER_VALUE, "description": "Body.Account"},
               "broker": {**_FILTER_VALUE, "description": "the broker: Header.OnBehalfOfCompID"},
               "ClOrdID": {**_FILTER_VALUE, "description": "Body.ClOrdID or OrigClOrdID (or about.ClOrdID)"},
               "ListID": {**_FILTER_VALUE, "description": "Body.ListID (or about.ListID)"},
               "MsgType": {**_FILTER_VALUE, "description": "Header.MsgType; 'event' for gateway events"}}}
_COD = {"type": "boolean", "description": "cancel the client's open orders when its last such connection "
                                          "is gone for longer than the gateway's grace period"}


def _obj(props: dict[str, Any], required: list[str], desc: str) -> dict[str, Any]:
    return {"type": "object", "description": desc, "properties": props, "required": required}


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def build_asyncapi(mapper: Any, begin_string: str) -> dict[str, Any]:
    """The AsyncAPI document; ``mapper`` (:class:`~server.gateway.mapping.JsonMapper`)
    supplies the Body schemas of the pushed messages."""
    dd = mapper.codec.dictionary
    pushed = [t for t in PUSHED if t in dd.messages]  # FIX 4.2 has no r
    comps = mapper.components(pushed)["schemas"]
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    event_refs = []
    for t in pushed:
        name = dd.message(t).name
        schemas[name] = comps[name]
        header = {"type": "object",
                  "description": f"FIX-JSON standard header ({begin_string}); MsgType {t}",
                  "properties": {"MsgType": {"const": t}},
                  "required": ["MsgType"],
                  "additionalProperties": {"type": "string"}}
        schemas[f"{name}Event"] = _obj(
            {"type": {"const": "message"}, "seq": {**_SEQ, "minimum": 1,
                                                  "description": "per-client sequence number: starts at "
                                                                 "1, no gaps; resume with since=seq"},
             "ts": _TS,
             "message": _obj({"Header": header, "Body": _ref("schemas", name)}, ["Header", "Body"],
                             f"The {name} as FIX-JSON"),
             "sub": _SUB_ID,
             **({"about": _obj({"ClOrdID": {"type": "string"}, "ListID": {"type": "string"},
                                "MsgType": {"type": "string"}}, ["MsgType"],
                               "the client's request the hub refused (a Reject names only its MsgSeqNum)")}
                if t == "3" else {})},
            ["type", "seq", "ts", "message"], f"A {name} (35={t}) about one of the client's orders")
        messages[f"{name}Event"] = {
            "name": f"{name}Event", "title": name, "contentType": "application/json",
            "summary": f"{name} (MsgType {t}) pushed to the client",
            "payload": _ref("schemas", f"{name}Event")}
        event_refs.append(_ref("messages", f"{name}Event"))
    schemas.update({
        "Subscribed": _obj({"type": {"const": "subscribed"}, "client": {"type": "string"},
                            "since": {**_SEQ, "description": "events after this seq follow"},
                            "last_seq": {**_SEQ, "description": "the client's last seq when subscribing"},
                            "id": {**_SUB_ID, "description": "the subscription's id (explicit subscriptions)"},
                            "filter": _FILTER},
                           ["type", "client", "since", "last_seq"],
                           "First frame after authentication (the whole stream, no id), or the answer to "
                           "a subscribe op (with its id and filter): the replay and live events follow"),
        "Unsubscribed": _obj({"type": {"const": "unsubscribed"},
                              "id": {"type": "integer", "minimum": 0,
                                     "description": "the subscription ended; 0 is the whole stream"}},
                             ["type", "id"], "Answer to an unsubscribe op"),
        "GatewayEvent": _obj(
            {"type": {"const": "event"}, "seq": {**_SEQ, "minimum": 1}, "ts": _TS, "sub": _SUB_ID,
             "event": _obj({"event": {"enum": ["stream_lost", "stream_resumed", "cancel_on_disconnect"]},
                            "ClOrdID": {"type": "array", "items": {"type": "string"},
                                        "description": "orders cancelled (cancel_on_disconnect)"},
                            "failed": {"type": "object", "additionalProperties": {"type": "string"},
                                       "description": "orders whose cancel was refused, and why"},
                            "grace_seconds": {"type": "number"},
                            "cancel_on_disconnect": {"type": "string"}},
                           ["event"], "What the gateway did")},
            ["type", "seq", "ts", "event"], "An event of the gateway itself, numbered with the client's reports"),
        "OpError": _obj({"type": {"const": "error"}, "op": {"enum": ["subscribe", "unsubscribe"]},
                         "reason": {"type": "string"}}, ["type", "op", "reason"],
                        "A subscribe or unsubscribe op of an authenticated connection refused; the "
                        "connection stays open (an unauthenticated one gets a StreamError and is closed)"),
        "Heartbeat": _obj({"type": {"const": "heartbeat"}, "seq": {**_SEQ, "description": "last seq sent"},
                           "ts": _TS}, ["type", "seq", "ts"], "Sent when the stream has been idle"),
        "Pong": _obj({"type": {"const": "pong"}, "seq": {**_SEQ, "description": "last seq sent"}, "ts": _TS},
                     ["type", "seq", "ts"], "Answer to a ping op"),
        "StreamError": _obj({"type": {"const": "error"}, "reason": {"type": "string"},
                             "seq": {**_SEQ, "description": "last seq sent: reconnect with since=seq"}},
                            ["type", "reason", "seq"],
                            "Sent just before the gateway closes the connection (bad op, bad key, "
                            "since beyond the last seq: 1008; slow consumer: 1013)"),
        "Auth": _obj({"op": {"const": "auth"}, "api_key": {"type": "string"}, "since": _SINCE,
                      "cancel_on_disconnect": _COD},
                     ["op", "api_key"], "Authenticate (browsers, which cannot set the X-API-Key header of "
                                        "the upgrade request) and subscribe"),
        "Subscribe": _obj({"op": {"const": "subscribe"}, "since": _SINCE, "filter": _FILTER,
                           "api_key": {"type": "string", "description": "authenticates the connection when "
                                                                       "it is not yet"},
                           "cancel_on_disconnect": _COD}, ["op"],
                          "Add a subscription (several per connection, each with its id): the client's "
                          "events matching the filter, replayed after since, then live; its frames carry "
                          "sub = the id"),
        "Unsubscribe": _obj({"op": {"const": "unsubscribe"},
                             "id": {"type": "integer", "minimum": 0, "description": "a subscription's id; "
                                                                                   "0: the whole stream"}},
                            ["op", "id"], "End a subscription"),
        "Ping": _obj({"op": {"const": "ping"}}, ["op"], "Application-level ping; answered by a pong frame"),
    })
    for name, summary in (("Subscribed", "Subscription confirmed"), ("Heartbeat", "Idle heartbeat"),
                          ("Pong", "Answer to ping"), ("StreamError", "Error, then close"),
                          ("Auth", "Authenticate and subscribe"), ("Subscribe", "Subscribe"),
                          ("Unsubscribe", "Unsubscribe"), ("Unsubscribed", "Subscription ended"),
                          ("GatewayEvent", "Gateway event"), ("OpError", "Op refused"),
                          ("Ping", "Ping")):
        messages[name] = {"name": name, "title": name, "contentType": "application/json",
                          "summary": summary, "payload": _ref("schemas", name)}
    channel_messages = {name: _ref("messages", name) for name in messages}

    def chan_msgs(*names: str) -> list[dict[str, str]]:
        return [{"$ref": f"#/channels/stream/messages/{n}"} for n in names]

    events = [m["$ref"].rsplit("/", 1)[-1] for m in event_refs]
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "fastfix order gateway event stream", "version": "1",
            "description": (
                "Reports about the client's orders, pushed as FIX-JSON over a WebSocket on the gateway's "
                "stream port (`GET /stream-info` on the REST port gives it). Every event carries a "
                "per-client `seq` (from 1, no gaps); events are logged before they are pushed, so "
                "reconnecting with `?since=<last seq received>` replays what was missed, then continues "
                f"live. Bodies are generated from the {begin_string} data dictionary."),
        },
        "defaultContentType": "application/json",
        "servers": {
            "gateway": {"host": "{host}:{port}", "protocol": "ws", "pathname": "/v1/stream",
                        "description": "The gateway's WebSocket port (wss when the gateway has TLS)",
                        "variables": {"host": {"default": "127.0.0.1"}, "port": {"default": "8081"}},
                        "security": [_ref("securitySchemes", "apiKey"), _ref("securitySchemes", "bearer")]},
        },
        "channels": {
            "stream": {
                "address": "/v1/stream",
                "title": "Order events of one client",
                "messages": channel_messages,
                "bindings": {"ws": {"method": "GET", "query": {
                    "type": "object", "properties": {
                        "since": _SINCE,
                        "subscribe": {"enum": ["all", "explicit"],
                                      "description": "explicit: no whole-stream subscription; send subscribe ops"},
                        "cancel_on_disconnect": {"enum": ["true", "false", "1", "0"],
                                                 "description": _COD["description"]}}}}},
            },
        },
        "operations": {
            "receiveEvents": {
                "action": "send", "channel": {"$ref": "#/channels/stream"},
                "title": "Order reports",
                "summary": "Replayed, then live, reports about the client's orders, in seq order",
                "messages": chan_msgs(*events, "GatewayEvent"),
            },
            "receiveControl": {
                "action": "send", "channel": {"$ref": "#/channels/stream"},
                "title": "Stream control frames",
                "summary": "subscribed (first frame), heartbeat (idle), error (then close)",
                "messages": chan_msgs("Subscribed", "Heartbeat", "StreamError", "OpError"),
            },
            "auth": {
                "action": "receive", "channel": {"$ref": "#/channels/stream"},
                "summary": "Authenticate with the first message (when the upgrade had no key)",
                "messages": chan_msgs("Auth"),
                "reply": {"channel": {"$ref": "#/channels/stream"}, "messages": chan_msgs("Subscribed")},
            },
            "subscribe": {
                "action": "receive", "channel": {"$ref": "#/channels/stream"},
                "summary": "Add a filtered subscription (authenticates too, with api_key)",
                "messages": chan_msgs("Subscribe"),
                "reply": {"channel": {"$ref": "#/channels/stream"}, "messages": chan_msgs("Subscribed", "OpError")},
            },
            "unsubscribe": {
                "action": "receive", "channel": {"$ref": "#/channels/stream"},
                "summary": "End a subscription", "messages": chan_msgs("Unsubscribe"),
                "reply": {"channel": {"$ref": "#/channels/stream"}, "messages": chan_msgs("Unsubscribed", "OpError")},
            },
            "ping": {
                "action": "receive", "channel": {"$ref": "#/channels/stream"},
                "summary": "Ping", "messages": chan_msgs("Ping"),
                "reply": {"channel": {"$ref": "#/channels/stream"}, "messages": chan_msgs("Pong")},
            },
        },
        "components": {
            "schemas": schemas,
            "messages": messages,
            "securitySchemes": {
                "apiKey": {"type": "httpApiKey", "in": "header", "name": "X-API-Key",
                           "description": "the client's API key on the upgrade request"},
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "Authorization: Bearer <API key> on the upgrade request"},
            },
        },
    }
