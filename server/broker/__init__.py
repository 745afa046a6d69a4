"""Simulated securities brokers between the STP-HUB and the exchange.

:mod:`.ledger` holds accounts, positions and orders (no FIX), :mod:`.fix_app` is
the FIX application of the broker's two sessions, :mod:`.config` reads the TOML
file and :mod:`.service` runs it.
"""

from server.broker.config import AccountConfig, BrokerConfig, load_config
from server.broker.fix_app import BrokerApplication
from server.broker.ledger import Account, BrokerOrder, Ledger, Refusal
from server.broker.service import BrokerServer, serve

__all__ = ["Account", "AccountConfig", "BrokerApplication", "BrokerConfig", "BrokerOrder", "BrokerServer",
           "Ledger", "Refusal", "load_config", "serve"]
