"""Who may log on to an acceptor session: password, source address, client certificate.

An acceptor session trusts a Logon only when every check its settings ask for passes
(see docs/security.md):

- ``PasswordHash``: the Logon's Password (554) hashes to it, and ``Username`` (553)
  equals the configured one when one is set. The hash is made with :func:`hash_password`
  (``python -m fastfix.auth`` on the command line); the clear password is never in the
  acceptor's settings;
- ``AllowedRemoteAddresses``: the connection comes from one of these addresses or networks;
- TLS: the client certificate names the Logon's SenderCompID (subject CN or a DNS
  subjectAltName), or its SHA-256 fingerprint is one of ``SSLClientCertificateFingerprint``.

The checks are pure functions of the Logon and of the connection (:class:`Peer`), so
the session engine runs them before anything of the session changes.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import hmac
import ipaddress
import secrets
import socket
import sys
from dataclasses import dataclass
from typing import Any

from fastfix.tags import PASSWORD, SENDER_COMP_ID, USERNAME

__all__ = [
    "Peer",
    "LogonPolicy",
    "hash_password",
    "verify_password",
    "check_password_hash",
    "parse_addresses",
    "parse_fingerprints",
    "main",
]

#: scrypt cost: 2**14 x 8 x 1 (16 MiB, about 0.1-0.3 s): OWASP's minimum for scrypt.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
#: PBKDF2-HMAC-SHA256 iterations (OWASP 2023).
PBKDF2_ITERATIONS = 600_000

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: The Text of a refusal for a wrong Username or Password (which one is not said).
INVALID = "invalid Username or Password"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --------------------------------------------------------------------------- password hashes


def hash_password(password: str | bytes, scheme: str = "scrypt") -> str:
    """A salted hash of ``password`` for ``PasswordHash`` (``scrypt`` or ``pbkdf2_sha256``).

    >>> h = hash_password("s3cret")
    >>> h.startswith("scrypt$n=16384,r=8,p=1$") and verify_password("s3cret", h)
    True
    """
    pw = password.encode("utf-8") if isinstance(password, str) else password
    salt = secrets.token_bytes(16)
    if scheme == "scrypt":
        key = hashlib.scrypt(pw, salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=64 << 20, dklen=32)
        return f"scrypt$n={SCRYPT_N},r={SCRYPT_R},p={SCRYPT_P}${_b64(salt)}${_b64(key)}"
    if scheme == "pbkdf2_sha256":
        key = hashlib.pbkdf2_hmac("sha256", pw, salt, PBKDF2_ITERATIONS)
        return f"pbkdf2_sha256${PBKDF2_ITERATIONS}${_b64(salt)}${_b64(key)}"
    raise ValueError(f"unknown password hash scheme {scheme!r} (scrypt or pbkdf2_sha256)")


def _parse_hash(encoded: str) -> tuple[str, dict[str, int], bytes, bytes]:
    parts = encoded.split("$")
    if len(parts) != 4:
        raise ValueError("expected scheme$parameters$salt$hash (made by python -m fastfix.auth)")
    scheme, params, salt_text, key_text = parts
    try:
        salt, key = _unb64(salt_text), _unb64(key_text)
    except ValueError:
        raise ValueError("salt and hash must be URL-safe base64") from None
    if len(salt) < 8 or len(key) < 16:
        raise ValueError("salt or hash too short")
    if scheme == "scrypt":
        try:
            p = {k: int(v) for k, v in (kv.split("=", 1) for kv in params.split(","))}
        except ValueError:
            raise ValueError("scrypt parameters must be n=..,r=..,p=..") from None
        if set(p) != {"n", "r", "p"} or p["n"] < 2**14 or p["n"] & (p["n"] - 1) or p["r"] < 1 or p["p"] < 1:
            raise ValueError("scrypt needs n (a power of two >= 16384), r and p")
        return scheme, p, salt, key
    if scheme == "pbkdf2_sha256":
        if not params.isdigit() or int(params) < 100_000:
            raise ValueError("pbkdf2_sha256 needs at least 100000 iterations")
        return scheme, {"iterations": int(params)}, salt, key
    raise ValueError(f"unknown password hash scheme {scheme!r} (scrypt or pbkdf2_sha256)")


def check_password_hash(encoded: str) -> str:
    """``encoded`` if it is a well-formed hash, else ``ValueError`` (used by the settings)."""
    _parse_hash(encoded)
    return encoded


def verify_password(password: str | bytes, encoded: str) -> bool:
    """True if ``password`` hashes to ``encoded`` (constant-time comparison)."""
    pw = password.encode("utf-8") if isinstance(password, str) else password
    scheme, p, salt, key = _parse_hash(encoded)
    if scheme == "scrypt":
        got = hashlib.scrypt(pw, salt=salt, n=p["n"], r=p["r"], p=p["p"],
                             maxmem=max(64 << 20, 256 * p["n"] * p["r"]), dklen=len(key))
    else:
        got = hashlib.pbkdf2_hmac("sha256", pw, salt, p["iterations"], dklen=len(key))
    return hmac.compare_digest(got, key)


# --------------------------------------------------------------------------- addresses


def parse_addresses(text: str) -> tuple[_Network, ...]:
    """``AllowedRemoteAddresses``: comma-separated IP addresses, networks (CIDR) or host
    names (resolved once, when the settings are read)."""
    out: list[_Network] = []
    for item in (x.strip() for x in text.split(",")):
        if not item:
            raise ValueError(f"empty entry in {text!r}")
        try:
            out.append(ipaddress.ip_network(item, strict=False))
            continue
        except ValueError:
            pass
        try:
            infos = socket.getaddrinfo(item, None, proto=socket.IPPROTO_TCP)
        except OSError:
            raise ValueError(f"{item!r} is neither an IP address, a network nor a known host name") from None
        out.extend(ipaddress.ip_network(info[4][0]) for info in infos)
    return tuple(out)


def _address_allowed(host: str | None, allowed: tuple[_Network, ...]) -> bool:
    if host is None:
        return False
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr in net for net in allowed)


# --------------------------------------------------------------------------- certificates


def parse_fingerprints(text: str) -> frozenset[str]:
    """``SSLClientCertificateFingerprint``: SHA-256 fingerprints (hex, colons allowed), comma-separated."""
    out = set()
    for item in (x.strip() for x in text.split(",")):
        hexed = item.replace(":", "").lower()
        if len(hexed) != 64 or any(c not in "0123456789abcdef" for c in hexed):
            raise ValueError(f"not a SHA-256 fingerprint: {item!r}")
        out.add(hexed)
    return frozenset(out)


def _cert_names(cert: dict[str, Any]) -> set[str]:
    names = {v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"}
    names |= {v for k, v in cert.get("subjectAltName", ()) if k == "DNS"}
    return names


# --------------------------------------------------------------------------- policy


@dataclass(frozen=True, slots=True)
class Peer:
    """What the transport knows about the other end of a connection."""

    host: str | None = None
    #: the verified client certificate as :meth:`ssl.SSLSocket.getpeercert` gives it ({} or None: none)
    cert: dict[str, Any] | None = None
    #: the same certificate in DER form (for fingerprints)
    cert_der: bytes | None = None
    tls: bool = False

    @classmethod
    def from_transport(cls, transport: Any) -> Peer:
        """The peer of an asyncio transport (address, and the client certificate under TLS)."""
        name = transport.get_extra_info("peername")
        host = name[0] if isinstance(name, tuple) and name else None
        sslobj = transport.get_extra_info("ssl_object")
        if sslobj is None:
            return cls(host)
        return cls(host, sslobj.getpeercert() or None, sslobj.getpeercert(binary_form=True), True)


class LogonPolicy:
    """The logon checks of one acceptor session (built from its settings)."""

    def __init__(
        self,
        *,
        username: str | None = None,
        password_hash: str | None = None,
        allowed_addresses: tuple[_Network, ...] | None = None,
        cert_comp_id: bool = False,
        cert_fingerprints: frozenset[str] | None = None,
    ) -> None:
        if password_hash is not None:
            check_password_hash(password_hash)
        self.username = username
        self.password_hash = password_hash
        self.allowed_addresses = allowed_addresses
        self.cert_comp_id = cert_comp_id
        self.cert_fingerprints = cert_fingerprints
        # Passwords already verified, as HMACs under a key of this process: the owner's
        # reconnections do not pay for the slow hash again (nor does the engine's second look).
        self._pepper = secrets.token_bytes(32)
        self._verified: set[bytes] = set()

    @property
    def active(self) -> bool:
        return bool(self.password_hash or self.allowed_addresses is not None or self.cert_comp_id
                    or self.cert_fingerprints)

    @classmethod
    def from_settings(cls, s: Any) -> LogonPolicy | None:
        """The policy of an acceptor session's settings, or None if it checks nothing."""
        if s.is_initiator:
            return None
        require = s.get_bool("SSLRequireClientCertificate", False)
        policy = cls(
            username=s.get_str("Username", None),
            password_hash=s.get_str("PasswordHash", None),
            allowed_addresses=s.get_value("AllowedRemoteAddresses", None),
            cert_comp_id=s.get_bool("SocketUseSSL", False)
            and s.get_bool("SSLCheckClientCertificateCompID", require),
            cert_fingerprints=s.get_value("SSLClientCertificateFingerprint", None),
        )
        return policy if policy.active else None

    def check(self, logon: Any, peer: Peer | None) -> str | None:
        """None if ``logon`` (a parsed Logon) from ``peer`` may log on, else the reason.

        Synchronous: computes the password hash when it has to (see :meth:`precheck`
        and :meth:`password_to_verify` for doing that part elsewhere).
        """
        refusal = self.precheck(logon, peer)
        if refusal is not None:
            return refusal
        pw = self.password_to_verify(logon)
        if pw is not None:
            assert self.password_hash is not None
            if not verify_password(pw, self.password_hash):
                return INVALID
            self.remember(pw)
        return None

    def precheck(self, logon: Any, peer: Peer | None) -> str | None:
        """Every check but the password hash itself, in order of cost: source address,
        client certificate, Username, a Password present. None if they pass."""
        peer = peer or Peer()
        if self.allowed_addresses is not None and not _address_allowed(peer.host, self.allowed_addresses):
            return f"connection from {peer.host or 'an unknown address'} is not allowed for this session"
        if self.cert_fingerprints:
            if not peer.cert_der:
                return "a client certificate is required for this session"
            if hashlib.sha256(peer.cert_der).hexdigest() not in self.cert_fingerprints:
                return "the client certificate is not the one configured for this session"
        elif self.cert_comp_id:
            sender = (logon.get(SENDER_COMP_ID) or b"").decode("utf-8", "replace")
            if not peer.cert:
                return "a client certificate is required for this session"
            if sender not in _cert_names(peer.cert):
                return f"the client certificate does not name SenderCompID {sender}"
        if self.username is not None:
            user = logon.get(USERNAME)
            if user is None or not hmac.compare_digest(user, self.username.encode()):
                return INVALID
        if self.password_hash is not None and not logon.get(PASSWORD):
            return "Password (554) required"
        return None

    def password_to_verify(self, logon: Any) -> bytes | None:
        """The Logon's password if it still has to be hashed (None: no password is
        required, or this one was verified before)."""
        if self.password_hash is None:
            return None
        pw = logon.get(PASSWORD) or b""
        if hmac.new(self._pepper, pw, hashlib.sha256).digest() in self._verified:
            return None
        return pw

    def remember(self, pw: bytes) -> None:
        """``pw`` was verified: later logons with it skip the slow hash."""
        if len(self._verified) >= 64:
            self._verified.clear()
        self._verified.add(hmac.new(self._pepper, pw, hashlib.sha256).digest())


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    """``python -m fastfix.auth [--scheme S]``: read a password, print its ``PasswordHash``."""
    parser = argparse.ArgumentParser(
        prog="python -m fastfix.auth",
        description="Print the PasswordHash setting for a FIX acceptor session. The password is "
                    "read from the terminal (twice), or from standard input when it is not a terminal.")
    parser.add_argument("--scheme", choices=("scrypt", "pbkdf2_sha256"), default="scrypt")
    args = parser.parse_args(argv)
    if sys.stdin.isatty():
        pw = getpass.getpass("Password: ")
        if pw != getpass.getpass("Again: "):
            print("the passwords differ", file=sys.stderr)
            return 2
    else:
        pw = sys.stdin.readline().rstrip("\r\n")
    if not pw:
        print("empty password", file=sys.stderr)
        return 2
    print(f"PasswordHash={hash_password(pw, args.scheme)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
