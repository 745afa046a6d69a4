# Declarations of the FIX <-> JSON writers, for other Cython modules that
# want to call them at C speed (the gateway's push path, for instance).

from fastfix._buffer cimport Buf


cdef class _Buf:
    cdef Buf w    # the output (fastfix._buffer)
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
    cdef int ensure_fields(self, Py_ssize_t n) except -1
    cdef int push_seg(self, Py_ssize_t index, Py_ssize_t start, Py_ssize_t end) except -1


# Write the bytes s[0:n] as a JSON string (quoted, escaped, invalid UTF-8 replaced).
cdef int put_json_str(Buf* b, const unsigned char* s, Py_ssize_t n) except -1


# Reason why s is not a valid FIX value of the given type code, or NULL.
cdef const char* _check(int t, const unsigned char* s, Py_ssize_t n) noexcept nogil
