"""Prometheus metrics of the gateway (served at /metrics).

The metrics touched on every order or report are plain in-process counters and
bucket arrays (an attribute increment, no lock: everything runs on the event
loop) that a collector turns into Prometheus families only when /metrics is
scraped; ``prometheus_client``'s own Counter/Histogram take a lock and cost
about 0.3-0.6 µs per update, a measurable share of a 40 µs order. The values
and buckets are compiled (``server/gateway/_counters.pyx``). Rare events
(rejections, WebSocket drops, session state) keep the library's types.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric

from server.gateway._counters import Buckets as _Buckets
from server.gateway._counters import Family as _Family
from server.gateway._counters import Value as _Value

__all__ = ["Metrics", "CONTENT_TYPE_LATEST", "FastCounter", "FastHistogram"]


class FastCounter(_Family):
    """A lock-free counter family for the event-loop thread (``labels(...).inc()`` as prometheus_client)."""

    def __init__(self, name: str, doc: str, labelnames: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.name, self.doc, self.labelnames = name, doc, labelnames
        self._plain = _Value() if not labelnames else None

    def _new_child(self) -> _Value:
        return _Value()

    def inc(self, amount: float = 1.0) -> None:
        assert self._plain is not None, "labelled counter: use labels(...)"
        self._plain.value += amount

    def family(self) -> Metric:
        fam = CounterMetricFamily(self.name, self.doc, labels=list(self.labelnames))
        if self._plain is not None:
            fam.add_metric([], self._plain.value)
        for values, child in self._children.items():
            fam.add_metric(list(values), child.value)
        return fam


class FastHistogram(_Family):
    """A lock-free histogram family for the event-loop thread (``labels(...).observe(s)``)."""

    def __init__(self, name: str, doc: str, labelnames: tuple[str, ...] = (),
                 buckets: tuple[float, ...] = ()) -> None:
        super().__init__()
        self.name, self.doc, self.labelnames, self.buckets = name, doc, labelnames, tuple(buckets)
        self._plain = _Buckets(self.buckets) if not labelnames else None

    def _new_child(self) -> _Buckets:
        return _Buckets(self.buckets)

    def observe(self, value: float) -> None:
        assert self._plain is not None, "labelled histogram: use labels(...)"
        self._plain.observe(value)

    def family(self) -> Metric:
        fam = HistogramMetricFamily(self.name, self.doc, labels=list(self.labelnames))
        items = [((), self._plain)] if self._plain is not None else list(self._children.items())
        for values, child in items:
            acc = 0
            buckets = []
            for bound, n in zip(self.buckets, child.counts, strict=False):
                acc += n
                buckets.append((repr(float(bound)), acc))
            acc += child.counts[-1]
            buckets.append(("+Inf", acc))
            fam.add_metric(list(values), buckets, child.total)
        return fam


class _FastCollector:
    def __init__(self, metrics: list[FastCounter | FastHistogram]) -> None:
        self._metrics = metrics

    def describe(self) -> Iterator[Metric]:
        for m in self._metrics:
            yield m.family()

    def collect(self) -> Iterator[Metric]:
        for m in self._metrics:
            yield m.family()


class Metrics:
    """All gateway metrics, in a registry of their own (several gateways may share a process in tests)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = FastCounter("gateway_http_requests", "HTTP requests by route and status",
                                    ("route", "status"))
        self.request_seconds = FastHistogram(
            "gateway_http_request_seconds", "HTTP request handling time", ("route",),
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0))
        self.orders = FastCounter("gateway_orders_sent", "Application messages sent to the hub, by MsgType",
                                  ("msg_type",))
        self.fix_out = FastCounter("gateway_fix_out", "FIX application messages handed to a session",
                                   ("msg_type",))
        self.fix_in = FastCounter("gateway_fix_in", "FIX application messages received", ("msg_type",))
        self.events = FastCounter("gateway_events_pushed", "Events appended to client logs and pushed")
        self.send_seconds = FastHistogram(
            "gateway_fix_send_seconds", "Time for the FIX session to store and queue a batch of orders",
            buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05))
        r.register(_FastCollector([self.requests, self.request_seconds, self.orders, self.fix_out, self.fix_in,
                                   self.events, self.send_seconds]))
        self.rejected = Counter("gateway_requests_rejected", "Requests refused by the gateway, by reason",
                                ["reason"], registry=r)
        self.idempotent = Counter("gateway_idempotent_replays", "Identical retries answered from the store",
                                  registry=r)
        self.duplicates = Counter("gateway_duplicate_reports", "Reports ignored as duplicates (ExecID seen)",
                                  registry=r)
        self.unroutable = Counter("gateway_unroutable_reports", "Reports that name no known client",
                                  registry=r)
        self.projection_lag = Gauge("gateway_projection_lag_records",
                                    "Journal records written but not yet in the SQLite projection", registry=r)
        self.ws_clients = Gauge("gateway_ws_connections", "Subscribed WebSocket connections", registry=r)
        self.ws_dropped = Counter("gateway_ws_dropped", "WebSocket connections dropped by the gateway, by reason",
                                  ["reason"], registry=r)
        self.ws_open = Gauge("gateway_ws_open_connections", "Open WebSocket connections, by state "
                             "(authenticated or not)", ["state"], registry=r)
        self.auth_failures = Counter("gateway_auth_failures", "Failed authentications (wrong key), by entry "
                                     "point (rest, ws)", ["entry"], registry=r)
        self.session_up = Gauge("gateway_fix_session_up", "1 when the FIX session is logged on", ["session"],
                                registry=r)
        self.recovered = Counter("gateway_recovered_sends",
                                 "Orders found persisted but never handed to FIX at start-up, sent then",
                                 ["poss_resend"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
