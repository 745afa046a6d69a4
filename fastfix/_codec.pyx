# cython: language_level=3
"""FIX codec: stream tokenizer, zero-copy messages, serializer, templates.

Framing follows QuickFIX so that peers see the same behaviour: a frame starts
at ``8=FIX``, BodyLength must be the second field and MsgType the third, and
the frame ends at the first ``<SOH>10=`` found from the position BodyLength
points at. A frame whose BodyLength, CheckSum or field syntax is wrong is
reported as :class:`Garbled` and dropped whole; bytes before ``8=FIX`` are
reported as Garbled too. Everything after garbage is parsed normally.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.datetime cimport (
    PyDate_Check,
    PyDateTime_Check,
    PyDateTime_DATE_GET_HOUR,
    PyDateTime_DATE_GET_MICROSECOND,
    PyDateTime_DATE_GET_MINUTE,
    PyDateTime_DATE_GET_SECOND,
    PyDateTime_GET_DAY,
    PyDateTime_GET_MONTH,
    PyDateTime_GET_YEAR,
    PyTime_Check,
    PyDateTime_TIME_GET_HOUR,
    PyDateTime_TIME_GET_MICROSECOND,
    PyDateTime_TIME_GET_MINUTE,
    PyDateTime_TIME_GET_SECOND,
    datetime_new,
    datetime_tzinfo,
    get_utc,
    import_datetime,
)
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.stdint cimport int32_t, int64_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memchr, memcmp, memcpy, memmove, memset
from posix.time cimport CLOCK_REALTIME, clock_gettime, timespec

from decimal import Decimal, InvalidOperation

from fastfix.errors import EncodeError, ParseError

import_datetime()

cdef extern from "Python.h":
    bint PyUnicode_IS_COMPACT_ASCII(object o)
    void* PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    const char* PyUnicode_AsUTF8AndSize(object o, Py_ssize_t* size) except NULL

SOH = b"\x01"

_UTC = get_utc()

cdef enum:
    C_SOH = 1
    C_EQ = 61       # '='
    C_0 = 48
    C_9 = 57

# Step results.
cdef enum:
    ST_FRAME = 0     # [start, end) is a frame; fields still to be checked
    ST_GARBLED = 1   # [start, end) is a broken frame
    ST_JUNK = 2      # [start, end) holds no frame start
    ST_NEED = 3      # the frame at start is incomplete

# Reasons a frame is garbled.
cdef enum:
    R_NONE = 0
    R_JUNK
    R_BEGIN_UNTERMINATED
    R_BAD_BEGIN
    R_NO_BODYLENGTH
    R_BAD_BODYLENGTH
    R_TOO_LARGE
    R_NO_CHECKSUM
    R_CHECKSUM_FORMAT
    R_LENGTH_MISMATCH
    R_NO_MSGTYPE
    R_BAD_FIELD
    R_DATA_LENGTH
    R_CHECKSUM_MISMATCH

cdef enum:
    # BeginString field ("8=FIXT.1.1<SOH>" and the like) fits in this many bytes.
    _MAX_BEGIN = 64


# --------------------------------------------------------------------------
# Data field table
# --------------------------------------------------------------------------

DEFAULT_DATA_FIELDS = {
    95: 96,      # RawDataLength -> RawData
    212: 213,    # XmlDataLen -> XmlData
    354: 355,    # EncodedTextLen -> EncodedText
    93: 89,      # SignatureLength -> Signature
    90: 91,      # SecureDataLen -> SecureData
    348: 349,    # EncodedIssuerLen -> EncodedIssuer
    350: 351,    # EncodedSecurityDescLen -> EncodedSecurityDesc
    352: 353,    # EncodedListExecInstLen -> EncodedListExecInst
    356: 357,    # EncodedSubjectLen -> EncodedSubject
    358: 359,    # EncodedHeadlineLen -> EncodedHeadline
    360: 361,    # EncodedAllocTextLen -> EncodedAllocText
    362: 363,    # EncodedUnderlyingIssuerLen -> EncodedUnderlyingIssuer
    364: 365,    # EncodedUnderlyingSecurityDescLen -> EncodedUnderlyingSecurityDesc
    445: 446,    # EncodedListStatusTextLen -> EncodedListStatusText
    618: 619,    # EncodedLegIssuerLen -> EncodedLegIssuer
    621: 622,    # EncodedLegSecurityDescLen -> EncodedLegSecurityDesc
    1277: 1278,  # DerivativeEncodedIssuerLen -> DerivativeEncodedIssuer
    1397: 1398,  # EncodedMktSegmDescLen -> EncodedMktSegmDesc
    1401: 1402,  # EncryptedPasswordLen -> EncryptedPassword
    1403: 1404,  # EncryptedNewPasswordLen -> EncryptedNewPassword
}


cdef int _table_init(DataTable* dt, object pairs) except -1:
    memset(dt, 0, sizeof(DataTable))
    if len(pairs) > MAX_DATA_PAIRS:
        raise ValueError(f"at most {MAX_DATA_PAIRS} data field pairs")
    cdef int k = 0
    cdef long lt, vt
    for len_tag, data_tag in pairs.items():
        lt = len_tag
        vt = data_tag
        if lt <= 0 or vt <= 0 or lt > 2147483647 or vt > 2147483647:
            raise ValueError(f"invalid data field pair {len_tag} -> {data_tag}")
        dt.len_tags[k] = <int32_t>lt
        dt.data_tags[k] = <int32_t>vt
        if lt < DATA_BITMAP_TAGS:
            dt.bitmap[lt >> 3] |= <unsigned char>(1 << (lt & 7))
        else:
            dt.has_large = True
        k += 1
    dt.npairs = k
    return 0


cdef inline int _data_tag_for(const DataTable* dt, int tag) noexcept nogil:
    """Data tag announced by length tag ``tag``, or 0."""
    cdef int k
    if tag < DATA_BITMAP_TAGS:
        if not (dt.bitmap[tag >> 3] & (1 << (tag & 7))):
            return 0
    elif not dt.has_large:
        return 0
    for k in range(dt.npairs):
        if dt.len_tags[k] == tag:
            return dt.data_tags[k]
    return 0


cdef DataTable _default_table
_table_init(&_default_table, DEFAULT_DATA_FIELDS)

# Tags whose values may carry SOH when encoding (data fields).
cdef unsigned char _data_value_bitmap[DATA_BITMAP_BYTES]
for _v in DEFAULT_DATA_FIELDS.values():
    _data_value_bitmap[_v >> 3] |= <unsigned char>(1 << (_v & 7))


# --------------------------------------------------------------------------
# Framing
# --------------------------------------------------------------------------

cdef inline bint _is_start(const unsigned char* p) noexcept nogil:
    return p[0] == 56 and p[1] == 61 and p[2] == 70 and p[3] == 73 and p[4] == 88  # 8=FIX


cdef Py_ssize_t _find_start(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    """Index of the next ``8=FIX`` at or after i, or -1."""
    cdef const unsigned char* q
    while i + 5 <= n:
        q = <const unsigned char*>memchr(p + i, 56, n - i - 4)
        if q == NULL:
            return -1
        i = q - p
        if _is_start(p + i):
            return i
        i += 1
    return -1


cdef Py_ssize_t _partial_start(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    """Length of the longest suffix of p[i:n] that is a proper prefix of ``8=FIX``."""
    cdef Py_ssize_t k = n - i
    if k > 4:
        k = 4
    while k > 0:
        if memcmp(p + n - k, b"8=FIX", k) == 0:
            return k
        k -= 1
    return 0


cdef inline void _broken_header(const unsigned char* p, Py_ssize_t n, Step* st, int reason) noexcept nogil:
    """Report a frame whose header is unusable: it reaches up to the next frame start."""
    cdef Py_ssize_t t = _find_start(p, st.start + 1, n)
    if t < 0:
        t = n - _partial_start(p, st.start + 1, n)
    st.status = ST_GARBLED
    st.reason = reason
    st.end = t


cdef void _step(const unsigned char* p, Py_ssize_t n, Py_ssize_t i, Py_ssize_t maxsize,
                Py_ssize_t search_from, Step* st) noexcept nogil:
    """Classify the bytes at p[i:n]: one frame, a broken frame, junk, or need more."""
    cdef Py_ssize_t s, j, d, b, e, q, lim, k
    cdef long long L
    cdef const unsigned char* r
    st.start = i
    st.reason = R_NONE
    st.search_from = 0
    # Frame start.
    if n - i >= 5:
        if not _is_start(p + i):
            s = _find_start(p, i + 1, n)
            if s < 0:
                s = n - _partial_start(p, i + 1, n)
            st.status = ST_JUNK
            st.reason = R_JUNK
            st.end = s
            return
    else:
        if memcmp(p + i, b"8=FIX", n - i) == 0:
            st.status = ST_NEED
            st.need = 5
            return
        st.status = ST_JUNK
        st.reason = R_JUNK
        st.end = n - _partial_start(p, i + 1, n)
        return
    s = i
    # BeginString value ends at the first SOH.
    lim = n if n - s < _MAX_BEGIN else s + _MAX_BEGIN
    r = <const unsigned char*>memchr(p + s + 5, C_SOH, lim - s - 5)
    j = lim if r == NULL else r - p
    # A BeginString holding '=' is junk that happened to contain "8=FIX": skip it
    # at once rather than letting it swallow the real frame that follows.
    if memchr(p + s + 5, C_EQ, j - s - 5) != NULL:
        _broken_header(p, n, st, R_BAD_BEGIN)
        return
    if r == NULL:
        if n - s < _MAX_BEGIN:
            st.status = ST_NEED
            st.need = n - s + 1
        else:
            _broken_header(p, n, st, R_BEGIN_UNTERMINATED)
        return
    st.bs_end = j
    # BodyLength must be the second field.
    if j + 3 > n:
        st.status = ST_NEED
        st.need = j + 3 - s
        return
    if p[j + 1] != C_9 or p[j + 2] != C_EQ:
        _broken_header(p, n, st, R_NO_BODYLENGTH)
        return
    d = j + 3
    L = 0
    while d < n and p[d] >= C_0 and p[d] <= C_9 and d - j - 3 < 10:
        L = L * 10 + (p[d] - C_0)
        d += 1
    if d == n:
        st.status = ST_NEED
        st.need = d - s + 1
        return
    if p[d] != C_SOH or d == j + 3 or d - j - 3 > 9:
        _broken_header(p, n, st, R_BAD_BODYLENGTH)
        return
    b = d + 1
    st.body = b
    st.body_length = L
    e = b + L + 7
    if e - s > maxsize:
        st.a = maxsize
        _broken_header(p, n, st, R_TOO_LARGE)
        return
    # Fast path: the CheckSum field sits exactly where BodyLength says.
    if n >= e and L > 0 and p[b + L - 1] == C_SOH and p[b + L] == 49 and p[b + L + 1] == C_0 \
            and p[b + L + 2] == C_EQ and p[e - 1] == C_SOH:
        st.status = ST_FRAME
        st.cks = b + L
        st.end = e
        return
    # Otherwise QuickFIX takes the first "<SOH>10=" from BodyLength on.
    lim = n if n - s < maxsize else s + maxsize
    q = b + L - 1
    if search_from > q:
        q = search_from
    while True:
        if q + 4 > lim:
            q = -1
            break
        r = <const unsigned char*>memchr(p + q, C_SOH, lim - q - 3)
        if r == NULL:
            q = -1
            break
        q = r - p
        if p[q + 1] == 49 and p[q + 2] == C_0 and p[q + 3] == C_EQ:
            break
        q += 1
    if q < 0:
        if n - s >= maxsize:
            st.a = maxsize
            _broken_header(p, n, st, R_NO_CHECKSUM)
        else:
            st.status = ST_NEED
            st.need = (e if e > n + 1 else n + 1) - s
            st.search_from = n - 3 if n - 3 > b + L - 1 else b + L - 1
        return
    r = <const unsigned char*>memchr(p + q + 4, C_SOH, lim - q - 4)
    if r == NULL:
        if n - s >= maxsize:
            st.a = maxsize
            _broken_header(p, n, st, R_NO_CHECKSUM)
        else:
            st.status = ST_NEED
            st.need = n - s + 1
            st.search_from = q
        return
    st.status = ST_FRAME
    st.cks = q + 1
    st.end = r - p + 1


cdef int _parse_fields(Message m, const unsigned char* p, Step* st, const DataTable* dt) except -1:
    """Fill m's field table from the frame p[0:len]; offsets in st are relative to p.

    Returns 0 for a good message, 1 if garbled (st.reason set).
    """
    cdef Py_ssize_t bs_end = st.bs_end - st.start
    cdef Py_ssize_t b = st.body - st.start
    cdef Py_ssize_t cks = st.cks - st.start
    cdef Py_ssize_t e = st.end - st.start
    cdef Py_ssize_t k, ts, vs, ve
    cdef int n, dtag
    cdef long t, pending_tag = 0
    cdef bint neg
    cdef long long pending_len = 0, v
    cdef unsigned int ch, total
    cdef FieldRef* f
    if m._f == NULL:
        m._f = m._inline
        m._cap = INLINE_FIELDS
    # CheckSum value: exactly three digits.
    if e - 1 - (cks + 3) != 3 or not (
            C_0 <= p[cks + 3] <= C_9 and C_0 <= p[cks + 4] <= C_9 and C_0 <= p[cks + 5] <= C_9):
        st.reason = R_CHECKSUM_FORMAT
        return 1
    if cks - b != st.body_length:
        st.reason = R_LENGTH_MISMATCH
        st.a = st.body_length
        st.b = cks - b
        return 1
    f = m._f
    f[0].tag = 8
    f[0].start = 2
    f[0].end = <int32_t>bs_end
    f[1].tag = 9
    f[1].start = <int32_t>(bs_end + 3)
    f[1].end = <int32_t>(b - 1)
    n = 2
    k = b
    while k < cks:
        ts = k
        ch = p[k]
        # A tag is an integer. Zero and negative ones are framed like any other so
        # that validation answers them with "Invalid tag number", as QuickFIX does.
        neg = ch == 45
        if neg:
            k += 1
            ch = p[k]
        if ch < C_0 or ch > C_9:
            st.reason = R_BAD_FIELD
            st.a = ts
            return 1
        t = 0
        while C_0 <= ch <= C_9:
            t = t * 10 + <int>(ch - C_0)
            k += 1
            ch = p[k]
            if k - ts > 9:
                st.reason = R_BAD_FIELD
                st.a = ts
                return 1
        if ch != C_EQ:
            st.reason = R_BAD_FIELD
            st.a = ts
            return 1
        if neg:
            t = -t
        k += 1
        vs = k
        if t == pending_tag and pending_tag > 0:
            ve = vs + pending_len
            if ve >= cks or p[ve] != C_SOH:
                st.reason = R_DATA_LENGTH
                st.a = t
                return 1
            pending_tag = 0
        else:
            # The SOH before "10=" bounds this scan.
            while p[k] != C_SOH:
                k += 1
            ve = k
        if n == m._cap - 1:     # keep one slot for CheckSum
            m._n = n
            m._grow()
            f = m._f
        f[n].tag = t
        f[n].start = <int32_t>vs
        f[n].end = <int32_t>ve
        n += 1
        if n == 3 and t != 35:
            st.reason = R_NO_MSGTYPE
            return 1
        dtag = _data_tag_for(dt, t) if t > 0 else 0
        if dtag:
            v = 0
            for k in range(vs, ve):
                ch = p[k]
                if ch < C_0 or ch > C_9 or k - vs > 9:
                    v = -1
                    break
                v = v * 10 + (ch - C_0)
            if v >= 0 and ve > vs:
                pending_tag = dtag
                pending_len = v
        k = ve + 1
    if n < 3:
        st.reason = R_NO_MSGTYPE
        return 1
    f[n].tag = 10
    f[n].start = <int32_t>(cks + 3)
    f[n].end = <int32_t>(e - 1)
    n += 1
    m._n = n
    total = byte_sum(p, cks)
    v = (p[cks + 3] - C_0) * 100 + (p[cks + 4] - C_0) * 10 + (p[cks + 5] - C_0)
    if <long long>(total & 255) != v:
        st.reason = R_CHECKSUM_MISMATCH
        st.a = v
        st.b = total & 255
        return 1
    return 0


cdef str _reason_text(Step* st):
    cdef int r = st.reason
    if r == R_JUNK:
        return "bytes before BeginString (8=FIX)"
    if r == R_BEGIN_UNTERMINATED:
        return "BeginString (8) is not terminated by SOH"
    if r == R_BAD_BEGIN:
        return "BeginString (8) is malformed"
    if r == R_NO_BODYLENGTH:
        return "BodyLength (9) is not the second field"
    if r == R_BAD_BODYLENGTH:
        return "BodyLength (9) is not a valid number"
    if r == R_TOO_LARGE:
        return f"message is larger than max_message_size ({st.a} bytes)"
    if r == R_NO_CHECKSUM:
        return f"no CheckSum (10) within max_message_size ({st.a} bytes)"
    if r == R_CHECKSUM_FORMAT:
        return "CheckSum (10) is not three digits"
    if r == R_LENGTH_MISMATCH:
        return f"BodyLength (9) is {st.a} but the body has {st.b} bytes"
    if r == R_NO_MSGTYPE:
        return "MsgType (35) is not the third field"
    if r == R_BAD_FIELD:
        return f"malformed tag=value field at offset {st.a}"
    if r == R_DATA_LENGTH:
        return f"data field {st.a} does not end where its length field says"
    if r == R_CHECKSUM_MISMATCH:
        return f"CheckSum (10) is {st.a:03d}, computed {st.b:03d}"
    return "garbled"


cdef Garbled _garbled(str reason, const unsigned char* p, Py_ssize_t start, Py_ssize_t end):
    cdef Garbled g = Garbled.__new__(Garbled)
    g.reason = reason
    g.data = PyBytes_FromStringAndSize(<const char*>p + start, end - start)
    return g


@cython.final
cdef class Garbled:
    """Bytes the tokenizer dropped: a broken frame or junk between frames.

    ``reason`` says why in words; ``data`` holds the dropped bytes.
    """

    def __init__(self, str reason, bytes data):
        self.reason = reason
        self.data = data

    def __repr__(self) -> str:
        shown = self.data[:80]
        more = "..." if len(self.data) > 80 else ""
        return f"Garbled({self.reason!r}, {shown!r}{more})"

    def __eq__(self, other):
        if not isinstance(other, Garbled):
            return NotImplemented
        return self.reason == (<Garbled>other).reason and self.data == (<Garbled>other).data


# --------------------------------------------------------------------------
# Message
# --------------------------------------------------------------------------

cdef object _MISSING = object()


cdef inline int _digit(unsigned char c) noexcept nogil:
    return <int>c - C_0 if C_0 <= c <= C_9 else -1


cdef int _days_in_month(int y, int m) noexcept nogil:
    if m == 2:
        return 29 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 28
    if m == 4 or m == 6 or m == 9 or m == 11:
        return 30
    return 31


cdef object _parse_ts(const unsigned char* p, Py_ssize_t n):
    """UTCTimestamp ``YYYYMMDD-HH:MM:SS[.f{1,9}]`` -> aware datetime (UTC)."""
    cdef int y, mo, d, H, M, S, us = 0, dig, k
    cdef int v[14]
    cdef int idx[14]
    if n < 17 or p[8] != 45 or p[11] != 58 or p[14] != 58:
        raise ValueError(f"not a UTCTimestamp: {PyBytes_FromStringAndSize(<const char*>p, n)!r}")
    idx[:] = [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 12, 13, 15, 16]
    for k in range(14):
        v[k] = _digit(p[idx[k]])
        if v[k] < 0:
            raise ValueError(f"not a UTCTimestamp: {PyBytes_FromStringAndSize(<const char*>p, n)!r}")
    y = v[0] * 1000 + v[1] * 100 + v[2] * 10 + v[3]
    mo = v[4] * 10 + v[5]
    d = v[6] * 10 + v[7]
    H = v[8] * 10 + v[9]
    M = v[10] * 10 + v[11]
    S = v[12] * 10 + v[13]
    if n > 17:
        if p[17] != 46 or n == 18 or n > 27:
            raise ValueError(f"not a UTCTimestamp: {PyBytes_FromStringAndSize(<const char*>p, n)!r}")
        for k in range(18, n):
            dig = _digit(p[k])
            if dig < 0:
                raise ValueError(
                    f"not a UTCTimestamp: {PyBytes_FromStringAndSize(<const char*>p, n)!r}")
            if k < 24:
                us = us * 10 + dig
        k = n
        while k < 24:
            us *= 10
            k += 1
    if y < 1 or mo < 1 or mo > 12 or d < 1 or d > _days_in_month(y, mo) or H > 23 or M > 59 or S > 60:
        raise ValueError(f"not a UTCTimestamp: {PyBytes_FromStringAndSize(<const char*>p, n)!r}")
    if S == 60:
        # A leap second; datetime cannot hold it, so it becomes the last microsecond before.
        S = 59
        us = 999999
    return datetime_new(y, mo, d, H, M, S, us, _UTC)


@cython.final
@cython.no_gc
@cython.freelist(64)
cdef class Message:
    """One FIX message: the bytes it came from plus the offsets of its fields.

    Values are materialized only when accessed. ``m[tag]`` is the first
    occurrence; ``get_all`` returns every occurrence (repeating groups).
    """

    def __dealloc__(self):
        if self._f != NULL and self._f != self._inline:
            free(self._f)

    cdef int _grow(self) except -1:
        cdef int cap = self._cap * 2
        cdef FieldRef* nf = <FieldRef*>malloc(cap * sizeof(FieldRef))
        if nf == NULL:
            raise MemoryError()
        memcpy(nf, self._f, self._n * sizeof(FieldRef))
        if self._f != self._inline:
            free(self._f)
        self._f = nf
        self._cap = cap
        return 0

    cdef int find(self, int tag) noexcept:
        cdef int i
        for i in range(self._n):
            if self._f[i].tag == tag:
                return i
        return -1

    cdef int find_from(self, int tag, int start) noexcept:
        cdef int i
        for i in range(start, self._n):
            if self._f[i].tag == tag:
                return i
        return -1

    cdef bytes value_bytes(self, int i):
        return PyBytes_FromStringAndSize(<const char*>self._p + self._f[i].start,
                                         self._f[i].end - self._f[i].start)

    cdef int value_int(self, int i, long long* out) noexcept:
        cdef const unsigned char* p = self._p + self._f[i].start
        cdef Py_ssize_t n = self._f[i].end - self._f[i].start
        cdef Py_ssize_t k = 0
        cdef long long v = 0
        cdef bint neg = False
        if n > 0 and p[0] == 45:
            neg = True
            k = 1
        if k == n or n - k > 18:
            return -1
        while k < n:
            if p[k] < C_0 or p[k] > C_9:
                return -1
            v = v * 10 + (p[k] - C_0)
            k += 1
        out[0] = -v if neg else v
        return 0

    def __len__(self) -> int:
        return self._n

    def __contains__(self, tag) -> bool:
        if not isinstance(tag, int):
            return False
        return self.find(tag) >= 0

    def __getitem__(self, int tag) -> bytes:
        cdef int i = self.find(tag)
        if i < 0:
            raise KeyError(tag)
        return self.value_bytes(i)

    def __iter__(self):
        return iter(self.fields())

    def __bytes__(self) -> bytes:
        return self.raw

    def __eq__(self, other):
        if not isinstance(other, Message):
            return NotImplemented
        return self.raw == (<Message>other).raw

    def __hash__(self):
        return hash(self.raw)

    def __repr__(self) -> str:
        return "Message(" + self.raw.replace(b"\x01", b"|").decode("utf-8", "replace") + ")"

    def get(self, int tag, default=None):
        """Value of the first field ``tag`` as bytes, or ``default``."""
        cdef int i = self.find(tag)
        if i < 0:
            return default
        return self.value_bytes(i)

    def get_str(self, int tag, default=_MISSING) -> str:
        """Value as str (UTF-8); KeyError if absent and no default."""
        cdef int i = self.find(tag)
        if i < 0:
            if default is _MISSING:
                raise KeyError(tag)
            return default
        return (<const char*>self._p)[self._f[i].start:self._f[i].end].decode("utf-8")

    def get_int(self, int tag, default=_MISSING) -> int:
        """Value as int; KeyError if absent and no default, ValueError if not an integer."""
        cdef long long v
        cdef int i = self.find(tag)
        if i < 0:
            if default is _MISSING:
                raise KeyError(tag)
            return default
        if self.value_int(i, &v) == 0:
            return v
        s = self.value_bytes(i)
        if len(s) > 18 and s.lstrip(b"-").isdigit():
            return int(s)
        raise ValueError(f"tag {tag}: not an integer: {s!r}")

    def get_decimal(self, int tag, default=_MISSING):
        """Value as Decimal (FIX float/Price/Qty); ValueError if not a number."""
        cdef int i = self.find(tag)
        cdef const unsigned char* p
        cdef Py_ssize_t n, k = 0
        cdef int digits = 0, dots = 0
        if i < 0:
            if default is _MISSING:
                raise KeyError(tag)
            return default
        p = self._p + self._f[i].start
        n = self._f[i].end - self._f[i].start
        if n > 0 and p[0] == 45:
            k = 1
        while k < n:
            if C_0 <= p[k] <= C_9:
                digits += 1
            elif p[k] == 46:
                dots += 1
            else:
                digits = 0
                break
            k += 1
        if digits == 0 or dots > 1:
            raise ValueError(f"tag {tag}: not a number: {self.value_bytes(i)!r}")
        return Decimal((<const char*>p)[:n].decode("ascii"))

    def get_bool(self, int tag, default=_MISSING) -> bool:
        """Value as bool (``Y``/``N``); ValueError otherwise."""
        cdef int i = self.find(tag)
        if i < 0:
            if default is _MISSING:
                raise KeyError(tag)
            return default
        if self._f[i].end - self._f[i].start == 1:
            if self._p[self._f[i].start] == 89:
                return True
            if self._p[self._f[i].start] == 78:
                return False
        raise ValueError(f"tag {tag}: not Y or N: {self.value_bytes(i)!r}")

    def get_utc(self, int tag, default=_MISSING):
        """UTCTimestamp value (seconds, ms, µs or ns precision) as an aware datetime in UTC."""
        cdef int i = self.find(tag)
        if i < 0:
            if default is _MISSING:
                raise KeyError(tag)
            return default
        return _parse_ts(self._p + self._f[i].start, self._f[i].end - self._f[i].start)

    def get_all(self, int tag) -> list:
        """Every value of ``tag``, in wire order."""
        cdef list out = []
        cdef int i
        for i in range(self._n):
            if self._f[i].tag == tag:
                out.append(self.value_bytes(i))
        return out

    def fields(self) -> list:
        """All fields as ``(tag, value)`` in wire order, 8, 9, 35 and 10 included."""
        cdef list out = []
        cdef int i
        for i in range(self._n):
            out.append((self._f[i].tag, self.value_bytes(i)))
        return out

    def tag_at(self, int i) -> int:
        """Tag of the i-th field (negative indexes count from the end)."""
        if i < 0:
            i += self._n
        if i < 0 or i >= self._n:
            raise IndexError(i)
        return self._f[i].tag

    def value_at(self, int i) -> bytes:
        """Value of the i-th field (negative indexes count from the end)."""
        if i < 0:
            i += self._n
        if i < 0 or i >= self._n:
            raise IndexError(i)
        return self.value_bytes(i)

    @property
    def raw(self) -> bytes:
        """The whole message as received (the source object itself when it is exactly the message)."""
        if self._buf is not None and self._off == 0 and PyBytes_GET_SIZE(self._buf) == self._len:
            return self._buf
        return PyBytes_FromStringAndSize(<const char*>self._p, self._len)

    @property
    def begin_string(self) -> bytes:
        if self._n == 0:
            return b""
        return self.value_bytes(0)

    @property
    def msg_type(self) -> bytes:
        if self._n < 3:
            return b""
        return self.value_bytes(2)

    @property
    def seq_num(self) -> int:
        """MsgSeqNum (34) as int, or -1 if absent or not a number."""
        cdef long long v
        cdef int i = self.find(34)
        if i < 0 or self.value_int(i, &v) != 0:
            return -1
        return v


cdef inline Message _new_message():
    return Message.__new__(Message)


cdef inline void _bind(Message m, object buf, const unsigned char* base, Py_ssize_t start, Py_ssize_t end) noexcept:
    m._buf = buf
    m._p = base + start
    m._off = start
    m._len = end - start


def parse(data) -> Message:
    """Parse exactly one complete message; ParseError if it is not one."""
    cdef Step st
    cdef Message m
    cdef const unsigned char* p
    cdef Py_ssize_t n
    if type(data) is not bytes:
        data = bytes(data)
    p = <const unsigned char*>PyBytes_AS_STRING(data)
    n = PyBytes_GET_SIZE(data)
    if n == 0:
        raise ParseError("empty message")
    _step(p, n, 0, n + 16, 0, &st)
    if st.status == ST_NEED:
        raise ParseError("incomplete message")
    if st.status != ST_FRAME:
        raise ParseError(_reason_text(&st))
    if st.end != n:
        raise ParseError("trailing bytes after CheckSum (10)")
    m = _new_message()
    if _parse_fields(m, p, &st, &_default_table) != 0:
        raise ParseError(_reason_text(&st))
    _bind(m, data, p, 0, n)
    return m


# --------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------

@cython.final
cdef class Tokenizer:
    """Incremental framing of a FIX byte stream.

    ``feed(chunk)`` returns the complete messages and Garbled items found so
    far, in stream order. Messages that lie entirely inside one chunk keep a
    reference to that chunk (no copy); only an incomplete tail is buffered.
    """

    def __cinit__(self, Py_ssize_t max_message_size=1 << 20, data_fields=None):
        if max_message_size < 32:
            raise ValueError("max_message_size must be at least 32 bytes")
        self._max = max_message_size
        _table_init(&self._dt, DEFAULT_DATA_FIELDS if data_fields is None else data_fields)
        self._tail = NULL
        self._tail_len = 0
        self._tail_cap = 0
        self._need = 0
        self._search_from = 0

    def __dealloc__(self):
        if self._tail != NULL:
            free(self._tail)

    @property
    def max_message_size(self) -> int:
        return self._max

    @property
    def buffered(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return self._tail_len

    def reset(self) -> None:
        """Forget any buffered partial frame (e.g. after a reconnect)."""
        self._tail_len = 0
        self._need = 0
        self._search_from = 0

    cdef int _append(self, const unsigned char* p, Py_ssize_t n) except -1:
        cdef Py_ssize_t cap
        cdef unsigned char* nt
        if self._tail_len + n > self._tail_cap:
            cap = self._tail_cap * 2
            if cap < self._tail_len + n:
                cap = self._tail_len + n
            if cap < 256:
                cap = 256
            nt = <unsigned char*>realloc(self._tail, cap)
            if nt == NULL:
                raise MemoryError()
            self._tail = nt
            self._tail_cap = cap
        memcpy(self._tail + self._tail_len, p, n)
        self._tail_len += n
        return 0

    cdef int _emit(self, Step* st, object buf, const unsigned char* p, list out, bint copy) except -1:
        """Append the item described by st to out."""
        cdef Message m
        cdef bytes b
        if st.status == ST_FRAME:
            m = _new_message()
            if _parse_fields(m, p + st.start, st, &self._dt) == 0:
                if copy:
                    b = PyBytes_FromStringAndSize(<const char*>p + st.start, st.end - st.start)
                    _bind(m, b, <const unsigned char*>PyBytes_AS_STRING(b), 0, st.end - st.start)
                else:
                    _bind(m, buf, p, st.start, st.end)
                out.append(m)
                return 0
        out.append(_garbled(_reason_text(st), p, st.start, st.end))
        return 0

    cpdef list feed(self, object data):
        """Add bytes from the stream; return the messages and Garbled items completed."""
        cdef list out = []
        cdef const unsigned char* p
        cdef Py_ssize_t n, i = 0
        cdef Step st
        if type(data) is not bytes:
            data = bytes(data)
        p = <const unsigned char*>PyBytes_AS_STRING(data)
        n = PyBytes_GET_SIZE(data)
        if n == 0:
            return out
        if self._tail_len:
            i = self._feed_tail(p, n, out)
        while i < n:
            _step(p, n, i, self._max, 0, &st)
            if st.status == ST_NEED:
                self._need = st.need
                self._search_from = st.search_from - i if st.search_from > i else 0
                self._append(p + i, n - i)
                break
            self._emit(&st, data, p, out, False)
            i = st.end
        return out

    cdef Py_ssize_t _feed_tail(self, const unsigned char* p, Py_ssize_t n, list out) except -1:
        """Complete the buffered frame with bytes from p; return where zero-copy scanning resumes.

        Invariant: tail[orig + x] == p[x] for the x < j bytes already appended.
        """
        cdef Py_ssize_t orig = self._tail_len
        cdef Py_ssize_t j = 0, take, q
        cdef bint need_append = True
        cdef Step st
        while True:
            if need_append:
                if j == n:
                    return n
                take = self._need - self._tail_len
                if take < self._tail_len:
                    take = self._tail_len     # grow geometrically: linear total work
                if take < 64:
                    take = 64
                # Never hold more than about max_message_size: beyond it the frame is garbled.
                if take > self._max + 1 - self._tail_len:
                    take = self._max + 1 - self._tail_len
                    if take < 1:
                        take = 1
                if take > n - j:
                    take = n - j
                self._append(p + j, take)
                j += take
            _step(self._tail, self._tail_len, 0, self._max, self._search_from, &st)
            if st.status == ST_NEED:
                self._need = st.need
                self._search_from = st.search_from
                need_append = True
                continue
            self._emit(&st, None, self._tail, out, True)
            q = st.end
            self._need = 0
            self._search_from = 0
            if q >= orig:
                self._tail_len = 0
                if self._tail_cap > 65536:
                    # Return the memory a large frame needed; typical tails are small.
                    free(self._tail)
                    self._tail = NULL
                    self._tail_cap = 0
                return q - orig
            memmove(self._tail, self._tail + q, self._tail_len - q)
            self._tail_len -= q
            orig -= q
            need_append = False


# --------------------------------------------------------------------------
# Timestamps
# --------------------------------------------------------------------------

cdef inline void _civil(int64_t days, int* y, int* m, int* d) noexcept nogil:
    """Days since 1970-01-01 -> proleptic Gregorian date (era arithmetic)."""
    cdef int64_t z = days + 719468
    cdef int64_t era = (z if z >= 0 else z - 146096) // 146097
    cdef int64_t doe = z - era * 146097
    cdef int64_t yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    cdef int64_t doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    cdef int64_t mp = (5 * doy + 2) // 153
    d[0] = <int>(doy - (153 * mp + 2) // 5 + 1)
    m[0] = <int>(mp + 3 if mp < 10 else mp - 9)
    y[0] = <int>(yoe + era * 400 + (1 if m[0] <= 2 else 0))


cdef inline void _put2(char* o, int v) noexcept nogil:
    o[0] = <char>(C_0 + v // 10)
    o[1] = <char>(C_0 + v % 10)


cdef int _write_hms(char* o, int H, int M, int S, long frac_ns, int prec) noexcept nogil:
    """Write HH:MM:SS[.fff...] (prec 0/3/6/9 fraction digits); return the length."""
    cdef int k
    cdef long v
    _put2(o, H)
    o[2] = 58
    _put2(o + 3, M)
    o[5] = 58
    _put2(o + 6, S)
    if prec == 0:
        return 8
    o[8] = 46
    v = frac_ns
    for k in range(9 - prec):
        v //= 10
    for k in range(prec - 1, -1, -1):
        o[9 + k] = <char>(C_0 + v % 10)
        v //= 10
    return 9 + prec


cdef int _write_ts(char* o, int y, int mo, int d, int H, int M, int S, long frac_ns, int prec) noexcept nogil:
    """Write YYYYMMDD-HH:MM:SS[.fff...]; return the length."""
    _put2(o, y // 100)
    _put2(o + 2, y % 100)
    _put2(o + 4, mo)
    _put2(o + 6, d)
    o[8] = 45
    return 9 + _write_hms(o + 9, H, M, S, frac_ns, prec)


cdef int _write_ts_ns(char* o, int64_t ns, int prec) noexcept nogil:
    # cdivision truncates toward zero: floor by hand for instants before 1970.
    cdef int64_t days = ns // 86400000000000LL
    cdef int64_t rem = ns - days * 86400000000000LL
    if rem < 0:
        days -= 1
        rem += 86400000000000LL
    cdef int y, mo, d
    cdef int64_t secs = rem // 1000000000
    _civil(days, &y, &mo, &d)
    return _write_ts(o, y, mo, d, <int>(secs // 3600), <int>((secs // 60) % 60), <int>(secs % 60),
                     <long>(rem % 1000000000), prec)


cdef int _write_ts_dt(char* o, object dt, int prec) except -1:
    """Write a datetime (naive = UTC; aware converted to UTC)."""
    tz = datetime_tzinfo(dt)
    if tz is not None and tz is not _UTC:
        dt = dt.astimezone(_UTC)
    return _write_ts(o, PyDateTime_GET_YEAR(dt), PyDateTime_GET_MONTH(dt), PyDateTime_GET_DAY(dt),
                     PyDateTime_DATE_GET_HOUR(dt), PyDateTime_DATE_GET_MINUTE(dt),
                     PyDateTime_DATE_GET_SECOND(dt), PyDateTime_DATE_GET_MICROSECOND(dt) * 1000, prec)


cdef inline int _check_prec(int prec) except -1:
    if prec != 0 and prec != 3 and prec != 6 and prec != 9:
        raise ValueError("precision must be 0, 3, 6 or 9")
    return 0


cdef inline int64_t _now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


def utc_timestamp(value=None, int precision=3) -> bytes:
    """UTCTimestamp bytes for ``value`` (None = now, datetime, or int ns since the epoch).

    ``precision`` is the number of fraction digits: 0, 3 (ms), 6 (µs) or 9 (ns).
    """
    cdef char o[32]
    cdef int n
    _check_prec(precision)
    if value is None:
        n = _write_ts_ns(o, _now_ns(), precision)
    elif PyDateTime_Check(value):
        n = _write_ts_dt(o, value, precision)
    elif isinstance(value, int):
        n = _write_ts_ns(o, value, precision)
    else:
        raise TypeError("value must be None, a datetime or int nanoseconds")
    return PyBytes_FromStringAndSize(o, n)


def parse_utc_timestamp(value) -> object:
    """Parse ``YYYYMMDD-HH:MM:SS[.fraction]`` (bytes or str) to an aware datetime in UTC."""
    if isinstance(value, str):
        value = (<str>value).encode("ascii")
    elif type(value) is not bytes:
        value = bytes(value)
    return _parse_ts(<const unsigned char*>PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value))


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


# --------------------------------------------------------------------------
# Serializer
# --------------------------------------------------------------------------

cdef struct WBuf:
    char* p
    Py_ssize_t n
    Py_ssize_t cap
    bint heap


cdef inline void _wb_init(WBuf* w, char* stack, Py_ssize_t cap) noexcept:
    w.p = stack
    w.n = 0
    w.cap = cap
    w.heap = False


cdef inline void _wb_free(WBuf* w) noexcept:
    if w.heap:
        free(w.p)
        w.heap = False


cdef int _wb_grow(WBuf* w, Py_ssize_t extra) except -1:
    cdef Py_ssize_t cap = w.cap * 2
    cdef char* np
    if cap < w.n + extra:
        cap = w.n + extra
    if w.heap:
        np = <char*>realloc(w.p, cap)
        if np == NULL:
            raise MemoryError()
    else:
        np = <char*>malloc(cap)
        if np == NULL:
            raise MemoryError()
        memcpy(np, w.p, w.n)
    w.p = np
    w.cap = cap
    w.heap = True
    return 0


cdef inline int _wb_need(WBuf* w, Py_ssize_t extra) except -1:
    if w.n + extra > w.cap:
        return _wb_grow(w, extra)
    return 0


cdef inline int _wb_bytes(WBuf* w, const char* s, Py_ssize_t n) except -1:
    if w.n + n > w.cap:
        _wb_grow(w, n)
    memcpy(w.p + w.n, s, n)
    w.n += n
    return 0


# Standard header tags (FIX 4.x and FIXT.1.1) other than 8, 9 and 35, and trailer tags.
cdef unsigned char _header_bitmap[256]
for _t in (49, 56, 115, 128, 90, 91, 34, 50, 142, 57, 143, 116, 144, 129, 145, 43, 97, 52,
           122, 212, 213, 347, 369, 370, 627, 1128, 1129, 1156):
    _header_bitmap[_t >> 3] |= <unsigned char>(1 << (_t & 7))

cdef inline bint _is_header(long tag) noexcept nogil:
    return 0 < tag < 2048 and (_header_bitmap[tag >> 3] & (1 << (tag & 7))) != 0

cdef inline bint _is_trailer(long tag) noexcept nogil:
    return tag == 93 or tag == 89

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


cdef int _write_text(WBuf* w, long tag, const char* s, Py_ssize_t n, const unsigned char* soh_ok) except -1:
    if n and memchr(s, C_SOH, n) != NULL and not _may_hold_soh(soh_ok, tag):
        raise EncodeError(f"tag {tag}: value contains SOH")
    return _wb_bytes(w, s, n)


cdef str _float_text(double x):
    s = repr(x)
    if "e" in s or "E" in s:
        s = format(Decimal(s), "f")
    return s


cdef int _write_field(WBuf* w, long tag, object v, int prec, const unsigned char* soh_ok) except -1:
    """Write ``tag=value<SOH>``; None writes nothing; a list writes a repeating group."""
    cdef Py_ssize_t n
    cdef const char* s
    cdef long long iv
    cdef int overflow = 0
    if v is None:
        return 0
    if tag <= 0 or tag > 2147483647:
        raise EncodeError(f"invalid tag {tag}")
    _wb_need(w, 48)
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
            _wb_bytes(w, PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))
        else:
            if iv < 0:
                w.p[w.n] = 45
                w.n += 1
                w.n += write_uint(w.p + w.n, <uint64_t>(-(iv + 1)) + 1)
            else:
                w.n += write_uint(w.p + w.n, <uint64_t>iv)
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
        _wb_bytes(w, PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))
    elif isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            raise EncodeError(f"tag {tag}: {v!r} is not a finite number")
        b = _float_text(v).encode("ascii")
        _wb_bytes(w, PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))
    else:
        raise EncodeError(f"tag {tag}: unsupported value type {type(v).__name__}")
    _wb_need(w, 1)
    w.p[w.n] = C_SOH
    w.n += 1
    return 0


cdef int _write_group(WBuf* w, long tag, list entries, int prec, const unsigned char* soh_ok) except -1:
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
    cdef WBuf hw, bw, tw
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
    _wb_init(&hw, hstack, 256)
    _wb_init(&bw, bstack, 1024)
    _wb_init(&tw, tstack, 64)
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
            if tag == 8 or tag == 9 or tag == 35 or tag == 10:
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
        _wb_free(&hw)
        _wb_free(&bw)
        _wb_free(&tw)


@cython.final
cdef class Template:
    """Pre-encoded message where only the ``variable`` tags change.

    Static fields are encoded once, with their byte sum kept for the CheckSum;
    ``render(*values)`` encodes the variable fields (values in the order of
    ``variable``) and assembles the message. A variable tag missing from
    ``fields`` is added (header tags after the header fields, others at the
    end of the body). A None value omits the field.
    """

    cdef bytes _bs
    cdef bytes _static           # all static runs, concatenated
    cdef unsigned int _static_sum
    cdef int _nslots
    cdef int _nvars
    cdef Py_ssize_t* _run_end    # static run k ends at _run_end[k] (nslots + 1 runs)
    cdef long* _slot_tag
    cdef int* _slot_arg
    cdef int _prec
    cdef unsigned char _soh_ok[DATA_BITMAP_BYTES]

    def __cinit__(self):
        self._run_end = NULL
        self._slot_tag = NULL
        self._slot_arg = NULL

    def __dealloc__(self):
        free(self._run_end)
        free(self._slot_tag)
        free(self._slot_arg)

    def __init__(self, begin_string, msg_type, fields, variable, *, int precision=3,
                 data_fields=None):
        cdef char stack[1024]
        cdef WBuf w
        cdef long tag
        cdef object value
        cdef int k
        _check_prec(precision)
        self._prec = precision
        _soh_table(self._soh_ok, DEFAULT_DATA_FIELDS if data_fields is None else data_fields)
        self._bs = _as_bytes(begin_string, "begin_string")
        mt = _as_bytes(msg_type, "msg_type")
        if PyBytes_GET_SIZE(self._bs) > 32:
            raise EncodeError("begin_string is limited to 32 bytes")
        var_tags = [int(t) for t in variable]
        if len(set(var_tags)) != len(var_tags):
            raise ValueError("variable tags must be distinct")
        for t in var_tags:
            if t in (8, 9, 10, 35):
                raise ValueError(f"tag {t} cannot be variable")
        pairs = []
        for item in fields:
            tag_, value_ = item
            pairs.append((int(tag_), value_))
        # Order: header fields, body fields, trailer fields; variable tags not given are added.
        present = {t for t, _ in pairs}
        seen_var = set()
        header, body, trailer = [], [], []
        for t, v in pairs:
            if t in (8, 9, 10, 35):
                continue
            if t in var_tags:
                if t in seen_var:
                    raise ValueError(f"variable tag {t} appears more than once")
                seen_var.add(t)
            dest = header if _is_header(t) else trailer if _is_trailer(t) else body
            dest.append((t, v))
        for t in var_tags:
            if t not in present:
                dest = header if _is_header(t) else trailer if _is_trailer(t) else body
                dest.append((t, None))
        ordered = [(35, mt)] + header + body + trailer
        nslots = len(var_tags)
        self._nvars = nslots
        self._nslots = nslots
        self._run_end = <Py_ssize_t*>malloc((nslots + 1) * sizeof(Py_ssize_t))
        self._slot_tag = <long*>malloc((nslots + 1) * sizeof(long))
        self._slot_arg = <int*>malloc((nslots + 1) * sizeof(int))
        if self._run_end == NULL or self._slot_tag == NULL or self._slot_arg == NULL:
            raise MemoryError()
        _wb_init(&w, stack, 1024)
        try:
            k = 0
            for t, v in ordered:
                if t in var_tags:
                    self._run_end[k] = w.n
                    self._slot_tag[k] = t
                    self._slot_arg[k] = var_tags.index(t)
                    k += 1
                elif t == 35:
                    _wb_bytes(&w, b"35=", 3)
                    _write_text(&w, 35, PyBytes_AS_STRING(mt), PyBytes_GET_SIZE(mt), self._soh_ok)
                    _wb_bytes(&w, b"\x01", 1)
                else:
                    _write_field(&w, t, v, precision, self._soh_ok)
            self._run_end[k] = w.n
            self._static = PyBytes_FromStringAndSize(w.p, w.n)
        finally:
            _wb_free(&w)
        self._static_sum = byte_sum(<const unsigned char*>PyBytes_AS_STRING(self._static),
                                PyBytes_GET_SIZE(self._static))

    def render(self, *values) -> bytes:
        """Encode the message with these values for the variable tags."""
        cdef char stack[512]
        cdef Py_ssize_t offs[65]
        cdef Py_ssize_t* voff = offs
        cdef WBuf w
        cdef int k
        cdef Py_ssize_t body_len, total, pre, pos, run_start, slen
        cdef char prefix[64]
        cdef bytes out
        cdef char* o
        cdef const char* st
        cdef unsigned int cs
        if PyTuple_GET_SIZE(values) != self._nvars:
            raise TypeError(f"render() takes {self._nvars} values ({PyTuple_GET_SIZE(values)} given)")
        if self._nslots >= 64:
            voff = <Py_ssize_t*>malloc((self._nslots + 1) * sizeof(Py_ssize_t))
            if voff == NULL:
                raise MemoryError()
        _wb_init(&w, stack, 512)
        try:
            for k in range(self._nslots):
                voff[k] = w.n
                _write_field(&w, self._slot_tag[k],
                             <object>PyTuple_GET_ITEM(values, self._slot_arg[k]), self._prec,
                             self._soh_ok)
            voff[self._nslots] = w.n
            slen = PyBytes_GET_SIZE(self._static)
            body_len = slen + w.n
            pre = put_prefix(prefix, PyBytes_AS_STRING(self._bs), PyBytes_GET_SIZE(self._bs), body_len)
            total = pre + body_len + 7
            out = PyBytes_FromStringAndSize(NULL, total)
            o = PyBytes_AS_STRING(out)
            memcpy(o, prefix, pre)
            pos = pre
            st = PyBytes_AS_STRING(self._static)
            run_start = 0
            for k in range(self._nslots + 1):
                memcpy(o + pos, st + run_start, self._run_end[k] - run_start)
                pos += self._run_end[k] - run_start
                run_start = self._run_end[k]
                if k < self._nslots:
                    memcpy(o + pos, w.p + voff[k], voff[k + 1] - voff[k])
                    pos += voff[k + 1] - voff[k]
            cs = (byte_sum(<const unsigned char*>prefix, pre) + self._static_sum
                  + byte_sum(<const unsigned char*>w.p, w.n)) & 255
            put_checksum(o + pos, cs)
            return out
        finally:
            _wb_free(&w)
            if voff != offs:
                free(voff)
