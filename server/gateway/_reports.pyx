# cython: language_level=3, boundscheck=False, wraparound=False
"""Per-report helpers of the gateway's report path, compiled because every report from
the hub runs them: the report's fields as text, and the event pushed to its client."""

import msgspec

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.unicode cimport PyUnicode_DecodeLatin1
from libc.string cimport memcmp, memcpy

from fastfix._codec cimport FieldRef, Message

from server.gateway._intake import ID_KEYS, iso

__all__ = ["CLIENT_HEADER", "envelope", "strip_namespace", "text_fields"]

# Header fields a pushed event keeps (besides MsgType): who answered, when, resend flags.
CLIENT_HEADER = (("PossDupFlag", 43), ("SendingTime", 52), ("PossResend", 97), ("OnBehalfOfCompID", 115),
                 ("OnBehalfOfSubID", 116))

cdef object _encode = msgspec.json.Encoder().encode


def text_fields(msg, tuple tags):
    """``{tag: value}`` of the first field of each of ``tags`` that ``msg`` has, values
    decoded as latin-1 (a parsed message's field table is read directly)."""
    cdef dict out = {}
    cdef Message m
    cdef const FieldRef* f
    cdef int i
    if isinstance(msg, Message):
        m = <Message>msg
        for tag in tags:
            i = m.find(<int>tag)
            if i >= 0:
                f = &m._f[i]
                out[tag] = PyUnicode_DecodeLatin1(<const char*>m._p + f.start, f.end - f.start, NULL)
        return out
    for tag in tags:
        v = msg.get(tag)
        if v is not None:
            out[tag] = v.decode("latin-1")
    return out


# Keys whose values carry the client's namespace on the wire (``<client>:<id>``): those of
# requests, and the reference of a BusinessMessageReject to one.
cdef tuple _ID_KEYS = tuple(k.encode() for k in ID_KEYS) + (b"BusinessRejectRefID",)


cdef inline bint _id_key_ends_at(const unsigned char* p, Py_ssize_t end):
    """Whether one of _ID_KEYS, in quotes, ends at p[end] (its closing quote)."""
    cdef bytes key
    cdef Py_ssize_t k
    for key in _ID_KEYS:
        k = len(key)
        if end - k - 1 >= 0 and p[end - k - 1] == 34 and memcmp(p + end - k, <const char*>key, k) == 0:
            return True
    return False


cdef inline Py_ssize_t _next_cut(const unsigned char* p, Py_ssize_t i, Py_ssize_t last,
                                  const char* pre, Py_ssize_t plen) noexcept:
    """Offset of the next namespace prefix at the start of an identifier's value, from
    offset i on, or -1. A key is a quoted name right before ``":"``; inside a JSON string
    every quote is escaped, so a value never looks like one."""
    while i < last:
        if p[i] == 58 and p[i - 1] == 34 and p[i + 1] == 34 and memcmp(p + i + 2, pre, plen) == 0 \
                and _id_key_ends_at(p, i - 1):
            return i + 2
        i += 1
    return -1


def strip_namespace(bytes body, bytes prefix):
    """A FIX-JSON body with ``prefix`` (``b"<client>:"``) removed from the start of the
    values of its identifier keys (any number: a ListStatus names every order of the list)."""
    cdef const unsigned char* p = <const unsigned char*>body
    cdef const char* pre = prefix
    cdef Py_ssize_t n = len(body), plen = len(prefix), hits = 0, start = 0, w = 0, cut
    cdef Py_ssize_t last = n - plen - 2
    cut = _next_cut(p, 1, last, pre, plen)
    while cut >= 0:
        hits += 1
        cut = _next_cut(p, cut + plen, last, pre, plen)
    if hits == 0:
        return body
    out = PyBytes_FromStringAndSize(NULL, n - hits * plen)
    cdef char* q = PyBytes_AS_STRING(out)
    cut = _next_cut(p, 1, last, pre, plen)
    while cut >= 0:
        memcpy(q + w, p + start, cut - start)
        w += cut - start
        start = cut + plen
        cut = _next_cut(p, start, last, pre, plen)
    memcpy(q + w, p + start, n - start)
    return out


cdef tuple _HEADER_KEYS = tuple((b',"%s":' % name.encode(), tag) for name, tag in CLIENT_HEADER)


cdef inline bint _plain(const unsigned char* v, Py_ssize_t n) noexcept:
    """Printable ASCII without quote or backslash: a JSON string as it is."""
    cdef Py_ssize_t i
    for i in range(n):
        if v[i] < 32 or v[i] > 126 or v[i] == 34 or v[i] == 92:
            return False
    return True


cdef bytes _header_json(msg):
    """``{"MsgType":...}`` plus the CLIENT_HEADER fields the report has (text as UTF-8,
    invalid bytes replaced)."""
    cdef list parts = [b'{"MsgType":', _encode(msg.msg_type.decode("latin-1"))]
    cdef Message m = msg if isinstance(msg, Message) else None
    cdef const FieldRef* f
    cdef const unsigned char* v
    cdef int i
    for key, tag in _HEADER_KEYS:
        if m is not None:
            i = m.find(<int>tag)
            if i < 0:
                continue
            f = &m._f[i]
            v = m._p + f.start
            parts.append(key)
            if _plain(v, f.end - f.start):
                parts.append(b'"' + v[:f.end - f.start] + b'"')
            else:
                parts.append(_encode(v[:f.end - f.start].decode("utf-8", "replace")))
        else:
            value = msg.get(tag)
            if value is not None:
                parts.append(key)
                parts.append(_encode(value.decode("utf-8", "replace")))
    parts.append(b"}")
    return b"".join(parts)


def envelope(bytes body, msg, bytes prefix, long long seq, long long now):
    """The event pushed for report ``msg``: its Body as FIX-JSON (``body``) with the client's
    namespace ``prefix`` removed from its identifiers, and of the header only who answered
    and when."""
    return b'{"type":"message","seq":%d,"ts":"%s","message":{"Header":%s,"Body":%s}}' % (
        seq, iso(now).encode(), _header_json(msg), strip_namespace(body, prefix))
