"""One run per inventory at a time, across processes and machines: a heartbeat row in the store."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from scanner.history.database import StoreBusy, as_utc, utcnow
from scanner.history.tables import LockRow

if TYPE_CHECKING:
    from scanner.history.store import Store

log = logging.getLogger(__name__)


class RunLock:
    """One run per inventory at a time: a ``locks`` row named after the inventory, with an owner and a
    heartbeat kept by a thread. A row rather than a database lock, so that it works the same on SQLite
    and on a PostgreSQL store shared by several machines, and shows who holds it."""

    HEARTBEAT_S = 10.0
    STALE_AFTER_S = 90.0

    def __init__(self, store: Store, inventory: str) -> None:
        self.store = store
        self.inventory = inventory
        self.name = "inventory:" + hashlib.sha256(inventory.encode()).hexdigest()[:40]
        self.host = socket.gethostname()[:100]
        self.owner = f"{self.host}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.held = False
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def is_stale(cls, row: Any) -> bool:
        beat = as_utc(row.heartbeat_at)
        if beat is None or (utcnow() - beat).total_seconds() > cls.STALE_AFTER_S:
            return True
        host, _, rest = str(row.owner).partition(":")
        pid_s = rest.partition(":")[0]
        if host == socket.gethostname()[:100] and pid_s.isdigit():
            try:
                os.kill(int(pid_s), 0)
            except ProcessLookupError:
                return True  # its process is gone (killed, crashed)
            except PermissionError:
                return False
        return False

    def _try(self) -> Any:
        """Acquire once; return None on success, else the holder's row."""
        now = utcnow()
        try:
            with self.store.engine.begin() as c:
                row = c.execute(select(LockRow.__table__).where(LockRow.name == self.name)).first()
                if row is None:
                    c.execute(insert(LockRow).values(name=self.name, owner=self.owner, run_id=None,
                                                     acquired_at=now, heartbeat_at=now))
                    return None
                if not self.is_stale(row):
                    return row
                taken = c.execute(update(LockRow).where(LockRow.name == self.name,
                                                        LockRow.owner == row.owner)
                                  .values(owner=self.owner, run_id=None, acquired_at=now, heartbeat_at=now))
                if taken.rowcount == 1:
                    log.warning("took over the store lock of a dead run (%s)", row.owner)
                    return None
                return row
        except IntegrityError:  # someone inserted the row between our read and our insert
            return False

    def acquire(self, wait: float = 0.0) -> None:
        """Take the lock, waiting up to ``wait`` seconds; raise ``StoreBusy`` with who holds it."""
        end = time.monotonic() + max(0.0, wait)
        while True:
            holder = self._try()
            if holder is None:
                break
            if time.monotonic() >= end:
                if holder is False:
                    raise StoreBusy("another run of this inventory is starting; try again")
                beat = as_utc(holder.heartbeat_at)
                age = f"{(utcnow() - beat).total_seconds():.0f}s ago" if beat else "never"
                run = f"run {holder.run_id}" if holder.run_id is not None else "a run"
                raise StoreBusy(
                    f"another run of this inventory is in progress: {run} "
                    f"(owner {holder.owner.rsplit(':', 1)[0]}, "
                    f"since {as_utc(holder.acquired_at):%Y-%m-%d %H:%M:%S}Z, last heartbeat {age}; "
                    f"inventory {self.inventory}); waited {wait:g}s. Retry later, or pass "
                    "--lock-wait SECONDS to wait longer.")
            time.sleep(min(0.5, max(0.05, end - time.monotonic())))
        self.held = True
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="pledgescan-lock", daemon=True)
        self._thread.start()

    def set_run(self, run_id: int) -> None:
        with self.store.engine.begin() as c:
            c.execute(update(LockRow).where(LockRow.name == self.name, LockRow.owner == self.owner)
                      .values(run_id=run_id))

    def _beat(self) -> None:
        while not self._stop.wait(self.HEARTBEAT_S):
            try:
                with self.store.engine.begin() as c:
                    n = c.execute(update(LockRow)
                                  .where(LockRow.name == self.name, LockRow.owner == self.owner)
                                  .values(heartbeat_at=utcnow())).rowcount
                if n != 1 and not self.lost:
                    self.lost = True
                    log.error("the history store lock was taken over by another run")
            except Exception as exc:  # a transient store error must not kill the scan
                log.warning("store lock heartbeat failed: %s", exc)

    def release(self) -> None:
        if not self.held:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self.store.engine.begin() as c:
            c.execute(delete(LockRow).where(LockRow.name == self.name, LockRow.owner == self.owner))
        self.held = False
