"""FIX codec: stream tokenizer, zero-copy messages, serializer and templates.

The implementation lives in the compiled ``fastfix._codec`` module; this module
is its public face. See README.md, "Codec API".
"""

from __future__ import annotations

from fastfix._codec import (
    DEFAULT_DATA_FIELDS,
    SOH,
    Garbled,
    Message,
    Template,
    Tokenizer,
    checksum,
    encode,
    frame,
    parse,
    parse_utc_timestamp,
    utc_timestamp,
)

__all__ = [
    "DEFAULT_DATA_FIELDS",
    "SOH",
    "Garbled",
    "Message",
    "Template",
    "Tokenizer",
    "checksum",
    "encode",
    "frame",
    "parse",
    "parse_utc_timestamp",
    "utc_timestamp",
]
