"""The pieces the exchange, hub and broker services share: TOML reading, status files, timers."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from fastfix.errors import ConfigError
from server._config import read_toml, service_table, settings_file
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


def test_settings_file_is_required_and_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "x.cfg").write_text("[DEFAULT]\n")
    assert settings_file("x.toml: x.fix_settings", "x.cfg", tmp_path) == tmp_path / "x.cfg"
    with pytest.raises(ConfigError, match=r"^x\.toml: x\.fix_settings: is required"):
        settings_file("x.toml: x.fix_settings", None, tmp_path)
    with pytest.raises(ConfigError, match=r"^x\.toml: x\.fix_settings: file not found: .*nope\.cfg"):
        settings_file("x.toml: x.fix_settings", "nope.cfg", tmp_path)


def test_service_table_rejects_what_it_does_not_know() -> None:
    doc = {"hub": {"fix_settings": "hub.cfg"}, "parties": []}
    assert service_table(doc, "hub.toml", "hub", {"fix_settings"}, {"hub", "parties"}) == doc["hub"]
    with pytest.raises(ConfigError, match=r"^hub\.toml: missing \[hub\] table$"):
        service_table({"parties": []}, "hub.toml", "hub", {"fix_settings"})
    with pytest.raises(ConfigError, match=r"^hub\.toml: extra: unknown table$"):
        service_table({**doc, "extra": {}}, "hub.toml", "hub", {"fix_settings"}, {"hub", "parties"})
    assert service_table({**doc, "extra": {}}, "hub.toml", "hub", {"fix_settings"})  # tables not checked
    with pytest.raises(ConfigError, match=r"^hub\.toml: hub\.bogus: unknown key$"):
        service_table({"hub": {"fix_settings": "x", "bogus": 1}}, "hub.toml", "hub", {"fix_settings"})


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
