# cython: language_level=3
"""C-level interface of the FIX codec, for other Cython modules.

Use it with ``from fastfix._codec cimport Message, FieldRef``. A parsed
:class:`Message` is a reference to the bytes it came from plus a table of
field offsets; other modules walk that table directly::

    cdef Message m = msg
    cdef int i
    for i in range(m._n):
        tag = m._f[i].tag
        # value bytes: m._p[m._f[i].start] .. m._p[m._f[i].end - 1]

Invariants of a Message built by the tokenizer or ``parse``:

- ``_f[0]`` is 8 (BeginString), ``_f[1]`` is 9 (BodyLength), ``_f[2]`` is
  35 (MsgType), ``_f[_n - 1]`` is 10 (CheckSum);
- ``_p[_f[i].end] == 1`` (SOH) for every field; values of data fields
  (RawData and the like) may contain SOH, so walk with the offsets, never by
  searching SOH;
- offsets are relative to ``_p``, the first byte of the message, and
  ``_p`` stays valid as long as the Message is alive (it owns ``_buf``).
"""

cimport cython
from libc.stdint cimport int32_t, uint64_t
from libc.string cimport memcpy

from fastfix._buffer cimport write_uint


cdef enum:
    # Field slots stored inside the Message object itself; longer messages
    # move their table to the heap. 32 covers orders and execution reports.
    INLINE_FIELDS = 32
    # Length tags below this limit are looked up in a bitmap.
    DATA_BITMAP_TAGS = 8192
    DATA_BITMAP_BYTES = 1024
    MAX_DATA_PAIRS = 64


cdef struct FieldRef:
    int32_t tag      # field tag
    int32_t start    # offset of the first value byte, relative to Message._p
    int32_t end      # offset of the SOH that ends the value


cdef struct DataTable:
    # Length field -> data field pairs (e.g. 95 -> 96): a data value is read
    # as exactly <length> bytes and may contain SOH.
    unsigned char bitmap[DATA_BITMAP_BYTES]
    int npairs
    bint has_large                # a length tag >= DATA_BITMAP_TAGS exists
    int32_t len_tags[MAX_DATA_PAIRS]
    int32_t data_tags[MAX_DATA_PAIRS]


# Result of one framing step over a byte range (internal to the tokenizer).
cdef struct Step:
    int status
    int reason
    Py_ssize_t start
    Py_ssize_t end
    Py_ssize_t need
    Py_ssize_t search_from   # where the CheckSum search may resume (absolute)
    Py_ssize_t bs_end        # SOH after BeginString (absolute)
    Py_ssize_t body          # first body byte (absolute)
    Py_ssize_t cks           # the '1' of "10=" (absolute)
    long long body_length    # declared BodyLength
    long long a              # details for the reason text
    long long b


@cython.final
@cython.no_gc
@cython.freelist(64)
cdef class Message:
    cdef object _buf                 # bytes object owning the memory
    cdef const unsigned char* _p     # first byte of the message inside _buf
    cdef Py_ssize_t _off             # offset of the message inside _buf
    cdef Py_ssize_t _len             # message length, through the final SOH
    cdef int _n                      # number of fields (8, 9, 35, 10 included)
    cdef int _cap                    # capacity of _f
    cdef FieldRef* _f                # field table: _inline or a heap block
    cdef FieldRef _inline[INLINE_FIELDS]

    cdef int _grow(self) except -1
    # Index of the first field with this tag, or -1.
    cdef int find(self, int tag) noexcept
    # Index of the first field with this tag at or after index start, or -1.
    cdef int find_from(self, int tag, int start) noexcept
    # Value of field i as a new bytes object (i must be valid).
    cdef bytes value_bytes(self, int i)
    # Parse field i as a signed integer into out; 0 on success, -1 if not an integer.
    cdef int value_int(self, int i, long long* out) noexcept


@cython.final
cdef class Garbled:
    cdef readonly str reason
    cdef readonly bytes data


@cython.final
cdef class Tokenizer:
    cdef Py_ssize_t _max
    cdef DataTable _dt
    cdef unsigned char* _tail        # buffered bytes of an incomplete frame
    cdef Py_ssize_t _tail_len
    cdef Py_ssize_t _tail_cap
    cdef Py_ssize_t _need            # bytes the buffered frame needs, at least
    cdef Py_ssize_t _search_from     # resume point of the CheckSum search in the tail

    cpdef list feed(self, object data)
    cdef int _append(self, const unsigned char* p, Py_ssize_t n) except -1
    cdef int _emit(self, Step* st, object buf, const unsigned char* p, list out, bint copy) except -1
    cdef Py_ssize_t _feed_tail(self, const unsigned char* p, Py_ssize_t n, list out) except -1


# Framing helpers shared by the serializers (here and in fastfix._jsonfix).

cdef inline Py_ssize_t prefix_len(Py_ssize_t bs_len, Py_ssize_t body_len) noexcept nogil:
    """Length of ``8=<bs><SOH>9=<body_len><SOH>``."""
    cdef Py_ssize_t digits = 1
    while body_len >= 10:
        body_len //= 10
        digits += 1
    return 2 + bs_len + 3 + digits + 1


cdef inline Py_ssize_t put_prefix(char* o, const char* bs, Py_ssize_t bs_len,
                                  Py_ssize_t body_len) noexcept nogil:
    """Write ``8=<bs><SOH>9=<body_len><SOH>`` at ``o`` (``prefix_len`` bytes); returns its length."""
    cdef Py_ssize_t n
    o[0] = 56
    o[1] = 61
    memcpy(o + 2, bs, bs_len)
    n = 2 + bs_len
    o[n] = 1
    o[n + 1] = 57
    o[n + 2] = 61
    n += 3
    n += write_uint(o + n, <uint64_t>body_len)
    o[n] = 1
    return n + 1


cdef inline unsigned int byte_sum(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    cdef unsigned int total = 0
    cdef Py_ssize_t k
    for k in range(n):
        total += p[k]
    return total


cdef inline void put_checksum(char* o, unsigned int cs) noexcept nogil:
    """``10=nnn<SOH>`` at ``o`` (7 bytes) for the byte sum ``cs``."""
    o[0] = 49
    o[1] = 48
    o[2] = 61
    o[3] = <char>(48 + (cs & 255) // 100)
    o[4] = <char>(48 + ((cs & 255) // 10) % 10)
    o[5] = <char>(48 + (cs & 255) % 10)
    o[6] = 1
