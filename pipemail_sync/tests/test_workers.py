"""Several workers, real commits: the cron, the account locks and IDLE wake-ups.

These tests need what a TransactionCase hides: other database connections and
committed rows. They open their own cursors on the test database, commit what they
create, and delete it again in ``finally`` blocks.
"""

import glob
import logging
import os
import shutil
import socket
import subprocess
import time
from datetime import timedelta
from unittest.mock import patch

from odoo import fields
from odoo.modules.registry import DummyRLock, Registry
from odoo.tests import tagged
from odoo.tools import config

from .. import lease
from .common import PipemailDovecotCase, make_mail, worker_env

_logger = logging.getLogger(__name__)


@tagged("post_install", "-at_install")
class TestWorkers(PipemailDovecotCase):
    def worker_env(self):
        return worker_env(self.env.cr.dbname)

    def committed_account(self, env, login, **vals):
        values = {
            "name": login.name,
            "email": login.name,
            "username": login.name,
            "password": login.password,
            "imap_host": "127.0.0.1",
            "imap_port": self.dovecot.port,
            "imap_security": "none",
            "user_id": env.ref("base.user_admin").id,
            "history": "all",
            "state": "connected",
        }
        values.update(vals)
        account = env["pipemail.account"].create(values)
        env.cr.commit()
        self.addCleanup(self._drop_account, account.id)
        return account

    def _drop_account(self, account_id):
        with self.worker_env() as env:
            env["pipemail.account"].browse(account_id).exists().unlink()
            env.cr.commit()

    def test_two_workers_never_take_the_same_account(self):
        logins = [self.dovecot.add_user() for _i in range(2)]
        with self.worker_env() as env1, self.worker_env() as env2:
            a = self.committed_account(env1, logins[0])
            b = self.committed_account(env1, logins[1])
            ids = [a.id, b.id]
            # worker 1 holds the row lock of the account it picked (not committed yet)
            picked1 = env1["pipemail.account"]._acquire_next(ids)
            # worker 2 does not wait for it: it skips to the other account (a regression
            # hits the lock timeout and fails instead of hanging)
            env2.cr.execute("SET LOCAL lock_timeout = '5s'")
            picked2 = env2["pipemail.account"]._acquire_next(ids)
            self.assertTrue(picked1 and picked2)
            self.assertNotEqual(picked1.id, picked2.id)
            self.assertEqual({picked1.id, picked2.id}, set(ids))
            env1.cr.commit()
            env2.cr.commit()
            # both leased: a third worker finds nothing to do, even after the commits
            # released the row locks
            with self.worker_env() as env3:
                self.assertFalse(env3["pipemail.account"]._acquire_next(ids))
                # a worker that died leaves an expired lease: the account is free again
                env3.cr.execute(
                    "UPDATE pipemail_account SET sync_lock_until = now() at time zone 'utc'"
                    " - interval '1 minute' WHERE id = %s",
                    [picked1.id],
                )
                env3.cr.commit()
                self.assertEqual(env3["pipemail.account"]._acquire_next(ids).id, picked1.id)
                env3.cr.rollback()
                # a lease left by a process of this host that is gone (a recycled worker)
                # is taken over at once; one of a live process or of another host is not
                gone = subprocess.Popen(["true"])
                gone.wait()
                for owner, taken in (
                    (f"{socket.gethostname()}:{os.getppid()}", False),
                    (f"another-host.example:{gone.pid}", False),
                    (f"{socket.gethostname()}:{gone.pid}", True),
                ):
                    env3.cr.execute(
                        "UPDATE pipemail_account SET locked_by = %s, sync_lock_until ="
                        " now() at time zone 'utc' + interval '5 minutes' WHERE id IN %s",
                        [owner, tuple(ids)],
                    )
                    env3.cr.commit()
                    picked = env3["pipemail.account"]._acquire_next(ids)
                    self.assertEqual(bool(picked), taken, owner)
                    if picked:
                        self.assertEqual(picked.locked_by, lease.process_id())
                    env3.cr.rollback()

    def test_push_lease_and_sync_progress_never_fail_each_other(self):
        """At server start the sync cron and the push-watcher cron both update the
        account row; under REPEATABLE READ that used to fail one of them."""
        from odoo.addons.pipemail_sync import idle

        login = self.dovecot.add_user()
        with self.worker_env() as sync_env:
            account = self.committed_account(sync_env, login)
            # a sync batch is under way: its snapshot is taken
            sync_env.cr.execute("SELECT progress FROM pipemail_account WHERE id = %s", [account.id])
            # the watcher cron renews its lease meanwhile, in its own transaction
            first = fields.Datetime.to_datetime("2099-01-01 00:00:00")
            idle._take_leases(sync_env, (account.id,), first)
            # the batch ends: its progress update must not fail it
            sync_env["pipemail.account"].browse(account.id)._set_progress(40, 60)
            sync_env.cr.commit()
            # while a batch holds the row, a lease renewal skips it without waiting
            sync_env["pipemail.account"].browse(account.id)._set_progress(50, 50)
            idle._take_leases(sync_env, (account.id,), first + timedelta(days=30))
            sync_env.cr.commit()
            sync_env.cr.execute(
                "SELECT idle_owner, idle_until, progress FROM pipemail_account WHERE id = %s",
                [account.id],
            )
            self.assertEqual(
                sync_env.cr.fetchone(),
                (lease.process_id(), first + lease.PUSH.duration, 50),
            )

    def test_cron_commits_per_batch_and_releases(self):
        login = self.dovecot.add_user()
        self.dovecot.append_many(
            login,
            "INBOX",
            [make_mail(subject=f"Mail {n}", message_id=f"<cron{n}@x.example>") for n in range(7)],
        )
        with self.worker_env() as env:
            account = self.committed_account(env, login, history="all")
            account.folder_ids.filtered(lambda f: f.name == "INBOX").sync = True
            env.cr.commit()
            # small batches: the store commits after each of them
            from odoo.addons.pipemail_sync.models import pipemail_account as module

            original = module.PipemailAccount._pipemail_config

            def small_batches(record):
                config = original(record)
                config.batch_size = 2
                return config

            commits = []
            real_commit = env.cr.commit

            def counting_commit():
                commits.append(time.monotonic())
                return real_commit()

            env.cr.commit = counting_commit
            progress_seen = []
            original_progress = module.PipemailAccount._set_progress

            def recording_progress(record, progress, backlog):
                progress_seen.append((progress, backlog))
                return original_progress(record, progress, backlog)

            try:
                module.PipemailAccount._pipemail_config = small_batches
                module.PipemailAccount._set_progress = recording_progress
                done = env["pipemail.account"]._cron_sync(limit_seconds=60)
            finally:
                module.PipemailAccount._pipemail_config = original
                module.PipemailAccount._set_progress = original_progress
                env.cr.commit = real_commit
            self.assertIn(account, done)
            self.assertGreaterEqual(len(commits), 4, "one commit per batch of 2 out of 7")
            # the initial-sync progress moved up through the run, with a backlog shown
            partial = [p for p, backlog in progress_seen if 0 < p < 100 and backlog]
            self.assertTrue(partial, progress_seen)
            values = [p for p, _b in progress_seen]
            self.assertEqual(values, sorted(values))
        with self.worker_env() as other:
            account = other["pipemail.account"].browse(account.id)
            self.assertEqual(account.state, "connected", account.last_error)
            self.assertEqual(account.message_total, 7)
            self.assertEqual(account.progress, 100)
            self.assertFalse(account.sync_lock_until, "the lease is released after the run")
            self.assertFalse(account.locked_by)

    def test_no_plaintext_secret_in_dump_or_logs(self):
        """RELIABILITY 19: a pg_dump and the server log hold no mailbox password."""
        login = self.dovecot.add_user(password="Sekr1t-" + "q" * 12)
        self.dovecot.append(login, "INBOX", make_mail(subject="Secret test"))
        with self.worker_env() as env, self.assertLogs(level="DEBUG") as logs:
            account = self.committed_account(env, login)
            account._sync(commit=True)
            self.dovecot.set_password(login, "changed-" + "z" * 12)
            account._sync(commit=True)
            self.assertEqual(account.state, "reconnect")
        for line in logs.output:
            self.assertNotIn(login.password, line)
        pg_dump = shutil.which("pg_dump") or next(
            iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_dump"), reverse=True)), None
        )
        if not pg_dump:
            self.skipTest("pg_dump not installed")
        args = [pg_dump, "--data-only", "-t", "pipemail_account", self.env.cr.dbname]
        for option, flag in (("db_host", "-h"), ("db_port", "-p"), ("db_user", "-U")):
            if config.get(option):
                args[1:1] = [flag, str(config[option])]
        env_vars = dict(os.environ, PGPASSWORD=str(config.get("db_password") or ""))
        dump = subprocess.run(args, capture_output=True, text=True, env=env_vars, check=False)
        if dump.returncode:
            self.skipTest(f"pg_dump failed here: {dump.stderr[:200]}")
        self.assertIn("pm1:", dump.stdout)
        self.assertNotIn(login.password, dump.stdout)

    def test_idle_wakes_the_sync_cron_within_seconds(self):
        from odoo.addons.pipemail_sync import idle

        # The test runner holds the registry lock for the whole run (a server does not:
        # it only holds it while loading); the watcher's thread must be able to open an
        # environment, as Odoo's own test mode allows for HttpCase's server threads.
        lock_patcher = patch.object(Registry, "_lock", DummyRLock())
        lock_patcher.start()
        self.addCleanup(lock_patcher.stop)
        login = self.dovecot.add_user()
        with self.worker_env() as env:
            account = self.committed_account(env, login)
            cron = env.ref("pipemail_sync.ir_cron_pipemail_sync")
            env.cr.execute("DELETE FROM ir_cron_trigger WHERE cron_id = %s", [cron.id])
            env.cr.commit()
            try:
                watchers = idle.ensure_watchers(env, ids=[account.id])
                env.cr.commit()
                watcher = watchers[account.id]
                deadline = time.monotonic() + 10
                while watcher.state.state != "idle" and time.monotonic() < deadline:
                    time.sleep(0.05)
                self.assertEqual(watcher.state.state, "idle")
                # the same process keeps its watcher; the lease says so
                self.assertIs(idle.ensure_watchers(env, ids=[account.id])[account.id], watcher)
                account.invalidate_recordset()
                self.assertEqual(account.idle_owner, lease.process_id())

                appended = time.monotonic()
                self.deliver(login, make_mail(subject="Pushed", message_id="<push@x.example>"))
                triggered = None
                while time.monotonic() - appended < 10:
                    env.cr.rollback()  # a fresh snapshot
                    env.cr.execute(
                        "SELECT count(*) FROM ir_cron_trigger WHERE cron_id = %s", [cron.id]
                    )
                    if env.cr.fetchone()[0]:
                        triggered = time.monotonic() - appended
                        break
                    time.sleep(0.05)
                self.assertIsNotNone(triggered, "IDLE did not trigger the sync cron")
                _logger.info("IDLE: APPEND to sync cron triggered in %.2f s", triggered)
                # the triggered cron run brings the message in
                env["pipemail.account"]._cron_sync(limit_seconds=30)
                self.assertEqual(
                    env["pipemail.message"].search_count(
                        [
                            ("account_id", "=", account.id),
                            ("message_id_header", "=", "push@x.example"),
                        ]
                    ),
                    1,
                )
                # a lease left by a process of this host that is gone (a recycled worker)
                # is taken over at once; one of a live process (or another host) is not
                idle.stop_watchers(env.cr.dbname, {account.id})
                gone = subprocess.Popen(["true"])
                gone.wait()
                until = fields.Datetime.now() + timedelta(minutes=10)
                for owner, taken in (
                    (f"{socket.gethostname()}:{os.getppid()}", False),
                    (f"another-host.example:{gone.pid}", False),
                    (f"{socket.gethostname()}:{gone.pid}", True),
                ):
                    account.write({"idle_owner": owner, "idle_until": until})
                    env.cr.commit()
                    watchers = idle.ensure_watchers(env, ids=[account.id])
                    env.cr.commit()
                    self.assertEqual(account.id in watchers, taken, owner)
                watcher = watchers[account.id]
                account.invalidate_recordset()
                self.assertEqual(account.idle_owner, lease.process_id())
                # a disconnected account loses its watcher
                account.state = "disabled"
                env.cr.commit()
                idle.ensure_watchers(env, ids=[account.id])
                self.assertFalse(watcher.is_alive())
            finally:
                idle.stop_watchers(env.cr.dbname, {account.id})
                env.cr.execute("DELETE FROM ir_cron_trigger WHERE cron_id = %s", [cron.id])
                env.cr.commit()
