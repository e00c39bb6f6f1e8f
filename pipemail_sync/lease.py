"""Worker leases on mailbox rows: which Odoo process is syncing an account, and which one
watches it for push (IMAP IDLE).

Several processes (threads, workers, servers) share the accounts. A process takes an
account by writing its id (``host:pid``) and an expiry time into two columns of the
``pipemail_account`` row; the lease keeps the account its own across the commits of a
long run (which release row locks), it renews the lease while it works, and releases it
at the end. A lease is free when nobody holds it, when it expired, or when its holder
was a process of this host that no longer exists (a recycled worker or a restart must
not keep an account for the whole lease).

Two leases use this: :data:`SYNC` (the sync cron, ``locked_by`` / ``sync_lock_until``)
and :data:`PUSH` (the IDLE watchers, ``idle_owner`` / ``idle_until``).
"""

import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg2

from odoo.tools import SQL

_logger = logging.getLogger(__name__)


def process_id() -> str:
    """This process's lease holder id: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_gone(owner: str) -> bool:
    """The lease holder was a process of this host that no longer exists.

    A process of another host, or a PID reused since, still counts as alive: its lease
    then simply runs out.
    """
    host, _sep, pid = (owner or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, not ours to signal
        return False
    return False


@dataclass(frozen=True)
class Lease:
    owner_column: str
    until_column: str
    duration: timedelta
    own_is_free: bool = False
    """Whether this process may take again what it holds: yes for push (one watcher per
    process, kept across runs), no for sync (two cron threads of one process must
    not sync the same account)."""

    def is_free(self, owner: str | None, until: datetime | None, now: datetime) -> bool:
        """Nobody holds it, it expired, its holder died, or (:attr:`own_is_free`) it is
        this process's own."""
        if not owner or until is None or until <= now:
            return True
        if owner == process_id():
            return self.own_is_free
        return owner_gone(owner)

    def maybe_free_sql(self, now: datetime) -> SQL:
        """A WHERE condition for rows whose lease may be free (:meth:`is_free` decides
        for the ones held by a process of this host)."""
        return SQL(
            "(%(owner)s IS NULL OR %(until)s IS NULL OR %(until)s < %(now)s"
            " OR %(owner)s LIKE %(host)s)",
            owner=SQL.identifier(self.owner_column),
            until=SQL.identifier(self.until_column),
            now=now,
            host=f"{socket.gethostname()}:%",
        )

    def take(self, cr, account_ids, now: datetime) -> None:
        """Write this process's lease on the accounts (the caller holds their rows)."""
        cr.execute(
            SQL(
                "UPDATE pipemail_account SET %s = %s, %s = %s WHERE id IN %s",
                SQL.identifier(self.owner_column),
                process_id(),
                SQL.identifier(self.until_column),
                now + self.duration,
                tuple(account_ids),
            )
        )

    def renew(self, cr, account_ids, now: datetime) -> bool:
        """Push the expiry of this process's own lease on the accounts further out.

        Another transaction may have updated the row since this one's snapshot (a
        REPEATABLE READ serialization error) or may hold it: the renewal is then
        skipped, not the caller's work (the next renewal comes long before expiry).
        Returns whether it was written.
        """
        try:
            with cr.savepoint(flush=False):
                cr.execute("SET LOCAL lock_timeout = '2s'")
                cr.execute(
                    SQL(
                        "UPDATE pipemail_account SET %s = %s WHERE id IN"
                        " (SELECT id FROM pipemail_account WHERE id IN %s AND %s = %s"
                        " FOR UPDATE SKIP LOCKED)",
                        SQL.identifier(self.until_column),
                        now + self.duration,
                        tuple(account_ids),
                        SQL.identifier(self.owner_column),
                        process_id(),
                    ),
                    log_exceptions=False,  # an expected conflict, reported below
                )
        except (psycopg2.errors.SerializationFailure, psycopg2.errors.LockNotAvailable) as exc:
            _logger.info("pipemail: %s renewal postponed: %s", self.owner_column, exc)
            return False
        return True

    def release(self, cr, account_ids) -> None:
        """Give the accounts' lease back, if this process still holds it."""
        cr.execute(
            SQL(
                "UPDATE pipemail_account SET %s = NULL, %s = NULL WHERE id IN %s AND %s = %s",
                SQL.identifier(self.owner_column),
                SQL.identifier(self.until_column),
                tuple(account_ids),
                SQL.identifier(self.owner_column),
                process_id(),
            )
        )


SYNC = Lease("locked_by", "sync_lock_until", timedelta(minutes=10))
"""The sync cron's lease. Renewed after every batch; a worker that dies releases its
accounts after this delay (at once for the next worker of the same host)."""
PUSH = Lease("idle_owner", "idle_until", timedelta(minutes=12), own_is_free=True)
"""The push watchers' lease; longer than two runs of the 5-minute cron that renews it."""
