"""Per-order hop timing: where an order spends its time inside the gateway.

Every new order gets a record of monotonic timestamps (``time.perf_counter_ns``,
which is ``CLOCK_MONOTONIC`` on Linux: the same clock as ``time.monotonic_ns`` in
any process of the host, so a load generator on the same machine can put its own
send and receive times beside them):

==============  ==============================================================
``received``    the REST request reached the RSGI handler
``validated``   decoded, checked, mapped to FIX (about to be persisted)
``persisted``   the group commit holding the order is durable
``fix_written`` the FIX session stored the NewOrderSingle and wrote it
``er_read``     the first report about the order came out of the FIX session
``ws_written``  that report, durable, is being written to the client's WebSocket(s)
==============  ==============================================================

The last report about the order (a fill, a cancel) is kept too, with its own
``er_read``/``ws_written`` pair, and the number of reports.

Records live in a bounded ring of lists allocated once and overwritten in place
(the oldest order is forgotten); per-hop histograms are
plain bucket counters updated in place (about 100 ns an observation, against
about 550 ns for ``prometheus_client.Histogram.observe``) and exposed on
``/metrics`` as the Prometheus histogram ``gateway_hop_seconds{hop=...}`` by a
collector that builds the families only when scraped.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client.metrics_core import HistogramMetricFamily, Metric

__all__ = ["HOPS", "HOP_NAMES", "BUCKETS_NS", "Tracer", "trace_answer"]

# Timestamps kept per order, in order (the first columns of its record).
HOP_NAMES = ("received", "validated", "persisted", "fix_written", "er_read", "ws_written")

# Histograms: name -> what it measures.
HOPS: dict[str, str] = {
    "validate": "received -> validated (decode, checks, JSON->FIX)",
    "persist": "validated -> persisted (group commit)",
    "fix_write": "persisted -> FIX written (session store + socket write)",
    "hub": "FIX written -> first report read (hub, broker and FIX session inbound)",
    "er_to_ws": "report read -> WebSocket frame written (every report)",
    "rest_to_fix": "received -> FIX written",
    "rest_to_ws": "received -> first report written to the WebSocket",
}

# 1-2-5 series from 1 µs to 1 s: fine where the gateway's own hops are (µs), coarse beyond.
BUCKETS_NS: tuple[int, ...] = tuple(
    m * 10**e for e in range(3, 9) for m in (1, 2, 5)
) + (1_000_000_000,)

_clock = time.perf_counter_ns

# Columns of a record (a list of ints per ring slot, allocated once and reused).
_RECV, _VAL, _PERS, _FIX, _ER, _WS, _SEQ, _NREP, _ER_LAST, _WS_LAST, _SEQ_LAST = range(11)
_COLS = 11
_ZERO_ROW = [0] * _COLS

_H_VALIDATE, _H_PERSIST, _H_FIX, _H_HUB, _H_ER_WS, _H_REST_FIX, _H_REST_WS = range(7)
_HOP_LIST = tuple(HOPS)
_NB = len(BUCKETS_NS) + 1


class Tracer:
    """Hop timestamps of the last ``ring_size`` orders and per-hop histograms.

    The ring's records are lists allocated once and overwritten in place (first
    and last report kept); histograms are flat bucket-count lists. All methods
    run on the gateway's event loop (no locks). With ``enabled=False``
    :meth:`start` returns ``None`` and nothing is recorded.
    """

    def __init__(self, ring_size: int = 65536, enabled: bool = True) -> None:
        if ring_size < 1:
            raise ValueError("ring_size must be positive")
        self.enabled = enabled
        self.ring_size = ring_size
        self._rows = [list(_ZERO_ROW) for _ in range(ring_size)]
        self._keys: list[bytes | None] = [None] * ring_size
        self._pos = 0
        self._by_key: dict[bytes, list[int]] = {}
        # client id -> {event seq -> (record or None, report read time)}, from publish until pushed
        self._pending: dict[str, dict[int, tuple[list[int] | None, int]]] = {}
        self._counts = [0] * (_NB * len(HOPS))  # hop h's buckets at [h * _NB, (h + 1) * _NB)
        self._sums = [0] * len(HOPS)
        # Set by the gateway when an inbound FIX message arrives; everything that
        # follows for that message runs synchronously, so one slot is enough.
        self.inbound_ns = 0
        # Offset to turn a monotonic reading into wall-clock time (for display only).
        self._wall_offset = time.time_ns() - _clock()

    # ------------------------------------------------------------------ hot path
    def _observe(self, hop: int, ns: int) -> None:
        if ns >= 0:
            self._counts[hop * _NB + bisect_left(BUCKETS_NS, ns)] += 1
            self._sums[hop] += ns

    def start(self, client_id: str, cl_ord_id: str, received_ns: int = 0) -> list[int] | None:
        """A validated order: open its record (``received_ns`` 0 = now) and return it."""
        if not self.enabled:
            return None
        now = _clock()
        if not received_ns:
            received_ns = now
        key = (client_id + ":" + cl_ord_id).encode()  # the ClOrdID as sent to the hub
        slot = self._pos
        self._pos = slot + 1 if slot + 1 < self.ring_size else 0
        keys = self._keys
        rec = self._rows[slot]
        old = keys[slot]
        if old is not None and self._by_key.get(old) is rec:  # (a newer record may hold the same key)
            del self._by_key[old]
        keys[slot] = key
        rec[:] = _ZERO_ROW
        rec[_RECV] = received_ns
        rec[_VAL] = now
        self._by_key[key] = rec
        d = now - received_ns
        if d >= 0:
            self._counts[bisect_left(BUCKETS_NS, d)] += 1  # _H_VALIDATE is hop 0
            self._sums[_H_VALIDATE] += d
        return rec

    def persisted(self, rec: list[int] | None) -> None:
        if rec is not None:
            rec[_PERS] = t = _clock()
            d = t - rec[_VAL]
            if d >= 0:
                self._counts[_H_PERSIST * _NB + bisect_left(BUCKETS_NS, d)] += 1
                self._sums[_H_PERSIST] += d

    def fix_written(self, rec: list[int] | None) -> None:
        if rec is not None:
            rec[_FIX] = t = _clock()
            self._observe(_H_FIX, t - (rec[_PERS] or rec[_VAL]))
            self._observe(_H_REST_FIX, t - rec[_RECV])

    def report(self, client_id: str, cl_ord_id: bytes | None, seq: int) -> None:
        """An event about ``cl_ord_id`` (wire form) was logged with sequence number ``seq``."""
        if not self.enabled:
            return
        t = self.inbound_ns or _clock()
        rec = self._by_key.get(cl_ord_id) if cl_ord_id is not None else None
        if rec is not None:
            if not rec[_ER]:
                rec[_ER] = t
                rec[_SEQ] = seq
                if rec[_FIX]:
                    self._observe(_H_HUB, t - rec[_FIX])
            rec[_NREP] += 1
            rec[_ER_LAST] = t
            rec[_WS_LAST] = 0
            rec[_SEQ_LAST] = seq
        pend = self._pending.get(client_id)
        if pend is None:
            pend = self._pending[client_id] = {}
        elif len(pend) > 65536:  # events never pushed (failed commits): do not grow without end
            pend.clear()
        pend[seq] = (rec, t)

    def pushed(self, client_id: str, seq: int, delivered: bool = True) -> None:
        """Event ``seq`` of the client is about to be written to its WebSocket subscribers (if ``delivered``)."""
        pend = self._pending.get(client_id)
        if pend is None:
            return
        entry = pend.pop(seq, None)
        if entry is None or not delivered:
            return
        rec, t_er = entry
        t = _clock()
        d = t - t_er
        if d >= 0:
            self._counts[_H_ER_WS * _NB + bisect_left(BUCKETS_NS, d)] += 1
            self._sums[_H_ER_WS] += d
        if rec is not None:
            # the record may have been reused by a newer order meanwhile: the sequence numbers tell
            if rec[_SEQ] == seq and not rec[_WS]:
                rec[_WS] = t
                self._observe(_H_REST_WS, t - rec[_RECV])
            if rec[_SEQ_LAST] == seq:
                rec[_WS_LAST] = t

    # ------------------------------------------------------------------ reading
    def trace(self, client_id: str, cl_ord_id: str) -> dict[str, Any] | None:
        """One order's hop timestamps (``None`` when it is not in the ring)."""
        rec = self._by_key.get((client_id + ":" + cl_ord_id).encode())
        if rec is None:
            return None
        row = list(rec)
        stamps = {name: (row[i] or None) for i, name in enumerate(HOP_NAMES)}
        t0 = row[_RECV]

        def us(a: int, b: int) -> float | None:
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
        reports: list[dict[str, Any]] = []
        if row[_NREP]:
            reports.append({"seq": row[_SEQ], "er_read": row[_ER], "ws_written": row[_WS] or None,
                            "er_to_ws_us": us(row[_ER], row[_WS])})
            if row[_SEQ_LAST] != row[_SEQ]:
                reports.append({"seq": row[_SEQ_LAST], "er_read": row[_ER_LAST],
                                "ws_written": row[_WS_LAST] or None, "er_to_ws_us": us(row[_ER_LAST], row[_WS_LAST])})
        wall = t0 + self._wall_offset
        return {
            "ClOrdID": cl_ord_id,
            "received": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(wall // 10**9)) + f".{wall % 10**9 // 1000:06d}Z",
            "clock": "monotonic_ns",
            "timestamps": stamps,
            "hops_us": hops,
            "report_count": row[_NREP],
            "reports": reports,
        }

    def histograms(self) -> dict[str, tuple[list[int], int]]:
        """Per hop: (bucket counts, non-cumulative, one more than :data:`BUCKETS_NS`; sum in ns)."""
        return {name: (self._counts[h * _NB:(h + 1) * _NB], self._sums[h]) for h, name in enumerate(_HOP_LIST)}

    # ------------------------------------------------------------------ Prometheus collector
    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily("gateway_hop_seconds", "Time between two hops of an order", labels=["hop"])

    def collect(self) -> Iterator[Metric]:
        fam = HistogramMetricFamily("gateway_hop_seconds", "Time between two hops of an order", labels=["hop"])
        for name, (counts, total) in self.histograms().items():
            buckets = []
            acc = 0
            for bound, n in zip(BUCKETS_NS, counts, strict=False):
                acc += n
                buckets.append((repr(bound / 1e9), acc))
            acc += counts[-1]
            buckets.append(("+Inf", acc))
            fam.add_metric([name], buckets, total / 1e9)
        yield fam



def trace_answer(tracer: Tracer, client_id: str, cl_ord_id: str) -> bytes:
    """Body of ``GET /v1/orders/{ClOrdID}/trace`` (404 when the order is not in the ring)."""
    import msgspec

    from server.gateway.errors import ApiError

    found = tracer.trace(client_id, cl_ord_id)
    if found is None:
        raise ApiError(404, "not_found", f"no trace for order {cl_ord_id} (not traced, or older than the ring)")
    return msgspec.json.encode(found)
