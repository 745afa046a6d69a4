"""The ``[cluster]`` table of the gateway's TOML: types, ranges and errors naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest
from _gateway_harness import gateway_toml

from fastfix.errors import ConfigError
from server.gateway.config import load_config

CLUSTER = """
[cluster]
instance = "gw-a"
nats = ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223"]
postgres = "postgresql://postgres@127.0.0.1:5432/fastfix"
lease_term = 3.0
renew_interval = 1.0
"""


def _write(tmp: Path, text: str) -> Path:
    p = tmp / "gw.toml"
    p.write_text(text)
    return p


def test_embedded_has_no_cluster(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path, gateway_toml())).cluster is None


def test_cluster_table_loads(tmp_path: Path) -> None:
    c = load_config(_write(tmp_path, gateway_toml() + CLUSTER)).cluster
    assert c is not None and c.instance == "gw-a" and len(c.nats) == 2
    assert (c.stream, c.replicas, c.lease_term) == ("FASTFIX", 3, 3.0)


@pytest.mark.parametrize("change,key", [
    (('instance = "gw-a"', 'instance = "gw a"'), "cluster.instance"),
    (('nats = ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223"]', "nats = []"), "cluster.nats"),
    (('nats = ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223"]', 'nats = ["127.0.0.1:4222"]'),
     "cluster.nats[0]"),
    (('postgres = "postgresql://', 'postgres = "mysql://'), "cluster.postgres"),
    (("lease_term = 3.0", "lease_term = 1.5"), "cluster.renew_interval"),
    (("lease_term = 3.0", "lease_term = -1"), "cluster.lease_term"),
    (("renew_interval = 1.0", "renew_every = 1.0"), "cluster.renew_every"),
])
def test_cluster_errors_name_file_and_key(tmp_path: Path, change: tuple[str, str], key: str) -> None:
    text = gateway_toml() + CLUSTER
    assert change[0] in text
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, text.replace(change[0], change[1], 1)))
    assert str(err.value).startswith(str(tmp_path.resolve() / "gw.toml") + ": " + key), str(err.value)


def test_gateway_refuses_cluster_table(tmp_path: Path) -> None:
    """The REST/WebSocket gateway does not pretend to run clustered: it names the key."""
    import asyncio

    from server.gateway.app import serve

    cfg = load_config(_write(tmp_path, gateway_toml() + CLUSTER))
    with pytest.raises(ConfigError, match=r"gw\.toml: cluster: .*server\.gateway\.cluster\.owner"):
        asyncio.run(serve(cfg))


def test_owner_reads_the_cluster_table(tmp_path: Path) -> None:
    """``--config`` gives the owner its instance, servers and lease from [cluster]."""
    import subprocess
    import sys

    text = gateway_toml().replace('link = "loopback"', 'link = "fix"\nfix_settings = "fix.cfg"')
    (tmp_path / "fix.cfg").write_text("[DEFAULT]\nConnectionType=initiator\n")
    cfg = _write(tmp_path, text)
    out = subprocess.run([sys.executable, "-m", "server.gateway.cluster.owner", "--config", str(cfg)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "needs a [cluster] table" in out.stderr


def test_example_cluster_configs_are_valid() -> None:
    """examples/cluster: three instances' TOMLs load, three NATS node configs pass ``nats-server -t``."""
    import subprocess

    from _nats_cluster import NATS_SERVER

    examples = Path(__file__).resolve().parents[2] / "examples" / "cluster"
    instances = {load_config(examples / f"gateway-{x}.toml").cluster.instance for x in "abc"}
    assert instances == {"gw-a", "gw-b", "gw-c"}
    for i in (1, 2, 3):
        out = subprocess.run([NATS_SERVER, "-c", str(examples / f"nats-{i}.conf"), "-t"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0 and "is valid" in out.stderr + out.stdout, out.stderr
