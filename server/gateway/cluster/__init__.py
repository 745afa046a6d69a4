"""Cluster mode: several gateway instances on NATS JetStream and PostgreSQL (docs/cluster.md).

Modules: ``journal.py`` (the replicated journal: order commands with de-duplication, one
fenced single-writer log per FIX session), ``lease.py`` (one owner per FIX session, a
compare-and-set lease in a JetStream key-value bucket), ``projection.py`` (PostgreSQL
behind the journal). They need the ``cluster`` extra (``nats-py``, ``asyncpg``).
"""
