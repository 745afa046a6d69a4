"""Prometheus metrics of the gateway (served at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["Metrics", "CONTENT_TYPE_LATEST"]


class Metrics:
    """All gateway metrics, in a registry of their own (several gateways may share a process in tests)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("gateway_http_requests", "HTTP requests by route and status",
                                ["route", "status"], registry=r)
        self.request_seconds = Histogram(
            "gateway_http_request_seconds", "HTTP request handling time", ["route"], registry=r,
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0))
        self.orders = Counter("gateway_orders_sent", "Application messages sent to the hub, by MsgType",
                              ["msg_type"], registry=r)
        self.rejected = Counter("gateway_requests_rejected", "Requests refused by the gateway, by reason",
                                ["reason"], registry=r)
        self.idempotent = Counter("gateway_idempotent_replays", "Identical retries answered from the store",
                                  registry=r)
        self.fix_out = Counter("gateway_fix_out", "FIX application messages handed to a session",
                               ["msg_type"], registry=r)
        self.fix_in = Counter("gateway_fix_in", "FIX application messages received", ["msg_type"], registry=r)
        self.duplicates = Counter("gateway_duplicate_reports", "Reports ignored as duplicates (ExecID seen)",
                                  registry=r)
        self.unroutable = Counter("gateway_unroutable_reports", "Reports that name no known client",
                                  registry=r)
        self.events = Counter("gateway_events_pushed", "Events appended to client logs and pushed", registry=r)
        self.send_seconds = Histogram(
            "gateway_fix_send_seconds", "Time for the FIX session to store and queue an order", registry=r,
            buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05))
        self.ws_clients = Gauge("gateway_ws_connections", "Subscribed WebSocket connections", registry=r)
        self.ws_dropped = Counter("gateway_ws_dropped", "WebSocket connections dropped by the gateway, by reason",
                                  ["reason"], registry=r)
        self.session_up = Gauge("gateway_fix_session_up", "1 when the FIX session is logged on", ["session"],
                                registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
