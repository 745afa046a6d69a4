"""The hub's FIX application: third-party routing by DeliverToCompID.

A message from party S naming ``DeliverToCompID (128) = D`` goes out on the
hub's session with D, re-addressed the way FIX third-party routing prescribes:

==============================  =================================
inbound (from S)                forwarded (to D)
==============================  =================================
SenderCompID 49 = S             OnBehalfOfCompID 115 = S
SenderSubID 50                  OnBehalfOfSubID 116
OnBehalfOfSubID 116 (no 50)     OnBehalfOfSubID 116
SenderLocationID 142            OnBehalfOfLocationID 144
DeliverToCompID 128 = D         TargetCompID 56 = D (the session)
DeliverToSubID 129              TargetSubID 57
DeliverToLocationID 145         TargetLocationID 143
PossDupFlag 43 / PossResend 97  PossResend 97 = Y
==============================  =================================

SenderSubID names the advisor (or desk, trader) behind the sender; a sender that
already acts for someone else may name it in OnBehalfOfSubID instead, which is
kept. The broker answers that sub-id in DeliverToSubID (129), which reaches the
buy side as TargetSubID (57).

The body (repeating groups included: lists pass through untouched) is copied
as received. Replies take the same path back: the broker addresses them with
DeliverToCompID = the buy side and the buy side receives them OnBehalfOf the
broker.

Nothing is dropped silently. A message the hub cannot route is answered with a
BusinessMessageReject (35=j) whose BusinessRejectRefID (379) is the message's
ClOrdID/ListID, so the sender can match it:

- no DeliverToCompID: 380=5 (conditionally required field missing);
- unknown DeliverToCompID: 380=0 with the reason in Text;
- a route between two buy sides or two brokers: 380=6 (not authorized; 0 on FIX 4.2);
- destination not logged on, policy ``reject``: 380=4 (application not available);
  policy ``hold``: kept in the :class:`HeldStore` and forwarded at its logon.

A session-level Reject (35=3) that a destination sends about a forwarded message
is turned into a BusinessMessageReject to the message's origin.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from fastfix.codec import parse
from fastfix.engine import Application
from server.hub.config import HubConfig
from server.hub.held import HeldStore

__all__ = ["HubApplication", "forward_fields"]

log = logging.getLogger("fastfix.hub")

# Header and trailer fields that belong to the inbound hop and are never copied.
_HOP_TAGS = frozenset({
    8, 9, 35, 10, 34, 43, 49, 50, 52, 56, 57, 89, 93, 97, 115, 116, 122, 128, 129,
    142, 143, 144, 145, 369,
})  # fmt: skip
# (inbound tag, outbound tag): the origin's identity and the next hop's addressing.
_READDRESS = ((50, 116), (142, 144), (129, 57), (145, 143))
# The field that identifies what a business reject is about, by message type.
_REF_ID = {b"E": 66, b"K": 66, b"N": 66, b"8": 11, b"9": 11, b"D": 11, b"F": 11, b"G": 11,
           b"H": 11, b"j": 379, b"q": 11, b"r": 11,
           b"x": 320, b"y": 320, b"c": 320, b"d": 320,  # SecurityReqID
           b"g": 335, b"h": 335,  # TradSesReqID
           b"AN": 710, b"AO": 710, b"AP": 710,  # PosReqID
           b"BB": 909, b"BA": 909, b"BG": 909}  # CollInquiryID

# BusinessRejectReason (380)
_OTHER, _APP_NOT_AVAILABLE, _FIELD_MISSING, _NOT_AUTHORIZED = 0, 4, 5, 6


def forward_fields(msg: Any, origin: str) -> list[tuple[int, Any]]:
    """The fields of ``msg`` (from ``origin``) as forwarded to its DeliverToCompID."""
    out: list[tuple[int, Any]] = [(115, origin)]
    get = msg.get
    for src, dst in _READDRESS:
        v = get(src)
        if v:
            out.append((dst, v))
        elif src == 50 and (v := get(116)):
            # The sender already acts for this sub-id (an advisor behind a gateway).
            out.append((116, v))
    if get(43) == b"Y" or get(97) == b"Y":
        # The sender may have sent it before: so may we have.
        out.append((97, "Y"))
    hop = _HOP_TAGS
    out.extend(f for f in msg.fields() if f[0] not in hop)
    return out


class HubApplication(Application):
    """Routes application messages between the hub's acceptor sessions."""

    def __init__(self, cfg: HubConfig, held: HeldStore | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.held = held if held is not None else HeldStore()
        self.clock = clock
        self._sid: dict[str, Any] = {}  # party CompID -> SessionID
        self.logged_on: set[str] = set()
        #: called with the set of logged-on CompIDs after every logon/logout
        self.on_change: Callable[[set[str]], None] = lambda parties: None
        self.forwarded = 0
        self.rejected = 0

    # ------------------------------------------------------------------ session hooks

    def on_create(self, session_id: Any) -> None:
        self._sid[session_id.target_comp_id] = session_id

    def on_logon(self, session_id: Any) -> None:
        comp = session_id.target_comp_id
        self.logged_on.add(comp)
        log.info("%s logged on", comp)
        self._release(comp)
        self.on_change(set(self.logged_on))

    def on_logout(self, session_id: Any) -> None:
        comp = session_id.target_comp_id
        self.logged_on.discard(comp)
        log.info("%s logged out", comp)
        self.on_change(set(self.logged_on))

    def from_admin(self, msg: Any, session_id: Any) -> None:
        if msg.msg_type == b"3":
            self._downstream_reject(msg, session_id)

    def from_app(self, msg: Any, session_id: Any) -> None:
        origin = session_id.target_comp_id
        dest_raw = msg.get(128)
        if not dest_raw:
            self._reject(session_id, msg, _FIELD_MISSING,
                         "DeliverToCompID (128) is required: the hub routes on it")
            return
        dest = dest_raw.decode("ascii", "replace")
        party = self.cfg.parties.get(dest)
        if party is None or dest not in self._sid:
            self._reject(session_id, msg, _OTHER, f"unknown DeliverToCompID {dest!r}: not a party of this hub")
            return
        src_role = self.cfg.parties[origin].role
        if party.role == src_role:
            reason = _NOT_AUTHORIZED if session_id.begin_string >= "FIX.4.3" else _OTHER
            self._reject(session_id, msg, reason,
                         f"not authorized: a {src_role} cannot route to another {party.role} ({dest})")
            return
        if dest not in self.logged_on:
            if self.cfg.policy(dest) == "hold":
                self.held.add(dest, origin, msg.raw, self.clock())
                log.info("holding %s from %s for %s (not logged on)",
                         msg.msg_type.decode(), origin, dest)
                return
            self._reject(session_id, msg, _APP_NOT_AVAILABLE,
                         f"DeliverToCompID {dest} is not available: not logged on to the hub")
            return
        self._forward(msg, origin, dest)

    # ------------------------------------------------------------------ forwarding

    def _forward(self, msg: Any, origin: str, dest: str, maybe_sent: bool = False) -> None:
        fields = forward_fields(msg, origin)
        if maybe_sent and (97, "Y") not in fields:
            # A held message whose earlier forwarding may have gone out before a crash.
            fields.insert(1, (97, "Y"))
        self.send(self._sid[dest], msg.msg_type, fields)
        self.forwarded += 1

    def _release(self, dest: str) -> None:
        """Forward what was held for ``dest``, oldest first; each is deleted once sent."""
        for h in self.held.pending(dest):
            try:
                msg = parse(h.raw)
            except Exception:  # noqa: BLE001 - a bad row must not block the others
                log.exception("held message %d for %s cannot be parsed; dropped", h.id, dest)
                self.held.delete(h.id)
                continue
            self.held.attempt(h.id)
            self._forward(msg, h.origin, dest, maybe_sent=h.attempts > 0)
            self.held.delete(h.id)
            log.info("released held %s from %s to %s", msg.msg_type.decode(), h.origin, dest)

    def expire_held(self) -> int:
        """Reject held messages older than ``hold_timeout`` back to their origin."""
        if self.cfg.hold_timeout <= 0:
            return 0
        n = 0
        for h in self.held.older_than(self.clock() - self.cfg.hold_timeout):
            if h.destination in self.logged_on:
                continue  # being released
            sid = self._sid.get(h.origin)
            if sid is not None:
                msg = parse(h.raw)
                self._reject(sid, msg, _APP_NOT_AVAILABLE,
                             f"DeliverToCompID {h.destination} did not log on within "
                             f"{self.cfg.hold_timeout:g} s")
            self.held.delete(h.id)
            n += 1
        return n

    # ------------------------------------------------------------------ rejects

    def _reject(self, session_id: Any, msg: Any, reason: int, text: str,
                on_behalf_of: str | None = None, with_seq: bool = True) -> None:
        """BusinessMessageReject about ``msg`` to the party it came from."""
        fields: list[tuple[int, Any]] = []
        if on_behalf_of:
            fields.append((115, on_behalf_of))
        if with_seq and msg.seq_num > 0:
            fields.append((45, msg.seq_num))
        fields.append((372, msg.msg_type))
        ref_tag = _REF_ID.get(msg.msg_type, 11)
        ref = msg.get(ref_tag) or msg.get(11)
        if ref:
            fields.append((379, ref))
        fields += [(380, reason), (58, text)]
        self.rejected += 1
        log.info("rejected %s from %s: %s", msg.msg_type.decode(), session_id.target_comp_id, text)
        self.send(session_id, "j", fields)

    def _downstream_reject(self, rej: Any, session_id: Any) -> None:
        """A destination rejected (35=3) a message we forwarded: tell its origin."""
        dest = session_id.target_comp_id
        try:
            ref_seq = int(rej.get(45) or b"0")
        except ValueError:
            return
        if ref_seq <= 0:
            return
        session = self.engine.session(session_id) if self.engine is not None else None
        if session is None:
            return
        stored = session.store.get_range(ref_seq, ref_seq)
        if not stored:
            return  # a session message of ours: nothing to forward
        sent = parse(stored[0][1])
        origin_raw = sent.get(115)
        origin = origin_raw.decode("ascii", "replace") if origin_raw else ""
        sid = self._sid.get(origin)
        if sid is None:
            return
        text = (rej.get(58) or b"rejected").decode("latin-1")
        self._reject(sid, sent, _OTHER, f"rejected by {dest}: {text}", on_behalf_of=dest, with_seq=False)
