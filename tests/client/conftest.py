"""Fixtures of the SDK and CLI tests (the sandbox: see _client_sandbox.py)."""

from _client_sandbox import sandbox

__all__ = ["sandbox"]
