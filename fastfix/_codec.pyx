# cython: language_level=3
"""FIX codec: stream tokenizer, zero-copy messages, serializer, templates.

One extension module assembled from the files in ``codec_parts/`` (timestamps,
message, tokenizer, serializer, templates), included below, so that the parts call
each other at C level; this file holds what they share.

Framing follows QuickFIX so that peers see the same behaviour: a frame starts
at ``8=FIX``, BodyLength must be the second field and MsgType the third, and
the frame ends at the first ``<SOH>10=`` found from the position BodyLength
points at. A frame whose BodyLength, CheckSum or field syntax is wrong is
reported as :class:`Garbled` and dropped whole; bytes before ``8=FIX`` are
reported as Garbled too. Everything after garbage is parsed normally.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.datetime cimport (
    PyDate_Check,
    PyDateTime_Check,
    PyDateTime_DATE_GET_HOUR,
    PyDateTime_DATE_GET_MICROSECOND,
    PyDateTime_DATE_GET_MINUTE,
    PyDateTime_DATE_GET_SECOND,
    PyDateTime_GET_DAY,
    PyDateTime_GET_MONTH,
    PyDateTime_GET_YEAR,
    PyTime_Check,
    PyDateTime_TIME_GET_HOUR,
    PyDateTime_TIME_GET_MICROSECOND,
    PyDateTime_TIME_GET_MINUTE,
    PyDateTime_TIME_GET_SECOND,
    datetime_new,
    datetime_tzinfo,
    get_utc,
    import_datetime,
)
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.stdint cimport int32_t, int64_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memchr, memcmp, memcpy, memmove, memset
from posix.time cimport CLOCK_REALTIME, clock_gettime, timespec

from fastfix._buffer cimport Buf, buf_free, buf_init, buf_need, buf_put, buf_put_int
from fastfix._tags cimport (
    BEGIN_STRING,
    BODY_LENGTH,
    CHECK_SUM,
    MSG_SEQ_NUM,
    MSG_TYPE,
    SIGNATURE,
    SIGNATURE_LENGTH,
)

from decimal import Decimal

from fastfix.errors import EncodeError, ParseError
from fastfix.tags import FRAME_TAGS, HEADER_TAGS

import_datetime()

cdef extern from "Python.h":
    bint PyUnicode_IS_COMPACT_ASCII(object o)
    void* PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    const char* PyUnicode_AsUTF8AndSize(object o, Py_ssize_t* size) except NULL

SOH = b"\x01"

_UTC = get_utc()

cdef enum:
    C_SOH = 1
    C_EQ = 61       # '='
    C_0 = 48
    C_9 = 57

# Step results.
cdef enum:
    ST_FRAME = 0     # [start, end) is a frame; fields still to be checked
    ST_GARBLED = 1   # [start, end) is a broken frame
    ST_JUNK = 2      # [start, end) holds no frame start
    ST_NEED = 3      # the frame at start is incomplete

# Reasons a frame is garbled.
cdef enum:
    R_NONE = 0
    R_JUNK
    R_BEGIN_UNTERMINATED
    R_BAD_BEGIN
    R_NO_BODYLENGTH
    R_BAD_BODYLENGTH
    R_TOO_LARGE
    R_NO_CHECKSUM
    R_CHECKSUM_FORMAT
    R_LENGTH_MISMATCH
    R_NO_MSGTYPE
    R_BAD_FIELD
    R_DATA_LENGTH
    R_CHECKSUM_MISMATCH

cdef enum:
    # BeginString field ("8=FIXT.1.1<SOH>" and the like) fits in this many bytes.
    _MAX_BEGIN = 64


# --------------------------------------------------------------------------
# Data field table
# --------------------------------------------------------------------------

DEFAULT_DATA_FIELDS = {
    95: 96,      # RawDataLength -> RawData
    212: 213,    # XmlDataLen -> XmlData
    354: 355,    # EncodedTextLen -> EncodedText
    93: 89,      # SignatureLength -> Signature
    90: 91,      # SecureDataLen -> SecureData
    348: 349,    # EncodedIssuerLen -> EncodedIssuer
    350: 351,    # EncodedSecurityDescLen -> EncodedSecurityDesc
    352: 353,    # EncodedListExecInstLen -> EncodedListExecInst
    356: 357,    # EncodedSubjectLen -> EncodedSubject
    358: 359,    # EncodedHeadlineLen -> EncodedHeadline
    360: 361,    # EncodedAllocTextLen -> EncodedAllocText
    362: 363,    # EncodedUnderlyingIssuerLen -> EncodedUnderlyingIssuer
    364: 365,    # EncodedUnderlyingSecurityDescLen -> EncodedUnderlyingSecurityDesc
    445: 446,    # EncodedListStatusTextLen -> EncodedListStatusText
    618: 619,    # EncodedLegIssuerLen -> EncodedLegIssuer
    621: 622,    # EncodedLegSecurityDescLen -> EncodedLegSecurityDesc
    1277: 1278,  # DerivativeEncodedIssuerLen -> DerivativeEncodedIssuer
    1397: 1398,  # EncodedMktSegmDescLen -> EncodedMktSegmDesc
    1401: 1402,  # EncryptedPasswordLen -> EncryptedPassword
    1403: 1404,  # EncryptedNewPasswordLen -> EncryptedNewPassword
}


cdef int _table_init(DataTable* dt, object pairs) except -1:
    memset(dt, 0, sizeof(DataTable))
    if len(pairs) > MAX_DATA_PAIRS:
        raise ValueError(f"at most {MAX_DATA_PAIRS} data field pairs")
    cdef int k = 0
    cdef long lt, vt
    for len_tag, data_tag in pairs.items():
        lt = len_tag
        vt = data_tag
        if lt <= 0 or vt <= 0 or lt > 2147483647 or vt > 2147483647:
            raise ValueError(f"invalid data field pair {len_tag} -> {data_tag}")
        dt.len_tags[k] = <int32_t>lt
        dt.data_tags[k] = <int32_t>vt
        if lt < DATA_BITMAP_TAGS:
            dt.bitmap[lt >> 3] |= <unsigned char>(1 << (lt & 7))
        else:
            dt.has_large = True
        k += 1
    dt.npairs = k
    return 0


cdef inline int _data_tag_for(const DataTable* dt, int tag) noexcept nogil:
    """Data tag announced by length tag ``tag``, or 0."""
    cdef int k
    if tag < DATA_BITMAP_TAGS:
        if not (dt.bitmap[tag >> 3] & (1 << (tag & 7))):
            return 0
    elif not dt.has_large:
        return 0
    for k in range(dt.npairs):
        if dt.len_tags[k] == tag:
            return dt.data_tags[k]
    return 0


cdef DataTable _default_table
_table_init(&_default_table, DEFAULT_DATA_FIELDS)

# Tags whose values may carry SOH when encoding (data fields).
cdef unsigned char _data_value_bitmap[DATA_BITMAP_BYTES]
for _v in DEFAULT_DATA_FIELDS.values():
    _data_value_bitmap[_v >> 3] |= <unsigned char>(1 << (_v & 7))


include "codec_parts/timestamps.pyx"
include "codec_parts/message.pyx"
include "codec_parts/tokenizer.pyx"
include "codec_parts/serializer.pyx"
include "codec_parts/templates.pyx"
