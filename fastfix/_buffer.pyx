# cython: language_level=3
"""The cold path of :c:type:`Buf` (see ``_buffer.pxd``): growing."""

from libc.stdlib cimport malloc, realloc
from libc.string cimport memcpy


cdef int buf_grow(Buf* b, Py_ssize_t extra) except -1:
    cdef Py_ssize_t cap = b.cap * 2
    cdef char* q
    if cap < b.n + extra:
        cap = b.n + extra
    if cap < 64:
        cap = 64
    if b.heap:
        q = <char*>realloc(b.p, cap)
        if q == NULL:
            raise MemoryError()
    else:
        q = <char*>malloc(cap)
        if q == NULL:
            raise MemoryError()
        memcpy(q, b.p, b.n)
    b.p = q
    b.cap = cap
    b.heap = True
    return 0
