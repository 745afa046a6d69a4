# Included by fastfix/_codec.pyx (one extension module, so calls stay C-level).
# UTCTimestamp writing and parsing (utc_timestamp, parse_utc_timestamp, Message.get_utc).


cdef inline int _digit(unsigned char c) noexcept nogil:
    return <int>c - C_0 if C_0 <= c <= C_9 else -1


cdef int _days_in_month(int y, int m) noexcept nogil:
    if m == 2:
        return 29 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 28
    if m == 4 or m == 6 or m == 9 or m == 11:
        return 30
    return 31


cdef object _parse_ts(const unsigned char* p, Py_ssize_t n):
    """UTCTimestamp ``YYYYMMDD-HH:MM:SS[.f{1,9}]`` -> aware datetime (UTC)."""
    cdef int y, mo, d, H, M, S, us = 0, dig, k
    cdef int v[14]
    cdef int idx[14]
    if n < 17 or p[8] != 45 or p[11] != 58 or p[14] != 58:
        raise ValueError(f"not a UTCTimestamp: {PyBytes_FromStringAndSize(<const char*>p, n)!r}")
    idx[:] = [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 12, 13, 15, 16]
    for k in range(14):
        v[k] = _digit(p[idx[k]])
        if v[k] < 0:
            raise ValueError(f"not a UTCTimestamp: {PyBytes_FromStringAndSize(<const char*>p, n)!r}")
    y = v[0] * 1000 + v[1] * 100 + v[2] * 10 + v[3]
    mo = v[4] * 10 + v[5]
    d = v[6] * 10 + v[7]
    H = v[8] * 10 + v[9]
    M = v[10] * 10 + v[11]
    S = v[12] * 10 + v[13]
    if n > 17:
        if p[17] != 46 or n == 18 or n > 27:
            raise ValueError(f"not a UTCTimestamp: {PyBytes_FromStringAndSize(<const char*>p, n)!r}")
        for k in range(18, n):
            dig = _digit(p[k])
            if dig < 0:
                raise ValueError(
                    f"not a UTCTimestamp: {PyBytes_FromStringAndSize(<const char*>p, n)!r}")
            if k < 24:
                us = us * 10 + dig
        k = n
        while k < 24:
            us *= 10
            k += 1
    if y < 1 or mo < 1 or mo > 12 or d < 1 or d > _days_in_month(y, mo) or H > 23 or M > 59 or S > 60:
        raise ValueError(f"not a UTCTimestamp: {PyBytes_FromStringAndSize(<const char*>p, n)!r}")
    if S == 60:
        # A leap second; datetime cannot hold it, so it becomes the last microsecond before.
        S = 59
        us = 999999
    return datetime_new(y, mo, d, H, M, S, us, _UTC)




cdef inline void _civil(int64_t days, int* y, int* m, int* d) noexcept nogil:
    """Days since 1970-01-01 -> proleptic Gregorian date (era arithmetic)."""
    cdef int64_t z = days + 719468
    cdef int64_t era = (z if z >= 0 else z - 146096) // 146097
    cdef int64_t doe = z - era * 146097
    cdef int64_t yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    cdef int64_t doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    cdef int64_t mp = (5 * doy + 2) // 153
    d[0] = <int>(doy - (153 * mp + 2) // 5 + 1)
    m[0] = <int>(mp + 3 if mp < 10 else mp - 9)
    y[0] = <int>(yoe + era * 400 + (1 if m[0] <= 2 else 0))


cdef inline void _put2(char* o, int v) noexcept nogil:
    o[0] = <char>(C_0 + v // 10)
    o[1] = <char>(C_0 + v % 10)


cdef int _write_hms(char* o, int H, int M, int S, long frac_ns, int prec) noexcept nogil:
    """Write HH:MM:SS[.fff...] (prec 0/3/6/9 fraction digits); return the length."""
    cdef int k
    cdef long v
    _put2(o, H)
    o[2] = 58
    _put2(o + 3, M)
    o[5] = 58
    _put2(o + 6, S)
    if prec == 0:
        return 8
    o[8] = 46
    v = frac_ns
    for k in range(9 - prec):
        v //= 10
    for k in range(prec - 1, -1, -1):
        o[9 + k] = <char>(C_0 + v % 10)
        v //= 10
    return 9 + prec


cdef int _write_ts(char* o, int y, int mo, int d, int H, int M, int S, long frac_ns, int prec) noexcept nogil:
    """Write YYYYMMDD-HH:MM:SS[.fff...]; return the length."""
    _put2(o, y // 100)
    _put2(o + 2, y % 100)
    _put2(o + 4, mo)
    _put2(o + 6, d)
    o[8] = 45
    return 9 + _write_hms(o + 9, H, M, S, frac_ns, prec)


cdef int _write_ts_ns(char* o, int64_t ns, int prec) noexcept nogil:
    # cdivision truncates toward zero: floor by hand for instants before 1970.
    cdef int64_t days = ns // 86400000000000LL
    cdef int64_t rem = ns - days * 86400000000000LL
    if rem < 0:
        days -= 1
        rem += 86400000000000LL
    cdef int y, mo, d
    cdef int64_t secs = rem // 1000000000
    _civil(days, &y, &mo, &d)
    return _write_ts(o, y, mo, d, <int>(secs // 3600), <int>((secs // 60) % 60), <int>(secs % 60),
                     <long>(rem % 1000000000), prec)


cdef int _write_ts_dt(char* o, object dt, int prec) except -1:
    """Write a datetime (naive = UTC; aware converted to UTC)."""
    tz = datetime_tzinfo(dt)
    if tz is not None and tz is not _UTC:
        dt = dt.astimezone(_UTC)
    return _write_ts(o, PyDateTime_GET_YEAR(dt), PyDateTime_GET_MONTH(dt), PyDateTime_GET_DAY(dt),
                     PyDateTime_DATE_GET_HOUR(dt), PyDateTime_DATE_GET_MINUTE(dt),
                     PyDateTime_DATE_GET_SECOND(dt), PyDateTime_DATE_GET_MICROSECOND(dt) * 1000, prec)


cdef inline int _check_prec(int prec) except -1:
    if prec != 0 and prec != 3 and prec != 6 and prec != 9:
        raise ValueError("precision must be 0, 3, 6 or 9")
    return 0


cdef inline int64_t _now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec


def utc_timestamp(value=None, int precision=3) -> bytes:
    """UTCTimestamp bytes for ``value`` (None = now, datetime, or int ns since the epoch).

    ``precision`` is the number of fraction digits: 0, 3 (ms), 6 (µs) or 9 (ns).
    """
    cdef char o[32]
    cdef int n
    _check_prec(precision)
    if value is None:
        n = _write_ts_ns(o, _now_ns(), precision)
    elif PyDateTime_Check(value):
        n = _write_ts_dt(o, value, precision)
    elif isinstance(value, int):
        n = _write_ts_ns(o, value, precision)
    else:
        raise TypeError("value must be None, a datetime or int nanoseconds")
    return PyBytes_FromStringAndSize(o, n)


def parse_utc_timestamp(value) -> object:
    """Parse ``YYYYMMDD-HH:MM:SS[.fraction]`` (bytes or str) to an aware datetime in UTC."""
    if isinstance(value, str):
        value = (<str>value).encode("ascii")
    elif type(value) is not bytes:
        value = bytes(value)
    return _parse_ts(<const unsigned char*>PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value))
