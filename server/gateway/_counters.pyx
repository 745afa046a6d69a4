# cython: language_level=3, boundscheck=False, wraparound=False
"""Compiled primitives updated on every request: a counter value, histogram buckets
and a token bucket. They are touched only from the gateway's event loop thread, so
they take no lock; the Prometheus families are built from them when scraped
(``server/gateway/metrics.py``)."""

from cpython.mem cimport PyMem_Free, PyMem_Malloc
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

__all__ = ["Buckets", "Family", "TokenBucket", "Value"]


cdef class Value:
    """One counter (``value`` may also be added to directly)."""

    cdef public double value

    def __init__(self):
        self.value = 0.0

    def inc(self, double amount=1.0):
        self.value += amount


cdef class Buckets:
    """Non-cumulative bucket counts of a histogram (one more than ``bounds``: +Inf) and the sum."""

    cdef readonly tuple bounds
    cdef double* _bounds
    cdef long long* _counts
    cdef Py_ssize_t _n
    cdef public double total

    def __cinit__(self, tuple bounds):
        self._n = len(bounds)
        self._bounds = <double*>PyMem_Malloc((self._n + 1) * sizeof(double))
        self._counts = <long long*>PyMem_Malloc((self._n + 1) * sizeof(long long))
        if self._bounds == NULL or self._counts == NULL:
            raise MemoryError()
        cdef Py_ssize_t i
        for i in range(self._n + 1):
            self._counts[i] = 0
            if i < self._n:
                self._bounds[i] = bounds[i]
        self.bounds = bounds
        self.total = 0.0

    def __dealloc__(self):
        PyMem_Free(self._bounds)
        PyMem_Free(self._counts)

    def observe(self, double value):
        cdef Py_ssize_t i = 0
        while i < self._n and self._bounds[i] < value:  # bisect_left
            i += 1
        self._counts[i] += 1
        self.total += value

    @property
    def counts(self):
        return [self._counts[i] for i in range(self._n + 1)]


cdef class Family:
    """The children of a labelled metric family, by label values: ``labels(...)`` runs for
    several metrics of every order. Subclasses make a child (``_new_child``)."""

    cdef readonly dict _children

    def __init__(self):
        self._children = {}

    def labels(self, *values):
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._new_child()
        return child

    def _new_child(self):
        raise NotImplementedError


cdef inline double _monotonic() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)  # time.monotonic's clock
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef class TokenBucket:
    """Classic token bucket: ``rate`` tokens per second, at most ``burst`` saved up."""

    cdef readonly double rate
    cdef readonly double burst
    cdef double _tokens
    cdef double _stamp

    def __init__(self, double rate, double burst):
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._stamp = _monotonic()

    def take(self, double n=1.0):
        """Take ``n`` tokens: 0.0 if allowed, else the seconds to wait before retrying."""
        cdef double now = _monotonic()
        cdef double tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if tokens >= n:
            self._tokens = tokens - n
            return 0.0
        self._tokens = tokens
        return (n - tokens) / self.rate
