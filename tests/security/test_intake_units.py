"""Identifier rules at intake (check_id), without a gateway process."""

from __future__ import annotations

import pytest

from server.gateway._intake import check_id


@pytest.mark.parametrize("value", ["주문", "🚀", "a\x01b", "a\nb", "a\x00", "a\x7f", "   ", " a", "a ", "a/b",
                                   "ü", "a\u00a0b"])
def test_refused(value: str) -> None:
    problems: list = []
    assert check_id(value, "ClOrdID", "$.ClOrdID", problems) is None
    assert len(problems) == 1 and problems[0].field == "ClOrdID" and problems[0].reason


@pytest.mark.parametrize("value", ["a", "A-1_2.3", "a b", "a%41", "!\"#$%&'()*+,-.;<=>?@[\\]^_`{|}", "x" * 64])
def test_accepted(value: str) -> None:
    problems: list = []
    assert check_id(value, "ListID", "$.ListID", problems) == value and problems == []
