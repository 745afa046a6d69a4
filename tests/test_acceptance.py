"""QuickFIX session acceptance suite against ``fastfix acceptance``.

Every FIX 4.4 scenario of ``../shared/fix/acceptance/fix44`` runs against one
acceptor process, one after another (as the suite intends), then the same
scenarios derived for FIX 4.2 (session ISLD<->TW42):

- BeginString FIX.4.4 -> FIX.4.2 and TW44 -> TW42 on every line; a line that
  carries its own BodyLength keeps its error (the value moves by the change in
  body length, which is zero for these two rewrites);
- FIX 4.2 only defines SessionRejectReason values up to 11, so an expected
  Reject with 373=13/14/16 (repeated tag, out of order, NumInGroup count) is
  expected without 373, as QuickFIX writes it for FIX 4.2;
- 2r_UnregisteredMsgType: a FIX 4.2 ExecutionReport also requires
  ExecTransType (20); the scenario adds 20=0 so the message is valid and still
  gets the BusinessMessageReject for an unsupported type;
- 21_RepeatingGroupSpecifierWithValueOfZero: NoSecurityAltID (454) does not
  exist in FIX 4.2; the zero-count group of a 4.2 SecurityDefinition is
  NoRelatedSym (146), used instead, and a 4.2 SecurityDefinition also requires
  TotalNumSecurities (393), added (the echo lists fields in tag order).

No scenario is skipped for FIX 4.2.
"""

from __future__ import annotations

import asyncio
import os
import re
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from acceptance_runner import load_formats, parse_def, run_steps

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SUITE = SHARED / "fix" / "acceptance"
FIX44 = sorted((SUITE / "fix44").glob("*.def")) if SUITE.is_dir() else []

pytestmark = pytest.mark.skipif(not FIX44, reason="acceptance suite (../shared) not present")

SOH = "\x01"


@pytest.fixture(scope="module")
def acceptor() -> Iterator[tuple[str, int]]:
    """``fastfix acceptance --port 0`` in a subprocess; yields (host, port)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastfix.cli", "acceptance", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "acceptor did not start within 60 s"
        line = proc.stdout.readline().decode()  # type: ignore[union-attr]
        m = re.search(r"listening on ([\d.]+):(\d+)", line)
        assert m, f"unexpected first line {line!r}; stderr: {proc.stderr.read1().decode()!r}"  # type: ignore[union-attr]
        yield m.group(1), int(m.group(2))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def formats() -> dict[int, re.Pattern[str]]:
    return load_formats(SUITE / "fields.fmt")


def _play(name: str, text: str, acceptor: tuple[str, int], formats: dict) -> None:
    host, port = acceptor
    result = asyncio.run(run_steps(name, parse_def(text), host, port, formats))
    assert result.passed, str(result) + "\n" + "\n".join(result.log[-12:])


@pytest.mark.parametrize("path", FIX44, ids=[p.stem for p in FIX44])
def test_fix44(path: Path, acceptor: tuple[str, int], formats: dict) -> None:
    _play(path.name, path.read_text(encoding="latin-1"), acceptor, formats)


# --------------------------------------------------------------------------- FIX 4.2


def _body_len(fields: list[str]) -> int:
    return sum(len(f) + 1 for f in fields if not f.startswith(("8=", "9=", "10=")))


def _rewrite_message(msg: str, name: str, expected: bool) -> str:
    fields = msg.split(SOH)
    trailing = fields and fields[-1] == ""
    if trailing:
        fields.pop()
    before = _body_len(fields)
    fields = [f.replace("FIX.4.4", "FIX.4.2").replace("TW44", "TW42") for f in fields]
    if expected and "35=3" in fields:
        fields = [f for f in fields if not (f.startswith("373=") and int(f[4:]) > 11)]
    if name.startswith("2r_") and not expected and "35=8" in fields:
        fields.insert(fields.index("17=id") + 1, "20=0")
    if name.startswith("21_") and "35=d" in fields:
        fields = [f for f in fields if f != "454=0"]
        if expected:
            fields.insert(fields.index("167=CS"), "146=0")
            fields.insert(len(fields) - 1, "393=1")
        else:
            fields += ["146=0", "393=1"]
    after = _body_len(fields)
    for i, f in enumerate(fields):
        if f.startswith("9="):
            fields[i] = f"9={int(f[2:]) + after - before}"
    return SOH.join(fields) + (SOH if trailing else "")


def to_fix42(name: str, text: str) -> str:
    """The FIX 4.2 variant of a FIX 4.4 scenario (see the module docstring)."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^([IE])(\d+,)?(.*)$", line, re.S)
        if m and SOH in line:
            line = m.group(1) + (m.group(2) or "") + _rewrite_message(m.group(3), name, m.group(1) == "E")
        out.append(line)
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("path", FIX44, ids=[p.stem for p in FIX44])
def test_fix42(path: Path, acceptor: tuple[str, int], formats: dict) -> None:
    text = to_fix42(path.name, path.read_text(encoding="latin-1"))
    _play(path.name + " (FIX.4.2)", text, acceptor, formats)


def test_fix42_rewrite_keeps_deliberate_length_errors() -> None:
    line = "I8=FIX.4.4\x019=30\x0135=D\x0134=2\x0149=TW44\x0156=ISLD\x01"
    assert to_fix42("x", line) == "I8=FIX.4.2\x019=30\x0135=D\x0134=2\x0149=TW42\x0156=ISLD\x01\n"
    rej = "E8=FIX.4.4\x019=106\x0135=3\x0145=2\x0158=Tag appears more than once\x01373=13\x0110=0\x01"
    assert to_fix42("x", rej) == (
        "E8=FIX.4.2\x019=99\x0135=3\x0145=2\x0158=Tag appears more than once\x0110=0\x01\n"
    )
