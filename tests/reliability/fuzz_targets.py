"""Coverage-guided fuzz targets (atheris) for the codec, the validator and the JSON mapping.

Run one (``make fuzz`` runs them all for a while)::

    .venv/bin/python tests/reliability/fuzz_targets.py tokenizer -max_total_time=300
    .venv/bin/python tests/reliability/fuzz_targets.py validate -runs=100000
    .venv/bin/python tests/reliability/fuzz_targets.py jsonfix -max_total_time=300

Every target checks properties, not only "does not crash": the tokenizer gives the
same messages however the input is split, every message it returns parses again to
the same fields; validation returns None or a reject with a known reason; the JSON
mapping either produces FIX that parses or raises JsonMappingError. Anything else
(an unexpected exception, a wrong answer) is a finding: atheris stops and writes
the input to ``crash-*``.
"""

from __future__ import annotations

import sys
from typing import Any

from fastfix.codec import Garbled, Tokenizer, checksum, encode, parse
from fastfix.dictionary import DataDictionary
from fastfix.errors import JsonMappingError, ParseError

KNOWN_REASONS = frozenset(range(0, 19)) | {99}
_dd: DataDictionary | None = None
_codec: Any = None


def _dictionary() -> DataDictionary:
    global _dd
    if _dd is None:
        _dd = DataDictionary.load("FIX.4.4")
    return _dd


def seeds() -> list[bytes]:
    """A few valid messages to start from (and to splice into junk)."""
    hdr = [(49, "GW"), (56, "HUB"), (34, 7), (52, "20240102-09:00:00.000")]
    return [
        encode("FIX.4.4", "D", hdr + [(11, "A1"), (21, "1"), (55, "005930"), (54, "1"), (38, 10), (40, "2"),
                                      (44, "70000"), (60, "20240102-09:00:00"),
                                      (453, [[(448, "P1"), (447, "D"), (452, 3)]])]),
        encode("FIX.4.4", "8", hdr + [(37, "O1"), (11, "A1"), (17, "E1"), (150, "F"), (39, "2"), (55, "005930"),
                                      (54, "1"), (38, 10), (32, 10), (31, "70000"), (151, 0), (14, 10), (6, "70000")]),
        encode("FIX.4.4", "0", hdr),
        encode("FIX.4.4", "B", hdr + [(148, "headline"), (95, 5), (96, b"a\x01b=c")]),
    ]


def check_tokenizer(data: bytes, split: int) -> None:
    """Whole-stream framing equals framing of the same bytes in pieces; messages re-parse."""
    whole = Tokenizer(max_message_size=4096).feed(data)
    tok = Tokenizer(max_message_size=4096)
    step = max(1, split)
    pieces: list[Any] = []
    for i in range(0, len(data), step):
        pieces.extend(tok.feed(data[i:i + step]))
        assert tok.buffered <= 4096 + step, tok.buffered
    msgs_whole = [m.raw for m in whole if not isinstance(m, Garbled)]
    msgs_split = [m.raw for m in pieces if not isinstance(m, Garbled)]
    assert msgs_whole == msgs_split, (msgs_whole, msgs_split)
    for item in whole:
        if isinstance(item, Garbled):
            assert isinstance(item.reason, str) and item.reason
            continue
        raw = item.raw
        assert raw.startswith(b"8=") and raw.endswith(b"\x01")
        assert int(raw[-4:-1]) == checksum(raw[: raw.rindex(b"\x0110=") + 1])
        again = parse(raw)
        assert again.fields() == item.fields()


def check_validate(data: bytes) -> None:
    try:
        msg = parse(data)
    except ParseError:
        return
    err = _dictionary().validate(msg)
    if err is not None:
        assert err.reason in KNOWN_REASONS, err
        err.reject_fields(ref_seq_num=1, begin_string="FIX.4.4")


def check_jsonfix(data: bytes) -> None:
    global _codec
    if _codec is None:
        from fastfix.jsonfix import JsonCodec

        _codec = JsonCodec("FIX.4.4")
    msg_type = "DFG8E"[data[0] % 5] if data else "D"
    try:
        wire = _codec.body_to_fix(msg_type, data[1:], header=[(49, "GW"), (56, "HUB"), (34, 1),
                                                                (52, "20240102-09:00:00")])
    except JsonMappingError as exc:
        assert exc.errors and all(e.reason for e in exc.errors)
        return
    parsed = parse(wire)
    assert parsed.msg_type == msg_type.encode()
    _codec.fix_to_json(parsed)


def main(argv: list[str]) -> None:
    import atheris

    target = argv[1] if len(argv) > 1 else "tokenizer"

    def one(data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)
        if target == "tokenizer":
            split = fdp.ConsumeIntInRange(1, 64)
            body = fdp.ConsumeBytes(fdp.remaining_bytes())
            check_tokenizer(body, split)
        elif target == "validate":
            check_validate(data)
        elif target == "jsonfix":
            check_jsonfix(data)
        else:
            raise SystemExit(f"unknown target {target!r}: tokenizer, validate or jsonfix")

    atheris.instrument_all()  # Python-level coverage of everything loaded (the codec is compiled)
    atheris.Setup([argv[0]] + argv[2:], one)
    atheris.Fuzz()


def write_seeds(directory: str) -> None:
    """Seed corpora for the three targets under ``directory``/<target>."""
    from pathlib import Path

    for target in ("tokenizer", "validate", "jsonfix"):
        d = Path(directory) / target
        d.mkdir(parents=True, exist_ok=True)
        for i, raw in enumerate(seeds()):
            (d / f"seed-{i}").write_bytes(b"\x07" + raw if target == "tokenizer" else raw)
    (Path(directory) / "jsonfix" / "seed-json").write_bytes(
        b'\x00{"ClOrdID":"A1","Symbol":"005930","Side":"1","OrderQty":"10","OrdType":"2","Price":"70000",'
        b'"TransactTime":"20240102-09:00:00","NoPartyIDs":[{"PartyID":"P","PartyRole":"3"}]}')


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--write-seeds":
        write_seeds(sys.argv[2])
    else:
        main(sys.argv)
