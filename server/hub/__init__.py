"""STP-HUB: FIX third-party routing between buy sides and brokers.

:mod:`.fix_app` is the FIX application (DeliverToCompID in, OnBehalfOfCompID out),
:mod:`.held` keeps messages for parties that are not logged on, :mod:`.config`
reads the TOML file and :mod:`.service` runs it all behind one FIX acceptor.
"""

from server.hub.config import HubConfig, Party, load_config
from server.hub.fix_app import HubApplication, forward_fields
from server.hub.held import HeldStore
from server.hub.service import HubServer, serve

__all__ = ["HeldStore", "HubApplication", "HubConfig", "HubServer", "Party", "forward_fields",
           "load_config", "serve"]
