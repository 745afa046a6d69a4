"""AsyncAPI 3.0 document of the WebSocket event stream (served at ``/asyncapi.json``).

Like the OpenAPI document, the message Body schemas come from the FIX-JSON mapper, built
from the data dictionary that the gateway validates with; the envelope, the operations the
stream accepts (``auth``, ``subscribe``, ``ping``) and the frames it pushes follow
:mod:`server.gateway.ws`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_asyncapi", "PUSHED"]

# MsgTypes pushed on the stream (the client's reports).
PUSHED = ("8", "9", "N", "j")

_SEQ = {"type": "integer", "minimum": 0}
_TS = {"type": "string", "description": "UTC time the frame was written, ISO 8601 (seconds)",
       "examples": ["2026-01-02T09:00:00Z"]}
_SINCE = {"type": "integer", "minimum": 0,
          "description": "replay the events after this sequence number (0: every event logged for the "
                         "client); omitted: live events only"}


def _obj(props: dict[str, Any], required: list[str], desc: str) -> dict[str, Any]:
    return {"type": "object", "description": desc, "properties": props, "required": required}


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def build_asyncapi(mapper: Any, begin_string: str) -> dict[str, Any]:
    """The AsyncAPI document; ``mapper`` (:class:`~server.gateway.mapping.JsonMapper`)
    supplies the Body schemas of the pushed messages."""
    dd = mapper.codec.dictionary
    comps = mapper.components(list(PUSHED))["schemas"]
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    event_refs = []
    for t in PUSHED:
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
                             f"The {name} as FIX-JSON")},
            ["type", "seq", "ts", "message"], f"A {name} (35={t}) about one of the client's orders")
        messages[f"{name}Event"] = {
            "name": f"{name}Event", "title": name, "contentType": "application/json",
            "summary": f"{name} (MsgType {t}) pushed to the client",
            "payload": _ref("schemas", f"{name}Event")}
        event_refs.append(_ref("messages", f"{name}Event"))
    schemas.update({
        "Subscribed": _obj({"type": {"const": "subscribed"}, "client": {"type": "string"},
                            "since": {**_SEQ, "description": "events after this seq follow"},
                            "last_seq": {**_SEQ, "description": "the client's last seq when subscribing"}},
                           ["type", "client", "since", "last_seq"],
                           "First frame after authentication: the replay and live events follow"),
        "Heartbeat": _obj({"type": {"const": "heartbeat"}, "seq": {**_SEQ, "description": "last seq sent"},
                           "ts": _TS}, ["type", "seq", "ts"], "Sent when the stream has been idle"),
        "Pong": _obj({"type": {"const": "pong"}, "seq": {**_SEQ, "description": "last seq sent"}, "ts": _TS},
                     ["type", "seq", "ts"], "Answer to a ping op"),
        "StreamError": _obj({"type": {"const": "error"}, "reason": {"type": "string"},
                             "seq": {**_SEQ, "description": "last seq sent: reconnect with since=seq"}},
                            ["type", "reason", "seq"],
                            "Sent just before the gateway closes the connection (bad op, bad key, "
                            "since beyond the last seq: 1008; slow consumer: 1013)"),
        "Auth": _obj({"op": {"const": "auth"}, "api_key": {"type": "string"}, "since": _SINCE},
                     ["op", "api_key"], "Authenticate (browsers, which cannot set the X-API-Key header of "
                                        "the upgrade request) and subscribe"),
        "Subscribe": _obj({"op": {"const": "subscribe"}, "since": _SINCE}, ["op"],
                          "Subscribe after an authenticated upgrade made without subscribing"),
        "Ping": _obj({"op": {"const": "ping"}}, ["op"], "Application-level ping; answered by a pong frame"),
    })
    for name, summary in (("Subscribed", "Subscription confirmed"), ("Heartbeat", "Idle heartbeat"),
                          ("Pong", "Answer to ping"), ("StreamError", "Error, then close"),
                          ("Auth", "Authenticate and subscribe"), ("Subscribe", "Subscribe"),
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
                    "type": "object", "properties": {"since": _SINCE}}}},
            },
        },
        "operations": {
            "receiveEvents": {
                "action": "send", "channel": {"$ref": "#/channels/stream"},
                "title": "Order reports",
                "summary": "Replayed, then live, reports about the client's orders, in seq order",
                "messages": chan_msgs(*events),
            },
            "receiveControl": {
                "action": "send", "channel": {"$ref": "#/channels/stream"},
                "title": "Stream control frames",
                "summary": "subscribed (first frame), heartbeat (idle), error (then close)",
                "messages": chan_msgs("Subscribed", "Heartbeat", "StreamError"),
            },
            "auth": {
                "action": "receive", "channel": {"$ref": "#/channels/stream"},
                "summary": "Authenticate with the first message (when the upgrade had no key)",
                "messages": chan_msgs("Auth"),
                "reply": {"channel": {"$ref": "#/channels/stream"}, "messages": chan_msgs("Subscribed")},
            },
            "subscribe": {
                "action": "receive", "channel": {"$ref": "#/channels/stream"},
                "summary": "Subscribe (an authenticated connection not subscribed yet)",
                "messages": chan_msgs("Subscribe"),
                "reply": {"channel": {"$ref": "#/channels/stream"}, "messages": chan_msgs("Subscribed")},
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
