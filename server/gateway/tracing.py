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

Later reports about the order (fills, cancels) are kept with their own
``er_read``/``ws_written`` pair (up to :data:`MAX_REPORTS` per order).

Records live in a bounded ring (the oldest is forgotten); per-hop histograms are
plain bucket counters updated in place (about 80 ns an observation, against
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

__all__ = ["HOPS", "HOP_NAMES", "BUCKETS_NS", "MAX_REPORTS", "Tracer", "trace_answer"]

# Timestamps kept per order, in order (indices 1.. of a record).
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

MAX_REPORTS = 16  # later reports about one order kept in its record

_clock = time.perf_counter_ns

# Record layout (a list: cheaper to create and update than an object).
_KEY, _RECV, _VAL, _PERS, _FIX, _ER, _WS, _REPORTS = range(8)
# Report entry layout.
_R_SEQ, _R_ER, _R_WS, _R_REC = range(4)

_H_VALIDATE, _H_PERSIST, _H_FIX, _H_HUB, _H_ER_WS, _H_REST_FIX, _H_REST_WS = range(7)
_HOP_LIST = tuple(HOPS)


class _Hist:
    """Bucket counts (non-cumulative) and sum, in nanoseconds."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS_NS) + 1)
        self.total = 0


class Tracer:
    """Hop timestamps of the last ``ring_size`` orders and per-hop histograms.

    All methods run on the gateway's event loop (no locks). With
    ``enabled=False`` :meth:`start` returns ``None`` and nothing is recorded.
    """

    def __init__(self, ring_size: int = 65536, enabled: bool = True) -> None:
        if ring_size < 1:
            raise ValueError("ring_size must be positive")
        self.enabled = enabled
        self.ring_size = ring_size
        self._ring: list[list[Any] | None] = [None] * ring_size
        self._pos = 0
        self._by_key: dict[bytes, list[Any]] = {}
        # client id -> {event seq -> report entry}, from publish until pushed
        self._pending: dict[str, dict[int, list[Any]]] = {}
        self._hists = [_Hist() for _ in HOPS]
        # Set by the gateway when an inbound FIX message arrives; everything that
        # follows for that message runs synchronously, so one slot is enough.
        self.inbound_ns = 0
        # Offset to turn a monotonic reading into wall-clock time (for display only).
        self._wall_offset = time.time_ns() - _clock()

    # ------------------------------------------------------------------ hot path
    def _observe(self, hop: int, ns: int) -> None:
        if ns >= 0:
            h = self._hists[hop]
            h.counts[bisect_left(BUCKETS_NS, ns)] += 1
            h.total += ns

    def start(self, client_id: str, cl_ord_id: str, received_ns: int = 0) -> list[Any] | None:
        """A validated order: open its record (``received_ns`` 0 = now)."""
        if not self.enabled:
            return None
        now = _clock()
        if not received_ns:
            received_ns = now
        key = (client_id + ":" + cl_ord_id).encode()  # the ClOrdID as sent to the hub
        rec = [key, received_ns, now, 0, 0, 0, 0, None]
        pos = self._pos
        ring = self._ring
        old = ring[pos]
        if old is not None and self._by_key.get(old[_KEY]) is old:
            del self._by_key[old[_KEY]]
        ring[pos] = rec
        self._pos = (pos + 1) % self.ring_size
        self._by_key[key] = rec
        self._observe(_H_VALIDATE, now - received_ns)
        return rec

    def persisted(self, rec: list[Any] | None) -> None:
        if rec is not None:
            rec[_PERS] = t = _clock()
            self._observe(_H_PERSIST, t - rec[_VAL])

    def fix_written(self, rec: list[Any] | None) -> None:
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
        entry = [seq, t, 0, rec]
        if rec is not None:
            if not rec[_ER]:
                rec[_ER] = t
                if rec[_FIX]:
                    self._observe(_H_HUB, t - rec[_FIX])
            reports = rec[_REPORTS]
            if reports is None:
                rec[_REPORTS] = [entry]
            elif len(reports) < MAX_REPORTS:
                reports.append(entry)
        pend = self._pending.get(client_id)
        if pend is None:
            pend = self._pending[client_id] = {}
        elif len(pend) > 65536:  # events never pushed (failed commits): do not grow without end
            pend.clear()
        pend[seq] = entry

    def pushed(self, client_id: str, seq: int, delivered: bool = True) -> None:
        """Event ``seq`` of the client is about to be written to its WebSocket subscribers (if ``delivered``)."""
        pend = self._pending.get(client_id)
        if pend is None:
            return
        entry = pend.pop(seq, None)
        if entry is None or not delivered:
            return
        entry[_R_WS] = t = _clock()
        self._observe(_H_ER_WS, t - entry[_R_ER])
        rec = entry[_R_REC]
        if rec is not None and not rec[_WS]:
            rec[_WS] = t
            self._observe(_H_REST_WS, t - rec[_RECV])

    # ------------------------------------------------------------------ reading
    def trace(self, client_id: str, cl_ord_id: str) -> dict[str, Any] | None:
        """One order's hop timestamps (``None`` when it is not in the ring)."""
        rec = self._by_key.get((client_id + ":" + cl_ord_id).encode())
        if rec is None:
            return None
        stamps = {name: (rec[i + 1] or None) for i, name in enumerate(HOP_NAMES)}
        t0 = rec[_RECV]

        def us(a: int, b: int) -> float | None:
            return round((b - a) / 1000, 3) if a and b else None

        hops = {
            "validate": us(rec[_RECV], rec[_VAL]),
            "persist": us(rec[_VAL], rec[_PERS]),
            "fix_write": us(rec[_PERS], rec[_FIX]),
            "hub": us(rec[_FIX], rec[_ER]),
            "er_to_ws": us(rec[_ER], rec[_WS]),
            "rest_to_fix": us(t0, rec[_FIX]),
            "rest_to_ws": us(t0, rec[_WS]),
        }
        reports = [
            {"seq": e[_R_SEQ], "er_read": e[_R_ER], "ws_written": e[_R_WS] or None,
             "er_to_ws_us": us(e[_R_ER], e[_R_WS])}
            for e in (rec[_REPORTS] or ())
        ]
        wall = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((t0 + self._wall_offset) // 10**9))
        return {
            "ClOrdID": cl_ord_id,
            "received": f"{wall}.{(t0 + self._wall_offset) % 10**9 // 1000:06d}Z",
            "clock": "monotonic_ns",
            "timestamps": stamps,
            "hops_us": hops,
            "reports": reports,
        }

    def histograms(self) -> dict[str, tuple[list[int], int]]:
        """Per hop: (bucket counts, non-cumulative, one more than :data:`BUCKETS_NS`; sum in ns)."""
        return {name: (list(h.counts), h.total) for name, h in zip(_HOP_LIST, self._hists, strict=True)}

    # ------------------------------------------------------------------ Prometheus collector
    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily("gateway_hop_seconds", "Time between two hops of an order", labels=["hop"])

    def collect(self) -> Iterator[Metric]:
        fam = HistogramMetricFamily("gateway_hop_seconds", "Time between two hops of an order", labels=["hop"])
        for name, h in zip(_HOP_LIST, self._hists, strict=True):
            buckets = []
            acc = 0
            for bound, n in zip(BUCKETS_NS, h.counts, strict=False):
                acc += n
                buckets.append((repr(bound / 1e9), acc))
            acc += h.counts[-1]
            buckets.append(("+Inf", acc))
            fam.add_metric([name], buckets, h.total / 1e9)
        yield fam


def trace_answer(tracer: Tracer, client_id: str, cl_ord_id: str) -> bytes:
    """Body of ``GET /v1/orders/{ClOrdID}/trace`` (404 when the order is not in the ring)."""
    import msgspec

    from server.gateway.errors import ApiError

    found = tracer.trace(client_id, cl_ord_id)
    if found is None:
        raise ApiError(404, "not_found", f"no trace for order {cl_ord_id} (not traced, or older than the ring)")
    return msgspec.json.encode(found)
