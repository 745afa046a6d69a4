"""API-key authentication and per-client throttling.

Keys are never stored: the configuration holds the SHA-256 of each key. API
keys are long random tokens (``fastfix gateway --new-key`` prints one), so a
fast hash is enough (no password stretching needed) and a lookup costs one
hash. The presented key's digest selects the candidate client and is then
compared with :func:`hmac.compare_digest`, so the comparison time does not
depend on how many leading characters match. Throttling is a
:class:`TokenBucket` per client (compiled, it runs for every request); reads
(GET) have buckets of their own (:class:`ReadThrottle`), and failed
authentications are throttled per source address (:class:`FailureThrottle`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any

from server.gateway._counters import TokenBucket
from server.gateway.config import ClientConfig
from server.gateway.errors import ApiError

__all__ = ["Authenticator", "FailureThrottle", "ReadThrottle", "TokenBucket", "hash_key", "new_api_key"]

_VERIFIED_MAX = 4096  # verified keys remembered (a gateway has a handful of clients, each a few keys)


def hash_key(api_key: str) -> str:
    """Hex SHA-256 of an API key, as written in the configuration."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def new_api_key() -> str:
    """A fresh random API key (256 bits, URL-safe)."""
    return "ffk_" + secrets.token_urlsafe(32)


class Authenticator:
    """Maps a presented API key to its client, in constant time per candidate."""

    def __init__(self, clients: dict[str, ClientConfig]) -> None:
        self._by_hash = {bytes.fromhex(c.api_key_sha256): c for c in clients.values()}
        # Keys already verified -> client: a request with a known key costs one dict lookup
        # instead of a SHA-256. Only valid keys are cached (bounded), so unknown keys cannot
        # fill it; the lookup hashes the key with the interpreter's keyed SipHash and compares
        # only on a hash match, which reveals nothing useful about stored keys. Read-only
        # for callers (the REST handler looks a request's header value up here first).
        self.known: dict[str, ClientConfig] = {}

    def authenticate(self, api_key: str | None) -> ClientConfig | None:
        client = self.known.get(api_key)  # type: ignore[arg-type]
        if client is not None:
            return client
        if not api_key or len(api_key) > 512:
            return None
        digest = hashlib.sha256(api_key.encode("utf-8", "replace")).digest()
        client = self._by_hash.get(digest)
        if client is None:
            return None
        if not hmac.compare_digest(digest, bytes.fromhex(client.api_key_sha256)):
            return None
        if len(self.known) < _VERIFIED_MAX:
            self.known[api_key] = client
        return client

    @staticmethod
    def key_from_headers(get: object) -> str | None:
        """The API key from ``X-API-Key`` or ``Authorization: Bearer``; ``get`` is a header getter."""
        getter = get  # a callable (name, default) -> value, e.g. RSGI headers.get
        key = getter("x-api-key", None)  # type: ignore[operator]
        if key:
            return key.strip()
        auth = getter("authorization", None)  # type: ignore[operator]
        if auth and auth[:7].lower() == "bearer ":
            return auth[7:].strip()
        return None


class ReadThrottle:
    """A token bucket per client for reads (GET), apart from the order buckets: polling the
    blotter cannot use up a client's order rate, and a read flood is refused early."""

    def __init__(self, clients: dict[str, ClientConfig], rejected: Any) -> None:
        self._buckets = {c.id: TokenBucket(c.read_rate, c.read_burst) for c in clients.values()}
        self._rejected = rejected.labels("throttled_read")

    def take(self, client: ClientConfig) -> None:
        wait = self._buckets[client.id].take()
        if wait > 0:
            self._rejected.inc()
            raise ApiError(429, "throttled", f"read rate above {client.read_rate:g}/s for this client",
                           headers=[("retry-after", str(max(1, int(wait + 0.999))))])


class FailureThrottle:
    """Failed authentications per source address in a fixed window: past ``limit`` failures
    the address gets 429 until its window ends. Bounded: at most ``max_sources`` addresses
    are remembered (expired windows go first, then the oldest)."""

    def __init__(self, limit: int, window: float, max_sources: int = 65536) -> None:
        self.limit = limit
        self.window = window
        self.max_sources = max_sources
        self._failures: dict[str, list[float]] = {}  # address -> [window start, failures]

    def __len__(self) -> int:
        """Addresses with failures remembered (none: nothing to check)."""
        return len(self._failures)

    def check(self, ip: str) -> None:
        """429 if ``ip`` is over its failure limit in the current window."""
        entry = self._failures.get(ip)
        if entry is None or entry[1] < self.limit:
            return
        left = entry[0] + self.window - time.monotonic()
        if left <= 0:
            del self._failures[ip]
            return
        raise ApiError(429, "too_many_failures", f"too many failed authentications from this address; "
                       f"retry in {int(left + 0.999)} s", headers=[("retry-after", str(max(1, int(left + 0.999))))])

    def blocked(self, ip: str) -> bool:
        try:
            self.check(ip)
        except ApiError:
            return True
        return False

    def failed(self, ip: str) -> None:
        now = time.monotonic()
        entry = self._failures.get(ip)
        if entry is None or now - entry[0] >= self.window:
            if entry is None and len(self._failures) >= self.max_sources:
                self._prune(now)
            self._failures[ip] = [now, 1.0]
        else:
            entry[1] += 1

    def _prune(self, now: float) -> None:
        for ip in [ip for ip, (start, _) in self._failures.items() if now - start >= self.window]:
            del self._failures[ip]
        while len(self._failures) >= self.max_sources:
            del self._failures[next(iter(self._failures))]
