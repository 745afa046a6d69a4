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
from fastfix.store import store_from_settings
from fastfix.tags import CL_ORD_ID, LIST_ID
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

    def from_admin(self, msg: Any, session_id: Any) -> None:
        # A session-level Reject (35=3) of an order, cancel or list: the order path must see it.
        if msg.msg_type == b"3":
            self.link.on_message(msg, str(session_id))

    def on_read_end(self, session_id: Any) -> None:
        self.link.on_read_end()


class FixLink(Link):
    """The gateway's FIX initiator(s)."""

    def __init__(self, settings_path: str | Path, queue_when_down: bool = False,
                 store_sync: str | None = None) -> None:
        super().__init__()
        self.settings = SessionSettings.from_file(settings_path)
        self.queue_when_down = queue_when_down
        # The gateway's sync policy covers the message stores: "full" makes them wait for the disk
        # too (FileStoreSync=Y), whatever the settings file says.
        self.store_sync = store_sync
        self.engine = Initiator(self.settings, _GatewayApplication(self), store_factory=self._open_store)
        self._epochs: dict[str, tuple[Any, Any, str]] = {}  # session -> (store, its creation time, as ns text)
        self._by_name: dict[str, Any] = {}  # session name -> Session (the engine looks names up linearly)
        sids = list(self.engine.sessions()) or list(self.settings.sessions())
        if not sids:
            from fastfix.errors import ConfigError

            raise ConfigError(f"{settings_path}: no initiator session")
        self._begin = sids[0].begin_string
        self._names = [str(s) for s in sids]

    def _open_store(self, sid: Any, settings: Any) -> Any:
        """The session's store, rewound to just after the last inbound message the gateway committed.

        The session counts a report as received when ``from_app`` returns, while the
        gateway commits its effects a moment later; a crash in between would lose the
        report. Rewinding the expected MsgSeqNum makes the session ask the hub to
        resend what came after the last committed report (PossDupFlag=Y).
        """
        store = store_from_settings(sid, settings, self.store_sync)
        name = str(sid)
        epoch = _epoch_ns(store.creation_time)
        nxt = store.next_target_seq
        mark = self.resume_points.get(name)
        if not mark:
            # First start with this database: nothing before this point is owed to it.
            self.on_resume_point(name, f"{epoch}:{nxt - 1}")
            return store
        mark_epoch, _, mark_seq = mark.partition(":")
        if int(mark_epoch) == epoch:
            committed = int(mark_seq)
        elif int(mark_epoch) < epoch:
            committed = 0  # the store was reset since: nothing of this period is committed yet
        else:
            committed = nxt - 1  # a store older than the mark: nothing to ask for
        if committed + 1 < nxt:
            log.warning("%s: inbound messages %d..%d were read but not committed before the last stop;"
                        " asking the counterparty to resend them", sid, committed + 1, nxt - 1)
            store.set_next_target_seq(committed + 1)
        return store

    def inbound_mark(self, session: str, msg: Any) -> str | None:
        seq = msg.seq_num
        if seq <= 0:
            return None
        cached = self._epochs.get(session)
        if cached is None or cached[0].creation_time != cached[1]:  # first call, or the store was reset
            store = self._session(session).store
            created = store.creation_time
            cached = self._epochs[session] = (store, created, str(_epoch_ns(created)))
        return f"{cached[2]}:{seq}"

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
        s = self._find(session)
        return s is not None and bool(s.is_logged_on)

    async def send(self, session: str, msg_type: str, fields: Sequence[tuple[int, Any]]) -> None:
        s = self._session(session)
        if not s.is_logged_on and not self.queue_when_down:
            raise LinkDown(session)
        await self.engine.send(s.session_id, msg_type, fields)

    def _find(self, session: str) -> Any:
        """The engine's Session named ``session`` (one object for the engine's lifetime), or None."""
        s = self._by_name.get(session)
        if s is None:
            try:
                s = self._by_name[session] = self.engine.session(session)
            except KeyError:
                return None
        return s

    def _session(self, session: str) -> Any:
        s = self._find(session)
        if s is None:
            raise LinkDown(session)
        return s

    def send_bodies(self, session: str, messages: Sequence[tuple[str, bytes, Sequence[tuple[int, Any]]]]) -> None:
        s = self._session(session)
        if not s.is_logged_on and not self.queue_when_down:
            raise LinkDown(session)
        self.engine.send_bodies(s.session_id, messages)

    def write_paused(self, session: str) -> bool:
        s = self._find(session)
        return s is not None and self.engine.write_paused(s.session_id)

    async def writable(self, session: str) -> None:
        s = self._find(session)
        if s is not None:
            await self.engine.writable(s.session_id)

    def sent_message(self, session: str, seq_num: int) -> Any:
        from fastfix.codec import parse

        s = self._find(session)
        if s is None or seq_num <= 0:
            return None
        stored = s.store.get_range(seq_num, seq_num)
        if not stored:
            return None
        try:
            return parse(stored[0][1])
        except Exception:  # noqa: BLE001 - a stored message the codec refuses names nothing
            return None

    def sent_ids(self, session: str) -> tuple[set[tuple[str, bytes]], int] | None:
        from fastfix.codec import parse
        from fastfix.store import MemoryStore

        store = self._session(session).store
        if isinstance(store, MemoryStore):
            return None  # nothing of a previous run survives in memory
        ids: set[tuple[str, bytes]] = set()
        for _, raw in store.get_range(1, store.next_sender_seq - 1):
            try:
                msg = parse(raw)
            except Exception:  # noqa: BLE001 - a stored message the codec refuses names no order
                continue
            mt = msg.msg_type
            if mt in (b"D", b"G", b"F"):
                ids.add((mt.decode(), msg.get(CL_ORD_ID) or b""))
            elif mt in (b"E", b"K"):
                ids.add((mt.decode(), msg.get(LIST_ID) or b""))
        return ids, _epoch_ns(store.creation_time)


def _epoch_ns(created: Any) -> int:
    """A store's creation time as integer nanoseconds (identifies its sequence-number period)."""
    return int(created.timestamp()) * 1_000_000_000 + created.microsecond * 1000
