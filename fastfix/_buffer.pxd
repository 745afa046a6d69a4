# cython: language_level=3
"""A growable byte buffer for the compiled writers (the codec and the FIX <-> JSON mapping).

``Buf`` is a plain struct, so it lives on the C stack or inside an object and costs
no allocation of its own. It may start on storage the caller provides (a stack
array: small messages never touch the heap) and moves to the heap when it has to
grow::

    cdef char stack[512]
    cdef Buf b
    buf_init(&b, stack, 512)
    try:
        buf_put(&b, "35=D", 4)
        ...
    finally:
        buf_free(&b)

The fast operations are inline here; growing (the cold path) is in ``_buffer.pyx``.
"""

from libc.stdint cimport uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy


cdef struct Buf:
    char* p          # the bytes written so far are p[0:n]
    Py_ssize_t n
    Py_ssize_t cap   # room at p
    bint heap        # p was allocated here (else it is the caller's storage)


# Make room for ``extra`` more bytes: at least double the capacity, moving to the heap.
cdef int buf_grow(Buf* b, Py_ssize_t extra) except -1


cdef inline void buf_init(Buf* b, char* storage, Py_ssize_t cap) noexcept:
    """Start empty on the caller's ``storage`` of ``cap`` bytes."""
    b.p = storage
    b.n = 0
    b.cap = cap
    b.heap = False


cdef inline int buf_init_heap(Buf* b, Py_ssize_t cap) except -1:
    """Start empty on a heap block of ``cap`` bytes (for a buffer kept between uses)."""
    b.p = <char*>malloc(cap)
    if b.p == NULL:
        raise MemoryError()
    b.n = 0
    b.cap = cap
    b.heap = True
    return 0


cdef inline void buf_free(Buf* b) noexcept:
    """Release the heap block, if any; the buffer must be initialised again before reuse."""
    if b.heap:
        free(b.p)
        b.p = NULL
        b.cap = 0
        b.heap = False


cdef inline int buf_need(Buf* b, Py_ssize_t extra) except -1:
    """Make sure ``extra`` more bytes fit at ``b.p + b.n``."""
    if b.n + extra > b.cap:
        return buf_grow(b, extra)
    return 0


cdef inline int buf_put(Buf* b, const char* s, Py_ssize_t k) except -1:
    if b.n + k > b.cap:
        buf_grow(b, k)
    memcpy(b.p + b.n, s, k)
    b.n += k
    return 0


cdef inline int buf_put1(Buf* b, char c) except -1:
    if b.n + 1 > b.cap:
        buf_grow(b, 1)
    b.p[b.n] = c
    b.n += 1
    return 0


cdef inline int write_uint(char* o, uint64_t v) noexcept nogil:
    """Decimal digits of ``v`` at ``o`` (room for 20); returns how many."""
    cdef char tmp[24]
    cdef int k = 0, n
    while True:
        tmp[k] = <char>(48 + v % 10)
        v //= 10
        k += 1
        if v == 0:
            break
    n = k
    while k > 0:
        k -= 1
        o[n - 1 - k] = tmp[k]
    return n


cdef inline int buf_put_int(Buf* b, long long v) except -1:
    """Decimal text of ``v`` (with a minus sign when negative)."""
    if b.n + 21 > b.cap:
        buf_grow(b, 21)
    if v < 0:
        b.p[b.n] = 45
        b.n += 1
        # -(v + 1) + 1: no overflow for the most negative value
        b.n += write_uint(b.p + b.n, <uint64_t>(-(v + 1)) + 1)
    else:
        b.n += write_uint(b.p + b.n, <uint64_t>v)
    return 0
