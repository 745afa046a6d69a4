"""FIX initiator sessions to the STP-HUB, through the fastfix session engine.

The sessions come from a QuickFIX-style settings file (``fix_settings`` in the
gateway TOML). Sessions are named by their SessionID string
(``FIX.4.4:GATEWAY->HUB``); a broker entry in the TOML may name one, otherwise
the first session carries every order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastfix.engine import Application, Initiator
from fastfix.settings import SessionSettings
from server.gateway.link import INBOUND_TYPES, Link, LinkDown, SessionState

__all__ = ["FixLink"]

log = logging.getLogger("fastfix.gateway.fix")


class _GatewayApplication(Application):
    def __init__(self, link: FixLink) -> None:
        self.link = link

    def on_logon(self, session_id: Any) -> None:
        self.link.on_state(str(session_id), True)

    def on_logout(self, session_id: Any) -> None:
        self.link.on_state(str(session_id), False)

    def from_app(self, msg: Any, session_id: Any) -> None:
        if msg.msg_type in INBOUND_TYPES:
            self.link.on_message(msg, str(session_id))


class FixLink(Link):
    """The gateway's FIX initiator(s)."""

    def __init__(self, settings_path: str | Path, queue_when_down: bool = False) -> None:
        super().__init__()
        self.settings = SessionSettings.from_file(settings_path)
        self.queue_when_down = queue_when_down
        self.engine = Initiator(self.settings, _GatewayApplication(self))
        sids = list(self.engine.sessions()) or list(self.settings.sessions())
        if not sids:
            from fastfix.errors import ConfigError

            raise ConfigError(f"{settings_path}: no initiator session")
        self._begin = sids[0].begin_string
        self._names = [str(s) for s in sids]

    @property
    def begin_string(self) -> str:
        return self._begin

    async def start(self) -> None:
        await self.engine.start()

    async def stop(self) -> None:
        await self.engine.stop()

    def default_session(self) -> str:
        return self._names[0]

    def sessions(self) -> list[SessionState]:
        out = []
        for sid, s in self.engine.sessions().items():
            up = bool(s.is_logged_on)
            state = "logged_on" if up else ("connected" if s.is_connected else "disconnected")
            out.append(SessionState(name=str(sid), begin_string=sid.begin_string,
                                    sender_comp_id=sid.sender_comp_id, target_comp_id=sid.target_comp_id,
                                    logged_on=up, state=state))
        return out

    def is_up(self, session: str) -> bool:
        try:
            return bool(self.engine.session(session).is_logged_on)
        except KeyError:
            return False

    async def send(self, session: str, msg_type: str, fields: Sequence[tuple[int, Any]]) -> None:
        try:
            s = self.engine.session(session)
        except KeyError:
            raise LinkDown(session) from None
        if not s.is_logged_on and not self.queue_when_down:
            raise LinkDown(session)
        await self.engine.send(session, msg_type, fields)
