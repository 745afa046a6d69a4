# Included by fastfix/_codec.pyx (one extension module, so calls stay C-level).
# Framing (QuickFIX's rules), field splitting, Garbled, parse() and the stream Tokenizer.


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
    f[0].tag = BEGIN_STRING
    f[0].start = 2
    f[0].end = <int32_t>bs_end
    f[1].tag = BODY_LENGTH
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
        if n == 3 and t != MSG_TYPE:
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
    f[n].tag = CHECK_SUM
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
