"""The projector: a process that follows the journal and writes the SQLite projection.

``python -m server.gateway.projector --database gw.db --journal gw.journal``, started
and stopped by the gateway (``Projection.start``/``close``). It reads the records the
gateway appends (:class:`~server.gateway.journal.JournalReader`), applies them in
batches of up to ``BATCH_RECORDS`` per transaction with the last position in the same
transaction, publishes that position in the status file, removes segments it has
applied, and checkpoints the WAL about once a second.

It runs at idle priority (``SCHED_IDLE``): it takes only CPU the gateway leaves, so
under load the projection lags rather than the orders; being a process of its own it
never holds the gateway's GIL. SIGTERM: apply what is written, then exit. It exits
too when its gateway dies (its parent changes), after applying what it can read.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

from server.gateway.journal import JournalReader
from server.gateway.projection import (
    BATCH_RECORDS,
    CHECKPOINT_INTERVAL,
    RETRY_DELAY,
    STATUS_FILE,
    Projection,
    StatusFile,
    _apply,
)

log = logging.getLogger("fastfix.gateway.projector")

# Seconds between looks at the journal when nothing is new: from the first to the last,
# doubling while it stays idle (an idle gateway's projector wakes 100 times a second, not 500).
IDLE_SLEEP = 0.002
IDLE_SLEEP_MAX = 0.01


def _drop_projected(directory: Path, applied: int) -> None:
    """Remove segments all of whose records are applied (never the newest: the writer's)."""
    segments = sorted((int(p.stem), p) for p in directory.glob("*.journal") if p.stem.isdigit())
    for (_, path), (nxt, _) in zip(segments, segments[1:], strict=False):
        if nxt <= applied + 1:
            try:
                path.unlink()
            except FileNotFoundError:
                pass


def run(database: Path, journal: Path, sync: str, parent: int) -> None:
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except OSError:  # not permitted here: normal priority still works
            pass
    proj = Projection(database, sync)
    conn = proj._connect(writer=True)
    reader = JournalReader(journal, Projection.recorded_position(conn))
    status = StatusFile(journal / STATUS_FILE, writable=True)
    status.set(reader.last)
    last_ckpt = time.monotonic()
    idle = IDLE_SLEEP
    try:
        while True:
            batch = reader.poll(BATCH_RECORDS)
            if batch:
                idle = IDLE_SLEEP
                if sync == "full":
                    reader.flush()  # never project a record the journal could still lose
                while True:
                    try:
                        _apply(conn, batch)
                        break
                    except sqlite3.Error:
                        # The journal keeps the rows: the projection lags until the database
                        # takes writes again (disk full, locked by an operator's tool).
                        log.exception("projection transaction failed; retrying in %.1f s", RETRY_DELAY)
                        time.sleep(RETRY_DELAY)
                status.set(batch[-1][0])
                _drop_projected(journal, batch[-1][0])
            elif stopping or os.getppid() != parent:
                break
            else:
                time.sleep(idle)
                idle = min(idle * 2, IDLE_SLEEP_MAX)
            now = time.monotonic()
            if now - last_ckpt >= CHECKPOINT_INTERVAL:
                last_ckpt = now
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    log.exception("WAL checkpoint failed")
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass
    finally:
        status.close()
        conn.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m server.gateway.projector", description=__doc__.split("\n")[0])
    ap.add_argument("--database", type=Path, required=True)
    ap.add_argument("--journal", type=Path, required=True)
    ap.add_argument("--sync", choices=("normal", "full"), default="normal")
    ap.add_argument("--parent", type=int, default=0, help="the gateway's PID: exit once it is gone")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The gateway may have died before this process got here: compare with the PID it gave.
    run(args.database, args.journal, args.sync, args.parent or os.getppid())
    return 0


if __name__ == "__main__":
    sys.exit(main())
