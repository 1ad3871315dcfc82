"""Several `mall-connector run` processes on one PostgreSQL ledger (docs/scaling.md "Replicas").

* Every replica answers webhooks; all write the same inbox.
* Sync passes (shop poll + push, inbox drain, sweep, housekeeping) run one at a time across the replicas:
  each pass takes the ledger's ``engines`` turn (a session advisory lock, ``ledger.leases.turn``); a replica
  whose scheduler fires while another runs a pass skips that run. Within a pass changes are claimed with
  ``FOR UPDATE SKIP LOCKED``. So nothing is sent twice, exactly as with one process.
* Singleton jobs (the unconfirmed sweep, housekeeping with the deadline checks, alert evaluation and
  notification) run on the leader only: the replica holding the ``leader`` lease. The leader renews it every
  ``lease_s / 3``; it counts itself leader only until ``0.8 * lease_s`` after its last renewal was sent, so it
  has stopped acting before the row expires. A SIGKILLed leader's lease expires ``lease_s`` after its last
  renewal; the next replica to try (every ``lease_s / 3``) takes it: a new leader within ``4/3 * lease_s``.

On SQLite (one process) the lease is trivially held and every turn is granted: nothing changes.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Callable

from connector.ledger.leases import LEADER

log = logging.getLogger("mall_connector.replicas")

#: Jobs only the leader runs (their work is not a queue: running them on every replica repeats it).
SINGLETON_JOBS = frozenset({"sweep", "housekeeping"})
ENGINES_TURN = "engines"


class Leadership:
    def __init__(self, ledger, instance_id: str, lease_s: float, *, clock: Callable[[], float] = time.monotonic):
        self.ledger = ledger
        self.holder = f"{socket.gethostname()[:30]}:{os.getpid()}:{instance_id}"[:64]
        self.lease_s = float(lease_s)
        self.clock = clock
        self._valid_until = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._was_leader = False

    @property
    def shared(self) -> bool:
        return self.ledger.leases.shared

    def renew_once(self) -> bool:
        """Take or renew the lease once; True while this replica leads."""
        sent = self.clock()
        try:
            ok = self.ledger.leases.hold(LEADER, self.holder, self.lease_s)
        except Exception as e:  # noqa: BLE001 - the ledger is unreachable: we may have lost the lease
            log.warning("cannot renew the leader lease (%s): acting as a follower until it is renewed",
                        type(e).__name__)
            ok = False
        if ok:
            self._valid_until = sent + 0.8 * self.lease_s
        if ok != self._was_leader:
            log.info("this replica %s the leader (%s)", "is now" if ok else "is no longer", self.holder)
            self._was_leader = ok
        return ok

    def is_leader(self) -> bool:
        return not self.shared or self.clock() < self._valid_until

    def start(self) -> None:
        if not self.shared or self._thread is not None:
            return
        self.renew_once()
        self._thread = threading.Thread(target=self._loop, name="leader-lease", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            self.renew_once()

    def stop(self) -> None:
        """A clean stop gives the lease up, so another replica leads at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
            if self.clock() < self._valid_until:
                try:
                    self.ledger.leases.release(LEADER, self.holder)
                except Exception:  # noqa: BLE001 - it expires by itself
                    pass
            self._valid_until = 0.0
