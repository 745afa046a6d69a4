# cython: language_level=3
"""C-level writers of the FIX <-> JSON mapping (see :mod:`fastfix.jsonfix`).

FIX -> JSON takes the field offsets of a parsed ``Message`` (or splits wire
bytes once) and writes the JSON text straight into a growable C buffer, using
a key table indexed by tag (``"ClOrdID":``) and per-group member bitmaps, so no
Python object is created per field.

JSON -> FIX walks the dict produced by msgspec once, validating each value
against its FIX type in C, and writes ``tag=value<SOH>`` into the same kind of
buffer; BodyLength and CheckSum are filled in at the end.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem, PyDict_Next
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport PyObject
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memchr, memcpy, memset

from fastfix._buffer cimport Buf, buf_free, buf_init_heap, buf_need, buf_put, buf_put1, buf_put_int
from fastfix._codec cimport Message, byte_sum, prefix_len, put_checksum, put_prefix
from fastfix._tags cimport BEGIN_STRING, BODY_LENGTH, CHECK_SUM, MSG_TYPE
import msgspec

from fastfix.errors import EncodeError, JsonMappingError, ParseError
from fastfix.tags import FRAME_TAGS


cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object o, Py_ssize_t* size) except NULL


# FIX value types, as validated on input (the dictionary's type names map onto these).
cdef enum:
    T_STRING = 0
    T_INT = 1
    T_UINT = 2
    T_DECIMAL = 3
    T_CHAR = 4
    T_BOOL = 5
    T_UTCTS = 6
    T_UTCTIME = 7
    T_DATE = 8
    T_MONTHYEAR = 9
    T_MULTI = 10
    T_MULTICHAR = 11
    T_DATA = 12
    T_DAYOFMONTH = 13

TYPE_CODES = {
    "STRING": T_STRING, "EXCHANGE": T_STRING, "CURRENCY": T_STRING, "COUNTRY": T_STRING,
    "LANGUAGE": T_STRING, "PATTERN": T_STRING, "TENOR": T_STRING, "RESERVED100PLUS": T_STRING,
    "RESERVED1000PLUS": T_STRING, "RESERVED4000PLUS": T_STRING, "TZTIMEONLY": T_STRING,
    "TZTIMESTAMP": T_STRING, "XID": T_STRING, "XIDREF": T_STRING,
    "INT": T_INT,
    "LENGTH": T_UINT, "NUMINGROUP": T_UINT, "SEQNUM": T_UINT, "TAGNUM": T_UINT,
    "DAYOFMONTH": T_DAYOFMONTH,
    "FLOAT": T_DECIMAL, "QTY": T_DECIMAL, "QUANTITY": T_DECIMAL, "PRICE": T_DECIMAL,
    "PRICEOFFSET": T_DECIMAL, "AMT": T_DECIMAL, "PERCENTAGE": T_DECIMAL,
    "CHAR": T_CHAR,
    "BOOLEAN": T_BOOL,
    "UTCTIMESTAMP": T_UTCTS, "TIME": T_UTCTS,
    "UTCTIMEONLY": T_UTCTIME, "UTCTIME": T_UTCTIME,
    "UTCDATEONLY": T_DATE, "UTCDATE": T_DATE, "LOCALMKTDATE": T_DATE, "DATE": T_DATE,
    "MONTHYEAR": T_MONTHYEAR,
    "MULTIPLEVALUESTRING": T_MULTI, "MULTIPLESTRINGVALUE": T_MULTI,
    "MULTIPLECHARVALUE": T_MULTICHAR,
    "DATA": T_DATA, "XMLDATA": T_DATA,
}
T_NAMES = {
    T_STRING: "string", T_INT: "integer", T_UINT: "non-negative integer",
    T_DECIMAL: "decimal", T_CHAR: "char", T_BOOL: "boolean", T_UTCTS: "UTC timestamp",
    T_UTCTIME: "UTC time", T_DATE: "date", T_MONTHYEAR: "month-year",
    T_MULTI: "multiple value string", T_MULTICHAR: "multiple char value", T_DATA: "data",
    T_DAYOFMONTH: "day of month",
}
NUMERIC_TYPES = frozenset((T_INT, T_UINT, T_DECIMAL, T_DAYOFMONTH))

cdef enum:
    SEC_BODY = 0
    SEC_HEADER = 1
    SEC_TRAILER = 2
    SEC_SKIP = 3


# User-defined tags (5000 and above) remembered by a codec (see _resolve).
cdef enum:
    _USER_DEFINED_MAX = 1024


# ---------------------------------------------------------------------------
# growable output buffer

@cython.final
cdef class _Buf:
    """The output of one conversion (``w``, a heap :c:type:`Buf`) with its scratch tables
    (field offsets for FIX -> JSON, the field segment stack for JSON -> FIX)."""

    def __cinit__(self, Py_ssize_t cap=1024):
        buf_init_heap(&self.w, cap)
        self.f_tag = NULL
        self.f_start = NULL
        self.f_end = NULL
        self.f_idx = NULL
        self.f_cap = 0
        self.seg = NULL
        self.nseg = 0
        self.seg_cap = 0

    def __dealloc__(self):
        buf_free(&self.w)
        free(self.f_tag)
        free(self.f_start)
        free(self.f_end)
        free(self.f_idx)
        free(self.seg)

    cdef int ensure_fields(self, Py_ssize_t n) except -1:
        cdef Py_ssize_t cap
        if n <= self.f_cap:
            return 0
        cap = max(n, 2 * self.f_cap, 64)
        free(self.f_tag)
        free(self.f_start)
        free(self.f_end)
        free(self.f_idx)
        self.f_tag = <int*>malloc(cap * sizeof(int))
        self.f_start = <Py_ssize_t*>malloc(cap * sizeof(Py_ssize_t))
        self.f_end = <Py_ssize_t*>malloc(cap * sizeof(Py_ssize_t))
        self.f_idx = <Py_ssize_t*>malloc(cap * sizeof(Py_ssize_t))
        if not (self.f_tag and self.f_start and self.f_end and self.f_idx):
            self.f_cap = 0
            raise MemoryError()
        self.f_cap = cap
        return 0

    cdef int push_seg(self, Py_ssize_t index, Py_ssize_t start, Py_ssize_t end) except -1:
        cdef Py_ssize_t cap
        cdef Py_ssize_t* q
        if self.nseg + 3 > self.seg_cap:
            cap = max(3 * 64, 2 * self.seg_cap)
            q = <Py_ssize_t*>realloc(self.seg, cap * sizeof(Py_ssize_t))
            if q == NULL:
                raise MemoryError()
            self.seg = q
            self.seg_cap = cap
        self.seg[self.nseg] = index
        self.seg[self.nseg + 1] = start
        self.seg[self.nseg + 2] = end
        self.nseg += 3
        return 0


# ---------------------------------------------------------------------------
# JSON string escaping

cdef unsigned char _ESC[256]
cdef int _ci
for _ci in range(256):
    _ESC[_ci] = 1 if _ci < 0x20 else (2 if _ci >= 0x80 else 0)
_ESC[b'"'] = 1
_ESC[b'\\'] = 1
cdef const char* _HEX = b"0123456789abcdef"


cdef inline int _utf8_seq(const unsigned char* s, Py_ssize_t n) noexcept nogil:
    """Length of the valid UTF-8 sequence at s (lead byte >= 0x80), or 0 if invalid."""
    cdef unsigned char c = s[0]
    if 0xC2 <= c <= 0xDF:
        if n >= 2 and (s[1] & 0xC0) == 0x80:
            return 2
        return 0
    if 0xE0 <= c <= 0xEF:
        if n < 3 or (s[1] & 0xC0) != 0x80 or (s[2] & 0xC0) != 0x80:
            return 0
        if c == 0xE0 and s[1] < 0xA0:
            return 0  # overlong
        if c == 0xED and s[1] > 0x9F:
            return 0  # UTF-16 surrogate
        return 3
    if 0xF0 <= c <= 0xF4:
        if n < 4 or (s[1] & 0xC0) != 0x80 or (s[2] & 0xC0) != 0x80 or (s[3] & 0xC0) != 0x80:
            return 0
        if c == 0xF0 and s[1] < 0x90:
            return 0
        if c == 0xF4 and s[1] > 0x8F:
            return 0
        return 4
    return 0


cdef int put_json_str(Buf* b, const unsigned char* s, Py_ssize_t n) except -1:
    """Write s as a JSON string (with quotes).

    Control characters, quote and backslash are escaped; valid UTF-8 is copied
    as is; every byte that is not part of a valid UTF-8 sequence becomes U+FFFD
    (written ``\\ufffd``), so the output is always valid JSON.
    """
    buf_need(b, 6 * n + 2)
    cdef char* o = b.p + b.n
    cdef Py_ssize_t i = 0
    cdef unsigned char c
    cdef int k
    o[0] = b'"'
    o += 1
    while i < n:
        c = s[i]
        k = _ESC[c]
        if k == 0:
            o[0] = <char>c
            o += 1
            i += 1
        elif k == 1:
            o[0] = b'\\'
            if c == b'"' or c == b'\\':
                o[1] = <char>c
                o += 2
            elif c == b'\n':
                o[1] = b'n'
                o += 2
            elif c == b'\r':
                o[1] = b'r'
                o += 2
            elif c == b'\t':
                o[1] = b't'
                o += 2
            else:
                o[1] = b'u'
                o[2] = b'0'
                o[3] = b'0'
                o[4] = _HEX[c >> 4]
                o[5] = _HEX[c & 15]
                o += 6
            i += 1
        else:
            k = _utf8_seq(s + i, n - i)
            if k:
                memcpy(o, s + i, k)
                o += k
                i += k
            else:
                memcpy(o, b"\\ufffd", 6)
                o += 6
                i += 1
    o[0] = b'"'
    o += 1
    b.n = o - b.p
    return 0


# ---------------------------------------------------------------------------
# FIX value checks (input direction); each returns NULL or a static reason

cdef inline bint _dig(unsigned char c) noexcept nogil:
    return 48 <= c <= 57


cdef inline int _num2(const unsigned char* s) noexcept nogil:
    if not (_dig(s[0]) and _dig(s[1])):
        return -1
    return (s[0] - 48) * 10 + (s[1] - 48)


cdef bint _is_date(const unsigned char* s) noexcept nogil:
    # YYYYMMDD, month 01-12, day 01-31
    cdef int i, m, d
    for i in range(4):
        if not _dig(s[i]):
            return False
    m = _num2(s + 4)
    d = _num2(s + 6)
    return 1 <= m <= 12 and 1 <= d <= 31


cdef bint _is_time(const unsigned char* s, Py_ssize_t n) noexcept nogil:
    # HH:MM:SS[.sss[sss[sss]]]
    cdef Py_ssize_t i
    if n != 8 and n != 12 and n != 15 and n != 18:
        return False
    if s[2] != b':' or s[5] != b':':
        return False
    if not (0 <= _num2(s) <= 23 and 0 <= _num2(s + 3) <= 59 and 0 <= _num2(s + 6) <= 60):
        return False
    if n > 8:
        if s[8] != b'.':
            return False
        for i in range(9, n):
            if not _dig(s[i]):
                return False
    return True


cdef const char* _check(int t, const unsigned char* s, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i = 0
    cdef int digits = 0
    cdef long v = 0
    if n == 0:
        return "empty value"
    if t == T_DATA:
        return NULL
    if memchr(s, 1, n) != NULL:
        return "contains the SOH delimiter"
    if t == T_STRING:
        return NULL
    if t == T_INT or t == T_UINT or t == T_DAYOFMONTH:
        if t == T_INT and s[0] == b'-':
            i = 1
        if i == n:
            return "expected an integer" if t == T_INT else "expected a non-negative integer"
        while i < n:
            if not _dig(s[i]):
                return "expected an integer" if t == T_INT else "expected a non-negative integer"
            if t == T_DAYOFMONTH and v < 100:
                v = v * 10 + s[i] - 48
            i += 1
        if t == T_DAYOFMONTH and not (1 <= v <= 31):
            return "expected a day of month 1-31"
        return NULL
    if t == T_DECIMAL:
        if s[0] == b'-':
            i = 1
        while i < n and _dig(s[i]):
            i += 1
            digits += 1
        if i < n and s[i] == b'.':
            i += 1
            while i < n and _dig(s[i]):
                i += 1
                digits += 1
        if i != n or digits == 0:
            return "expected a decimal number like 123.45 (no exponent)"
        return NULL
    if t == T_CHAR:
        if n != 1 or s[0] <= 0x20 or s[0] >= 0x7F:
            return "expected a single character"
        return NULL
    if t == T_BOOL:
        if n != 1 or (s[0] != b'Y' and s[0] != b'N'):
            return "expected Y or N"
        return NULL
    if t == T_UTCTS:
        if n < 17 or not _is_date(s) or s[8] != b'-' or not _is_time(s + 9, n - 9):
            return "expected a UTC timestamp YYYYMMDD-HH:MM:SS[.sss]"
        return NULL
    if t == T_UTCTIME:
        if n < 8 or not _is_time(s, n):
            return "expected a UTC time HH:MM:SS[.sss]"
        return NULL
    if t == T_DATE:
        if n != 8 or not _is_date(s):
            return "expected a date YYYYMMDD"
        return NULL
    if t == T_MONTHYEAR:
        if n == 6 or n == 8:
            for i in range(4):
                if not _dig(s[i]):
                    return "expected a month-year YYYYMM[DD|wN]"
            if not (1 <= _num2(s + 4) <= 12):
                return "expected a month-year YYYYMM[DD|wN]"
            if n == 6:
                return NULL
            if s[6] == b'w' and b'1' <= s[7] <= b'5':
                return NULL
            if 1 <= _num2(s + 6) <= 31:
                return NULL
        return "expected a month-year YYYYMM[DD|wN]"
    if t == T_MULTI or t == T_MULTICHAR:
        # tokens separated by single spaces
        if s[0] == b' ' or s[n - 1] == b' ':
            return "expected values separated by single spaces"
        for i in range(1, n):
            if s[i] == b' ' and s[i - 1] == b' ':
                return "expected values separated by single spaces"
            if t == T_MULTICHAR and s[i] != b' ' and s[i - 1] != b' ':
                return "expected single characters separated by spaces"
        return NULL
    return NULL


# ---------------------------------------------------------------------------
# plans

@cython.final
cdef class _Group:
    """Output plan of one repeating group (or of a message body when count_tag == 0)."""

    cdef int count_tag
    cdef int delim
    cdef int nbits
    cdef unsigned char* bitmap
    cdef int nsub
    cdef int* sub_tags
    cdef list subs

    def __cinit__(self):
        self.bitmap = NULL
        self.sub_tags = NULL
        self.nsub = 0
        self.subs = []

    def __dealloc__(self):
        free(self.bitmap)
        free(self.sub_tags)

    cdef inline bint member(self, int tag) noexcept:
        if tag >= self.nbits:
            return False
        return (self.bitmap[tag >> 3] >> (tag & 7)) & 1

    cdef inline _Group sub(self, int tag):
        cdef int i
        for i in range(self.nsub):
            if self.sub_tags[i] == tag:
                return <_Group>PyList_GET_ITEM(self.subs, i)
        return None


@cython.final
cdef class _InField:
    """Input description of one field: tag, name, type, enums, ``tag=`` prefix."""

    cdef readonly int tag
    cdef readonly str name
    cdef readonly int ftype
    cdef bytes prefix
    cdef object enums
    cdef str enum_text
    cdef _InField length_f   # for a DATA field: the LENGTH field written before it
    cdef _InField data_f     # for such a LENGTH field: its DATA field
    cdef bint char_enums     # every code is one byte: membership is a bit test
    cdef unsigned char enum_bits[32]

    def __init__(self, int tag, str name, int ftype, object enums, str enum_text):
        cdef int c
        self.length_f = None
        self.data_f = None
        memset(self.enum_bits, 0, 32)
        self.char_enums = enums is not None and all(len(v.encode()) == 1 for v in enums)
        if self.char_enums:
            for v in enums:
                c = ord(v)
                self.enum_bits[c >> 3] |= <unsigned char>(1 << (c & 7))
        self.tag = tag
        self.name = name
        self.ftype = ftype
        self.prefix = f"{tag}=".encode()
        self.enums = enums
        self.enum_text = enum_text


@cython.final
cdef class _InMember:
    """A field as a member of one message or group: its position and whether required."""

    cdef _InField f
    cdef int index
    cdef bint required
    cdef _InCtx group

    def __init__(self, _InField f, int index, bint required, _InCtx group):
        self.f = f
        self.index = index
        self.required = required
        self.group = group


@cython.final
cdef class _InCtx:
    """Input plan of a message body, a header, a trailer or a group entry."""

    cdef dict members
    cdef int nrequired
    cdef tuple required
    cdef str label
    cdef _InMember delim
    cdef bytes msgtype_field

    def __init__(self, str label):
        self.members = {}
        self.nrequired = 0
        self.required = ()
        self.label = label
        self.delim = None
        self.msgtype_field = b""


cdef str _type_name(object v):
    if v is None:
        return "null"
    t = type(v)
    if t is dict:
        return "object"
    if t is list:
        return "array"
    if t is bool:
        return "boolean"
    if t is str:
        return "string"
    return "number"


cdef int _nesting(object v, int limit):
    """Depth of nested arrays/objects in v (a scalar is 0), counted up to limit + 1."""
    cdef int best = 0, d
    if limit < 0:
        return 1
    if type(v) is list:
        for x in <list>v:
            d = _nesting(x, limit - 1)
            if d > best:
                best = d
                if best > limit:
                    break
        return best + 1
    if type(v) is dict:
        for x in (<dict>v).values():
            d = _nesting(x, limit - 1)
            if d > best:
                best = d
                if best > limit:
                    break
        return best + 1
    return 0


cdef str _show(str text):
    """A value quoted for an error message, cut when long."""
    if len(text) > 40:
        return repr(text[:40]) + "..."
    return repr(text)


cdef str _dec_text(object d):
    s = str(d)
    if "E" in s or "e" in s:
        # Fixed-point digits only for sane magnitudes: 1e999999999 would be a gigabyte of
        # zeros. Beyond that the exponent stays and the format check refuses the value.
        if d.is_finite() and -64 <= d.adjusted() <= 64:
            s = format(d, "f")
    return s


# ---------------------------------------------------------------------------
# the mapper core

def decode_error_text(exc, bytes data):
    """Why msgspec refused ``data`` (``exc``: its DecodeError or UnicodeDecodeError), in words
    that do not depend on the msgspec version: a string that is not UTF-8 is named with the
    offset of the first bad byte in ``data`` (msgspec before 0.23 raised UnicodeDecodeError
    with an offset inside the string, later versions a DecodeError without one)."""
    if isinstance(exc, UnicodeDecodeError) or str(exc).startswith("Invalid UTF-8"):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as bad:
            return f"not valid UTF-8 at byte {bad.start}"
        return "not valid UTF-8"
    return str(exc)


cdef class CodecCore:
    """Pre-built FIX <-> JSON tables for one data dictionary (see ``JsonCodec``)."""

    cdef int ntags
    cdef const char** key_ptr
    cdef int* key_len
    cdef unsigned char* section
    cdef unsigned char* is_count
    cdef int* data_for_len
    cdef list _keep
    cdef dict out_plans
    cdef _Group out_any
    cdef _Group out_header
    cdef dict in_ctx
    cdef _InCtx in_header
    cdef _InCtx in_trailer
    cdef dict by_tag
    cdef dict by_name
    cdef dict user_defined
    cdef readonly int max_depth
    cdef bint allow_user_defined
    cdef _Buf buf
    cdef bint busy
    cdef object error_cls
    cdef object decimal_cls
    cdef object decoder
    cdef object decode
    cdef readonly Py_ssize_t max_bytes
    cdef bytes begin

    def __cinit__(self, *args, **kwargs):
        self.ntags = 0
        self.key_ptr = NULL
        self.key_len = NULL
        self.section = NULL
        self.is_count = NULL
        self.data_for_len = NULL
        self.busy = False
        self.buf = _Buf(1024)

    def __dealloc__(self):
        free(self.key_ptr)
        free(self.key_len)
        free(self.section)
        free(self.is_count)
        free(self.data_for_len)

    def _setup(self, list fields, list groups, list messages, list header, list trailer,
               dict data_fields, int max_depth, bint allow_user_defined, error_cls,
               decimal_cls, decoder, Py_ssize_t max_bytes, bytes begin):
        """Build the tables.

        fields: [(tag, name, type_code, enums frozenset | None, enum_text)]
        groups: [(count_tag, delim_tag, members)] where members is
                [(tag, required, group_index or -1)] in definition order
        messages: [(msg_type, name, members)]; header, trailer: members
        data_fields: {length_tag: data_tag}
        """
        cdef int maxtag = 10
        cdef int tag, i
        self.max_depth = max_depth
        self.max_bytes = max_bytes
        self.decoder = decoder
        self.decode = decoder.decode
        self.begin = begin
        self.allow_user_defined = allow_user_defined
        self.error_cls = error_cls
        self.decimal_cls = decimal_cls
        for f in fields:
            maxtag = max(maxtag, f[0])
        for k, v in data_fields.items():
            maxtag = max(maxtag, k, v)
        self.ntags = maxtag + 1
        n = self.ntags
        self.key_ptr = <const char**>malloc(n * sizeof(char*))
        self.key_len = <int*>malloc(n * sizeof(int))
        self.section = <unsigned char*>malloc(n)
        self.is_count = <unsigned char*>malloc(n)
        self.data_for_len = <int*>malloc(n * sizeof(int))
        if not (self.key_ptr and self.key_len and self.section and self.is_count and self.data_for_len):
            raise MemoryError()
        memset(self.key_len, 0, n * sizeof(int))
        memset(self.section, SEC_BODY, n)
        memset(self.is_count, 0, n)
        memset(self.data_for_len, 0, n * sizeof(int))
        self._keep = []
        self.by_tag = {}
        by_name = {}
        for tag_, name, ftype, enums, enum_text in fields:
            key = b'"' + name.encode("ascii") + b'":'
            self._keep.append(key)
            self.key_ptr[tag_] = PyBytes_AS_STRING(key)
            self.key_len[tag_] = PyBytes_GET_SIZE(key)
            f = _InField(tag_, name, ftype, enums, enum_text)
            self.by_tag[tag_] = f
            by_name[name] = f
        self.by_name = by_name
        for k, v in data_fields.items():
            self.data_for_len[k] = v
            lf = self.by_tag.get(k)
            df = self.by_tag.get(v)
            if lf is not None and df is not None:
                (<_InField>df).length_f = lf
                (<_InField>lf).data_f = df
        self.user_defined = {}

        # output plans ------------------------------------------------------
        out_groups = [None] * len(groups)

        def out_group(int gi):
            if out_groups[gi] is None:
                count_tag, delim, members = groups[gi]
                out_groups[gi] = self._make_group(count_tag, delim, members, out_group)
            return out_groups[gi]

        for gi in range(len(groups)):
            out_group(gi)
            self.is_count[groups[gi][0]] = 1
        self.out_plans = {}
        for msg_type, name, members in messages:
            self.out_plans[msg_type.encode()] = self._make_group(0, 0, members, out_group)
        # messages of types not in the dictionary: any known group by its count tag
        anyplan = _Group()
        anyplan.nbits = 0
        seen = {}
        for gi, (count_tag, delim, members) in enumerate(groups):
            seen.setdefault(count_tag, gi)
        self._set_subs(anyplan, [(t, out_group(gi)) for t, gi in seen.items()])
        self.out_any = anyplan
        self.out_header = self._make_group(0, 0, header, out_group)

        def mark(members, int sec):
            for t, req, gi in members:
                self.section[t] = sec
                if gi >= 0:
                    mark(groups[gi][2], sec)

        mark(header, SEC_HEADER)
        mark(trailer, SEC_TRAILER)
        self.section[BEGIN_STRING] = SEC_HEADER
        self.section[MSG_TYPE] = SEC_HEADER
        self.section[BODY_LENGTH] = SEC_SKIP
        self.section[CHECK_SUM] = SEC_SKIP

        # input plans -------------------------------------------------------
        in_groups = [None] * len(groups)

        def in_group(int gi):
            if in_groups[gi] is None:
                count_tag, delim, members = groups[gi]
                cf = self.by_tag[count_tag]
                ctx = _InCtx(f"{cf.name} entry")
                in_groups[gi] = ctx
                self._fill_ctx(ctx, members, in_group)
                ctx.delim = ctx.members.get(self.by_tag[delim].name)
            return in_groups[gi]

        self.in_ctx = {}
        for msg_type, name, members in messages:
            ctx = _InCtx(f"{name} (35={msg_type})")
            self._fill_ctx(ctx, members, in_group)
            ctx.msgtype_field = b"35=" + msg_type.encode() + b"\x01"
            self.in_ctx[msg_type] = ctx
            self.in_ctx.setdefault(name, ctx)
        skip = FRAME_TAGS
        self.in_header = _InCtx("the Header")
        self._fill_ctx(self.in_header, [m for m in header if m[0] not in skip], in_group)
        self.in_trailer = _InCtx("the Trailer")
        self._fill_ctx(self.in_trailer, [m for m in trailer if m[0] not in skip], in_group)

    cdef _Group _make_group(self, int count_tag, int delim, list members, object out_group):
        cdef _Group g = _Group()
        cdef int nbits = 0
        g.count_tag = count_tag
        g.delim = delim
        for t, req, gi in members:
            nbits = max(nbits, t + 1)
        g.nbits = nbits
        g.bitmap = <unsigned char*>malloc(nbits // 8 + 1)
        if g.bitmap == NULL:
            raise MemoryError()
        memset(g.bitmap, 0, nbits // 8 + 1)
        subs = []
        for t, req, gi in members:
            g.bitmap[t >> 3] |= <unsigned char>(1 << (t & 7))
            if gi >= 0:
                subs.append((t, gi))
        self._set_subs(g, [(t, out_group(gi)) for t, gi in subs])
        return g

    cdef _set_subs(self, _Group g, list subs):
        cdef int i
        g.nsub = len(subs)
        g.sub_tags = <int*>malloc((g.nsub + 1) * sizeof(int))
        if g.sub_tags == NULL:
            raise MemoryError()
        g.subs = []
        for i in range(g.nsub):
            g.sub_tags[i] = subs[i][0]
            g.subs.append(subs[i][1])

    cdef _fill_ctx(self, _InCtx ctx, list members, object in_group):
        req = []
        for i, (t, required, gi) in enumerate(members):
            f = self.by_tag[t]
            m = _InMember(f, i, required, in_group(gi) if gi >= 0 else None)
            ctx.members[f.name] = m
            if required:
                req.append(m)
        ctx.required = tuple(req)
        ctx.nrequired = len(req)

    # -- FIX -> JSON -----------------------------------------------------------

    cdef Py_ssize_t _scan(self, _Buf out, const unsigned char* p, Py_ssize_t n) except -1:
        """Split wire bytes into fields; returns the number of fields."""
        cdef Py_ssize_t i = 0, k = 0, vs, ve, dlen = -1
        cdef int tag, data_tag = 0, nd
        cdef const unsigned char* q
        # a field is at least 4 bytes ("1=x" + SOH)
        out.ensure_fields(n // 4 + 2)
        while i < n:
            tag = 0
            nd = 0
            while i < n and p[i] != b'=':
                if not _dig(p[i]) or nd >= 9:
                    raise ParseError(f"bad tag at byte {i}")
                tag = tag * 10 + (p[i] - 48)
                nd += 1
                i += 1
            if i >= n or nd == 0:
                raise ParseError(f"bad field at byte {i}")
            i += 1
            vs = i
            if data_tag and tag == data_tag and dlen >= 0:
                ve = vs + dlen
                if ve >= n or p[ve] != 1:
                    raise ParseError(f"data field {tag} does not match its length")
            else:
                q = <const unsigned char*>memchr(p + i, 1, n - i)
                if q == NULL:
                    raise ParseError(f"field {tag} is not terminated by SOH")
                ve = q - p
            out.f_tag[k] = tag
            out.f_start[k] = vs
            out.f_end[k] = ve
            k += 1
            data_tag = 0
            if tag < self.ntags and self.data_for_len[tag]:
                data_tag = self.data_for_len[tag]
                dlen = 0
                for i in range(vs, ve):
                    if not _dig(p[i]) or dlen > 100000000:
                        dlen = -1
                        break
                    dlen = dlen * 10 + (p[i] - 48)
            i = ve + 1
        return k

    cdef int _put_key(self, _Buf out, int tag) except -1:
        if tag < self.ntags and self.key_len[tag]:
            return buf_put(&out.w, self.key_ptr[tag], self.key_len[tag])
        buf_put1(&out.w, b'"')
        buf_put_int(&out.w, tag)
        return buf_put(&out.w, b'":', 2)

    cdef Py_ssize_t _emit(self, _Buf out, const unsigned char* raw, Py_ssize_t pos,
                          Py_ssize_t n, _Group ctx, bint entry) except -1:
        """Write the members of one JSON object from field pos on; returns the next position."""
        cdef Py_ssize_t start = pos, k
        cdef int tag
        cdef bint first = True, efirst
        cdef _Group sub
        while pos < n:
            k = out.f_idx[pos]
            tag = out.f_tag[k]
            if entry and ((tag == ctx.delim and pos != start) or not ctx.member(tag)):
                break
            if not first:
                buf_put1(&out.w, b',')
            first = False
            self._put_key(out, tag)
            sub = None
            if tag < self.ntags and self.is_count[tag]:
                sub = ctx.sub(tag)
            pos += 1
            if sub is None:
                put_json_str(&out.w, raw + out.f_start[k], out.f_end[k] - out.f_start[k])
                continue
            buf_put1(&out.w, b'[')
            efirst = True
            while pos < n and out.f_tag[out.f_idx[pos]] == sub.delim:
                if not efirst:
                    buf_put1(&out.w, b',')
                efirst = False
                buf_put1(&out.w, b'{')
                pos = self._emit(out, raw, pos, n, sub, True)
                buf_put1(&out.w, b'}')
            buf_put1(&out.w, b']')
        return pos

    cdef Py_ssize_t _select(self, _Buf out, Py_ssize_t nf, int sec) noexcept:
        cdef Py_ssize_t i, m = 0
        cdef int tag
        for i in range(nf):
            tag = out.f_tag[i]
            if (self.section[tag] if tag < self.ntags else SEC_BODY) == sec:
                out.f_idx[m] = i
                m += 1
        return m

    cdef _Group _body_plan(self, _Buf out, const unsigned char* raw, Py_ssize_t nf):
        cdef Py_ssize_t i
        cdef PyObject* plan
        for i in range(nf):
            if out.f_tag[i] == MSG_TYPE:
                key = PyBytes_FromStringAndSize(<const char*>raw + out.f_start[i],
                                                out.f_end[i] - out.f_start[i])
                plan = PyDict_GetItem(self.out_plans, key)
                if plan != NULL:
                    return <_Group>plan
                break
        return self.out_any

    cdef _Buf _acquire(self):
        """The reusable buffer, or a fresh one if a conversion is already under way."""
        cdef _Buf out
        if self.busy:
            return _Buf(1024)
        self.busy = True
        out = self.buf
        out.w.n = 0
        out.nseg = 0
        return out

    cdef inline void _release(self, _Buf out) noexcept:
        if out is self.buf:
            self.busy = False

    cdef bytes _emit_all(self, _Buf out, const unsigned char* raw, Py_ssize_t nf, bint whole):
        cdef Py_ssize_t m
        if whole:
            buf_put(&out.w, b'{"Header":{', 11)
            m = self._select(out, nf, SEC_HEADER)
            self._emit(out, raw, 0, m, self.out_header, False)
            buf_put(&out.w, b'},"Body":{', 10)
        else:
            buf_put1(&out.w, b'{')
        m = self._select(out, nf, SEC_BODY)
        self._emit(out, raw, 0, m, self._body_plan(out, raw, nf), False)
        if whole:
            buf_put(&out.w, b'},"Trailer":{', 13)
            m = self._select(out, nf, SEC_TRAILER)
            self._emit(out, raw, 0, m, self.out_any, False)
            buf_put(&out.w, b'}}', 2)
        else:
            buf_put1(&out.w, b'}')
        return PyBytes_FromStringAndSize(out.w.p, out.w.n)

    cdef bytes _to_json(self, object msg, bint whole):
        cdef Message m
        cdef Py_ssize_t nf, i
        cdef const unsigned char* raw
        cdef _Buf out
        if type(msg) is not Message and type(msg) is not bytes:
            msg = msg.raw if hasattr(msg, "raw") else bytes(msg)
        out = self._acquire()
        try:
            if type(msg) is Message:
                # walk the parsed message's own offset table: no rescan, no copy
                m = <Message>msg
                nf = m._n
                out.ensure_fields(nf + 1)
                for i in range(nf):
                    out.f_tag[i] = m._f[i].tag
                    out.f_start[i] = m._f[i].start
                    out.f_end[i] = m._f[i].end
                return self._emit_all(out, m._p, nf, whole)
            raw = <const unsigned char*>PyBytes_AS_STRING(msg)
            nf = self._scan(out, raw, PyBytes_GET_SIZE(msg))
            return self._emit_all(out, raw, nf, whole)
        finally:
            self._release(out)

    def fix_to_json(self, msg) -> bytes:
        """A whole FIX message (``Message`` or wire bytes) as ``{"Header","Body","Trailer"}`` JSON.

        BodyLength and CheckSum are left out; groups become arrays of objects;
        fields the dictionary does not know are keyed by their tag number;
        bytes that are not valid UTF-8 become U+FFFD. Wire bytes are split
        into fields but not otherwise checked (BodyLength, CheckSum).
        """
        return self._to_json(msg, True)

    def fix_body_to_json(self, msg) -> bytes:
        """Only the Body object of a FIX message (``Message`` or wire bytes), for pushes."""
        return self._to_json(msg, False)

    # -- JSON -> FIX -----------------------------------------------------------

    cdef int _order_segs(self, _Buf out, Py_ssize_t base, Py_ssize_t start) except -1:
        """Rewrite the fields of a group entry in dictionary order (delimiter first)."""
        cdef Py_ssize_t i, j, a, b, c, cnt = (out.nseg - base) // 3
        cdef Py_ssize_t* s = out.seg + base
        cdef bint ordered = True
        cdef char* tmp
        for i in range(1, cnt):
            if s[3 * i] < s[3 * (i - 1)]:
                ordered = False
                break
        if ordered:
            return 0
        # insertion sort of (index, start, end) triplets
        for i in range(1, cnt):
            a = s[3 * i]
            b = s[3 * i + 1]
            c = s[3 * i + 2]
            j = i - 1
            while j >= 0 and s[3 * j] > a:
                s[3 * j + 3] = s[3 * j]
                s[3 * j + 4] = s[3 * j + 1]
                s[3 * j + 5] = s[3 * j + 2]
                j -= 1
            s[3 * j + 3] = a
            s[3 * j + 4] = b
            s[3 * j + 5] = c
        tmp = <char*>malloc(out.w.n - start)
        if tmp == NULL:
            raise MemoryError()
        memcpy(tmp, out.w.p + start, out.w.n - start)
        j = start
        for i in range(cnt):
            memcpy(out.w.p + j, tmp + (s[3 * i + 1] - start), s[3 * i + 2] - s[3 * i + 1])
            j += s[3 * i + 2] - s[3 * i + 1]
        free(tmp)
        return 0

    cdef _error(self, list errors, str path, str field, str reason):
        errors.append(self.error_cls(path, field, reason))

    cdef _InMember _resolve(self, str key, _InCtx ctx, bint top, str path, list errors):
        """A key that is not a member of ctx: a user-defined tag number, or an error."""
        cdef _InField f = self.by_name.get(key)
        cdef int tag
        if f is not None:
            self._error(errors, f"{path}.{key}", key, f"field {key} ({f.tag}) is not allowed in {ctx.label}")
            return None
        if key.isdigit() and key.isascii() and len(key) < 10:
            tag = int(key)
            f = self.by_tag.get(tag)
            if f is not None:
                self._error(errors, f"{path}.{key}", key,
                            f"use the field name {f.name} instead of the tag number {tag}")
                return None
            if tag >= 5000 and self.allow_user_defined:
                if not top:
                    self._error(errors, f"{path}.{key}", key,
                                f"user-defined field {tag} is not allowed in {ctx.label}")
                    return None
                m = self.user_defined.get(tag)
                if m is None:
                    m = _InMember(_InField(tag, key, T_STRING, None, None), 1 << 30, False, None)
                    # Bounded: clients choose these numbers. The first _USER_DEFINED_MAX tags
                    # seen stay cached (a deployment uses a handful); others are built per use.
                    if len(self.user_defined) < _USER_DEFINED_MAX:
                        self.user_defined[tag] = m
                return m
        self._error(errors, f"{path}.{key}", key, "unknown field")
        return None

    cdef int _put_value(self, _Buf out, _InField f, object val, str path, str key,
                        list errors, int depth) except -1:
        cdef Py_ssize_t n
        cdef const char* s
        cdef const char* reason
        t = type(val)
        text = val
        if t is str:
            pass
        elif t is int and f.ftype in NUMERIC_TYPES:
            text = str(val)
        elif t is self.decimal_cls and f.ftype in NUMERIC_TYPES:
            text = _dec_text(val)
        elif t is float and f.ftype in NUMERIC_TYPES:
            text = _dec_text(self.decimal_cls(repr(val)))
        elif t is bool and f.ftype == T_BOOL:
            text = "Y" if val else "N"
        else:
            if (t is list or t is dict) and depth + _nesting(val, self.max_depth) > self.max_depth:
                # nesting is only measured here, off the fast path: groups are checked
                # level by level, and msgspec itself stops runaway recursion
                self._error(errors, f"{path}.{key}", key,
                            f"nesting deeper than {self.max_depth} levels")
                return 0
            if f.ftype in NUMERIC_TYPES:
                exp = "a string or a number"
            elif f.ftype == T_BOOL:
                exp = "a string (Y or N) or a boolean"
            else:
                exp = "a string"
            self._error(errors, f"{path}.{key}", key, f"expected {exp}, got {_type_name(val)}")
            return 0
        s = PyUnicode_AsUTF8AndSize(text, &n)
        if f.enums is not None and f.ftype != T_MULTI and f.ftype != T_MULTICHAR:
            # the dictionary's list of codes is the whole truth for an enumerated field
            if f.char_enums:
                if n != 1 or not (f.enum_bits[(<unsigned char>s[0]) >> 3] >> ((<unsigned char>s[0]) & 7)) & 1:
                    self._error(errors, f"{path}.{key}", key,
                                f"invalid value {_show(text)} for {f.name}; allowed: {f.enum_text}")
                    return 0
            elif text not in f.enums:
                self._error(errors, f"{path}.{key}", key,
                            f"invalid value {_show(text)} for {f.name}; allowed: {f.enum_text}")
                return 0
        else:
            reason = _check(f.ftype, <const unsigned char*>s, n)
            if reason != NULL:
                self._error(errors, f"{path}.{key}", key,
                            f"invalid {T_NAMES[f.ftype]} {_show(text)}: {reason.decode()}")
                return 0
            if f.enums is not None:
                bad = [v for v in text.split(" ") if v not in f.enums]
                if bad:
                    self._error(errors, f"{path}.{key}", key,
                                f"invalid value {_show(bad[0])} for {f.name}; allowed: {f.enum_text}")
                    return 0
        if f.length_f is not None:
            # a DATA field carries its own size: written here, right before it
            buf_put(&out.w, PyBytes_AS_STRING(f.length_f.prefix), PyBytes_GET_SIZE(f.length_f.prefix))
            buf_put_int(&out.w, n)
            buf_put1(&out.w, 1)
        buf_put(&out.w, PyBytes_AS_STRING(f.prefix), PyBytes_GET_SIZE(f.prefix))
        buf_put(&out.w, s, n)
        buf_put1(&out.w, 1)
        return 0

    cdef int _check_length(self, _InField f, object val, dict obj, str path, str key,
                           list errors) except -1:
        """A LENGTH field given beside its DATA field must state the data's size in bytes."""
        cdef Py_ssize_t n
        data = obj.get(f.data_f.name)
        if type(data) is not str:
            if data is None:
                self._error(errors, f"{path}.{key}", key,
                            f"{f.name} is only valid with {f.data_f.name}, which it sizes")
            return 0
        PyUnicode_AsUTF8AndSize(data, &n)
        if type(val) is str and (<str>val).isdigit() and (<str>val).isascii():
            val = int(val)
        if type(val) is not int or val != n:
            self._error(errors, f"{path}.{key}", key,
                        f"{f.name} must be {n}, the size in bytes of {f.data_f.name} "
                        f"(it may be left out)")
        return 0

    cdef int _walk(self, _Buf out, dict obj, _InCtx ctx, str path, list errors, int depth,
                   bint top) except -1:
        cdef Py_ssize_t pos = 0, start = out.w.n, base = out.nseg, fstart
        cdef PyObject* pkey
        cdef PyObject* pval
        cdef PyObject* pm
        cdef _InMember m
        cdef int seen_required = 0
        while PyDict_Next(obj, &pos, &pkey, &pval):
            key = <object>pkey
            pm = PyDict_GetItem(ctx.members, key)
            if pm != NULL:
                m = <_InMember>pm
            else:
                if type(key) is not str:
                    continue
                m = self._resolve(<str>key, ctx, top, path, errors)
                if m is None:
                    continue
            if m.required:
                seen_required += 1
            fstart = out.w.n
            if m.group is not None:
                self._put_group(out, <object>pval, m, path, errors, depth)
            elif m.f.data_f is not None:
                # written together with its DATA field
                self._check_length(m.f, <object>pval, obj, path, <str>key, errors)
                continue
            else:
                self._put_value(out, m.f, <object>pval, path, <str>key, errors, depth)
            # fields are put in dictionary order: a group entry must start with its
            # delimiter, and a field after a group must not be read as part of it
            out.push_seg(m.index, fstart, out.w.n)
        if seen_required < ctx.nrequired:
            for m in ctx.required:
                if m.f.name in obj or m is ctx.delim:
                    continue  # present, or reported by the group walk
                if m.f.data_f is not None and m.f.data_f.name in obj:
                    continue  # a length field is written with its DATA field
                self._error(errors, f"{path}.{m.f.name}", m.f.name, "required field missing")
        self._order_segs(out, base, start)
        out.nseg = base
        return 0

    cdef int _put_group(self, _Buf out, object val, _InMember m, str path, list errors,
                        int depth) except -1:
        cdef Py_ssize_t i, n
        cdef _InCtx g = m.group
        name = m.f.name
        if type(val) is not list:
            self._error(errors, f"{path}.{name}", name,
                        f"expected an array of objects, got {_type_name(val)}")
            return 0
        if depth + 2 > self.max_depth:
            self._error(errors, f"{path}.{name}", name,
                        f"nesting deeper than {self.max_depth} levels")
            return 0
        n = PyList_GET_SIZE(val)
        buf_put(&out.w, PyBytes_AS_STRING(m.f.prefix), PyBytes_GET_SIZE(m.f.prefix))
        buf_put_int(&out.w, n)
        buf_put1(&out.w, 1)
        for i in range(n):
            entry = <object>PyList_GET_ITEM(val, i)
            epath = f"{path}.{name}[{i}]"
            if type(entry) is not dict:
                self._error(errors, epath, name, f"expected an object, got {_type_name(entry)}")
                continue
            if g.delim is not None and g.delim.f.name not in entry:
                dn = g.delim.f.name
                self._error(errors, f"{epath}.{dn}", dn,
                            f"required field missing: every {name} entry starts with {dn}")
            self._walk(out, <dict>entry, g, epath, errors, depth + 2, False)
        return 0

    cdef int _put_header(self, _Buf out, object header) except -1:
        cdef Py_ssize_t n
        cdef const char* s
        cdef long long iv
        for tag, value in header:
            t = type(value)
            buf_put_int(&out.w, tag)
            buf_put1(&out.w, b'=')
            if t is int:
                iv = value
                buf_put_int(&out.w, iv)
                buf_put1(&out.w, 1)
                continue
            if t is str:
                s = PyUnicode_AsUTF8AndSize(value, &n)
            else:
                if t is bytes:
                    text = value
                elif t is bool:
                    text = b"Y" if value else b"N"
                elif t is self.decimal_cls:
                    text = _dec_text(value).encode()
                elif t is float:
                    text = _dec_text(self.decimal_cls(repr(value))).encode()
                else:
                    text = self._format_other(value)
                n = PyBytes_GET_SIZE(text)
                s = PyBytes_AS_STRING(text)
            if n == 0 or memchr(s, 1, n) != NULL:
                raise EncodeError(f"header field {tag}: empty value or SOH in {value!r}")
            buf_put(&out.w, s, n)
            buf_put1(&out.w, 1)
        return 0

    def _format_other(self, value) -> bytes:
        """Text of a header value of another type (datetime); overridden in Python."""
        raise EncodeError(f"unsupported header value {value!r}")

    cdef bytes _finish(self, bytes begin, _Buf out):
        """8=... 9=len <out> 10=sum: the whole message."""
        cdef Py_ssize_t blen = PyBytes_GET_SIZE(begin), n = out.w.n
        res = PyBytes_FromStringAndSize(NULL, prefix_len(blen, n) + n + 7)
        cdef char* q = PyBytes_AS_STRING(res)
        cdef Py_ssize_t head = put_prefix(q, PyBytes_AS_STRING(begin), blen, n)
        memcpy(q + head, out.w.p, n)
        put_checksum(q + head + n, byte_sum(<const unsigned char*>q, head + n))
        return res

    cdef object _decode(self, bytes data):
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
        if n > self.max_bytes:
            raise self._fail("$", "", f"input of {n} bytes exceeds the limit of {self.max_bytes} bytes")
        try:
            return self.decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # the latter: msgspec < 0.23, not UTF-8
            raise self._fail("$", "", f"invalid JSON: {decode_error_text(exc, data)}") from None
        except RecursionError:
            raise self._fail("$", "", f"nesting deeper than {self.max_depth} levels") from None
        except ArithmeticError:  # decimal.InvalidOperation: a number beyond Decimal's exponent range
            raise self._fail("$", "", "invalid JSON: a number is out of range") from None

    def _decode_json(self, bytes data):
        """Decoded JSON after the size and nesting checks (JsonMappingError otherwise)."""
        return self._decode(data)

    cdef object _fail(self, str path, str field, str reason):
        return JsonMappingError([self.error_cls(path, field, reason)])

    def body_to_fix(self, str msg_type, object body, header=(), str begin_string=None) -> bytes:
        """Validated FIX wire bytes from a JSON ``Body`` (a REST request body).

        ``body`` is the JSON text (bytes), or a dict already decoded from it
        (with ``float_hook=decimal.Decimal`` to keep the digits of numbers).

        ``msg_type`` is the MsgType (``"D"``) or the message name. ``header``
        fields (SenderCompID, TargetCompID, MsgSeqNum, SendingTime,
        DeliverToCompID...) are written right after MsgType in the given order;
        values may be str, bytes, int, Decimal, bool or datetime. Body fields
        are written in the dictionary's order. Raises ``JsonMappingError``
        listing every problem, with paths rooted at the body
        (``$.NoOrders[1].OrderQty``).
        """
        return self._body_wire(msg_type, body, header,
                               self.begin if begin_string is None else begin_string.encode("ascii"))

    def body_fields(self, str msg_type, object body) -> bytes:
        """The body fields alone of :meth:`body_to_fix` (each ending with SOH; no MsgType,
        header or frame): what a session that adds its own header sends
        (``Session.send_body``). Same validation and errors."""
        return self._body_wire(msg_type, body, (), None)

    cdef bytes _body_wire(self, str msg_type, object body, object header, bytes begin):
        """The work of body_to_fix; ``begin`` None: the body fields only."""
        cdef _Buf out
        cdef list errors = []
        cdef PyObject* pctx
        cdef _InCtx ctx
        if type(body) is dict:
            obj = body
        else:
            obj = self._decode(body if type(body) is bytes else bytes(body))
        pctx = PyDict_GetItem(self.in_ctx, msg_type)
        if pctx == NULL:
            raise self._fail("$", "MsgType", f"unknown message type {msg_type!r}")
        if type(obj) is not dict:
            raise self._fail("$", "", f"expected an object, got {_type_name(obj)}")
        ctx = <_InCtx>pctx
        out = self._acquire()
        try:
            if begin is not None:
                buf_put(&out.w, PyBytes_AS_STRING(ctx.msgtype_field), PyBytes_GET_SIZE(ctx.msgtype_field))
                if header:
                    self._put_header(out, header)
            self._walk(out, <dict>obj, ctx, "$", errors, 1, True)
            if errors:
                raise JsonMappingError(errors)
            if begin is None:
                return PyBytes_FromStringAndSize(out.w.p, out.w.n)
            return self._finish(begin, out)
        finally:
            self._release(out)

    def _message_to_fix(self, _InCtx ctx, dict hdr, dict body, dict trl, object header,
                        bytes begin):
        """Validated wire bytes of a whole JSON message; errors list on failure."""
        cdef list errors = []
        cdef _Buf out = self._acquire()
        try:
            buf_put(&out.w, PyBytes_AS_STRING(ctx.msgtype_field), PyBytes_GET_SIZE(ctx.msgtype_field))
            self._put_header(out, header)
            self._walk(out, hdr, self.in_header, "$.Header", errors, 2, True)
            self._walk(out, body, ctx, "$.Body", errors, 2, True)
            self._walk(out, trl, self.in_trailer, "$.Trailer", errors, 2, True)
            if errors:
                return errors
            return self._finish(begin, out)
        finally:
            self._release(out)

    def _ctx(self, str msg_type):
        """Input plan for a MsgType (or message name), or None."""
        return self.in_ctx.get(msg_type)
