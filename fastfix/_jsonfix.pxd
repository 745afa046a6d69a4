# Declarations of the FIX <-> JSON writers, for other Cython modules that
# want to call them at C speed (the gateway's push path, for instance).

cdef class _Buf:
    cdef char* p
    cdef Py_ssize_t n
    cdef Py_ssize_t cap
    # scratch tables of one conversion: field offsets (FIX -> JSON) and the
    # (member index, start, end) segment stack that orders fields (JSON -> FIX)
    cdef int* f_tag
    cdef Py_ssize_t* f_start
    cdef Py_ssize_t* f_end
    cdef Py_ssize_t* f_idx
    cdef Py_ssize_t f_cap
    cdef Py_ssize_t* seg
    cdef Py_ssize_t nseg
    cdef Py_ssize_t seg_cap
    cdef int grow(self, Py_ssize_t extra) except -1
    cdef int put(self, const char* s, Py_ssize_t k) except -1
    cdef int put1(self, char c) except -1
    cdef int put_int(self, long long v) except -1
    cdef int ensure_fields(self, Py_ssize_t n) except -1
    cdef int push_seg(self, Py_ssize_t index, Py_ssize_t start, Py_ssize_t end) except -1


cdef int put_json_str(_Buf b, const unsigned char* s, Py_ssize_t n) except -1


# Reason why s is not a valid FIX value of the given type code, or NULL.
cdef const char* _check(int t, const unsigned char* s, Py_ssize_t n) noexcept nogil
