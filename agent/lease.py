"""The run lease: a row in ``leases`` so that several replicas against one database run one cycle at a time.

Acquiring is one atomic conditional statement (take the row when it is free, expired or already ours; or
insert it when absent), so it works the same on SQLite and PostgreSQL without advisory locks. A holder
renews while it runs; a replica that dies stops renewing and loses the lease ``ttl_seconds`` after its last
renewal. Times come from the replica's clock (UTC): keep replicas' clocks within a small fraction of the TTL.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from store.models import Lease

log = logging.getLogger(__name__)

RUN_LEASE = "run"
Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def default_holder() -> str:
    """A holder id unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class RunLease:
    """One named lease held (or not) by this process.

    ``ttl_seconds``: how long the lease lasts after each acquire or renew (seconds).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        name: str = RUN_LEASE,
        holder: str | None = None,
        ttl_seconds: float = 300.0,
        clock: Clock = _utc_now,
    ) -> None:
        self.engine = engine
        self.name = name
        self.holder = holder or default_holder()
        self.ttl = timedelta(seconds=ttl_seconds)
        self._clock = clock

    def try_acquire(self) -> bool:
        """Take the lease if it is free, expired or already ours; True when this process now holds it."""
        now = self._clock()
        expires = now + self.ttl
        with self.engine.begin() as conn:
            taken = conn.execute(
                update(Lease)
                .where(Lease.name == self.name)
                .where((Lease.holder == self.holder) | (Lease.expires_at <= now))
                .values(holder=self.holder, acquired_at=now, expires_at=expires)
            )
            if taken.rowcount == 1:
                return True
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(Lease).values(name=self.name, holder=self.holder, acquired_at=now, expires_at=expires)
                )
        except IntegrityError:
            return False  # another replica holds it (or inserted it between our two statements)
        return True

    def renew(self) -> bool:
        """Extend our lease by the TTL; False when we no longer hold it (it expired and someone took it)."""
        now = self._clock()
        with self.engine.begin() as conn:
            result = conn.execute(
                update(Lease)
                .where(Lease.name == self.name, Lease.holder == self.holder, Lease.expires_at > now)
                .values(expires_at=now + self.ttl)
            )
        return result.rowcount == 1

    def release(self) -> None:
        """Give the lease up now (a no-op when we do not hold it)."""
        with self.engine.begin() as conn:
            conn.execute(delete(Lease).where(Lease.name == self.name, Lease.holder == self.holder))

    def current_holder(self) -> tuple[str, datetime] | None:
        """Who holds the lease and until when (UTC), or None when nobody holds an unexpired one."""
        with self.engine.connect() as conn:
            row = conn.execute(select(Lease.holder, Lease.expires_at).where(Lease.name == self.name)).first()
        if row is None or row.expires_at <= self._clock():
            return None
        return row.holder, row.expires_at


class LeaseKeeper:
    """Renews a held lease in a background thread every third of its TTL until stopped.

    ``lost`` is set when a renewal fails, so the run can stop between batches.
    """

    def __init__(self, lease: RunLease, *, every_seconds: float | None = None) -> None:
        self.lease = lease
        self.every = every_seconds if every_seconds is not None else max(lease.ttl.total_seconds() / 3, 1.0)
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lease-keeper", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.every + 5)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                still_ours = self.lease.renew()
            except Exception:  # a store hiccup: keep the lease until it really expires
                log.warning("could not renew the run lease; will retry", exc_info=True)
                continue
            if not still_ours:
                log.error("lost the run lease %r (it expired and another replica took it)", self.lease.name)
                self.lost.set()
                return
