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
from fastfix.log import printable
from fastfix.tags import (
    BEGIN_STRING,
    BODY_LENGTH,
    BUSINESS_REJECT_REASON,
    BUSINESS_REJECT_REF_ID,
    CHECK_SUM,
    CL_ORD_ID,
    COLL_INQUIRY_ID,
    DELIVER_TO_COMP_ID,
    DELIVER_TO_LOCATION_ID,
    DELIVER_TO_SUB_ID,
    LAST_MSG_SEQ_NUM_PROCESSED,
    LIST_ID,
    MSG_SEQ_NUM,
    MSG_TYPE,
    ON_BEHALF_OF_COMP_ID,
    ON_BEHALF_OF_LOCATION_ID,
    ON_BEHALF_OF_SUB_ID,
    ORIG_SENDING_TIME,
    POS_REQ_ID,
    POSS_DUP_FLAG,
    POSS_RESEND,
    REF_MSG_TYPE,
    REF_SEQ_NUM,
    SECURITY_REQ_ID,
    SENDER_COMP_ID,
    SENDER_LOCATION_ID,
    SENDER_SUB_ID,
    SENDING_TIME,
    SIGNATURE,
    SIGNATURE_LENGTH,
    TARGET_COMP_ID,
    TARGET_LOCATION_ID,
    TARGET_SUB_ID,
    TEXT,
    TRAD_SES_REQ_ID,
)
from server.hub.config import HubConfig
from server.hub.held import HeldStore

__all__ = ["HubApplication", "forward_fields"]

log = logging.getLogger("fastfix.hub")

# Header and trailer fields that belong to the inbound hop and are never copied.
_HOP_TAGS = frozenset({
    BEGIN_STRING, BODY_LENGTH, MSG_TYPE, CHECK_SUM, MSG_SEQ_NUM, POSS_DUP_FLAG, SENDER_COMP_ID,
    SENDER_SUB_ID, SENDING_TIME, TARGET_COMP_ID, TARGET_SUB_ID, SIGNATURE, SIGNATURE_LENGTH,
    POSS_RESEND, ON_BEHALF_OF_COMP_ID, ON_BEHALF_OF_SUB_ID, ORIG_SENDING_TIME, DELIVER_TO_COMP_ID,
    DELIVER_TO_SUB_ID, SENDER_LOCATION_ID, TARGET_LOCATION_ID, ON_BEHALF_OF_LOCATION_ID,
    DELIVER_TO_LOCATION_ID, LAST_MSG_SEQ_NUM_PROCESSED,
})  # fmt: skip
# (inbound tag, outbound tag): the origin's identity and the next hop's addressing.
_READDRESS = (
    (SENDER_SUB_ID, ON_BEHALF_OF_SUB_ID),
    (SENDER_LOCATION_ID, ON_BEHALF_OF_LOCATION_ID),
    (DELIVER_TO_SUB_ID, TARGET_SUB_ID),
    (DELIVER_TO_LOCATION_ID, TARGET_LOCATION_ID),
)
# The field that identifies what a business reject is about, by message type.
_REF_ID = {b"E": LIST_ID, b"K": LIST_ID, b"N": LIST_ID, b"8": CL_ORD_ID, b"9": CL_ORD_ID,
           b"D": CL_ORD_ID, b"F": CL_ORD_ID, b"G": CL_ORD_ID, b"H": CL_ORD_ID,
           b"j": BUSINESS_REJECT_REF_ID, b"q": CL_ORD_ID, b"r": CL_ORD_ID,
           b"x": SECURITY_REQ_ID, b"y": SECURITY_REQ_ID, b"c": SECURITY_REQ_ID, b"d": SECURITY_REQ_ID,
           b"g": TRAD_SES_REQ_ID, b"h": TRAD_SES_REQ_ID,
           b"AN": POS_REQ_ID, b"AO": POS_REQ_ID, b"AP": POS_REQ_ID,
           b"BB": COLL_INQUIRY_ID, b"BA": COLL_INQUIRY_ID, b"BG": COLL_INQUIRY_ID}

# BusinessRejectReason (380)
_OTHER, _APP_NOT_AVAILABLE, _FIELD_MISSING, _NOT_AUTHORIZED = 0, 4, 5, 6


def forward_fields(msg: Any, origin: str) -> list[tuple[int, Any]]:
    """The fields of ``msg`` (from ``origin``) as forwarded to its DeliverToCompID."""
    out: list[tuple[int, Any]] = [(ON_BEHALF_OF_COMP_ID, origin)]
    get = msg.get
    for src, dst in _READDRESS:
        v = get(src)
        if v:
            out.append((dst, v))
        elif src == SENDER_SUB_ID and (v := get(ON_BEHALF_OF_SUB_ID)):
            # The sender already acts for this sub-id (an advisor behind a gateway).
            out.append((ON_BEHALF_OF_SUB_ID, v))
    if get(POSS_DUP_FLAG) == b"Y" or get(POSS_RESEND) == b"Y":
        # The sender may have sent it before: so may we have.
        out.append((POSS_RESEND, "Y"))
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
        dest_raw = msg.get(DELIVER_TO_COMP_ID)
        if not dest_raw:
            self._reject(session_id, msg, _FIELD_MISSING,
                         "DeliverToCompID (128) is required: the hub routes on it")
            return
        dest = dest_raw.decode("utf-8", "replace")
        party = self.cfg.parties.get(dest)
        if party is None or dest not in self._sid:
            self._reject(session_id, msg, _OTHER,
                         b"unknown DeliverToCompID '" + dest_raw + b"': not a party of this hub")
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
                         printable(msg.msg_type), origin, dest)
                return
            self._reject(session_id, msg, _APP_NOT_AVAILABLE,
                         f"DeliverToCompID {dest} is not available: not logged on to the hub")
            return
        self._forward(msg, origin, dest)

    # ------------------------------------------------------------------ forwarding

    def _forward(self, msg: Any, origin: str, dest: str, maybe_sent: bool = False) -> None:
        fields = forward_fields(msg, origin)
        if maybe_sent and (POSS_RESEND, "Y") not in fields:
            # A held message whose earlier forwarding may have gone out before a crash.
            fields.insert(1, (POSS_RESEND, "Y"))
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
            log.info("released held %s from %s to %s", printable(msg.msg_type), h.origin, dest)

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

    def _reject(self, session_id: Any, msg: Any, reason: int, text: str | bytes,
                on_behalf_of: str | None = None, with_seq: bool = True) -> None:
        """BusinessMessageReject about ``msg`` to the party it came from."""
        fields: list[tuple[int, Any]] = []
        if on_behalf_of:
            fields.append((ON_BEHALF_OF_COMP_ID, on_behalf_of))
        if with_seq and msg.seq_num > 0:
            fields.append((REF_SEQ_NUM, msg.seq_num))
        fields.append((REF_MSG_TYPE, msg.msg_type))
        ref_tag = _REF_ID.get(msg.msg_type, CL_ORD_ID)
        ref = msg.get(ref_tag) or msg.get(CL_ORD_ID)
        if ref:
            fields.append((BUSINESS_REJECT_REF_ID, ref))
        fields += [(BUSINESS_REJECT_REASON, reason), (TEXT, text)]
        self.rejected += 1
        log.info("rejected %s from %s: %s", printable(msg.msg_type), session_id.target_comp_id, printable(text))
        self.send(session_id, "j", fields)

    def _downstream_reject(self, rej: Any, session_id: Any) -> None:
        """A destination rejected (35=3) a message we forwarded: tell its origin."""
        dest = session_id.target_comp_id
        try:
            ref_seq = int(rej.get(REF_SEQ_NUM) or b"0")
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
        origin_raw = sent.get(ON_BEHALF_OF_COMP_ID)
        origin = origin_raw.decode("utf-8", "replace") if origin_raw else ""
        sid = self._sid.get(origin)
        if sid is None:
            return
        # The destination's Text is passed on byte for byte (it may be in any encoding).
        text = b"rejected by " + dest.encode() + b": " + (rej.get(TEXT) or b"rejected")
        self._reject(sid, sent, _OTHER, text, on_behalf_of=dest, with_seq=False)
