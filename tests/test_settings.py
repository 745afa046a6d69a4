"""Settings files: parsing, validation with precise errors, typed getters, schedules, TLS."""

from __future__ import annotations

import datetime as dt
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from fastfix.errors import ConfigError
from fastfix.settings import (
    SessionID,
    SessionSchedule,
    SessionSettings,
    ssl_context_from_settings,
)

SAMPLE = """\
# a comment
; another comment
[DEFAULT]
ConnectionType=initiator
HeartBtInt=30
SocketConnectHost=127.0.0.1
SocketConnectPort=9876
StartTime=08:30:00
EndTime=15:30:00
TimeZone=Asia/Seoul
FileStorePath=store
ResetOnLogon=Y

[SESSION]
BeginString=FIX.4.4
SenderCompID=GW
TargetCompID=HUB
SocketConnectHost1=10.0.0.2
SocketConnectPort1=9877

[SESSION]
BeginString=FIX.4.2
SenderCompID=GW
TargetCompID=HUB
SessionQualifier=backup
HeartBtInt=10
ResetOnLogon=N
"""


def _one(text: str):
    ss = SessionSettings.from_string(text, filename="test.cfg")
    assert len(ss) == 1
    return next(iter(ss.sessions().items()))


def test_session_id_str_and_hash():
    a = SessionID("FIX.4.4", "SENDER", "TARGET")
    assert str(a) == "FIX.4.4:SENDER->TARGET"
    assert str(SessionID("FIX.4.4", "S", "T", "Q")) == "FIX.4.4:S->T:Q"
    assert {a: 1}[SessionID("FIX.4.4", "SENDER", "TARGET")] == 1
    assert a != SessionID("FIX.4.4", "SENDER", "TARGET", "Q")
    assert a.reversed() == SessionID("FIX.4.4", "TARGET", "SENDER")
    assert a.file_prefix == "FIX.4.4-SENDER-TARGET"
    with pytest.raises(AttributeError):
        a.sender_comp_id = "X"  # type: ignore[misc]


def test_parse_sample_merges_default(tmp_path: Path):
    cfg = tmp_path / "gw.cfg"
    cfg.write_text(SAMPLE)
    ss = SessionSettings.from_file(cfg)
    sessions = ss.sessions()
    assert [str(s) for s in sessions] == ["FIX.4.4:GW->HUB", "FIX.4.2:GW->HUB:backup"]
    first, second = sessions.values()
    assert first.get_int("HeartBtInt") == 30 and second.get_int("HeartBtInt") == 10
    assert first.get_bool("ResetOnLogon") is True and second.get_bool("ResetOnLogon") is False
    assert first.get_time("StartTime") == dt.time(8, 30)
    assert first.get_path("FileStorePath") == tmp_path / "store"  # relative to the file
    assert first.connect_addresses() == [("127.0.0.1", 9876), ("10.0.0.2", 9877)]
    assert second.connect_addresses() == [("127.0.0.1", 9876)]
    assert first.is_initiator
    assert first["SenderCompID"] == "GW" and "TargetSubID" not in first
    assert first.get_str("TargetSubID", None) is None
    assert str(first.get_tz()) == "Asia/Seoul"
    assert first.get_value("SocketConnectPort") == 9876


def test_unknown_key_names_file_section_line():
    text = SAMPLE.replace("HeartBtInt=10", "HeartbeatInt=10")
    with pytest.raises(ConfigError) as e:
        SessionSettings.from_string(text, filename="gw.cfg")
    msg = str(e.value)
    assert "gw.cfg:26" in msg and "[SESSION]" in msg and "HeartbeatInt" in msg


@pytest.mark.parametrize(
    "line,needle",
    [
        ("HeartBtInt=thirty", "not an integer"),
        ("ResetOnLogon=yes", "expected Y or N"),
        ("StartTime=8h30", "HH:MM:SS"),
        ("StartTime=24:00:00", "HH:MM:SS"),
        ("SocketConnectPort=70000", "not a TCP port"),
        ("BeginString=FIX.4.5", "expected one of"),
        ("TimeZone=Mars/Olympus", "unknown time zone"),
        ("StartDay=Funday", "not a day"),
        ("FileStoreSync=sometimes", "expected one of"),
        ("ReconnectInterval=0", "must be > 0"),
        ("SenderCompID=", "empty value"),
    ],
)
def test_bad_values_are_refused_with_location(line: str, needle: str):
    key = line.split("=")[0]
    base = "\n".join(ln for ln in SAMPLE.splitlines() if not ln.startswith(key + "="))
    lines = base.splitlines()
    # put the bad line in the first [SESSION] section, right after its header
    idx = lines.index("[SESSION]") + 1
    lines.insert(idx, line)
    with pytest.raises(ConfigError) as e:
        SessionSettings.from_string("\n".join(lines), filename="x.cfg")
    assert needle in str(e.value)
    assert f"x.cfg:{idx + 1}" in str(e.value)
    assert key in str(e.value)


def test_syntax_errors():
    with pytest.raises(ConfigError, match="x.cfg:2.*Key=Value"):
        SessionSettings.from_string("[DEFAULT]\nnonsense\n", filename="x.cfg")
    with pytest.raises(ConfigError, match="unknown section"):
        SessionSettings.from_string("[SESSIONS]\n", filename="x.cfg")
    with pytest.raises(ConfigError, match="before any"):
        SessionSettings.from_string("BeginString=FIX.4.4\n", filename="x.cfg")
    with pytest.raises(ConfigError, match="set twice"):
        SessionSettings.from_string(SAMPLE.replace("HeartBtInt=10", "HeartBtInt=10\nHeartBtInt=11"))
    with pytest.raises(ConfigError, match="defined twice"):
        SessionSettings.from_string(SAMPLE + "[SESSION]\nBeginString=FIX.4.4\nSenderCompID=GW\nTargetCompID=HUB\n")


def test_missing_file():
    with pytest.raises(ConfigError, match="cannot read"):
        SessionSettings.from_file("/nonexistent/dir/x.cfg")


ACCEPTOR = """\
[DEFAULT]
ConnectionType=acceptor
SocketAcceptPort=5001
[SESSION]
BeginString=FIX.4.4
SenderCompID=EXEC
TargetCompID=CLIENT
"""


def test_required_keys_per_connection_type():
    sid, s = _one(ACCEPTOR)
    assert not s.is_initiator and s.get_int("SocketAcceptPort") == 5001
    with pytest.raises(ConfigError, match="missing required key SocketAcceptPort"):
        SessionSettings.from_string(ACCEPTOR.replace("SocketAcceptPort=5001\n", ""))
    initiator = ACCEPTOR.replace("acceptor", "initiator")
    with pytest.raises(ConfigError, match="missing required key HeartBtInt"):
        SessionSettings.from_string(initiator)
    with pytest.raises(ConfigError, match="missing required key SocketConnectHost"):
        SessionSettings.from_string(initiator + "HeartBtInt=30\n")
    with pytest.raises(ConfigError, match="missing required key TargetCompID"):
        SessionSettings.from_string(ACCEPTOR.replace("TargetCompID=CLIENT\n", ""))
    with pytest.raises(ConfigError, match="missing required key ConnectionType"):
        SessionSettings.from_string(ACCEPTOR.replace("ConnectionType=acceptor\n", ""))
    # a failover host needs its port
    with pytest.raises(ConfigError, match="SocketConnectPort1"):
        SessionSettings.from_string(
            initiator + "HeartBtInt=30\nSocketConnectHost=h\nSocketConnectPort=1\nSocketConnectHost1=h2\n"
        )
    # FIXT.1.1 initiators need DefaultApplVerID
    fixt = initiator.replace("FIX.4.4", "FIXT.1.1") + "HeartBtInt=30\nSocketConnectHost=h\nSocketConnectPort=1\n"
    with pytest.raises(ConfigError, match="DefaultApplVerID"):
        SessionSettings.from_string(fixt)
    SessionSettings.from_string(fixt + "DefaultApplVerID=FIX.5.0SP2\n")


def test_cross_key_rules():
    with pytest.raises(ConfigError, match="EndTime is required"):
        SessionSettings.from_string(ACCEPTOR + "StartTime=00:00:00\n")
    with pytest.raises(ConfigError, match="StartDay and EndDay"):
        SessionSettings.from_string(ACCEPTOR + "StartTime=00:00:00\nEndTime=00:00:00\nStartDay=Mon\n")
    with pytest.raises(ConfigError, match="needs FileStorePath"):
        SessionSettings.from_string(ACCEPTOR + "MessageStore=file\n")
    with pytest.raises(ConfigError, match="needs SocketCertificateFile"):
        SessionSettings.from_string(ACCEPTOR + "SocketUseSSL=Y\n")


def test_aliases_map_to_our_names():
    _, s = _one(ACCEPTOR + "SSLEnable=N\nSSLCACertificate=ca.pem\n")
    assert s.get_bool("SocketUseSSL") is False
    assert s["SocketCAFile"] == "ca.pem" and s["SSLCACertificate"] == "ca.pem"
    with pytest.raises(ConfigError, match="set twice"):
        SessionSettings.from_string(ACCEPTOR + "SSLEnable=N\nSocketUseSSL=N\n")


def test_getter_errors():
    _, s = _one(ACCEPTOR + "SenderSubID=desk\n")
    with pytest.raises(ConfigError, match="missing required key HeartBtInt"):
        s.get_int("HeartBtInt")
    with pytest.raises(ConfigError, match=r"test.cfg:8: \[SESSION\] SenderSubID: not an integer"):
        s.get_int("SenderSubID")
    assert s.get_int("HeartBtInt", 30) == 30


def test_from_dict_and_round_trip_to_string():
    ss = SessionSettings.from_dict(
        [{"SenderCompID": "GW", "TargetCompID": "HUB", "HeartBtInt": 5, "SenderSubID": None},
         {"SenderCompID": "GW", "TargetCompID": "HUB2"}],
        default={
            "ConnectionType": "initiator",
            "BeginString": "FIX.4.4",
            "HeartBtInt": 30,
            "SocketConnectHost": "127.0.0.1",
            "SocketConnectPort": 5001,
            "StartTime": dt.time(0, 0),
            "EndTime": dt.time(0, 0),
            "ResetOnLogon": True,
        },
    )  # fmt: skip
    s = ss[SessionID("FIX.4.4", "GW", "HUB")]
    assert s.get_int("HeartBtInt") == 5 and s.get_bool("ResetOnLogon") and s["StartTime"] == "00:00:00"
    assert "SenderSubID" not in s
    again = SessionSettings.from_string(ss.to_string())
    assert {k: dict(v) for k, v in again.sessions().items()} == {
        k: dict(v) for k, v in ss.sessions().items()
    }
    with pytest.raises(ConfigError, match=r"<dict>: \[SESSION 1\] Bogus: unknown setting"):
        SessionSettings.from_dict([{"Bogus": 1}])


def test_with_overrides_keeps_relative_files_valid(tmp_path: Path):
    cfg = tmp_path / "conf" / "broker.cfg"
    cfg.parent.mkdir()
    cfg.write_text(
        "[DEFAULT]\nConnectionType=initiator\nBeginString=FIX.4.4\nSenderCompID=BRK\nHeartBtInt=30\n"
        "SocketConnectHost=127.0.0.1\nSocketConnectPort=1\nStartTime=00:00:00\nEndTime=00:00:00\n"
        "FileStorePath=store\nDataDictionary=dd/FIX44.xml\nSocketCAFile=/etc/ca.pem\n"
        "[SESSION]\nTargetCompID=HUB\n[SESSION]\nTargetCompID=KRX\n"
    )
    ss = SessionSettings.from_file(cfg).with_overrides(
        {"FileLogPath": "/var/log/brk"}, {"HUB": {"SocketConnectPort": "9880"}})
    hub = ss[SessionID("FIX.4.4", "BRK", "HUB")]
    krx = ss[SessionID("FIX.4.4", "BRK", "KRX")]
    assert hub.get_int("SocketConnectPort") == 9880 and krx.get_int("SocketConnectPort") == 1
    for s in (hub, krx):
        assert s.get_path("FileStorePath") == cfg.parent.resolve() / "store"
        assert s.get_path("DataDictionary") == cfg.parent.resolve() / "dd" / "FIX44.xml"
        assert s["SocketCAFile"] == "/etc/ca.pem" and s["FileLogPath"] == "/var/log/brk"
    # the copy written elsewhere still names the same files
    again = SessionSettings.from_string(ss.to_string(), str(tmp_path / "elsewhere" / "copy.cfg"))
    assert again[SessionID("FIX.4.4", "BRK", "KRX")].get_path("FileStorePath") == cfg.parent.resolve() / "store"


def _utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def test_schedule_daily_and_midnight_crossing():
    sched = SessionSchedule(dt.time(8, 0), dt.time(16, 0))
    assert sched.is_session_time(_utc(2024, 1, 2, 8, 0, 0))
    assert sched.is_session_time(_utc(2024, 1, 2, 16, 0, 0))
    assert not sched.is_session_time(_utc(2024, 1, 2, 16, 0, 1))
    assert not sched.is_session_time(_utc(2024, 1, 2, 7, 59, 59))
    assert sched.is_same_session(_utc(2024, 1, 2, 9), _utc(2024, 1, 2, 15))
    assert not sched.is_same_session(_utc(2024, 1, 2, 9), _utc(2024, 1, 3, 9))
    night = SessionSchedule(dt.time(22, 0), dt.time(6, 0))
    assert night.is_session_time(_utc(2024, 1, 2, 23)) and night.is_session_time(_utc(2024, 1, 3, 5))
    assert night.is_same_session(_utc(2024, 1, 2, 23), _utc(2024, 1, 3, 5))
    assert not night.is_session_time(_utc(2024, 1, 2, 12))
    full = SessionSchedule(dt.time(0, 0), dt.time(0, 0))  # 24h, resets at midnight
    assert full.is_session_time(_utc(2024, 1, 2, 12))
    assert not full.is_same_session(_utc(2024, 1, 2, 23), _utc(2024, 1, 3, 1))


def test_schedule_weekly_weekdays_timezone():
    _, s = _one(ACCEPTOR + "StartTime=08:00:00\nEndTime=17:00:00\nStartDay=Mon\nEndDay=Fri\n")
    week = s.schedule()
    # 2024-01-01 is a Monday
    assert not week.is_session_time(_utc(2024, 1, 1, 7))
    assert week.is_session_time(_utc(2024, 1, 3, 3))  # Wednesday night: inside a weekly session
    assert not week.is_session_time(_utc(2024, 1, 6, 12))  # Saturday
    assert week.is_same_session(_utc(2024, 1, 1, 9), _utc(2024, 1, 5, 16))
    _, s = _one(ACCEPTOR + "StartTime=08:30:00\nEndTime=15:30:00\nWeekdays=Mon,Tue,Wed,Thu,Fri\nTimeZone=Asia/Seoul\n")
    krx = s.schedule()
    assert krx.is_session_time(_utc(2024, 1, 2, 0, 0))  # 09:00 in Seoul, Tuesday
    assert not krx.is_session_time(_utc(2024, 1, 2, 7, 0))  # 16:00 in Seoul
    assert not krx.is_session_time(_utc(2024, 1, 6, 0, 0))  # Saturday
    assert SessionSchedule().is_session_time() and SessionSchedule().non_stop
    _, s = _one(ACCEPTOR + "StartTime=08:30:00\nEndTime=15:30:00\nNonStopSession=Y\n")
    assert s.schedule().non_stop
    with pytest.raises(ValueError, match="naive"):
        krx.is_session_time(dt.datetime(2024, 1, 2))


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl command not installed")
def test_ssl_context(tmp_path: Path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=localhost"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    _, s = _one(ACCEPTOR)
    assert ssl_context_from_settings(s) is None
    _, s = _one(ACCEPTOR + f"SocketUseSSL=Y\nSSLCertificate={cert}\nSocketPrivateKeyFile={key}\n")
    ctx = s.ssl_context()
    assert isinstance(ctx, ssl.SSLContext) and ctx.verify_mode == ssl.CERT_NONE
    client = ACCEPTOR.replace("acceptor", "initiator") + (
        f"HeartBtInt=30\nSocketConnectHost=localhost\nSocketConnectPort=1\nSocketUseSSL=Y\nSocketCAFile={cert}\n"
    )
    _, s = _one(client)
    ctx = s.ssl_context()
    assert ctx is not None and ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    _, s = _one(client + "SSLValidateCertificates=N\n")
    assert s.ssl_context().verify_mode == ssl.CERT_NONE  # type: ignore[union-attr]
    _, s = _one(client.replace(str(cert), str(tmp_path / "missing.pem")))
    with pytest.raises(ConfigError, match="cannot set up TLS"):
        s.ssl_context()
