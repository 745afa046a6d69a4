# Included by fastfix/_codec.pyx (one extension module, so calls stay C-level).
# Message: one parsed FIX message, the bytes it came from plus its field offsets.


cdef object _MISSING = object()


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
        cdef int i = self.find(MSG_SEQ_NUM)
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
