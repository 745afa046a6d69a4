# Included by fastfix/_codec.pyx (one extension module, so calls stay C-level).
# encode(), frame() and checksum(): fields to wire bytes.


def checksum(data) -> int:
    """FIX CheckSum of ``data``: sum of the bytes modulo 256."""
    if type(data) is not bytes:
        data = bytes(data)
    return byte_sum(<const unsigned char*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data)) & 255


def frame(begin_string, parts) -> bytes:
    """A whole message from already encoded pieces: ``8=<begin_string>``, BodyLength,
    the ``parts`` joined (``35=...`` through the last body field, each field ending
    with SOH) and the CheckSum, built in one pass and one allocation. The session
    uses it to put its header around a pre-encoded body without parsing either."""
    cdef bytes bs
    if type(begin_string) is bytes:
        bs = begin_string
    elif isinstance(begin_string, str):
        bs = (<str>begin_string).encode("ascii")
    else:
        bs = bytes(begin_string)
    if type(parts) is not tuple:
        parts = tuple(parts)
    cdef tuple ps = <tuple>parts
    cdef Py_ssize_t np = PyTuple_GET_SIZE(ps), i, n = 0, blen = PyBytes_GET_SIZE(bs), k, ln
    cdef object part
    for i in range(np):
        part = <object>PyTuple_GET_ITEM(ps, i)
        if type(part) is not bytes:
            raise TypeError(f"frame() parts must be bytes, not {type(part).__name__}")
        n += PyBytes_GET_SIZE(part)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, prefix_len(blen, n) + n + 7)
    cdef char* w = PyBytes_AS_STRING(out)
    cdef Py_ssize_t pos = put_prefix(w, PyBytes_AS_STRING(bs), blen, n)
    for i in range(np):
        part = <object>PyTuple_GET_ITEM(ps, i)
        ln = PyBytes_GET_SIZE(part)
        memcpy(w + pos, PyBytes_AS_STRING(part), ln)
        pos += ln
    put_checksum(w + pos, byte_sum(<const unsigned char*>w, pos))
    return out


# The standard header (fastfix.tags.HEADER_TAGS) as a bitmap: encode() moves these
# fields right after MsgType. 8, 9 and 35 are in it too, but never get that far.
cdef enum:
    _HEADER_BITMAP_TAGS = 2048
    _HEADER_BITMAP_BYTES = 256
cdef unsigned char _header_bitmap[_HEADER_BITMAP_BYTES]
for _t in HEADER_TAGS:
    if not 0 < _t < _HEADER_BITMAP_TAGS:
        raise ImportError(f"header tag {_t} does not fit the codec's header bitmap")
    _header_bitmap[_t >> 3] |= <unsigned char>(1 << (_t & 7))

cdef inline bint _is_header(long tag) noexcept nogil:
    return 0 < tag < _HEADER_BITMAP_TAGS and (_header_bitmap[tag >> 3] & (1 << (tag & 7))) != 0

cdef inline bint _is_trailer(long tag) noexcept nogil:
    # CheckSum, the third trailer field, is always computed.
    return tag == SIGNATURE_LENGTH or tag == SIGNATURE

cdef inline bint _may_hold_soh(const unsigned char* soh_ok, long tag) noexcept nogil:
    return 0 < tag < DATA_BITMAP_TAGS and (soh_ok[tag >> 3] & (1 << (tag & 7))) != 0


cdef int _soh_table(unsigned char* bitmap, object data_fields) except -1:
    """Bitmap of the data tags (values that may contain SOH) of a length->data table."""
    memset(bitmap, 0, DATA_BITMAP_BYTES)
    for data_tag in data_fields.values():
        if not 0 < data_tag < DATA_BITMAP_TAGS:
            raise ValueError(f"data tag {data_tag} out of range for encoding (1..{DATA_BITMAP_TAGS - 1})")
        bitmap[data_tag >> 3] |= <unsigned char>(1 << (data_tag & 7))
    return 0


cdef int _write_text(Buf* w, long tag, const char* s, Py_ssize_t n, const unsigned char* soh_ok) except -1:
    if n and memchr(s, C_SOH, n) != NULL and not _may_hold_soh(soh_ok, tag):
        raise EncodeError(f"tag {tag}: value contains SOH")
    return buf_put(w, s, n)


cdef str _float_text(double x):
    s = repr(x)
    if "e" in s or "E" in s:
        s = format(Decimal(s), "f")
    return s


cdef int _write_field(Buf* w, long tag, object v, int prec, const unsigned char* soh_ok) except -1:
    """Write ``tag=value<SOH>``; None writes nothing; a list writes a repeating group."""
    cdef Py_ssize_t n
    cdef const char* s
    cdef long long iv
    cdef int overflow = 0
    if v is None:
        return 0
    if tag <= 0 or tag > 2147483647:
        raise EncodeError(f"invalid tag {tag}")
    buf_need(w, 48)
    w.n += write_uint(w.p + w.n, <uint64_t>tag)
    w.p[w.n] = C_EQ
    w.n += 1
    if isinstance(v, str):
        if PyUnicode_IS_COMPACT_ASCII(v):
            s = <const char*>PyUnicode_DATA(v)
            n = PyUnicode_GET_LENGTH(v)
        else:
            s = PyUnicode_AsUTF8AndSize(v, &n)
        _write_text(w, tag, s, n, soh_ok)
    elif isinstance(v, bytes):
        _write_text(w, tag, PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v), soh_ok)
    elif v is True:
        w.p[w.n] = 89
        w.n += 1
    elif v is False:
        w.p[w.n] = 78
        w.n += 1
    elif isinstance(v, int):
        iv = PyLong_AsLongLongAndOverflow(v, &overflow)
        if overflow:
            b = str(v).encode("ascii")
            buf_put(w, PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))
        else:
            buf_put_int(w, iv)
    elif isinstance(v, list):
        _write_group(w, tag, <list>v, prec, soh_ok)
        return 0
    elif PyDateTime_Check(v):
        w.n += _write_ts_dt(w.p + w.n, v, prec)
    elif PyDate_Check(v):
        w.n += write_uint(w.p + w.n, <uint64_t>(PyDateTime_GET_YEAR(v) * 10000
                                                  + PyDateTime_GET_MONTH(v) * 100
                                                  + PyDateTime_GET_DAY(v)))
    elif PyTime_Check(v):
        # UTCTimeOnly
        w.n += _write_hms(w.p + w.n, PyDateTime_TIME_GET_HOUR(v), PyDateTime_TIME_GET_MINUTE(v),
                          PyDateTime_TIME_GET_SECOND(v), PyDateTime_TIME_GET_MICROSECOND(v) * 1000,
                          prec)
    elif isinstance(v, Decimal):
        if not v.is_finite():
            raise EncodeError(f"tag {tag}: {v!r} is not a finite number")
        b = format(v, "f").encode("ascii")
        buf_put(w, PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))
    elif isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise EncodeError(f"tag {tag}: {v!r} is not a finite number")
        b = _float_text(v).encode("ascii")
        buf_put(w, PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))
    else:
        raise EncodeError(f"tag {tag}: unsupported value type {type(v).__name__}")
    buf_need(w, 1)
    w.p[w.n] = C_SOH
    w.n += 1
    return 0


cdef int _write_group(Buf* w, long tag, list entries, int prec, const unsigned char* soh_ok) except -1:
    cdef Py_ssize_t k
    w.n += write_uint(w.p + w.n, <uint64_t>len(entries))
    w.p[w.n] = C_SOH
    w.n += 1
    for entry in entries:
        for item in entry:
            t, v = item
            _write_field(w, t, v, prec, soh_ok)
    return 0


cdef inline object _as_bytes(object v, str what):
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return (<str>v).encode("ascii")
    raise TypeError(f"{what} must be str or bytes")


def encode(begin_string, msg_type, fields, *, int precision=3, data_fields=None) -> bytes:
    """Serialize a message: 8, 9, 35, the standard header fields found in ``fields``
    (in their given order), the other fields in order, SignatureLength/Signature, then 10.

    Values may be bytes, str, int, bool (Y/N), Decimal, float, datetime (UTCTimestamp,
    ``precision`` fraction digits), date, time, None (field omitted) or a list of field
    sequences (a repeating group; the tag is the NumInGroup tag). Tags 8, 9, 35 and 10
    in ``fields`` are ignored: they are always computed. Only data fields (the values of
    ``data_fields``, a length tag -> data tag table, default DEFAULT_DATA_FIELDS) may
    contain SOH.
    """
    cdef char hstack[256]
    cdef char bstack[1024]
    cdef char tstack[64]
    cdef Buf hw, bw, tw
    cdef long tag
    cdef object value
    cdef Py_ssize_t k, nf, body_len, total, pre
    cdef char prefix[96]
    cdef bytes bs, mt, out
    cdef char* o
    cdef unsigned int cs
    cdef list seq
    cdef unsigned char own_soh[DATA_BITMAP_BYTES]
    cdef const unsigned char* soh_ok = _data_value_bitmap
    _check_prec(precision)
    if data_fields is not None:
        _soh_table(own_soh, data_fields)
        soh_ok = own_soh
    bs = _as_bytes(begin_string, "begin_string")
    mt = _as_bytes(msg_type, "msg_type")
    if PyBytes_GET_SIZE(bs) > 32 or PyBytes_GET_SIZE(mt) > 32:
        raise EncodeError("begin_string and msg_type are limited to 32 bytes")
    if type(fields) is list:
        seq = <list>fields
    else:
        seq = list(fields)
    buf_init(&hw, hstack, 256)
    buf_init(&bw, bstack, 1024)
    buf_init(&tw, tstack, 64)
    try:
        nf = PyList_GET_SIZE(seq)
        for k in range(nf):
            item = <object>PyList_GET_ITEM(seq, k)
            if type(item) is tuple and PyTuple_GET_SIZE(item) == 2:
                tag = <object>PyTuple_GET_ITEM(item, 0)
                value = <object>PyTuple_GET_ITEM(item, 1)
            else:
                tag_, value = item
                tag = tag_
            if tag == BEGIN_STRING or tag == BODY_LENGTH or tag == MSG_TYPE or tag == CHECK_SUM:
                continue
            if _is_header(tag):
                _write_field(&hw, tag, value, precision, soh_ok)
            elif _is_trailer(tag):
                _write_field(&tw, tag, value, precision, soh_ok)
            else:
                _write_field(&bw, tag, value, precision, soh_ok)
        body_len = 3 + PyBytes_GET_SIZE(mt) + 1 + hw.n + bw.n + tw.n
        pre = put_prefix(prefix, PyBytes_AS_STRING(bs), PyBytes_GET_SIZE(bs), body_len)
        total = pre + body_len + 7
        out = PyBytes_FromStringAndSize(NULL, total)
        o = PyBytes_AS_STRING(out)
        memcpy(o, prefix, pre)
        k = pre
        o[k] = 51
        o[k + 1] = 53
        o[k + 2] = C_EQ
        memcpy(o + k + 3, PyBytes_AS_STRING(mt), PyBytes_GET_SIZE(mt))
        k += 3 + PyBytes_GET_SIZE(mt)
        o[k] = C_SOH
        k += 1
        memcpy(o + k, hw.p, hw.n)
        k += hw.n
        memcpy(o + k, bw.p, bw.n)
        k += bw.n
        memcpy(o + k, tw.p, tw.n)
        k += tw.n
        cs = byte_sum(<const unsigned char*>o, k) & 255
        put_checksum(o + k, cs)
        return out
    finally:
        buf_free(&hw)
        buf_free(&bw)
        buf_free(&tw)
