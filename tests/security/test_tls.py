"""TLS: FIX sessions (SocketUseSSL), and the gateway's REST over HTTPS and stream over WSS.

Certificates are made by each test (``cryptography``): a CA, a server certificate
for 127.0.0.1, a client certificate, and a second, unrelated CA for the refusals.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from _sec_helpers import Issued, client_context, https, issue, make_ca
from helpers import acceptor, fix_settings, initiator, session

from fastfix.codec import encode, utc_timestamp
from fastfix.engine import Acceptor, Application, Initiator
from fastfix.log import Log
from fastfix.settings import SessionID, SessionSettings

REPO = Path(__file__).resolve().parents[2]
GW = SessionID("FIX.4.4", "GW", "HUB")


class _Events(Log):
    """Session events kept in memory (connection failures name the TLS error)."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def on_incoming(self, raw: bytes) -> None:
        pass

    def on_outgoing(self, raw: bytes) -> None:
        pass

    def on_event(self, text: str) -> None:
        self.events.append(text)


class _Echo(Application):
    def __init__(self) -> None:
        self.reports: asyncio.Queue[Any] = asyncio.Queue()
        self.logons = 0

    def on_logon(self, session_id: Any) -> None:
        self.logons += 1

    def from_app(self, msg: Any, session_id: Any) -> None:
        if msg.msg_type == b"D":
            self.send(session_id, "8", [(37, "O1"), (11, msg[11]), (17, "E1"), (150, "0"), (39, "0"),
                                        (55, msg[55]), (54, msg[54]), (151, 10), (14, 0), (6, 0)])
        else:
            self.reports.put_nowait(msg)


def _fix_settings(kind: str, port: int, tls: dict[str, str]) -> SessionSettings:
    me, them = ("GW", "HUB") if kind == "initiator" else ("HUB", "GW")
    where = initiator(port) if kind == "initiator" else acceptor()
    return SessionSettings.from_string(fix_settings(session("FIX.4.4", me, them), **where, HeartBtInt=5, **tls))


async def _fix_pair(server_tls: dict[str, str], client_tls: dict[str, str], expect_logon: bool
                    ) -> tuple[list[str], _Echo]:
    hub_app, gw_app = _Echo(), _Echo()
    acceptor = Acceptor(_fix_settings("acceptor", 0, server_tls), hub_app)
    await acceptor.start()
    events = _Events()
    initiator = Initiator(_fix_settings("initiator", acceptor.port, client_tls), gw_app,
                          log_factory=lambda sid, s: events)
    await initiator.start()
    try:
        if expect_logon:
            await initiator.wait_logged_on(GW, timeout=10)
            await initiator.send(GW, "D", [(11, "T1"), (21, "1"), (55, "005930"), (54, "1"), (38, 10),
                                           (40, "1"), (60, utc_timestamp())])
            report = await asyncio.wait_for(gw_app.reports.get(), 10)
            assert report[11] == b"T1"
        else:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not any("failed" in e or "isconnect" in e
                                                          for e in events.events):
                await asyncio.sleep(0.05)
            assert events.events, "the initiator never tried"
            assert gw_app.logons == 0 and hub_app.logons == 0
    finally:
        await initiator.stop()
        await acceptor.stop()
    return events.events, hub_app


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Issued]:
    ca = make_ca(tmp_path / "pki")
    other = make_ca(tmp_path / "other", "unrelated CA")
    return {"ca": ca, "other": other, "server": issue(ca, tmp_path / "pki", "server"),
            # a client certificate names its CompID: the acceptor binds one to the other
            "client": issue(ca, tmp_path / "pki", "GW", client=True),
            "rogue_client": issue(other, tmp_path / "other", "rogue", client=True)}


def _server_tls(pki: dict[str, Issued], require_client: bool = False) -> dict[str, str]:
    tls = {"SocketUseSSL": "Y", "SocketCertificateFile": str(pki["server"].cert_path),
           "SocketPrivateKeyFile": str(pki["server"].key_path)}
    if require_client:
        tls |= {"SSLRequireClientCertificate": "Y", "SocketCAFile": str(pki["ca"].cert_path)}
    return tls


def test_fix_session_over_tls(pki: dict[str, Issued]) -> None:
    asyncio.run(_fix_pair(_server_tls(pki), {"SocketUseSSL": "Y", "SocketCAFile": str(pki["ca"].cert_path)},
                          expect_logon=True))


def test_fix_initiator_refuses_a_server_of_another_ca(pki: dict[str, Issued]) -> None:
    events, _ = asyncio.run(_fix_pair(_server_tls(pki), {"SocketUseSSL": "Y",
                                                          "SocketCAFile": str(pki["other"].cert_path)},
                                      expect_logon=False))
    assert any("CERTIFICATE_VERIFY_FAILED" in e for e in events), events


def test_fix_initiator_in_clear_is_not_served_by_a_tls_acceptor(pki: dict[str, Issued]) -> None:
    asyncio.run(_fix_pair(_server_tls(pki), {}, expect_logon=False))


def test_fix_mutual_tls(pki: dict[str, Issued]) -> None:
    client = {"SocketUseSSL": "Y", "SocketCAFile": str(pki["ca"].cert_path)}
    good = client | {"SocketCertificateFile": str(pki["client"].cert_path),
                     "SocketPrivateKeyFile": str(pki["client"].key_path)}
    asyncio.run(_fix_pair(_server_tls(pki, require_client=True), good, expect_logon=True))
    rogue = client | {"SocketCertificateFile": str(pki["rogue_client"].cert_path),
                      "SocketPrivateKeyFile": str(pki["rogue_client"].key_path)}
    asyncio.run(_fix_pair(_server_tls(pki, require_client=True), rogue, expect_logon=False))
    asyncio.run(_fix_pair(_server_tls(pki, require_client=True), client, expect_logon=False))


def test_fix_client_certificate_is_bound_to_the_comp_id(pki: dict[str, Issued], tmp_path: Path) -> None:
    """Another tenant's valid certificate (same CA) cannot log on as GW while GW is away."""
    from test_logon_auth import impersonate

    other_tenant = issue(pki["ca"], tmp_path / "pki", "KIWOOM", client=True)
    client = {"SocketUseSSL": "Y", "SocketCAFile": str(pki["ca"].cert_path),
              "SocketCertificateFile": str(pki["client"].cert_path),
              "SocketPrivateKeyFile": str(pki["client"].key_path)}

    def ctx(cert: Issued) -> Any:
        c = client_context(pki["ca"])
        c.load_cert_chain(cert.cert_path, cert.key_path)
        return c

    async def go(server_tls: dict[str, str], rogue: Issued, reason: str) -> None:
        hub_app = _Echo()
        acceptor = Acceptor(_fix_settings("acceptor", 0, server_tls), hub_app)
        await acceptor.start()
        try:
            logon = encode("FIX.4.4", "A", [(34, 1), (49, "GW"), (52, utc_timestamp()), (56, "HUB"),
                                            (98, 0), (108, 5)])
            got = await impersonate(acceptor.port, logon, ssl=ctx(rogue))
            assert [m.msg_type for m in got] == [b"5"] and reason in got[0][58].decode(), got
            session = acceptor.session(SessionID("FIX.4.4", "HUB", "GW"))
            assert (session.next_sender_seq, session.next_target_seq) == (1, 1) and hub_app.logons == 0
            # the owner's certificate logs on
            initiator = Initiator(_fix_settings("initiator", acceptor.port, client), _Echo())
            await initiator.start()
            try:
                await initiator.wait_logged_on(GW, timeout=10)
            finally:
                await initiator.stop()
            assert hub_app.logons == 1
        finally:
            await acceptor.stop()

    server = _server_tls(pki, require_client=True)
    asyncio.run(asyncio.wait_for(go(server, other_tenant, "does not name SenderCompID GW"), 60))
    # pinned by fingerprint: even a certificate named GW but with another key is refused
    twin = issue(pki["ca"], tmp_path / "twin", "GW", client=True)
    from cryptography.hazmat.primitives import hashes

    pinned = server | {"SSLClientCertificateFingerprint": pki["client"].cert.fingerprint(hashes.SHA256()).hex()}
    asyncio.run(asyncio.wait_for(go(pinned, twin, "not the one configured"), 60))


# ------------------------------------------------------------------ gateway: HTTPS and WSS

KEY = "tls-client-key-0123456789"


def _start_gateway(tmp: Path, pki: dict[str, Issued]) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    import hashlib

    (tmp / "gw.toml").write_text(f"""
[gateway]
rest_port = 0
ws_port = 0
link = "loopback"
database = "gw.db"
ports_file = "ports.json"
log_level = "warning"
tls_cert = "{pki['server'].cert_path}"
tls_key = "{pki['server'].key_path}"

[[brokers]]
id = "BRKA"

[[clients]]
id = "alpha"
api_key_sha256 = "{hashlib.sha256(KEY.encode()).hexdigest()}"
""")
    log = open(tmp / "gateway.log", "ab")  # noqa: SIM115 - the child keeps it
    proc = subprocess.Popen([sys.executable, "-m", "fastfix.cli", "gateway", "--config", str(tmp / "gw.toml")],
                            cwd=tmp, stdout=log, stderr=log, env=dict(os.environ, PYTHONPATH=str(REPO)))
    log.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((tmp / "gateway.log").read_text()[-3000:])
        try:
            return proc, json.loads((tmp / "ports.json").read_text())
        except (OSError, ValueError):
            time.sleep(0.02)
    proc.kill()
    raise TimeoutError("gateway did not start")


def test_gateway_https_and_wss(tmp_path: Path, pki: dict[str, Issued]) -> None:
    from picows.websockets.asyncio.client import connect

    proc, ports = _start_gateway(tmp_path, pki)

    async def go() -> None:
        ctx = client_context(pki["ca"])
        assert (await https(ports["rest"], "GET", "/healthz", ctx))[0] == 200
        status, body = await https(ports["rest"], "POST", "/v1/orders", ctx, KEY, {
            "ClOrdID": "t1", "Symbol": "005930", "Side": "1", "OrdType": "1", "OrderQty": "10"})
        assert status == 202, body
        async with connect(f"wss://localhost:{ports['ws']}/v1/stream?since=0", ssl=ctx,
                           additional_headers={"X-API-Key": KEY}) as ws:
            frames = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(2)]
        assert frames[0]["type"] == "subscribed" and frames[1]["type"] == "message"
        # a client that trusts another CA refuses both servers
        bad = client_context(pki["other"])
        with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):
            await https(ports["rest"], "GET", "/healthz", bad)
        with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
            async with connect(f"wss://localhost:{ports['ws']}/v1/stream", ssl=bad,
                               additional_headers={"X-API-Key": KEY}):
                pass
        # plain HTTP on the TLS port gets no HTTP answer
        r, w = await asyncio.open_connection("127.0.0.1", ports["rest"])
        w.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        data = await asyncio.wait_for(r.read(4096), 10)
        w.close()
        assert not data.startswith(b"HTTP/1.1 200")

    try:
        asyncio.run(asyncio.wait_for(go(), 60))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_gateway_tls_config_errors(tmp_path: Path, pki: dict[str, Issued]) -> None:
    from fastfix.errors import ConfigError
    from server.gateway.config import parse_config

    base = {"gateway": {"link": "loopback"}, "brokers": [{"id": "B"}]}
    with pytest.raises(ConfigError, match="tls_cert and tls_key go together"):
        parse_config(base | {"gateway": {"link": "loopback", "tls_cert": str(pki["server"].cert_path)}},
                     tmp_path / "gw.toml")
    with pytest.raises(ConfigError, match="gateway.tls_key: file not found"):
        parse_config(base | {"gateway": {"link": "loopback", "tls_cert": str(pki["server"].cert_path),
                                         "tls_key": "missing.key"}}, tmp_path / "gw.toml")
