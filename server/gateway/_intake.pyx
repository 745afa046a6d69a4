# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Per-request helpers of the order path, compiled because every order runs them:
client identifiers (checked, then namespaced for the wire), the order record made
from a request, the ISO timestamps of an order, and its 202 answer."""

import time

import msgspec

from libc.stdio cimport snprintf

from fastfix.codec import utc_timestamp

from server.gateway.errors import FieldProblem
from server.gateway.orders import Order

__all__ = ["ID_KEYS", "MAX_ID_LEN", "check_id", "fill_defaults", "iso", "namespace", "order_answer",
           "order_record"]

MAX_ID_LEN = 64
# Client identifiers namespaced by client on the wire (also inside NoOrders entries).
ID_KEYS = ("ClOrdID", "OrigClOrdID", "ListID")
_ID_RULE = f"at most {MAX_ID_LEN} characters, without ':' or '~'"
# FIX's String type: printable ASCII. Spaces only inside (a trailing one does not survive
# a round trip through most FIX engines), and no '/' (a path separator in the REST routes).
_ID_CHARS = "printable ASCII only (letters, digits, punctuation and inner spaces), without '/'"

cdef object _encode = msgspec.json.Encoder().encode


def check_id(value, str field, str path, list problems):
    """``value`` if it is a usable client identifier, else None with its problem noted:
    1 to 64 characters of printable ASCII (0x21-0x7E, spaces inside only), none of
    ``/`` (path separator), ``:`` (wire namespace) or ``~`` (generated ids)."""
    if type(value) is not str or not value:
        problems.append(FieldProblem(field, "required, a non-empty string", path))
        return None
    cdef str s = <str>value
    cdef Py_UCS4 ch
    cdef Py_ssize_t n = len(s)
    if n > MAX_ID_LEN:
        problems.append(FieldProblem(field, _ID_RULE, path))
        return None
    if s[0] == " " or s[n - 1] == " ":
        problems.append(FieldProblem(field, "must not start or end with a space", path))
        return None
    for ch in s:
        if ch < 32 or ch > 126 or ch == 47:  # control characters (SOH too), DEL, non-ASCII, '/'
            problems.append(FieldProblem(field, _ID_CHARS, path))
            return None
        if ch == 58 or ch == 126:  # ':' (wire namespace), '~' (generated ids)
            problems.append(FieldProblem(field, _ID_RULE, path))
            return None
    return s


cdef inline void _prefix(dict d, str prefix):
    for key in ID_KEYS:
        v = d.get(key)
        if type(v) is str:
            d[key] = prefix + <str>v


def namespace(dict body, str prefix):
    """Client identifiers as the hub sees them: ``<client>:<id>`` (also inside NoOrders entries)."""
    _prefix(body, prefix)
    entries = body.get("NoOrders")
    if type(entries) is list:
        for entry in <list>entries:
            if type(entry) is dict:
                _prefix(<dict>entry, prefix)


def fill_defaults(dict body, bint transact_time, bint handl_inst):
    """TransactTime (now, milliseconds) and HandlInst (1, automated) where the message has
    them (the flags) and the request left them out."""
    if transact_time and "TransactTime" not in body:
        body["TransactTime"] = utc_timestamp().decode()
    if handl_inst and "HandlInst" not in body:
        body["HandlInst"] = "1"


cdef object _MISSING = object()


cdef inline object _text(dict fields, str name, object default):
    """A field as the record keeps it: its text (Decimal and int values as written), or
    ``default`` when the request has no such field."""
    v = fields.get(name, _MISSING)
    if v is _MISSING:
        return default
    return v if type(v) is str else str(v)


# Every new record starts as a copy of this one: copying a struct and setting the fields a
# request has costs a third of a constructor call with a dozen keywords.
cdef object _BLANK = Order(client_id="", ClOrdID="", broker="")


def order_record(dict fields, str client_id, str cl, str broker_id, str msg_type, long long now, **state):
    """A new order record from the request fields (a body, or one entry of a list); ``state``
    sets what differs by request (status, ids, quantities carried over by a replace)."""
    o = _BLANK.__copy__()
    qty = _text(fields, "OrderQty", "0")
    o.client_id = client_id
    o.ClOrdID = cl
    o.broker = broker_id
    o.MsgType = msg_type
    o.Symbol = _text(fields, "Symbol", "")
    o.Side = _text(fields, "Side", "")
    o.OrdType = _text(fields, "OrdType", "")
    o.Account = fields.get("Account")
    o.OrderQty = qty
    o.LeavesQty = qty
    o.Price = _text(fields, "Price", None)
    o.created_ns = now
    o.updated_ns = now
    for key, value in state.items():
        setattr(o, key, value)
    return o


# Caches: strftime is the costly part, and orders arrive many to the second.
cdef long long _iso_sec = -1
cdef bytes _iso_prefix = b""  # "YYYY-MM-DDTHH:MM:SS" of _iso_sec


def iso(long long ns):
    """Epoch nanoseconds as ISO 8601 UTC with microseconds (``2026-11-25T09:00:00.123456Z``)."""
    global _iso_sec, _iso_prefix
    cdef long long sec = ns // 1_000_000_000
    cdef long long frac = ns % 1_000_000_000
    if frac < 0:  # before 1970: floor division, as divmod does
        sec -= 1
        frac += 1_000_000_000
    if sec != _iso_sec:
        _iso_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)).encode()
        _iso_sec = sec
    cdef char buf[64]
    cdef int n = snprintf(buf, sizeof(buf), "%s.%06lldZ", <char*>_iso_prefix, frac // 1000)
    return buf[:n].decode("ascii")


def order_answer(o):
    """The 202 answer of the request that created order ``o`` (a new order or a replacement);
    rebuilt from the record for an identical retry, so it is not stored."""
    if o.MsgType == "G":
        return b'{"ClOrdID":%b,"OrigClOrdID":%b,"state":"PendingReplace","OrdStatus":"E","broker":%b,"created":"%b"}' % (
            _encode(o.ClOrdID), _encode(o.OrigClOrdID), _encode(o.broker), iso(o.created_ns).encode())
    return b'{"ClOrdID":%b,"state":"PendingNew","OrdStatus":"A","broker":%b,"created":"%b"}' % (
        _encode(o.ClOrdID), _encode(o.broker), iso(o.created_ns).encode())
