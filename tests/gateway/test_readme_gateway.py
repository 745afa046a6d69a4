"""The README's order gateway example works as written: the gateway started on the sandbox
configuration it names, its curl commands (an order, then the order's state) and its
WebSocket subscription, each checked against the output the README shows. Only the ports
change (free ones instead of 8080/8081), and the files the gateway writes go to a
temporary directory."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _gateway_harness import GatewayProcess

REPO = Path(__file__).resolve().parents[2]
_BLOCK = re.compile(r"```(\w*)\n(.*?)```", re.S)
_PAIR = re.compile(r'"(\w+)":"([^"]*)"')


def _section() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    return readme.split("\n## Order gateway\n", 1)[1].split("\n## ", 1)[0]


def _blocks() -> list[tuple[str, str]]:
    """The first three code blocks of the section: the start command, the curl session, the
    WebSocket client."""
    blocks = _BLOCK.findall(_section())
    assert len(blocks) >= 3, "the gateway section lost its example"
    return blocks[:3]


def _commands(shell: str) -> list[tuple[str, str]]:
    """(command, the comment line the README shows after it) for each command of a shell block."""
    joined = shell.replace("\\\n", " ")
    out: list[tuple[str, str]] = []
    for line in joined.splitlines():
        line = line.strip()
        if line.startswith("#"):
            assert out, f"a comment before any command: {line}"
            out[-1] = (out[-1][0], line[1:].strip())
        elif line:
            out.append((line, ""))
    return out


def _shown_fields(comment: str) -> dict[str, str]:
    """The string fields of the JSON the README shows ("..." stands for any value)."""
    return {k: v for k, v in _PAIR.findall(comment) if v != "..."}


def _sandbox_config() -> str:
    """The configuration the start command names, on free ports, writing its ports file where
    the test harness looks for it."""
    start = _blocks()[0][1]
    m = re.search(r"fastfix gateway --config (\S+)", start)
    assert m is not None, start
    text = (REPO / m.group(1)).read_text()
    for key, value in (("rest_port", "0"), ("ws_port", "0"), ("ports_file", '"ports.json"')):
        text, n = re.subn(rf"(?m)^{key}\s*=\s*\S+", f"{key} = {value}", text)
        assert n == 1, f"{m.group(1)} has no single {key}"
    return text


@pytest.fixture()
def gateway(tmp_path: Path):
    gw = GatewayProcess(tmp_path, _sandbox_config()).start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (.ci/install-debian installs it)")
def test_readme_curl_and_websocket_examples_run_as_written(gateway: GatewayProcess) -> None:
    _, (_, shell), (_, python) = _blocks()
    commands = _commands(shell)
    assert [c.split()[0] for c, _ in commands] == ["curl", "curl"], commands

    # The order: the command as written, with curl also printing the status on a last line.
    post, shown = commands[0]
    post = post.replace("127.0.0.1:8080", f"127.0.0.1:{gateway.rest}")
    done = subprocess.run(["bash", "-c", post + " -w '\\n%{http_code}'"], capture_output=True, text=True,
                          timeout=30, check=True)
    body, _, status = done.stdout.rpartition("\n")
    assert shown.split()[0] == status == "202", (shown, done.stdout)
    answer = json.loads(body)
    for key, value in _shown_fields(shown).items():
        assert answer[key] == value, (key, answer)

    # The WebSocket subscription from the start of the client's stream (before the GET: the
    # acknowledgement it waits for is what the GET's answer shows).
    code = python.split("<<'PY'\n", 1)[1].split("\nPY\n", 1)
    script, shown = code[0], code[1].strip()
    assert shown.startswith("#"), shown
    script = script.replace("127.0.0.1:8081", f"127.0.0.1:{gateway.ws}")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True)
    assert done.stdout.splitlines() == [s.strip() for s in shown[1:].split("/")], done.stdout

    # The order's state. The stream above has pushed the acknowledgement (message 2, OrdStatus
    # 0), which the gateway does once the state it carries is committed.
    get, shown = commands[1]
    get = get.replace("127.0.0.1:8080", f"127.0.0.1:{gateway.rest}")
    expected = _shown_fields(shown)
    assert expected["state"] == "New", shown
    state = json.loads(subprocess.run(["bash", "-c", get], capture_output=True, text=True, timeout=30,
                                      check=True).stdout)
    for key, value in expected.items():
        assert state[key] == value, (key, state)
    assert state["executions"], state
