"""FIX tag numbers and the tag sets of the standard header and trailer.

This module is the one place these facts are written down. Python code uses it
directly (``from fastfix import tags``; ``msg.get(tags.CL_ORD_ID)``); the
compiled modules use ``fastfix/_tags.pxd``, which the build generates from this
file (see :func:`_pxd_source`), so the C-level constants cannot drift from these.

Names are the FIX field names in upper snake case (``ClOrdID`` -> ``CL_ORD_ID``),
as the FIX 4.4 dictionary spells them (tag 32 is ``LAST_QTY``, FIX 4.2's
``LastShares``). Only tags the code base uses have a name here; the data
dictionaries (:mod:`fastfix.dictionary`) know every field.
"""

from __future__ import annotations

# ---------------------------------------------------------------- standard header
BEGIN_STRING = 8
BODY_LENGTH = 9
MSG_TYPE = 35
SENDER_COMP_ID = 49
TARGET_COMP_ID = 56
ON_BEHALF_OF_COMP_ID = 115
DELIVER_TO_COMP_ID = 128
SECURE_DATA_LEN = 90
SECURE_DATA = 91
MSG_SEQ_NUM = 34
SENDER_SUB_ID = 50
SENDER_LOCATION_ID = 142
TARGET_SUB_ID = 57
TARGET_LOCATION_ID = 143
ON_BEHALF_OF_SUB_ID = 116
ON_BEHALF_OF_LOCATION_ID = 144
DELIVER_TO_SUB_ID = 129
DELIVER_TO_LOCATION_ID = 145
POSS_DUP_FLAG = 43
POSS_RESEND = 97
SENDING_TIME = 52
ORIG_SENDING_TIME = 122
XML_DATA_LEN = 212
XML_DATA = 213
MESSAGE_ENCODING = 347
LAST_MSG_SEQ_NUM_PROCESSED = 369
ON_BEHALF_OF_SENDING_TIME = 370  # FIX 4.2 (and 4.3)
NO_HOPS = 627  # FIX 4.4 and FIXT.1.1: a group of HopCompID, HopSendingTime, HopRefID
HOP_COMP_ID = 628
HOP_SENDING_TIME = 629
HOP_REF_ID = 630
APPL_VER_ID = 1128  # FIXT.1.1
CSTM_APPL_VER_ID = 1129  # FIXT.1.1
APPL_EXT_ID = 1156  # FIXT.1.1

# ---------------------------------------------------------------- standard trailer
SIGNATURE_LENGTH = 93
SIGNATURE = 89
CHECK_SUM = 10

# ---------------------------------------------------------------- session level
BEGIN_SEQ_NO = 7
END_SEQ_NO = 16
NEW_SEQ_NO = 36
REF_SEQ_NUM = 45
TEXT = 58
RAW_DATA_LENGTH = 95
RAW_DATA = 96
ENCRYPT_METHOD = 98
HEART_BT_INT = 108
TEST_REQ_ID = 112
GAP_FILL_FLAG = 123
RESET_SEQ_NUM_FLAG = 141
REF_TAG_ID = 371
REF_MSG_TYPE = 372
SESSION_REJECT_REASON = 373
BUSINESS_REJECT_REF_ID = 379
BUSINESS_REJECT_REASON = 380
USERNAME = 553
PASSWORD = 554
NEXT_EXPECTED_MSG_SEQ_NUM = 789
DEFAULT_APPL_VER_ID = 1137  # FIXT.1.1 Logon

# ---------------------------------------------------------------- orders and reports
ACCOUNT = 1
AVG_PX = 6
CL_ORD_ID = 11
CUM_QTY = 14
CURRENCY = 15
EXEC_ID = 17
EXEC_INST = 18
EXEC_TRANS_TYPE = 20  # FIX 4.2
HANDL_INST = 21
SECURITY_ID_SOURCE = 22  # FIX 4.2: IDSource
LAST_PX = 31
LAST_QTY = 32  # FIX 4.2: LastShares
ORDER_ID = 37
ORDER_QTY = 38
ORD_STATUS = 39
ORD_TYPE = 40
ORIG_CL_ORD_ID = 41
PRICE = 44
SECURITY_ID = 48
SIDE = 54
SYMBOL = 55
TIME_IN_FORCE = 59
TRANSACT_TIME = 60
LIST_ID = 66
LIST_SEQ_NO = 67
TOT_NO_ORDERS = 68
NO_ORDERS = 73
NO_RPTS = 82
RPT_SEQ = 83
CXL_QTY = 84
STOP_PX = 99
CXL_REJ_REASON = 102
ORD_REJ_REASON = 103
EXEC_TYPE = 150
LEAVES_QTY = 151
EXEC_RESTATEMENT_REASON = 378
LIST_STATUS_TYPE = 429
LIST_ORDER_STATUS = 431
CXL_REJ_RESPONSE_TO = 434
LIST_STATUS_TEXT = 444
ORDER_CAPACITY = 528
ACCOUNT_TYPE = 581

# ---------------------------------------------------------------- tag sets

#: Members of the NoHops (627) header group: header fields, but only inside an entry.
HOPS_GROUP_TAGS = frozenset({HOP_COMP_ID, HOP_SENDING_TIME, HOP_REF_ID})

#: Header fields of FIXT.1.1 that no FIX 4.x header has.
FIXT_HEADER_TAGS = frozenset({APPL_VER_ID, CSTM_APPL_VER_ID, APPL_EXT_ID})

#: The standard header of every FIX 4.x version and of FIXT.1.1, group members included:
#: a field with one of these tags is never part of a message body.
HEADER_TAGS = frozenset({
    BEGIN_STRING, BODY_LENGTH, MSG_TYPE, SENDER_COMP_ID, TARGET_COMP_ID,
    ON_BEHALF_OF_COMP_ID, DELIVER_TO_COMP_ID, SECURE_DATA_LEN, SECURE_DATA, MSG_SEQ_NUM,
    SENDER_SUB_ID, SENDER_LOCATION_ID, TARGET_SUB_ID, TARGET_LOCATION_ID, ON_BEHALF_OF_SUB_ID,
    ON_BEHALF_OF_LOCATION_ID, DELIVER_TO_SUB_ID, DELIVER_TO_LOCATION_ID, POSS_DUP_FLAG,
    POSS_RESEND, SENDING_TIME, ORIG_SENDING_TIME, XML_DATA_LEN, XML_DATA, MESSAGE_ENCODING,
    LAST_MSG_SEQ_NUM_PROCESSED, ON_BEHALF_OF_SENDING_TIME, NO_HOPS,
}) | HOPS_GROUP_TAGS | FIXT_HEADER_TAGS  # fmt: skip

#: The standard trailer.
TRAILER_TAGS = frozenset({SIGNATURE_LENGTH, SIGNATURE, CHECK_SUM})

#: The frame fields: computed by the encoder, never taken from the fields given to it.
FRAME_TAGS = frozenset({BEGIN_STRING, BODY_LENGTH, MSG_TYPE, CHECK_SUM})

#: Header fields the session writes itself on every message it sends; the same tags in
#: header fields an application hands over are dropped.
SESSION_HEADER_TAGS = frozenset({
    BEGIN_STRING, BODY_LENGTH, MSG_TYPE, MSG_SEQ_NUM, SENDER_COMP_ID, SENDING_TIME,
    TARGET_COMP_ID, POSS_DUP_FLAG, ORIG_SENDING_TIME,
})  # fmt: skip

#: MsgType values of the session-level (administrative) messages.
ADMIN_MSG_TYPES = frozenset({b"0", b"1", b"2", b"3", b"4", b"5", b"A"})

#: Routing fields of a message that came through a hub and the fields its answer
#: is addressed with: OnBehalfOf* on the way in, DeliverTo* on the way back.
ON_BEHALF_OF_TO_DELIVER_TO = (
    (ON_BEHALF_OF_COMP_ID, DELIVER_TO_COMP_ID),
    (ON_BEHALF_OF_SUB_ID, DELIVER_TO_SUB_ID),
    (ON_BEHALF_OF_LOCATION_ID, DELIVER_TO_LOCATION_ID),
)


def tag_numbers() -> dict[str, int]:
    """Every named tag of this module: ``{"CL_ORD_ID": 11, ...}``."""
    return {k: v for k, v in globals().items() if k.isupper() and type(v) is int}


def _pxd_source() -> str:
    """Text of ``fastfix/_tags.pxd``: the named tags as a C enum for the compiled modules."""
    lines = [
        "# Generated from fastfix/tags.py by setup.py: edit that file, not this one.",
        "# FIX tag numbers as C constants: ``from fastfix._tags cimport MSG_TYPE``.",
        "",
        "cdef enum:",
    ]
    lines += [f"    {name} = {tag}" for name, tag in sorted(tag_numbers().items(), key=lambda kv: kv[1])]
    return "\n".join(lines) + "\n"
