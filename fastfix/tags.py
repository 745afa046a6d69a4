"""FIX tag numbers and the tag sets of the standard header and trailer.

This module is the one place these facts are written down. Python code uses it
directly (``from fastfix import tags``; ``msg.get(tags.CL_ORD_ID)``); the
compiled modules use ``fastfix/_tags.pxd``, which the build generates from this
file (see :func:`_pxd_source`), so the C-level constants cannot drift from these.

Names are the FIX field names in upper snake case (``ClOrdID`` -> ``CL_ORD_ID``),
as the FIX 4.4 dictionary spells them (tag 32 is ``LAST_QTY``, FIX 4.2's
``LastShares``; ``NoPartyIDs`` is ``NO_PARTY_IDS``); fields the shipped FIX 4.x
dictionaries lack are named as FIXT.1.1 or FIX 5.0 spells them. Only tags the code
base uses have a name here; the data dictionaries (:mod:`fastfix.dictionary`) know
every field.
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
NEW_PASSWORD = 925
DEFAULT_APPL_VER_ID = 1137  # FIXT.1.1 Logon

# ---------------------------------------------------------------- orders and reports
ACCOUNT = 1
AVG_PX = 6
CL_ORD_ID = 11
CUM_QTY = 14
CURRENCY = 15
EXEC_ID = 17
EXEC_REF_ID = 19
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
ORD_STATUS_REQ_ID = 790

# ---------------------------------------------------------------- parties
NO_PARTY_IDS = 453
PARTY_ID = 448
PARTY_ID_SOURCE = 447
PARTY_ROLE = 452

# ---------------------------------------------------------------- instrument
SECURITY_DESC = 107
SECURITY_TYPE = 167
SECURITY_EXCHANGE = 207
NO_STIPULATIONS = 232
STIPULATION_TYPE = 233
STIPULATION_VALUE = 234
PRODUCT = 460
ROUND_LOT = 561
MIN_TRADE_VOL = 562
BENCHMARK_PRICE = 662
BENCHMARK_PRICE_TYPE = 663
SECURITY_SUB_TYPE = 762
MIN_PRICE_INCREMENT = 969  # FIX 5.0
LOW_LIMIT_PRICE = 1148  # FIX 5.0
HIGH_LIMIT_PRICE = 1149  # FIX 5.0

# ---------------------------------------------------------------- mass cancel
MASS_CANCEL_REQUEST_TYPE = 530
MASS_CANCEL_RESPONSE = 531
MASS_CANCEL_REJECT_REASON = 532
TOTAL_AFFECTED_ORDERS = 533
NO_AFFECTED_ORDERS = 534
AFFECTED_ORDER_ID = 535

# ---------------------------------------------------------------- security list and definition
NO_RELATED_SYM = 146
SUBSCRIPTION_REQUEST_TYPE = 263
SECURITY_REQ_ID = 320
SECURITY_REQUEST_TYPE = 321
SECURITY_RESPONSE_ID = 322
SECURITY_RESPONSE_TYPE = 323
TOT_NO_RELATED_SYM = 393  # FIX 4.2: TotalNumSecurities
SECURITY_LIST_REQUEST_TYPE = 559
SECURITY_REQUEST_RESULT = 560
LAST_FRAGMENT = 893

# ---------------------------------------------------------------- trading session status
UNSOLICITED_INDICATOR = 325
TRAD_SES_REQ_ID = 335
TRADING_SESSION_ID = 336
TRAD_SES_MODE = 339
TRAD_SES_STATUS = 340
TRAD_SES_STATUS_REJ_REASON = 567
TRADING_SESSION_SUB_ID = 625

# ---------------------------------------------------------------- positions
NO_POSITIONS = 702
POS_TYPE = 703
LONG_QTY = 704
SHORT_QTY = 705
POS_AMT_TYPE = 707
POS_AMT = 708
POS_REQ_ID = 710
CLEARING_BUSINESS_DATE = 715
POS_MAINT_RPT_ID = 721
POS_REQ_TYPE = 724
TOTAL_NUM_POS_REPORTS = 727
POS_REQ_RESULT = 728
POS_REQ_STATUS = 729
SETTL_PRICE = 730
SETTL_PRICE_TYPE = 731
PRIOR_SETTL_PRICE = 734
NO_POS_AMT = 753

# ---------------------------------------------------------------- collateral
MARGIN_EXCESS = 899
TOTAL_NET_VALUE = 900
CASH_OUTSTANDING = 901
COLL_RPT_ID = 908
COLL_INQUIRY_ID = 909
COLL_STATUS = 910
TOT_NUM_REPORTS = 911
LAST_RPT_REQUESTED = 912
END_CASH = 922
COLL_INQUIRY_STATUS = 945
COLL_INQUIRY_RESULT = 946

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
