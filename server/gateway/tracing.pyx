# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Per-order hop timing: where an order spends its time inside the gateway.

Every new order gets a record of monotonic timestamps (``time.perf_counter_ns``,
which is ``CLOCK_MONOTONIC`` on Linux: the same clock as ``time.monotonic_ns`` in
any process of the host, so a load generator on the same machine can put its own
send and receive times beside them):

==============  ==============================================================
``received``    the REST request reached the RSGI handler
``validated``   decoded, checked, mapped to FIX (about to be persisted)
``persisted``   the journal record holding the order is written (its durable point)
``fix_written`` the FIX session stored the NewOrderSingle and wrote it
``er_read``     the first report about the order came out of the FIX session
``ws_written``  that report, journaled, is being written to the client's WebSocket(s)
==============  ==============================================================

The last report about the order (a fill, a cancel) is kept too, with its own
``er_read``/``ws_written`` pair, and the number of reports.

Hops are also counted (:meth:`Tracer.count_passes`, off by default because it keeps
the event loop from sleeping): the event-loop passes and the thread changes
between ``received`` and ``fix_written``, and between ``er_read`` and
``ws_written``. A run-to-completion path shows zero of both.

Records live in a bounded ring of C integers allocated once and overwritten in
place (the oldest order is forgotten); per-hop histograms are C bucket counters
updated in place, exposed on ``/metrics`` as the Prometheus histogram
``gateway_hop_seconds{hop=...}`` by a collector that builds the families only
when scraped. This runs several times for every order, so it is compiled: an
order's record is the index of its ring slot, and no Python object is made on
the hot path except the key that finds an order's record from its reports.
"""

import time

from cpython.mem cimport PyMem_Calloc, PyMem_Free
from cpython.pythread cimport PyThread_get_thread_ident
from libc.stdint cimport int64_t
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec
from prometheus_client.metrics_core import HistogramMetricFamily

__all__ = ["HOPS", "HOP_NAMES", "BUCKETS_NS", "Tracer", "trace_answer"]

# Timestamps kept per order, in order (the first columns of its record).
HOP_NAMES = ("received", "validated", "persisted", "fix_written", "er_read", "ws_written")

# Histograms: name -> what it measures.
HOPS = {
    "validate": "received -> validated (decode, checks, JSON->FIX)",
    "persist": "validated -> persisted (journal write)",
    "fix_write": "persisted -> FIX written (session store + socket write)",
    "hub": "FIX written -> first report read (hub, broker and FIX session inbound)",
    "er_to_ws": "report read -> WebSocket frame written (every report)",
    "rest_to_fix": "received -> FIX written",
    "rest_to_ws": "received -> first report written to the WebSocket",
}

# 1-2-5 series from 1 µs to 1 s: fine where the gateway's own hops are (µs), coarse beyond.
BUCKETS_NS = tuple(m * 10**e for e in range(3, 9) for m in (1, 2, 5)) + (1_000_000_000,)

# Columns of a record (one row of the ring).
cdef enum:
    _RECV = 0
    _VAL = 1
    _PERS = 2
    _FIX = 3
    _ER = 4
    _WS = 5
    _SEQ = 6
    _NREP = 7
    _ER_LAST = 8
    _WS_LAST = 9
    _SEQ_LAST = 10
    _P_RECV = 11  # loop pass (see count_passes) and thread of four hops
    _P_FIX = 12
    _P_ER = 13
    _P_WS = 14
    _T_RECV = 15
    _T_FIX = 16
    _T_ER = 17
    _T_WS = 18
    _COLS = 19

# Histograms, in the order of HOPS.
cdef enum:
    _H_VALIDATE = 0
    _H_PERSIST = 1
    _H_FIX = 2
    _H_HUB = 3
    _H_ER_WS = 4
    _H_REST_FIX = 5
    _H_REST_WS = 6
    _NHOPS = 7
    _NBOUNDS = 19  # len(BUCKETS_NS)
    _NB = 20  # buckets per hop: one per bound and +Inf

_HOP_LIST = tuple(HOPS)
assert len(BUCKETS_NS) == _NBOUNDS and len(HOPS) == _NHOPS

cdef int64_t _BOUNDS[_NBOUNDS]
for _i, _b in enumerate(BUCKETS_NS):
    _BOUNDS[_i] = _b


cdef inline int64_t _clock() noexcept nogil:
    # time.perf_counter_ns reads CLOCK_MONOTONIC on Linux: the same readings as the gateway's
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1_000_000_000 + ts.tv_nsec


cdef inline int _bucket(int64_t ns) noexcept nogil:
    """bisect_left(BUCKETS_NS, ns)."""
    cdef int i = 0
    while i < _NBOUNDS and _BOUNDS[i] < ns:
        i += 1
    return i


cdef class Tracer:
    """Hop timestamps of the last ``ring_size`` orders and per-hop histograms.

    :meth:`start` returns the order's record (its ring slot, an int) that
    :meth:`persisted` and :meth:`fix_written` take; the first and last report
    are kept. All methods run on the gateway's event loop (no locks). With
    ``enabled=False`` :meth:`start` returns ``None`` and nothing is recorded.
    """

    cdef readonly bint enabled
    cdef readonly Py_ssize_t ring_size
    cdef int64_t* _rows
    cdef list _keys
    cdef Py_ssize_t _pos
    cdef public dict _by_key
    # client id -> {event seq -> (record or -1, report read time)}, from publish until pushed
    cdef public dict _pending
    cdef int64_t _counts[_NHOPS * _NB]
    cdef int64_t _sums[_NHOPS]
    # Set by the gateway when an inbound FIX message arrives; everything that
    # follows for that message runs synchronously, so one slot is enough.
    cdef public int64_t inbound_ns
    cdef public int64_t passes  # event-loop passes counted so far (0 unless count_passes runs)
    cdef public bint counting
    cdef object _loop
    cdef int64_t _wall_offset  # monotonic reading -> wall-clock time (for display only)

    def __cinit__(self, Py_ssize_t ring_size=65536, bint enabled=True):
        if ring_size < 1:
            raise ValueError("ring_size must be positive")
        self.enabled = enabled
        self.ring_size = ring_size
        self._rows = <int64_t*>PyMem_Calloc(ring_size * _COLS, sizeof(int64_t))
        if self._rows == NULL:
            raise MemoryError()
        self._keys = [None] * ring_size
        self._pos = 0
        self._by_key = {}
        self._pending = {}
        self.inbound_ns = 0
        self._wall_offset = time.time_ns() - _clock()

    def __dealloc__(self):
        PyMem_Free(self._rows)

    # ------------------------------------------------------------------ hot path
    cdef inline void _obs(self, int hop, int64_t ns) noexcept:
        if ns >= 0:
            self._counts[hop * _NB + _bucket(ns)] += 1
            self._sums[hop] += ns

    def _observe(self, int hop, int64_t ns) -> None:
        self._obs(hop, ns)

    def start(self, str client_id, str cl_ord_id, int64_t received_ns=0):
        """A validated order: open its record (``received_ns`` 0 = now) and return it."""
        if not self.enabled:
            return None
        cdef int64_t now = _clock()
        if not received_ns:
            received_ns = now
        key = (client_id + ":" + cl_ord_id).encode()  # the ClOrdID as sent to the hub
        cdef Py_ssize_t slot = self._pos
        self._pos = slot + 1 if slot + 1 < self.ring_size else 0
        old = self._keys[slot]
        if old is not None and self._by_key.get(old) == slot:  # (a newer record may hold the same key)
            del self._by_key[old]
        self._keys[slot] = key
        cdef int64_t* rec = self._rows + slot * _COLS
        cdef int i
        for i in range(_COLS):
            rec[i] = 0
        rec[_RECV] = received_ns
        rec[_VAL] = now
        rec[_P_RECV] = self.passes
        rec[_T_RECV] = <int64_t>PyThread_get_thread_ident()
        self._by_key[key] = slot
        self._obs(_H_VALIDATE, now - received_ns)
        return slot

    def persisted(self, rec) -> None:
        if rec is None:
            return
        cdef int64_t* r = self._rows + <Py_ssize_t>rec * _COLS
        r[_PERS] = _clock()
        self._obs(_H_PERSIST, r[_PERS] - r[_VAL])

    def fix_written(self, rec) -> None:
        if rec is None:
            return
        cdef int64_t* r = self._rows + <Py_ssize_t>rec * _COLS
        cdef int64_t t = _clock()
        r[_FIX] = t
        r[_P_FIX] = self.passes
        r[_T_FIX] = <int64_t>PyThread_get_thread_ident()
        self._obs(_H_FIX, t - (r[_PERS] or r[_VAL]))
        self._obs(_H_REST_FIX, t - r[_RECV])

    def report(self, str client_id, cl_ord_id, int64_t seq) -> None:
        """An event about ``cl_ord_id`` (wire form, bytes or None) was logged with sequence number ``seq``."""
        if not self.enabled:
            return
        cdef int64_t t = self.inbound_ns or _clock()
        found = self._by_key.get(cl_ord_id) if cl_ord_id is not None else None
        cdef Py_ssize_t slot = -1
        cdef int64_t* r
        if found is not None:
            slot = found
            r = self._rows + slot * _COLS
            if not r[_ER]:
                r[_ER] = t
                r[_SEQ] = seq
                r[_P_ER] = self.passes
                r[_T_ER] = <int64_t>PyThread_get_thread_ident()
                if r[_FIX]:
                    self._obs(_H_HUB, t - r[_FIX])
            r[_NREP] += 1
            r[_ER_LAST] = t
            r[_WS_LAST] = 0
            r[_SEQ_LAST] = seq
        pend = self._pending.get(client_id)
        if pend is None:
            pend = self._pending[client_id] = {}
        elif len(pend) > 65536:  # events never pushed (failed commits): do not grow without end
            pend.clear()
        pend[seq] = (slot, t)

    def pushed(self, str client_id, int64_t seq, bint delivered=True) -> None:
        """Event ``seq`` of the client is about to be written to its WebSocket subscribers (if ``delivered``)."""
        pend = self._pending.get(client_id)
        if pend is None:
            return
        entry = pend.pop(seq, None)
        if entry is None or not delivered:
            return
        cdef Py_ssize_t slot = entry[0]
        cdef int64_t t_er = entry[1]
        cdef int64_t t = _clock()
        self._obs(_H_ER_WS, t - t_er)
        cdef int64_t* r
        if slot >= 0:
            r = self._rows + slot * _COLS
            # the record may have been reused by a newer order meanwhile: the sequence numbers tell
            if r[_SEQ] == seq and not r[_WS]:
                r[_WS] = t
                r[_P_WS] = self.passes
                r[_T_WS] = <int64_t>PyThread_get_thread_ident()
                self._obs(_H_REST_WS, t - r[_RECV])
            if r[_SEQ_LAST] == seq:
                r[_WS_LAST] = t

    # ------------------------------------------------------------------ hop counting
    def count_passes(self, loop) -> None:
        """Count event-loop passes from now on: a callback that reschedules itself runs once
        per pass. It keeps the loop from sleeping (a busy loop): for measurements only."""
        self._loop = loop
        self.counting = True
        loop.call_soon(self._tick)

    def stop_counting(self) -> None:
        self.counting = False

    def _tick(self) -> None:
        if self.counting:
            self.passes += 1
            self._loop.call_soon(self._tick)

    # ------------------------------------------------------------------ reading
    def trace(self, str client_id, str cl_ord_id):
        """One order's hop timestamps (``None`` when it is not in the ring)."""
        found = self._by_key.get((client_id + ":" + cl_ord_id).encode())
        if found is None:
            return None
        cdef Py_ssize_t slot = found
        row = [self._rows[slot * _COLS + i] for i in range(_COLS)]
        stamps = {name: (row[i] or None) for i, name in enumerate(HOP_NAMES)}
        t0 = row[_RECV]

        def us(a, b):
            return round((b - a) / 1000, 3) if a and b else None

        hops = {
            "validate": us(row[_RECV], row[_VAL]),
            "persist": us(row[_VAL], row[_PERS]),
            "fix_write": us(row[_PERS], row[_FIX]),
            "hub": us(row[_FIX], row[_ER]),
            "er_to_ws": us(row[_ER], row[_WS]),
            "rest_to_fix": us(t0, row[_FIX]),
            "rest_to_ws": us(t0, row[_WS]),
        }
        reports = []
        if row[_NREP]:
            reports.append({"seq": row[_SEQ], "er_read": row[_ER], "ws_written": row[_WS] or None,
                            "er_to_ws_us": us(row[_ER], row[_WS])})
            if row[_SEQ_LAST] != row[_SEQ]:
                reports.append({"seq": row[_SEQ_LAST], "er_read": row[_ER_LAST],
                                "ws_written": row[_WS_LAST] or None, "er_to_ws_us": us(row[_ER_LAST], row[_WS_LAST])})
        def hops_between(int a, int b, int ta, int tb):
            if not row[ta] or not row[tb]:
                return None
            return {"loop_passes": (row[b] - row[a]) if self.counting or self.passes else None,
                    "thread_changes": int(row[ta] != row[tb])}

        wall = t0 + self._wall_offset
        return {
            "ClOrdID": cl_ord_id,
            "received": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(wall // 10**9)) + f".{wall % 10**9 // 1000:06d}Z",
            "clock": "monotonic_ns",
            "timestamps": stamps,
            "hops_us": hops,
            "report_count": row[_NREP],
            "reports": reports,
            "hop_counts": {"rest_to_fix": hops_between(_P_RECV, _P_FIX, _T_RECV, _T_FIX),
                           "er_to_ws": hops_between(_P_ER, _P_WS, _T_ER, _T_WS)},
        }

    def histograms(self):
        """Per hop: (bucket counts, non-cumulative, one more than :data:`BUCKETS_NS`; sum in ns)."""
        return {name: ([self._counts[h * _NB + i] for i in range(_NB)], self._sums[h])
                for h, name in enumerate(_HOP_LIST)}

    # ------------------------------------------------------------------ Prometheus collector
    def describe(self):
        return [HistogramMetricFamily("gateway_hop_seconds", "Time between two hops of an order", labels=["hop"])]

    def collect(self):
        fam = HistogramMetricFamily("gateway_hop_seconds", "Time between two hops of an order", labels=["hop"])
        for name, (counts, total) in self.histograms().items():
            buckets = []
            acc = 0
            for bound, n in zip(BUCKETS_NS, counts):
                acc += n
                buckets.append((repr(bound / 1e9), acc))
            acc += counts[_NB - 1]
            buckets.append(("+Inf", acc))
            fam.add_metric([name], buckets, total / 1e9)
        return [fam]


def trace_answer(Tracer tracer, str client_id, str cl_ord_id) -> bytes:
    """Body of ``GET /v1/orders/{ClOrdID}/trace`` (404 when the order is not in the ring)."""
    import msgspec

    from server.gateway.errors import ApiError

    found = tracer.trace(client_id, cl_ord_id)
    if found is None:
        raise ApiError(404, "not_found", f"no trace for order {cl_ord_id} (not traced, or older than the ring)")
    return msgspec.json.encode(found)
