"""Push (IMAP IDLE) in Odoo: new mail wakes the sync cron within seconds.

The engine's :class:`pipemail.idle.IdleWatcher` holds one connection per account and
calls back when the Inbox changes; the callback only *triggers* the sync cron
(``ir.cron._trigger()``, which Odoo's cron workers hear through PostgreSQL NOTIFY).
IDLE is a hint: the regular cron keeps running whatever happens here, and the sync it
wakes decides what changed.

Where the watchers live: in whichever Odoo process runs the "keep push watchers
running" cron (every 5 minutes). Threads die with their process (a recycled worker, a
restart); the next run of that cron starts them again. So that two servers do not
both hold a connection per mailbox, each account carries an IDLE lease
(``idle_owner``/``idle_until``) renewed at every run; a process only watches accounts
whose lease is free, expired, its own, or held by a process of this host that is gone.
"""

from __future__ import annotations

import hashlib
import logging
import threading

import psycopg2

from odoo import api, fields
from odoo.tools import SQL

from . import lease

_logger = logging.getLogger(__name__)

_lock = threading.Lock()
_watchers: dict[tuple[str, int], tuple[object, str]] = {}
"""(database, account id) -> (IdleWatcher, settings fingerprint), for this process."""


def _fingerprint(account) -> str:
    """Changes when a setting the connection depends on changes (then: reconnect)."""
    sudo = account.sudo()
    parts = [
        sudo.provider,
        sudo.imap_host or "",
        str(sudo.imap_port),
        sudo.imap_security or "",
        sudo.username or "",
        sudo.password_enc or "",
        sudo.oauth_refresh_token_enc or "",
        str(sudo.verify_tls),
    ]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _on_change(registry, dbname: str, account_id: int):
    def wake(wakeup) -> None:
        try:
            with registry.cursor() as cr:
                env = api.Environment(cr, 1, {})
                cr.execute(
                    SQL(
                        "UPDATE pipemail_account SET next_attempt = NULL"
                        " WHERE id = %s AND state IN ('connected', 'syncing')",
                        account_id,
                    )
                )
                env.ref("pipemail_sync.ir_cron_pipemail_sync")._trigger()
                # the cron workers must see the trigger now, not when this thread dies
                cr.commit()
        except Exception:  # noqa: BLE001 - the watcher thread must survive a DB hiccup
            _logger.exception("pipemail: waking the sync for account %s failed", account_id)

    return wake


def _stop(key) -> None:
    entry = _watchers.pop(key, None)
    if entry is not None:
        entry[0].stop(timeout=5)


def ensure_watchers(env, ids=None) -> dict[int, object]:
    """Start, keep or stop this process's watchers to match the connected accounts.

    Returns ``{account id: watcher}`` for the accounts this process now watches.
    """
    from .engine import idle as pm_idle

    dbname = env.cr.dbname
    now = fields.Datetime.now()
    domain = [("state", "in", ("connected", "syncing")), ("active", "=", True)]
    if ids is not None:
        domain.append(("id", "in", list(ids)))
    accounts = env["pipemail.account"].sudo().search(domain)
    wanted: dict[int, object] = {}
    for account in accounts:
        if not lease.PUSH.is_free(account.idle_owner, account.idle_until, now):
            continue  # another process watches it
        wanted[account.id] = account
    result = {}
    with _lock:
        for key in [k for k in _watchers if k[0] == dbname and k[1] not in wanted]:
            if ids is None or key[1] in ids:
                _stop(key)
        for account_id, account in wanted.items():
            key = (dbname, account_id)
            fingerprint = _fingerprint(account)
            entry = _watchers.get(key)
            if entry is not None and (entry[1] != fingerprint or not entry[0].is_alive()):
                _stop(key)
                entry = None
            if entry is None:
                try:
                    config = account._pipemail_config()
                except Exception as exc:  # noqa: BLE001 - a broken account must not stop others
                    _logger.info("pipemail: no push for account %s: %s", account_id, exc)
                    continue
                watcher = pm_idle.IdleWatcher(
                    config,
                    "INBOX",
                    on_change=_on_change(env.registry, dbname, account_id),
                    wake_on_reconnect=False,
                )
                watcher.start()
                entry = (watcher, fingerprint)
                _watchers[key] = entry
            result[account_id] = entry[0]
    if result:
        _take_leases(env, tuple(result), now)
    return result


def _take_leases(env, ids, now) -> None:
    """Write this process's push leases in a short transaction of its own.

    The sync cron updates the same account rows (progress, its own lease) in
    REPEATABLE READ transactions: writing the push lease from the cron's transaction
    made one of the two fail with a serialization error at every server start. Here a
    row another transaction holds is skipped (its lease is renewed at the next run,
    long before it expires) and a conflict costs one renewal, never a cron failure.
    """
    try:
        with env.registry.cursor() as cr:
            # never make the cron wait on a row lock (SKIP LOCKED; belt and braces)
            cr.execute("SET LOCAL lock_timeout = '2s'")
            cr.execute(
                SQL(
                    "SELECT id FROM pipemail_account WHERE id IN %s FOR UPDATE SKIP LOCKED",
                    ids,
                ),
                log_exceptions=False,  # an expected conflict, reported below
            )
            free = [row[0] for row in cr.fetchall()]
            if free:
                lease.PUSH.take(cr, free, now)
    except (psycopg2.errors.SerializationFailure, psycopg2.errors.LockNotAvailable) as exc:
        _logger.info("pipemail: push lease renewal postponed: %s", exc)


def stop_watchers(dbname=None, ids=None) -> None:
    """Stop this process's watchers (all, or of one database / some accounts)."""
    with _lock:
        for key in list(_watchers):
            if (dbname is None or key[0] == dbname) and (ids is None or key[1] in ids):
                _stop(key)
