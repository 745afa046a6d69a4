"""The pieces the exchange, hub and broker services share: TOML reading, status files, timers."""

from __future__ import annotations

import asyncio
import copy
import importlib
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import pytest

from fastfix.errors import ConfigError
from server._config import FixSettings, Port, Table, convert, read_toml
from server._service import Periodic, remove_file, run_until_stopped, write_json_atomic


def test_read_toml_errors_name_the_file(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[hub]\nfix_settings = "hub.cfg"\n')
    assert read_toml(good) == {"hub": {"fix_settings": "hub.cfg"}}
    bad = tmp_path / "bad.toml"
    bad.write_text("[hub\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        read_toml(bad)
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'name = "\xe9"\n')
    with pytest.raises(ConfigError, match=r"latin\.toml: not valid TOML"):
        read_toml(latin)
    with pytest.raises(ConfigError, match=r"missing\.toml: cannot read"):
        read_toml(tmp_path / "missing.toml")


class _Party(Table):
    comp_id: Annotated[str, msgspec.Meta(min_length=1)]
    role: Literal["buy-side", "broker"] = "broker"
    limits: dict[str, Annotated[int, msgspec.Meta(gt=0)]] = msgspec.field(default_factory=dict)


class _Section(Table):
    fix_settings: FixSettings
    port: Port | None = None
    database: Path = Path("x.db")


class _Doc(Table):
    x: _Section
    parties: list[_Party] = msgspec.field(default_factory=list)


def _error(data: dict, where: str = "x.toml") -> str:
    with pytest.raises(ConfigError) as err:
        convert(data, _Doc, where, Path("/etc/x"))
    return str(err.value)


def test_convert_names_file_and_key_path() -> None:
    ok = {"x": {"fix_settings": "x.cfg"}, "parties": [{"comp_id": "A", "limits": {"005930": 5}}]}
    doc = convert(ok, _Doc, "x.toml", Path("/etc/x"))
    assert doc.x.fix_settings == Path("/etc/x/x.cfg") and doc.x.database == Path("/etc/x/x.db")
    assert doc.parties[0].limits == {"005930": 5}
    assert convert({"x": {"fix_settings": "/abs/x.cfg"}}, _Doc, "x.toml", Path("/etc")).x.fix_settings \
        == Path("/abs/x.cfg")
    good_party = {"comp_id": "A"}
    cases = {
        "x.toml: missing [x] table": {"parties": []},
        "x.toml: extra: unknown table": {**ok, "extra": {"a": 1}},
        "x.toml: stray: unknown key": {**ok, "stray": 1},
        "x.toml: x.bogus: unknown key": {"x": {"fix_settings": "x.cfg", "bogus": 1}},
        "x.toml: x.fix_settings: is required (a QuickFIX-style settings file)": {"x": {}},
        "x.toml: x.port: Expected int <= 65535 (a TCP port, 0 = any free port)":
            {"x": {"fix_settings": "x.cfg", "port": 70000}},
        "x.toml: x.port: Expected int | null, got bool (a TCP port, 0 = any free port)":
            {"x": {"fix_settings": "x.cfg", "port": True}},
        "x.toml: x.database: Expected a path (a non-empty string), got 5":
            {"x": {"fix_settings": "x.cfg", "database": 5}},
        "x.toml: parties[1].comp_id: is required": {**ok, "parties": [good_party, {}]},
        "x.toml: parties[1].role: Invalid enum value 'dealer' (one of: 'buy-side', 'broker')":
            {**ok, "parties": [good_party, {"comp_id": "B", "role": "dealer"}]},
        "x.toml: parties[0].limits.000660: Expected int >= 1":
            {**ok, "parties": [{"comp_id": "A", "limits": {"005930": 5, "000660": 0}}]},
        "x.toml: parties[0].colour: unknown key": {**ok, "parties": [{"comp_id": "A", "colour": 1}]},
        "x.toml: parties: Expected array, got object": {**ok, "parties": {"comp_id": "A"}},
    }
    for message, data in cases.items():
        assert _error(data) == message


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _tables(data: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every table of a parsed TOML document (arrays of tables too), with its key path."""
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else key
        items = [(path, value)] if isinstance(value, dict) else \
            [(f"{path}[{i}]", v) for i, v in enumerate(value)] if isinstance(value, list) else []
        for where, table in items:
            if isinstance(table, dict):
                yield where, table
                yield from _tables(table, where)


@pytest.mark.parametrize("example,module", [
    ("gateway.toml", "server.gateway.config"),
    ("hub.toml", "server.hub.config"),
    ("broker-kiwoom.toml", "server.broker.config"),
    ("exchange.toml", "server.exchange.config"),
    ("sandbox.toml", "server.sandbox"),
])
def test_unknown_key_in_any_table_names_file_and_key(example: str, module: str) -> None:
    parse = importlib.import_module(module).parse_config
    path = EXAMPLES / example
    data = read_toml(path)
    parse(copy.deepcopy(data), path)  # valid as shipped
    tables = [where for where, _ in _tables(data)]
    assert len(tables) >= 2
    for n, where in enumerate(tables):
        doc = copy.deepcopy(data)
        list(_tables(doc))[n][1]["bogus_key"] = 1
        with pytest.raises(ConfigError) as err:
            parse(doc, path)
        # tables keyed by short code report the code as an unknown instrument
        assert re.search(rf"{example}: {re.escape(where)}\.bogus_key: unknown (key|instrument)$", str(err.value))
    with pytest.raises(ConfigError, match=rf"{example}: bogus_table: unknown table$"):
        parse({**data, "bogus_table": {"a": 1}}, path)


def test_status_file_written_whole_and_removed(tmp_path: Path) -> None:
    path = tmp_path / "run" / "hub.ports.json"
    write_json_atomic(path, {"fix": 9880, "logged_on": []})
    assert json.loads(path.read_text()) == {"fix": 9880, "logged_on": []}
    assert [p.name for p in path.parent.iterdir()] == ["hub.ports.json"]  # no temporary left behind
    remove_file(path)
    assert not path.exists()
    remove_file(path)  # already gone: fine
    remove_file(None)


def test_periodic_survives_a_failing_tick(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> list[int]:
        calls: list[int] = []
        done = asyncio.Event()

        def tick() -> None:
            calls.append(len(calls))
            if len(calls) == 1:
                raise RuntimeError("first tick fails")
            if len(calls) == 3:
                done.set()

        timer = Periodic(0.001, tick, logging.getLogger("test.periodic"), "test timer")
        timer.start()
        try:
            await asyncio.wait_for(done.wait(), 5)
        finally:
            await timer.stop()
        await timer.stop()  # a second stop is harmless
        return calls

    with caplog.at_level(logging.ERROR, logger="test.periodic"):
        calls = asyncio.run(main())
    assert len(calls) >= 3
    assert any(r.message == "test timer" and r.exc_info for r in caplog.records)


def test_run_until_stopped_starts_then_stops_the_service() -> None:
    events: list[str] = []

    class Service:
        async def start(self) -> None:
            events.append("start")

        async def stop(self) -> None:
            events.append("stop")

    async def main() -> None:
        stop = asyncio.Event()
        runner = asyncio.create_task(run_until_stopped(Service(), stop))
        for _ in range(100):  # bounded: wait for start() to have run
            if events:
                break
            await asyncio.sleep(0)
        assert events == ["start"]
        stop.set()
        await asyncio.wait_for(runner, 5)

    asyncio.run(main())
    assert events == ["start", "stop"]
