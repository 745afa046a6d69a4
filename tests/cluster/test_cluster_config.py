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
