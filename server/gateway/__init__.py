"""The order gateway: REST/JSON orders in, FIX to the STP-HUB out, reports pushed on a WebSocket.

Run it with ``fastfix gateway --config gateway.toml`` (or ``python -m server.gateway``).
"""
