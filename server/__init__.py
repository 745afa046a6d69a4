"""fastfix services: the order gateway, the STP-HUB, broker and exchange simulators."""
