"""The gateway's use of :class:`fastfix.jsonfix.JsonCodec`: one dictionary-driven mapper
validates request bodies, converts them to FIX, converts reports back to FIX-JSON
and supplies the JSON Schemas of the OpenAPI document."""

from __future__ import annotations

import functools
from typing import Any

from fastfix.errors import JsonMappingError
from fastfix.jsonfix import JsonCodec
from server.gateway.errors import FieldProblem
from server.gateway.intake import MappingFailed
from server.gateway.link import InboundMessage

__all__ = ["JsonMapper"]


class JsonMapper:
    """Request bodies -> FIX fields and FIX -> FIX-JSON, for one FIX version."""

    def __init__(self, begin_string: str, max_bytes: int = 64 * 1024) -> None:
        self.codec = JsonCodec(begin_string, max_bytes=max_bytes)

    def to_body(self, msg_type: str, body: dict[str, Any]) -> bytes:
        """The validated body as encoded FIX (wire order, each field ending with SOH), for
        ``Session.send_body``: one pass in the codec, nothing decoded or encoded again."""
        try:
            return self.codec.body_fields(msg_type, body)
        except JsonMappingError as exc:
            raise MappingFailed([FieldProblem(e.field, e.reason, e.path) for e in exc.errors]) from None

    def body_json(self, msg: InboundMessage) -> bytes:
        """The Body object of a received message as FIX-JSON (one pass in the codec)."""
        return self.codec.fix_body_to_json(msg)

    @functools.cache  # noqa: B019 - one mapper per process, a handful of keys
    def fields_of(self, msg_type: str, group: str | None = None) -> frozenset[str]:
        """Names of the fields of a message body (or of one of its top-level groups)."""
        dd = self.codec.dictionary
        members = dd.message(msg_type).members
        if group is not None:
            for m in members:
                if m.group is not None and dd.fields[m.tag].name == group:
                    members = m.group.members
                    break
            else:
                return frozenset()
        return frozenset(dd.fields[m.tag].name for m in members)

    def schema(self, msg_type: str) -> dict[str, Any]:
        return self.codec.json_schema(msg_type)

    def components(self, msg_types: list[str]) -> dict[str, Any]:
        return self.codec.openapi_components(msg_types)
