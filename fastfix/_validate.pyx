# cython: language_level=3
"""Hot loop of message validation against a data dictionary (see fastfix.dictionary).

The checks follow QuickFIX's DataDictionary::validate: the message is split into
header, body and trailer (group entries attached to their NumInGroup field the way
QuickFIX's parser does it), then checked in QuickFIX's order so that the reject
reason chosen when several apply is the same. Fields are handled as offsets into
one buffer; Python objects are only made for multi-character enum lookups and for
the error returned.
"""

from array import array

from libc.limits cimport INT_MAX
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

from fastfix._codec cimport Message
from fastfix._tags cimport BEGIN_STRING, BODY_LENGTH, CHECK_SUM, MSG_TYPE, SIGNATURE, SIGNATURE_LENGTH
from fastfix.dictionary import REJECT_TEXT, ValidationError
from fastfix.tags import HEADER_TAGS, HOPS_GROUP_TAGS, TRAILER_TAGS

# Field flags
cdef enum:
    F_DEFINED = 1
    F_HEADER = 2
    F_TRAILER = 4
    F_MULTI = 8
    F_ENUM = 16

# Value formats
cdef enum:
    T_NONE = 0
    T_INT = 1
    T_UINT = 2
    T_FLOAT = 3
    T_CHAR = 4
    T_BOOL = 5
    T_TIMESTAMP = 6
    T_TIMEONLY = 7
    T_DATE = 8
    T_MONTHYEAR = 9
    T_DAYOFMONTH = 10

# Option bits
cdef enum:
    O_ORDER = 1
    O_HAVE_VALUES = 2
    O_USER_DEFINED = 4
    O_ALLOW_UNKNOWN = 8
    O_ENABLED = 16
    O_GROUP_ORDER = 32
    O_REQUIRED = 64
    O_UNKNOWN = 128
    O_VALUES = 256
    O_FORMAT = 512
    O_REPEATED = 1024
    O_COUNTS = 2048
    O_ENTRIES = 4096

cdef enum:
    OWNER_HEADER = -1
    OWNER_TRAILER = -2
    OWNER_BODY = 0
    STACK_FIELDS = 96
    USER_MIN = 5000

cdef dict _TYPE_CODES = {
    "INT": T_INT, "LENGTH": T_INT, "NUMINGROUP": T_INT, "TAGNUM": T_INT,
    "SEQNUM": T_UINT,
    "FLOAT": T_FLOAT, "PRICE": T_FLOAT, "QTY": T_FLOAT, "AMT": T_FLOAT,
    "PRICEOFFSET": T_FLOAT, "PERCENTAGE": T_FLOAT,
    "CHAR": T_CHAR, "BOOLEAN": T_BOOL,
    "UTCTIMESTAMP": T_TIMESTAMP, "TIME": T_TIMESTAMP,
    "UTCTIMEONLY": T_TIMEONLY,
    "UTCDATE": T_DATE, "UTCDATEONLY": T_DATE, "LOCALMKTDATE": T_DATE,
    "MONTHYEAR": T_MONTHYEAR, "DAYOFMONTH": T_DAYOFMONTH,
}

# Header and trailer fields recognised whatever the dictionary says, as QuickFIX does.
# A member of a header group is a header field only inside its group's entries.
_STD_HEADER = tuple(sorted(HEADER_TAGS - HOPS_GROUP_TAGS))
_STD_TRAILER = tuple(sorted(TRAILER_TAGS))

_OPTION_BITS = (
    ("check_fields_out_of_order", O_ORDER),
    ("check_fields_have_values", O_HAVE_VALUES),
    ("check_user_defined_fields", O_USER_DEFINED),
    ("allow_unknown_message_fields", O_ALLOW_UNKNOWN),
    ("validate_incoming_message", O_ENABLED),
    ("check_unordered_group_fields", O_GROUP_ORDER),
    ("check_required_fields", O_REQUIRED),
    ("check_unknown_fields", O_UNKNOWN),
    ("check_field_values", O_VALUES),
    ("check_data_format", O_FORMAT),
    ("check_repeated_tags", O_REPEATED),
    ("check_group_counts", O_COUNTS),
    ("check_group_entries", O_ENTRIES),
)

cdef dict _option_cache = {}


cdef int _option_flags(object options) except -1:
    cdef object hit = _option_cache.get(id(options))
    if hit is not None and (<tuple>hit)[0] is options:
        return (<tuple>hit)[1]
    cdef int flags = 0
    for name, bit in _OPTION_BITS:
        if getattr(options, name):
            flags |= bit
    if len(_option_cache) > 256:
        _option_cache.clear()
    # Keep the options object alive so its id stays unique while cached.
    _option_cache[id(options)] = (options, flags)
    return flags


cdef struct _F:
    int tag
    int start
    int end
    int owner        # OWNER_HEADER, OWNER_TRAILER, OWNER_BODY, or entry index + 1


cdef struct _E:
    int count_tag
    int parent       # owner of the NumInGroup field
    int first        # index of the entry's first field
    int gid          # index of the group's table in Validator._groups


cdef class _Table:
    """Members of a message or group entry: bitmap, required tags, nested groups."""
    cdef bytes bits
    cdef const unsigned char* bp
    cdef int nbits
    cdef bytes required          # sorted required tags, as C ints
    cdef const int* req
    cdef int nreq
    cdef dict groups             # count tag -> _Table
    cdef bytes group_bits
    cdef const unsigned char* gp
    cdef int count_tag
    cdef int delim
    cdef int gid

    cdef inline bint has(self, int tag) noexcept:
        return 0 <= tag < self.nbits and (self.bp[tag >> 3] >> (tag & 7)) & 1

    cdef inline bint is_group(self, int tag) noexcept:
        return 0 <= tag < self.nbits and (self.gp[tag >> 3] >> (tag & 7)) & 1


cdef bytes _bitmap(object tags, int nbits):
    cdef bytearray b = bytearray((nbits + 7) // 8)
    for t in tags:
        if 0 <= t < nbits:
            b[t >> 3] |= 1 << (t & 7)
    return bytes(b)


# ----------------------------------------------------------------- value formats

cdef inline bint _digit(unsigned char c) noexcept:
    return 48 <= c <= 57


cdef bint _int32(const unsigned char* s, int n) noexcept:
    cdef int i = 0
    cdef long long x = 0
    cdef bint neg = 0
    if n == 0:
        return 0
    if s[0] == 45:  # '-'
        neg = 1
        i = 1
        if n == 1:
            return 0
    if n - i > 10:
        return 0
    while i < n:
        if not _digit(s[i]):
            return 0
        x = x * 10 + (s[i] - 48)
        i += 1
    if neg:
        return x <= 2147483648
    return x <= 2147483647


cdef bint _uint64(const unsigned char* s, int n) noexcept:
    cdef int i
    cdef unsigned long long x = 0, nx
    if n == 0 or n > 20:
        return 0
    for i in range(n):
        if not _digit(s[i]):
            return 0
        nx = x * 10 + (s[i] - 48)
        if nx < x or x > 1844674407370955161ULL:
            return 0
        x = nx
    return 1


cdef bint _float(const unsigned char* s, int n) noexcept:
    # Optional '-', digits, optional '.' and digits; at least one digit (QuickFIX).
    cdef int i = 0
    cdef bint digit = 0
    if n == 0:
        return 0
    if s[0] == 45:
        i = 1
        if n == 1:
            return 0
    while i < n and _digit(s[i]):
        i += 1
        digit = 1
    if i < n and s[i] == 46:
        i += 1
        while i < n and _digit(s[i]):
            i += 1
            digit = 1
    return digit and i == n


cdef inline int _two(const unsigned char* s) noexcept:
    return (s[0] - 48) * 10 + (s[1] - 48)


cdef bint _date(const unsigned char* s, int n) noexcept:
    # YYYYMMDD
    cdef int i, mon, day
    if n != 8:
        return 0
    for i in range(8):
        if not _digit(s[i]):
            return 0
    mon = _two(s + 4)
    day = _two(s + 6)
    return 1 <= mon <= 12 and 1 <= day <= 31


cdef bint _time(const unsigned char* s, int n) noexcept:
    # HH:MM:SS[.fraction]
    cdef int i
    if n < 8:
        return 0
    if not (_digit(s[0]) and _digit(s[1]) and s[2] == 58 and _digit(s[3]) and _digit(s[4])
            and s[5] == 58 and _digit(s[6]) and _digit(s[7])):
        return 0
    if _two(s) > 23 or _two(s + 3) > 59 or _two(s + 6) > 60:
        return 0
    if n == 8:
        return 1
    if s[8] != 46:
        return 0
    for i in range(9, n):
        if not _digit(s[i]):
            return 0
    return 1


cdef bint _timestamp(const unsigned char* s, int n) noexcept:
    # YYYYMMDD-HH:MM:SS[.fraction], 17 to 27 characters
    if n < 17 or n > 27 or s[8] != 45:
        return 0
    return _date(s, 8) and _time(s + 9, n - 9)


cdef bint _timeonly(const unsigned char* s, int n) noexcept:
    return 8 <= n <= 18 and _time(s, n)


cdef bint _monthyear(const unsigned char* s, int n) noexcept:
    # YYYYMM, YYYYMMDD or YYYYMMwN
    cdef int i, mon
    if n != 6 and n != 8:
        return 0
    for i in range(6):
        if not _digit(s[i]):
            return 0
    mon = _two(s + 4)
    if mon < 1 or mon > 12:
        return 0
    if n == 6:
        return 1
    if s[6] == 119:  # 'w'
        return 49 <= s[7] <= 53
    return _date(s, 8)


cdef bint _dayofmonth(const unsigned char* s, int n) noexcept:
    cdef int d
    if n == 1:
        return 49 <= s[0] <= 57
    if n == 2 and _digit(s[0]) and _digit(s[1]):
        d = _two(s)
        return 1 <= d <= 31
    return 0


cdef bint _format_ok(int code, const unsigned char* s, int n) noexcept:
    if code == T_INT:
        return _int32(s, n)
    if code == T_FLOAT:
        return _float(s, n)
    if code == T_CHAR:
        return n == 1
    if code == T_TIMESTAMP:
        return _timestamp(s, n)
    if code == T_UINT:
        return _uint64(s, n)
    if code == T_BOOL:
        return n == 1 and (s[0] == 89 or s[0] == 78)
    if code == T_TIMEONLY:
        return _timeonly(s, n)
    if code == T_DATE:
        return _date(s, n)
    if code == T_MONTHYEAR:
        return _monthyear(s, n)
    if code == T_DAYOFMONTH:
        return _dayofmonth(s, n)
    return 1


cdef long long _parse_count(const unsigned char* s, int n) noexcept:
    # NumInGroup value, or -1 when it is not a non-negative integer.
    cdef long long x = 0
    cdef int i
    if n == 0 or n > 9:
        return -1
    for i in range(n):
        if not _digit(s[i]):
            return -1
        x = x * 10 + (s[i] - 48)
    return x


# ----------------------------------------------------------------- validator

cdef class Validator:
    """Lookup tables of one DataDictionary, and the checks themselves."""

    cdef int ntags
    cdef unsigned char* flags        # per tag: F_* bits
    cdef unsigned char* types        # per tag: T_* code
    cdef int* enum_slot              # per tag: index into _enum_bits / _enum_sets, or -1
    cdef unsigned char* enum_bits    # 32 bytes per slot: single-character values
    cdef list _enum_sets             # per slot: frozenset of bytes values
    cdef dict _messages              # msg type bytes -> _Table
    cdef _Table _header
    cdef _Table _trailer
    cdef list _groups                # gid -> _Table

    def __cinit__(self):
        self.flags = NULL
        self.types = NULL
        self.enum_slot = NULL
        self.enum_bits = NULL

    def __dealloc__(self):
        free(self.flags)
        free(self.types)
        free(self.enum_slot)
        free(self.enum_bits)

    def __init__(self, dd):
        cdef int t, slot, nslots = 0
        fields = dd.fields
        maxtag = max([max(fields) if fields else 0, max(_STD_HEADER), max(_STD_TRAILER)])
        self.ntags = maxtag + 1
        self.flags = <unsigned char*>malloc(self.ntags)
        self.types = <unsigned char*>malloc(self.ntags)
        self.enum_slot = <int*>malloc(self.ntags * sizeof(int))
        if self.flags == NULL or self.types == NULL or self.enum_slot == NULL:
            raise MemoryError()
        for t in range(self.ntags):
            self.flags[t] = 0
            self.types[t] = 0
            self.enum_slot[t] = -1
        enum_fields = [f for f in fields.values() if f.enums]
        self.enum_bits = <unsigned char*>malloc(32 * max(1, len(enum_fields)))
        if self.enum_bits == NULL:
            raise MemoryError()
        self._enum_sets = []
        old_char = dd.begin_string < "FIX.4.2"
        for f in fields.values():
            t = f.tag
            if t < 0:
                continue
            self.flags[t] |= F_DEFINED
            code = _TYPE_CODES.get(f.type, T_NONE)
            if code == T_CHAR and old_char:
                code = T_NONE  # QuickFIX reads CHAR as STRING before FIX.4.2
            self.types[t] = code
            if f.type.startswith("MULTIPLE"):
                self.flags[t] |= F_MULTI
            if f.enums:
                slot = nslots
                nslots += 1
                self.enum_slot[t] = slot
                self.flags[t] |= F_ENUM
                for i in range(32):
                    self.enum_bits[slot * 32 + i] = 0
                values = frozenset(v.encode("latin-1") for v in f.enums)
                for v in values:
                    if len(v) == 1:
                        self.enum_bits[slot * 32 + (v[0] >> 3)] |= 1 << (v[0] & 7)
                self._enum_sets.append(values)
        for t in _STD_HEADER:
            self.flags[t] |= F_HEADER
        for t in _STD_TRAILER:
            self.flags[t] |= F_TRAILER
        for m in dd.header.members:
            if 0 <= m.tag < self.ntags:
                self.flags[m.tag] |= F_HEADER
        for m in dd.trailer.members:
            if 0 <= m.tag < self.ntags:
                self.flags[m.tag] |= F_TRAILER
        self._groups = []
        self._header = self._table(dd.header.members, None, "")
        self._trailer = self._table(dd.trailer.members, None, "")
        self._messages = {}
        for mt, mdef in dd.messages.items():
            self._messages[mt.encode("latin-1")] = self._table(mdef.members, None, mt)

    cdef _Table _table(self, members, gdef, str msg_type):
        cdef _Table tb = _Table()
        tb.nbits = self.ntags
        tags = [m.tag for m in members]
        tb.bits = _bitmap(tags, self.ntags)
        tb.bp = tb.bits
        req = sorted(m.tag for m in members if m.required)
        tb.required = array("i", req).tobytes()
        tb.req = <const int*><const char*>tb.required
        tb.nreq = len(req)
        tb.groups = {}
        for m in members:
            if m.group is not None:
                tb.groups[m.tag] = self._table(m.group.members, m.group, msg_type)
        tb.group_bits = _bitmap(list(tb.groups), self.ntags)
        tb.gp = tb.group_bits
        tb.gid = len(self._groups)
        self._groups.append(tb)
        if gdef is not None:
            tb.count_tag = gdef.count_tag
            tb.delim = gdef.delimiter
        else:
            tb.count_tag = 0
            tb.delim = 0
        return tb

    cdef inline int flag(self, int tag) noexcept:
        if 0 <= tag < self.ntags:
            return self.flags[tag]
        return 0

    # ---- entry points

    def validate(self, message, options):
        """Validate a parsed message (a codec Message, or anything with ``fields()``)."""
        if type(message) is not Message:
            return self.validate_fields(message.fields(), options)
        cdef Message m = <Message>message
        cdef int opts = _option_flags(options)
        if not (opts & O_ENABLED):
            return None
        cdef int n = m._n, i
        cdef _F stack_f[STACK_FIELDS]
        cdef _E stack_e[STACK_FIELDS]
        cdef _F* f = stack_f
        cdef _E* e = stack_e
        if n > STACK_FIELDS:
            f = <_F*>malloc(n * sizeof(_F))
            e = <_E*>malloc(n * sizeof(_E))
            if f == NULL or e == NULL:
                free(f)
                free(e)
                raise MemoryError()
        try:
            # Field offsets straight from the parsed message: no values copied.
            for i in range(n):
                f[i].tag = m._f[i].tag
                f[i].start = m._f[i].start
                f[i].end = m._f[i].end
            return self._run(m._p, f, e, n, opts)
        finally:
            if f != stack_f:
                free(f)
                free(e)

    def validate_fields(self, list fields, options):
        """Validate wire-ordered ``(tag, value)`` pairs."""
        cdef int opts = _option_flags(options)
        if not (opts & O_ENABLED):
            return None
        cdef Py_ssize_t n = len(fields)
        cdef _F stack_f[STACK_FIELDS]
        cdef _E stack_e[STACK_FIELDS]
        cdef _F* f = stack_f
        cdef _E* e = stack_e
        cdef Py_ssize_t i, pos = 0
        cdef bytes v
        values = []
        if n > STACK_FIELDS:
            f = <_F*>malloc(n * sizeof(_F))
            e = <_E*>malloc(n * sizeof(_E))
            if f == NULL or e == NULL:
                free(f)
                free(e)
                raise MemoryError()
        try:
            for i in range(n):
                tag, v = fields[i]
                f[i].tag = tag
                f[i].start = pos
                pos += len(v)
                f[i].end = pos
                values.append(v)
            buf = b"".join(values)
            return self._run(<const unsigned char*>(<bytes>buf), f, e, <int>n, opts)
        finally:
            if f != stack_f:
                free(f)
                free(e)

    # ---- the checks

    cdef object _error(self, int reason, int tag, bint has_tag, bytes msg_type):
        return ValidationError(reason, tag if has_tag else None, msg_type.decode("latin-1"),
                               REJECT_TEXT[reason])

    cdef object _run(self, const unsigned char* p, _F* f, _E* e, int n, int opts):
        cdef int i, ne = 0, section = 0, oot = 0, tag, fl, owner
        cdef int nh = 0, nt = 0, nb = 0
        cdef _Table mt = None
        cdef bytes msg_type = b""
        cdef object err
        # 1. Split into header / body / trailer and attach group entries (QuickFIX's parser).
        for i in range(n):
            if f[i].tag == MSG_TYPE:
                msg_type = <bytes>p[f[i].start:f[i].end]
                mt = self._messages.get(msg_type)
                break
        i = 0
        while i < n:
            tag = f[i].tag
            fl = self.flag(tag)
            if fl & F_HEADER:
                if section != 0 and oot == 0:
                    oot = tag
                f[i].owner = OWNER_HEADER
                i += 1
                if self._header.is_group(tag):
                    i = self._parse_group(f, e, &ne, n, i, self._header.groups[tag], OWNER_HEADER)
            elif fl & F_TRAILER:
                section = 2
                f[i].owner = OWNER_TRAILER
                i += 1
                if self._trailer.is_group(tag):
                    i = self._parse_group(f, e, &ne, n, i, self._trailer.groups[tag], OWNER_TRAILER)
            else:
                if section == 2 and oot == 0:
                    oot = tag
                section = 1
                f[i].owner = OWNER_BODY
                i += 1
                if mt is not None and mt.is_group(tag):
                    i = self._parse_group(f, e, &ne, n, i, mt.groups[tag], OWNER_BODY)

        # 2. Structure, message type, required fields.
        if oot and (opts & O_ORDER):
            return self._error(14, oot, 1, msg_type)
        if mt is None:
            return self._error(11, 0, 0, msg_type)
        if opts & O_REQUIRED:
            err = self._required(f, e, n, ne, self._header, OWNER_HEADER, 0, msg_type)
            if err is None:
                err = self._required(f, e, n, ne, self._trailer, OWNER_TRAILER, 0, msg_type)
            if err is None:
                err = self._required(f, e, n, ne, mt, OWNER_BODY, 1, msg_type)
            if err is not None:
                return err

        # 3. Header, trailer, body fields in QuickFIX's sorted order.
        cdef int stack_idx[STACK_FIELDS]
        cdef int* idx = stack_idx
        if n > STACK_FIELDS:
            idx = <int*>malloc(n * sizeof(int))
            if idx == NULL:
                raise MemoryError()
        try:
            for section in range(3):
                owner = OWNER_HEADER if section == 0 else (OWNER_TRAILER if section == 1
                                                           else OWNER_BODY)
                nb = 0
                for i in range(n):
                    if f[i].owner == owner:
                        idx[nb] = i
                        nb += 1
                _sort(f, idx, nb, owner)
                err = self._iterate(p, f, e, ne, idx, nb, mt, owner, opts, msg_type)
                if err is not None:
                    return err
        finally:
            if idx != stack_idx:
                free(idx)

        # 4. Beyond QuickFIX: the fields of group entries.
        if ne and (opts & O_ENTRIES):
            return self._entries(p, f, e, n, ne, opts, msg_type)
        return None

    cdef int _parse_group(self, _F* f, _E* e, int* ne, int n, int pos, _Table g, int parent) except -2:
        # Mirrors QuickFIX Message::setGroup: an entry starts at the delimiter, or at
        # a member already present in the current entry; a non-member ends the group.
        cdef int cur = -1, tag, j
        cdef bint member, start
        while pos < n:
            tag = f[pos].tag
            member = g.has(tag)
            start = tag == g.delim
            if not start and member:
                if cur < 0:
                    start = 1
                else:
                    for j in range(e[cur].first, pos):
                        if f[j].owner == cur + 1 and f[j].tag == tag:
                            start = 1
                            break
            if start:
                cur = ne[0]
                ne[0] += 1
                e[cur].count_tag = g.count_tag
                e[cur].parent = parent
                e[cur].first = pos
                e[cur].gid = g.gid
            elif not member:
                break
            f[pos].owner = cur + 1
            pos += 1
            if g.is_group(tag):
                pos = self._parse_group(f, e, ne, n, pos, g.groups[tag], cur + 1)
        return pos

    cdef object _required(self, _F* f, _E* e, int n, int ne, _Table tb, int owner,
                          bint groups, bytes msg_type):
        cdef int i, k, r, req, ct, last = -1, first = 0
        cdef bint found
        if owner > 0:
            first = e[owner - 1].first
        for r in range(tb.nreq):
            req = tb.req[r]
            found = 0
            for i in range(first, n):
                if f[i].owner == owner and f[i].tag == req:
                    found = 1
                    break
            if not found:
                return self._error(1, req, 1, msg_type)
        if not groups or ne == 0:
            return None
        # Entries of the groups of this container, groups in tag order (QuickFIX's map).
        while True:
            ct = INT_MAX
            for k in range(ne):
                if e[k].parent == owner and last < e[k].count_tag < ct:
                    ct = e[k].count_tag
            if ct == INT_MAX:
                return None
            for k in range(ne):
                if e[k].parent == owner and e[k].count_tag == ct:
                    err = self._required(f, e, n, ne, <_Table>self._groups[e[k].gid], k + 1, 1,
                                         msg_type)
                    if err is not None:
                        return err
            last = ct

    cdef inline bint _value_ok(self, int tag, const unsigned char* s, int len_) except -1:
        cdef int slot = self.enum_slot[tag]
        cdef int a = 0, b
        if not (self.flags[tag] & F_MULTI):
            if len_ == 1:
                return (self.enum_bits[slot * 32 + (s[0] >> 3)] >> (s[0] & 7)) & 1
            return (<bytes>s[:len_]) in <frozenset>self._enum_sets[slot]
        # Space-separated values, each of which must be valid.
        while True:
            b = a
            while b < len_ and s[b] != 32:
                b += 1
            if b - a == 1:
                if not (self.enum_bits[slot * 32 + (s[a] >> 3)] >> (s[a] & 7)) & 1:
                    return 0
            elif (<bytes>s[a:b]) not in <frozenset>self._enum_sets[slot]:
                return 0
            if b >= len_:
                return 1
            a = b + 1

    cdef object _iterate(self, const unsigned char* p, _F* f, _E* e, int ne, int* idx, int cnt,
                         _Table mt, int owner, int opts, bytes msg_type):
        cdef int k, i, tag, last = 0, fl, len_, groups
        cdef long long count
        cdef const unsigned char* s
        for k in range(cnt):
            i = idx[k]
            tag = f[i].tag
            s = p + f[i].start
            len_ = f[i].end - f[i].start
            if k > 0 and tag == last and (opts & O_REPEATED):
                return self._error(13, tag, 1, msg_type)
            if len_ == 0 and (opts & O_HAVE_VALUES):
                return self._error(4, tag, 1, msg_type)
            fl = self.flag(tag)
            if fl & F_DEFINED:
                if (opts & O_FORMAT) and not _format_ok(self.types[tag], s, len_):
                    return self._error(6, tag, 1, msg_type)
                if (fl & F_ENUM) and (opts & O_VALUES) and not self._value_ok(tag, s, len_):
                    return self._error(5, tag, 1, msg_type)
            # QuickFIX's shouldCheckTag
            if not ((opts & O_ALLOW_UNKNOWN) and tag < USER_MIN) and \
                    not (not (opts & O_USER_DEFINED) and tag >= USER_MIN):
                if not (fl & F_DEFINED):
                    if opts & O_UNKNOWN:
                        return self._error(0, tag, 1, msg_type)
                elif not (fl & (F_HEADER | F_TRAILER)):
                    if not mt.has(tag):
                        if opts & O_UNKNOWN:
                            return self._error(2, tag, 1, msg_type)
                    elif mt.is_group(tag) and (opts & O_COUNTS):
                        groups = 0
                        for j in range(ne):
                            if e[j].parent == OWNER_BODY and e[j].count_tag == tag:
                                groups += 1
                        if _parse_count(s, len_) != groups:
                            return self._error(16, tag, 1, msg_type)
            last = tag
        return None

    cdef object _entries(self, const unsigned char* p, _F* f, _E* e, int n, int ne, int opts,
                         bytes msg_type):
        cdef int i, j, tag, owner, len_, fl, groups
        cdef const unsigned char* s
        cdef _Table g
        for i in range(n):
            owner = f[i].owner
            if owner <= 0:
                continue
            tag = f[i].tag
            g = <_Table>self._groups[e[owner - 1].gid]
            if i == e[owner - 1].first and tag != g.delim and (opts & O_GROUP_ORDER):
                return self._error(15, tag, 1, msg_type)
            s = p + f[i].start
            len_ = f[i].end - f[i].start
            if len_ == 0 and (opts & O_HAVE_VALUES):
                return self._error(4, tag, 1, msg_type)
            fl = self.flag(tag)
            if (opts & O_FORMAT) and not _format_ok(self.types[tag], s, len_):
                return self._error(6, tag, 1, msg_type)
            if (fl & F_ENUM) and (opts & O_VALUES) and not self._value_ok(tag, s, len_):
                return self._error(5, tag, 1, msg_type)
            if g.is_group(tag) and (opts & O_COUNTS):
                groups = 0
                for j in range(ne):
                    if e[j].parent == owner and e[j].count_tag == tag:
                        groups += 1
                if _parse_count(s, len_) != groups:
                    return self._error(16, tag, 1, msg_type)
        return None


cdef inline int _key(int tag, int owner) noexcept:
    # QuickFIX's header_order / trailer_order / numeric body order.
    if owner == OWNER_HEADER:
        if tag == BEGIN_STRING:
            return -3
        if tag == BODY_LENGTH:
            return -2
        if tag == MSG_TYPE:
            return -1
        return tag
    if owner == OWNER_TRAILER:
        if tag == CHECK_SUM:
            return 2147483647
        if tag == SIGNATURE_LENGTH:
            return -2
        if tag == SIGNATURE:
            return -1
        return tag
    return tag


cdef void _sort(_F* f, int* idx, int cnt, int owner) noexcept:
    # Stable insertion sort: messages have tens of fields.
    cdef int i, j, x, kx
    for i in range(1, cnt):
        x = idx[i]
        kx = _key(f[x].tag, owner)
        j = i - 1
        while j >= 0 and _key(f[idx[j]].tag, owner) > kx:
            idx[j + 1] = idx[j]
            j -= 1
        idx[j + 1] = x
