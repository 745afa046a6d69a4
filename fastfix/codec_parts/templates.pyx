# Included by fastfix/_codec.pyx (one extension module, so calls stay C-level).
# Template: a pre-encoded message where only some fields change.


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
        cdef Buf w
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
            if t in FRAME_TAGS:
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
            if t in FRAME_TAGS:
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
        ordered = [(MSG_TYPE, mt)] + header + body + trailer
        nslots = len(var_tags)
        self._nvars = nslots
        self._nslots = nslots
        self._run_end = <Py_ssize_t*>malloc((nslots + 1) * sizeof(Py_ssize_t))
        self._slot_tag = <long*>malloc((nslots + 1) * sizeof(long))
        self._slot_arg = <int*>malloc((nslots + 1) * sizeof(int))
        if self._run_end == NULL or self._slot_tag == NULL or self._slot_arg == NULL:
            raise MemoryError()
        buf_init(&w, stack, 1024)
        try:
            k = 0
            for t, v in ordered:
                if t in var_tags:
                    self._run_end[k] = w.n
                    self._slot_tag[k] = t
                    self._slot_arg[k] = var_tags.index(t)
                    k += 1
                elif t == MSG_TYPE:
                    buf_put(&w, b"35=", 3)
                    _write_text(&w, MSG_TYPE, PyBytes_AS_STRING(mt), PyBytes_GET_SIZE(mt), self._soh_ok)
                    buf_put(&w, b"\x01", 1)
                else:
                    _write_field(&w, t, v, precision, self._soh_ok)
            self._run_end[k] = w.n
            self._static = PyBytes_FromStringAndSize(w.p, w.n)
        finally:
            buf_free(&w)
        self._static_sum = byte_sum(<const unsigned char*>PyBytes_AS_STRING(self._static),
                                PyBytes_GET_SIZE(self._static))

    def render(self, *values) -> bytes:
        """Encode the message with these values for the variable tags."""
        cdef char stack[512]
        cdef Py_ssize_t offs[65]
        cdef Py_ssize_t* voff = offs
        cdef Buf w
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
        buf_init(&w, stack, 512)
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
            buf_free(&w)
            if voff != offs:
                free(voff)
