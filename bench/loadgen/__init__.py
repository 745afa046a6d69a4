"""Load generator and latency lab of the order gateway.

``python -m bench.loadgen --help`` lists the commands: ``target`` (a gateway in
front of a FIX hub double, for the lab), ``run`` (one scenario at a fixed or
unlimited rate), ``sweep`` (the same at several offered rates), ``lab`` (start
a target, run or sweep, stop it; what ``make bench-report`` and ``make profile``
use). Scenarios are TOML files in ``bench/loadgen/scenarios/``.
"""
