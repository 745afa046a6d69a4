"""``fastfix acceptance``: the acceptor the QuickFIX session acceptance suite runs against.

Sessions ISLD<->TW44 (FIX.4.4) and ISLD<->TW42 (FIX.4.2), ResetOnLogon=Y,
validation with the shipped dictionaries, and the suite's test application:
NewOrderSingle (35=D) and SecurityDefinition (35=d) are echoed back; a
PossResend=Y order whose ClOrdID was already seen since logon is dropped; any
other application message gets a BusinessMessageReject (unsupported type).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from fastfix import tags
from fastfix.engine import Acceptor, Application, UnsupportedMessageType, run
from fastfix.tags import FRAME_TAGS, HEADER_TAGS


class EchoApplication(Application):
    """The acceptance suite's application (see module docstring)."""

    def __init__(self) -> None:
        self._seen: dict[Any, set[bytes]] = {}

    def on_logon(self, session_id: Any) -> None:
        self._seen[session_id] = set()

    def from_app(self, msg: Any, session_id: Any) -> None:
        mt = msg.msg_type
        if mt not in (b"D", b"d"):
            raise UnsupportedMessageType()
        if mt == b"D":
            seen = self._seen.setdefault(session_id, set())
            clordid = msg.get(tags.CL_ORD_ID)
            if msg.get(tags.POSS_RESEND) == b"Y" and clordid in seen:
                return
            seen.add(clordid)
        fields = [f for f in msg.fields() if f[0] not in FRAME_TAGS]
        header = [f for f in fields if f[0] in HEADER_TAGS]
        body = [f for f in fields if f[0] not in HEADER_TAGS]
        # QuickFIX writes a message body in tag order (groups excepted): so does
        # the echo, unless a tag repeats (a repeating group keeps its wire order).
        if len({t for t, _ in body}) == len(body):
            body.sort(key=lambda f: f[0])
        self.send(session_id, mt, header + body)


def settings_for(port: int, host: str = "127.0.0.1") -> Any:
    """The acceptance acceptor's settings."""
    from fastfix.settings import SessionSettings

    return SessionSettings.from_dict(
        [
            {"BeginString": "FIX.4.4", "TargetCompID": "TW44"},
            {"BeginString": "FIX.4.2", "TargetCompID": "TW42"},
        ],
        default={
            "ConnectionType": "acceptor",
            "SenderCompID": "ISLD",
            "SocketAcceptPort": port,
            "SocketAcceptAddress": host,
            "ResetOnLogon": True,
            "UseDataDictionary": True,
            "MessageStore": "memory",
        },
    )


def add_arguments_acceptance(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=0, help="TCP port (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--log", action="store_true", help="print messages and events")


def run_acceptance(args: argparse.Namespace) -> int:
    async def main() -> int:
        log_factory = None
        if args.log:
            from fastfix.log import ScreenLog

            def log_factory(sid: Any, s: Any) -> Any:
                return ScreenLog(str(sid), True, True, True)

        acceptor = Acceptor(settings_for(args.port, args.host), EchoApplication(),
                            log_factory=log_factory)
        await acceptor.start()
        print(f"listening on {args.host}:{acceptor.port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await acceptor.stop()
        return 0

    return int(run(main) or 0)


if __name__ == "__main__":  # pragma: no cover
    ns = argparse.ArgumentParser()
    add_arguments_acceptance(ns)
    sys.exit(run_acceptance(ns.parse_args()))
