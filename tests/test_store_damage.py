"""FileStore: a torn LAST record is dropped; damage anywhere else stops the store.

A crash mid-write leaves at most one unfinished record, at the end of the journal.
A record that fails its CRC (or whose length field is damaged) with good records
after it is damage from elsewhere (disk, copy, a second writer): the store must
refuse to open, name the file and the offset, and leave every byte as it was.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from fastfix.errors import StoreError
from fastfix.settings import SessionID
from fastfix.store import FileStore

SID = SessionID("FIX.4.4", "GW", "HUB")
_MAGIC_LEN = 12
_HEADER = struct.Struct("<BII")


def _journal(tmp_path: Path, n: int = 5) -> tuple[Path, list[int]]:
    """A store with ``n`` sent messages; returns its path and each record's offset."""
    st = FileStore.for_session(tmp_path, SID)
    for seq in range(1, n + 1):
        st.save_sent(seq, b"8=FIX.4.4\x0135=D\x0134=%d\x0111=ORDER-%d\x01" % (seq, seq))
    st.close()
    path = tmp_path / f"{SID.file_prefix}.store"
    data = path.read_bytes()
    offsets, pos = [], _MAGIC_LEN
    while pos < len(data):
        offsets.append(pos)
        _, length, _ = _HEADER.unpack_from(data, pos)
        pos += _HEADER.size + length
    return path, offsets


def _flip(path: Path, offset: int) -> bytes:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    return bytes(data)


def test_crc_damage_in_the_middle_stops_and_keeps_the_file(tmp_path: Path) -> None:
    path, offsets = _journal(tmp_path)
    victim = offsets[3]  # the second message record, with three records after it
    damaged = _flip(path, victim + _HEADER.size + 12)
    with pytest.raises(StoreError) as e:
        FileStore.for_session(tmp_path, SID)
    msg = str(e.value)
    assert str(path) in msg and f"offset {victim}" in msg and "CRC" in msg
    assert path.read_bytes() == damaged  # nothing truncated
    # still refused on the next try: the operator decides
    with pytest.raises(StoreError, match=f"offset {victim}"):
        FileStore.for_session(tmp_path, SID)


def test_damaged_length_in_the_middle_stops_and_keeps_the_file(tmp_path: Path) -> None:
    path, offsets = _journal(tmp_path)
    victim = offsets[2]
    data = bytearray(path.read_bytes())
    data[victim + 1 : victim + 5] = struct.pack("<I", 10_000_000)  # length past the end of the file
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=f"offset {victim}.*valid record follows at offset {offsets[3]}"):
        FileStore.for_session(tmp_path, SID)
    assert path.read_bytes() == bytes(data)


def test_crc_damage_in_the_last_record_is_a_torn_tail(tmp_path: Path) -> None:
    path, offsets = _journal(tmp_path)
    _flip(path, offsets[-1] + _HEADER.size + 10)
    st = FileStore.for_session(tmp_path, SID)
    assert st.recovered_bytes > 0 and path.stat().st_size == offsets[-1]
    assert [s for s, _ in st.get_range(1, 0)] == [1, 2, 3, 4] and st.next_sender_seq == 5
    st.close()


def test_zero_filled_tail_is_a_torn_tail(tmp_path: Path) -> None:
    path, _ = _journal(tmp_path)
    good = path.stat().st_size
    with open(path, "ab") as f:
        f.write(b"\x00" * 4096)  # a file system that grew the file but lost the data
    st = FileStore.for_session(tmp_path, SID)
    assert st.recovered_bytes == 4096 and path.stat().st_size == good
    assert st.next_sender_seq == 6
    st.close()


def test_engine_start_fails_naming_the_store(tmp_path: Path) -> None:
    import asyncio

    from fastfix.engine import Acceptor, Application
    from fastfix.settings import SessionSettings

    path, offsets = _journal(tmp_path)
    damaged = _flip(path, offsets[2] + _HEADER.size + 3)
    settings = SessionSettings.from_dict(
        [{"SenderCompID": "GW", "TargetCompID": "HUB"}],
        default={"ConnectionType": "acceptor", "BeginString": "FIX.4.4", "SocketAcceptPort": 0,
                 "SocketAcceptAddress": "127.0.0.1", "MessageStore": "file", "FileStorePath": str(tmp_path)},
    )

    async def go() -> None:
        acceptor = Acceptor(settings, Application())
        try:
            with pytest.raises(StoreError, match=f"offset {offsets[2]}"):
                await acceptor.start()
        finally:
            await acceptor.stop()

    asyncio.run(asyncio.wait_for(go(), 30))
    assert path.read_bytes() == damaged
