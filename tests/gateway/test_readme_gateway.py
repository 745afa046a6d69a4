"""The order gateway examples of the README ("Your first order") and of docs/gateway-api.md
("Try it") work as written: the gateway started on the sandbox configuration the text names,
its curl commands (an order, then, in the API reference, the order's state) and its WebSocket
subscription, each checked against the output the text shows. Only the ports change (free
ones instead of 8080/8081), and the files the gateway writes go to a temporary directory."""

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


# (document, section heading): each section names the configuration to start the gateway with,
# then has a shell block of curl commands and the WebSocket client.
EXAMPLES = [("README.md", "Your first order"), ("docs/gateway-api.md", "Try it")]


def _section(doc: str, heading: str) -> str:
    text = (REPO / doc).read_text(encoding="utf-8")
    assert f"\n## {heading}\n" in text, f"{doc} lost its section {heading!r}"
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def _blocks(section: str) -> tuple[str, str]:
    """The section's curl session and its WebSocket client (the first block of each kind)."""
    blocks = [code for _, code in _BLOCK.findall(section)]
    shell = next((b for b in blocks if b.lstrip().startswith("curl")), None)
    client = next((b for b in blocks if "<<'PY'" in b), None)
    assert shell is not None and client is not None, "the gateway section lost its example"
    return shell, client


def _commands(shell: str) -> list[tuple[str, str]]:
    """(command, the comment line the text shows after it) for each command of a shell block."""
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
    """The string fields of the JSON the text shows ("..." stands for any value)."""
    return {k: v for k, v in _PAIR.findall(comment) if v != "..."}


def _sandbox_config(section: str) -> str:
    """The configuration the section's start command names, on free ports, writing its ports
    file where the test harness looks for it."""
    m = re.search(r"fastfix gateway --config ([\w./-]+)", section)
    assert m is not None, section
    text = (REPO / m.group(1)).read_text()
    for key, value in (("rest_port", "0"), ("ws_port", "0"), ("ports_file", '"ports.json"')):
        text, n = re.subn(rf"(?m)^{key}\s*=\s*\S+", f"{key} = {value}", text)
        assert n == 1, f"{m.group(1)} has no single {key}"
    return text


@pytest.fixture(params=EXAMPLES, ids=[doc for doc, _ in EXAMPLES])
def example(request: pytest.FixtureRequest, tmp_path: Path):
    """(the section, the gateway started on the configuration it names)."""
    section = _section(*request.param)
    gw = GatewayProcess(tmp_path, _sandbox_config(section)).start()
    try:
        yield section, gw
    finally:
        gw.stop()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (.ci/install-debian installs it)")
def test_curl_and_websocket_examples_run_as_written(example: tuple[str, GatewayProcess]) -> None:
    section, gateway = example
    shell, python = _blocks(section)
    commands = _commands(shell)
    assert [c.split()[0] for c, _ in commands] in (["curl"], ["curl", "curl"]), commands

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

    # The order's state, where the text shows it. The stream above has pushed the
    # acknowledgement (message 2, OrdStatus 0), which the gateway does once the state it
    # carries is committed.
    if len(commands) == 1:
        return
    get, shown = commands[1]
    get = get.replace("127.0.0.1:8080", f"127.0.0.1:{gateway.rest}")
    expected = _shown_fields(shown)
    assert expected["state"] == "New", shown
    state = json.loads(subprocess.run(["bash", "-c", get], capture_output=True, text=True, timeout=30,
                                      check=True).stdout)
    for key, value in expected.items():
        assert state[key] == value, (key, state)
    assert state["executions"], state
