"""A connected mailbox: its settings, its encrypted secrets, its sync health.

Everything that speaks IMAP, OAuth or MIME lives in the engine (``pipemail``); this
model only turns records into engine configs, runs the engine from crons and buttons,
and records what happened in words a salesperson can read.
"""

import logging
import os
import time
from datetime import date, timedelta

import psycopg2
from dateutil.relativedelta import relativedelta

from odoo import _, api, fields, models
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tools import SQL, config

from pipemail import errors as pm_errors
from pipemail.types import AccountConfig, OAuth2Auth, PasswordAuth, ServerConfig

from .. import access, engine, lease, oauth
from ..engine import secrets as pm_secrets
from ..notifications import notification
from ..routes import OAUTH_START

_logger = logging.getLogger(__name__)

HISTORY_MONTHS = {"1m": 1, "3m": 3, "6m": 6, "1y": 12, "2y": 24, "all": 0}
MAX_BACKOFF = timedelta(hours=6)
PROVIDER_DEFAULTS = {
    "gmail": {
        "imap_host": "imap.gmail.com",
        "imap_port": 993,
        "imap_security": "ssl",
        "smtp_host": "smtp.gmail.com",
        "smtp_port": 465,
        "smtp_security": "ssl",
    },
    "microsoft": {
        "imap_host": "outlook.office365.com",
        "imap_port": 993,
        "imap_security": "ssl",
        "smtp_host": "smtp.office365.com",
        "smtp_port": 587,
        "smtp_security": "starttls",
    },
}
SECURITY = [("ssl", "SSL/TLS"), ("starttls", "STARTTLS"), ("none", "None (unencrypted)")]
SERVER_FIELDS = frozenset(
    {
        "provider",
        "imap_host",
        "imap_port",
        "imap_security",
        "smtp_host",
        "smtp_port",
        "smtp_security",
        "username",
        "verify_tls",
    }
)
"""Where and as whom the mailbox signs in. The stored password and tokens were given
for these values: changing any of them forgets the secrets."""
CONNECTION_FIELDS = SERVER_FIELDS | {"email", "password"}
"""How the mailbox connects: the owner's or a system administrator's to change."""
SETTINGS_FIELDS = frozenset(
    {
        "name",
        "active",
        "history",
        "blocklist",
        "skip_internal",
        "default_visibility",
        "folder_ids",
        "drafts_to_mailbox",
    }
)
ADMIN_FIELDS = frozenset({"user_id", "kind", "member_ids", "company_id"})
"""Whose mailbox it is: email administrators set these for others (see
``_check_owner_change``)."""
VISIBILITY = [
    ("shared", "Shared"),
    ("private", "Private"),
    ("team", "Team only"),
    ("metadata", "Metadata only"),
]


class PipemailAccount(models.Model):
    _name = "pipemail.account"
    _description = "Synced Mailbox"
    _inherit = ["mail.thread", "mail.activity.mixin"]
    _order = "name, id"

    name = fields.Char(required=True, tracking=True)
    active = fields.Boolean(default=True)
    user_id = fields.Many2one(
        "res.users",
        string="Owner",
        required=True,
        default=lambda self: self.env.user,
        index=True,
        ondelete="cascade",
        tracking=True,
    )
    kind = fields.Selection(
        [("personal", "Personal"), ("team", "Team")],
        required=True,
        default="personal",
        tracking=True,
    )
    member_ids = fields.Many2many(
        "res.users",
        "pipemail_account_member_rel",
        "account_id",
        "user_id",
        string="Team Members",
        help="Users who see the conversations of this team mailbox marked Team only.",
    )
    company_id = fields.Many2one(
        "res.company", required=True, default=lambda self: self.env.company, index=True
    )
    provider = fields.Selection(
        [("imap", "IMAP / SMTP"), ("gmail", "Google"), ("microsoft", "Microsoft 365")],
        required=True,
        default="imap",
    )
    email = fields.Char(required=True, tracking=True)
    imap_host = fields.Char(string="IMAP Server")
    imap_port = fields.Integer(string="IMAP Port", default=993)
    imap_security = fields.Selection(SECURITY, string="IMAP Security", default="ssl")
    smtp_host = fields.Char(string="SMTP Server")
    smtp_port = fields.Integer(string="SMTP Port", default=465)
    smtp_security = fields.Selection(SECURITY, string="SMTP Security", default="ssl")
    username = fields.Char(help="Login name; usually the email address.")
    password = fields.Char(
        compute="_compute_password",
        inverse="_inverse_password",
        copy=False,
        help="Stored encrypted; never shown again once saved.",
    )
    password_enc = fields.Char(groups="base.group_system", copy=False, prefetch=False)
    password_set = fields.Boolean(compute="_compute_secret_set")
    oauth_refresh_token_enc = fields.Char(groups="base.group_system", copy=False, prefetch=False)
    oauth_connected = fields.Boolean(compute="_compute_secret_set")
    verify_tls = fields.Boolean(
        string="Verify TLS Certificate",
        default=True,
        help="Turn off only for a server with a self-signed certificate you trust.",
    )
    history = fields.Selection(
        [
            ("1m", "1 month"),
            ("3m", "3 months"),
            ("6m", "6 months"),
            ("1y", "1 year"),
            ("2y", "2 years"),
            ("all", "Everything"),
        ],
        string="History to Sync",
        required=True,
        default="3m",
    )
    folder_ids = fields.One2many("pipemail.folder", "account_id", string="Folders")
    blocklist = fields.Text(
        help="Addresses or domains never synced, one per line (name@example.com or @example.com)."
    )
    skip_internal = fields.Boolean(
        string="Skip Internal Mail",
        help="Do not sync mail exchanged only between addresses of your own company.",
    )
    drafts_to_mailbox = fields.Boolean(
        string="Drafts in the Mailbox",
        default=True,
        help="Keep a copy of the drafts you write in the CRM in this mailbox's Drafts "
        "folder, so that your phone shows them too (personal mailboxes only: a team "
        "mailbox's Drafts folder is read by the whole team).",
    )
    default_visibility = fields.Selection(VISIBILITY, required=True, default="shared")
    state = fields.Selection(
        [
            ("draft", "Not Connected"),
            ("connected", "Connected"),
            ("syncing", "Syncing"),
            ("error", "Error"),
            ("reconnect", "Reconnect Needed"),
            ("disabled", "Disabled"),
        ],
        required=True,
        default="draft",
        copy=False,
        tracking=True,
    )
    last_sync = fields.Datetime(string="Last Successful Sync", copy=False, readonly=True)
    last_attempt = fields.Datetime(copy=False, readonly=True)
    last_error = fields.Text(copy=False, readonly=True)
    error_code = fields.Char(copy=False, readonly=True)
    fail_count = fields.Integer(copy=False, readonly=True)
    next_attempt = fields.Datetime(copy=False, readonly=True, index=True)
    backlog = fields.Integer(copy=False, readonly=True, help="Messages known but not yet synced.")
    progress = fields.Integer(
        string="Initial Sync Progress", copy=False, readonly=True, help="Percent, 0-100."
    )
    sync_lock_until = fields.Datetime(copy=False, readonly=True)
    locked_by = fields.Char(copy=False, readonly=True)
    idle_owner = fields.Char(
        copy=False, readonly=True, help="Server process holding the push watcher."
    )
    idle_until = fields.Datetime(copy=False, readonly=True)
    connection_editable = fields.Boolean(
        compute="_compute_connection_editable",
        help="The reader may change where and as whom this mailbox signs in.",
    )
    thread_count = fields.Integer(compute="_compute_thread_count")
    message_total = fields.Integer(string="Synced Emails", compute="_compute_thread_count")

    _sql_constraints = [
        ("progress_range", "CHECK(progress >= 0 AND progress <= 100)", "Progress is a percentage."),
    ]

    # ------------------------------------------------------------------ computes

    @api.depends("name")
    @api.depends_context("uid")
    def _compute_display_name(self):
        res = super()._compute_display_name()
        access.hide_unreadable_names(self, _("Mailbox"))
        return res

    def _compute_password(self):
        # write-only: the plain value never leaves the server, whoever asks
        self.password = False

    def _inverse_password(self):
        for account in self:
            if account.password:
                account._set_secret("password", account.password)
        # drop the typed value from the cache too: the save's answer must not echo it
        self.invalidate_recordset(["password"])

    def _compute_secret_set(self):
        rows = (
            {
                r["id"]: r
                for r in self.sudo().read(["password_enc", "oauth_refresh_token_enc"], load=None)
            }
            if self.ids
            else {}
        )
        for account in self:
            row = rows.get(account.id, {})
            account.password_set = bool(row.get("password_enc"))
            account.oauth_connected = bool(row.get("oauth_refresh_token_enc"))

    def _compute_thread_count(self):
        threads = self.env["pipemail.thread"]._read_group(
            [("account_id", "in", self.ids)], ["account_id"], ["__count"]
        )
        messages = self.env["pipemail.message"]._read_group(
            [("account_id", "in", self.ids)], ["account_id"], ["__count"]
        )
        thread_map = {account.id: count for account, count in threads}
        message_map = {account.id: count for account, count in messages}
        for account in self:
            account.thread_count = thread_map.get(account.id, 0)
            account.message_total = message_map.get(account.id, 0)

    # ------------------------------------------------------------------ onchange / checks

    @api.onchange("provider")
    def _onchange_provider(self):
        defaults = PROVIDER_DEFAULTS.get(self.provider)
        if defaults:
            self.update(defaults)

    @api.onchange("email")
    def _onchange_email(self):
        if self.email and not self.username:
            self.username = self.email
        if self.email and not self.name:
            self.name = self.email

    @api.constrains("user_id", "member_ids", "company_id")
    def _check_people_company(self):
        """A mailbox is used by people of its company: an administrator of another
        company cannot give one of theirs to a user who cannot open it."""
        for account in self:
            strangers = (account.user_id | account.member_ids).filtered(
                lambda u, c=account.company_id: c not in u.company_ids
            )
            if strangers:
                raise ValidationError(
                    _(
                        "%(users)s cannot use a mailbox of %(company)s: they do not belong "
                        "to that company.",
                        users=", ".join(strangers.mapped("name")),
                        company=account.company_id.name,
                    )
                )

    @api.constrains("imap_port", "smtp_port")
    def _check_ports(self):
        for account in self:
            for port in (account.imap_port, account.smtp_port):
                if port and not 0 < port < 65536:
                    raise UserError(_("A port is a number between 1 and 65535."))

    @api.constrains("provider", "imap_host", "imap_port", "smtp_host", "smtp_port")
    def _check_hosts(self):
        """Refuse loopback, private and metadata addresses when they are typed, not only
        when the sync connects: the user learns at once and no worker ever tries. A
        Google or Microsoft mailbox points at that provider's servers only."""
        allow = self._allow_private_hosts()
        for account in self:
            if account.provider in oauth.PROVIDERS:
                try:
                    oauth.check_mail_hosts(account)
                except pm_errors.ConfigError as exc:
                    raise UserError(str(exc))
            for host, port in (
                (account.imap_host, account.imap_port),
                (account.smtp_host, account.smtp_port),
            ):
                if not host:
                    continue
                try:
                    engine.check_host(host, port or 993, allow_private=allow)
                except pm_errors.HostRefused as exc:
                    _logger.info(
                        "pipemail: refused host for account %s: %s", account.id, exc.detail
                    )
                    raise UserError(engine.error_message(self.env, exc))
                except pm_errors.ConnectFailed:
                    # an unknown name is reported by "Test connection"; typing it is not a crime
                    continue

    # ------------------------------------------------------------------ CRUD

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            provider = vals.get("provider", "imap")
            for key, value in PROVIDER_DEFAULTS.get(provider, {}).items():
                vals.setdefault(key, value)
            if vals.get("email"):
                vals.setdefault("username", vals["email"])
                vals.setdefault("name", vals["email"])
            self._check_user_values(vals)
        accounts = super().create(vals_list)
        accounts._ensure_default_folders()
        return accounts

    def write(self, vals):
        self._check_user_values(vals)
        if not self.env.su and CONNECTION_FIELDS & set(vals):
            self._check_can_change_connection()
        moved = self._pipemail_server_changed(vals)
        if moved:
            # before the write: a new password in the same save is stored after this
            moved._pipemail_forget_secrets(new_password=bool(vals.get("password")))
        return super().write(vals)

    def _check_user_values(self, vals):
        """What a user may set on a mailbox (superuser code passes)."""
        if self.env.su:
            return
        access.check_values(self, vals, SETTINGS_FIELDS | CONNECTION_FIELDS | ADMIN_FIELDS)
        self._check_owner_change(vals)
        company = vals.get("company_id")
        if company and company not in self.env.user.company_ids.ids:
            raise AccessError(_("A mailbox belongs to one of your own companies."))

    def _check_owner_change(self, vals):
        """Only managers create accounts for others or share team mailboxes."""
        if self.env.su or self.env.user.has_group("pipemail_sync.group_pipemail_manager"):
            return
        if vals.get("user_id") and vals["user_id"] != self.env.uid:
            raise AccessError(
                _("Only an email administrator can set up a mailbox for someone else.")
            )
        if vals.get("kind") == "team" or vals.get("member_ids"):
            raise AccessError(_("Only an email administrator can set up a team mailbox."))
        if self and "company_id" in vals:
            raise AccessError(
                _("Only an email administrator can move a mailbox to another company.")
            )

    def _check_can_change_connection(self):
        """A mailbox's servers, login and password are its owner's business: an email
        administrator who is not a system administrator manages who sees a mailbox,
        never where it signs in (they could point it at their own server and collect
        the password)."""
        if not self._pipemail_can_change_connection():
            raise AccessError(
                _(
                    "Only the owner of a mailbox, or a system administrator, can change how "
                    "it connects (servers, login, password)."
                )
            )

    @api.depends_context("uid")
    def _compute_connection_editable(self):
        for account in self:
            account.connection_editable = (
                not account._origin or account._origin._pipemail_can_change_connection()
            )

    def _pipemail_can_change_connection(self):
        if self.env.su or self.env.user.has_group("base.group_system"):
            return True
        return all(account.user_id.id == self.env.uid for account in self.sudo())

    def _pipemail_server_changed(self, vals):
        """The records of ``self`` whose server or login ``vals`` really changes."""
        changed = SERVER_FIELDS & set(vals)
        if not changed and "email" not in vals:
            return self.browse()
        moved = self.browse()
        for account in self.sudo():
            fields_now = set(changed)
            if account.provider in oauth.PROVIDERS or vals.get("provider") in oauth.PROVIDERS:
                # a token was given for one mailbox of the provider
                fields_now.add("email")
            for fname in fields_now & set(vals):
                field = self._fields[fname]
                old = field.convert_to_write(account[fname], account)
                new = vals[fname]
                if field.type == "char":
                    old, new = (old or "").strip().lower(), (new or "").strip().lower()
                if (old or False) != (new or False):
                    moved |= account
                    break
        return moved.with_env(self.env)

    def _pipemail_forget_secrets(self, new_password=False):
        """The server or login changed: the saved password and tokens stay behind (they
        were given for the old server), and the mailbox waits for its owner to test the
        connection again (with the ``new_password`` typed in the same save, if any)."""
        for account in self.sudo():
            had_secret = account.password_set or account.oauth_connected
            account.write({"password_enc": False, "oauth_refresh_token_enc": False})
            oauth.forget_source(account)
            if not had_secret and not new_password:
                continue
            if new_password:
                message = _("The server settings changed: test the connection to sync again.")
            else:
                message = _(
                    "The server or login of this mailbox changed, so its saved password or "
                    "sign-in was removed: enter the password again (or sign in again) and "
                    "test the connection."
                )
            account.write(
                {
                    "state": "disabled" if account.state == "disabled" else "draft",
                    "next_attempt": False,
                    "fail_count": 0,
                    "last_error": message,
                    "error_code": "credentials_cleared",
                }
            )
        self.invalidate_recordset(["password_set", "oauth_connected"])

    def unlink(self):
        # attachments hang off messages by res_model/res_id, which no cascade reaches
        messages = (
            self.env["pipemail.message"]
            .sudo()
            .with_context(active_test=False)
            .search([("account_id", "in", self.ids)])
        )
        messages._unlink_attachments()
        from .. import idle

        idle.stop_watchers(self.env.cr.dbname, set(self.ids))
        return super().unlink()

    # a mailbox is never copied: no super on purpose
    def copy(self, default=None):  # pylint: disable=method-required-super
        raise UserError(_("A mailbox cannot be duplicated: connect it again instead."))

    # ------------------------------------------------------------------ secrets

    @api.model
    def _secret_keys(self):
        """Encryption keys from the Odoo configuration file, newest first.

        The key never lives in the database: a dump or a backup alone yields only
        ciphertext. ``pipemail_secret_key_previous`` keeps old values readable during
        a key rotation.
        """
        keys = [
            config.get("pipemail_secret_key") or os.environ.get("PIPEMAIL_SECRET_KEY"),
            config.get("pipemail_secret_key_previous"),
        ]
        keys = [k for k in keys if k]
        if not keys:
            raise UserError(
                _(
                    "Saved mailbox passwords are encrypted with a key that is not set yet. "
                    "Ask an administrator to add pipemail_secret_key (a long random string) "
                    "to the Odoo configuration file and restart Odoo."
                )
            )
        return keys

    def _secret_context(self, name):
        self.ensure_one()
        return f"pipemail.account:{self.id}:{name}"

    def _set_secret(self, name, value):
        """Encrypt ``value`` into ``<name>_enc``; an empty value clears it."""
        self.ensure_one()
        field = f"{name}_enc" if name == "password" else f"oauth_{name}_enc"
        stored = False
        if value:
            try:
                stored = pm_secrets.encrypt(
                    self._secret_keys()[0], value, context=self._secret_context(name)
                )
            except pm_errors.ConfigError as exc:
                raise UserError(str(exc))
        self.sudo().write({field: stored})

    def _get_secret(self, name):
        """Decrypt a stored secret (server side only); ``False`` when none is stored."""
        self.ensure_one()
        field = f"{name}_enc" if name == "password" else f"oauth_{name}_enc"
        value = self.sudo()[field]
        if not value:
            return False
        return pm_secrets.decrypt(self._secret_keys(), value, context=self._secret_context(name))

    # ------------------------------------------------------------------ engine config

    @api.model
    def _allow_private_hosts(self):
        if os.environ.get("PIPEMAIL_ALLOW_PRIVATE_HOSTS") == "1":
            return True
        param = self.env["ir.config_parameter"].sudo().get_param("pipemail.allow_private_hosts")
        return param not in (False, "", "0", "False", "false")

    def _history_since(self):
        months = HISTORY_MONTHS.get(self.history or "3m", 3)
        if not months:
            return None
        return date.today() - relativedelta(months=months)

    def _blocklist_entries(self):
        return [
            line.strip().lower()
            for line in (self.blocklist or "").replace(",", "\n").splitlines()
            if line.strip()
        ]

    def _internal_domains(self):
        domains = set()
        for address in (self.company_id.email, self.email):
            if address and "@" in address:
                domains.add(address.rpartition("@")[2].strip().lower())
        return sorted(domains)

    def _pipemail_config(self):
        """The engine's view of this account, with secrets decrypted in memory only."""
        self.ensure_one()
        if not self.imap_host:
            raise UserError(_("Enter the IMAP server address of this mailbox first."))
        if self.provider == "imap":
            password = self._get_secret("password")
            if not password:
                raise UserError(_("Enter the mailbox password first."))
            auth = PasswordAuth(self.username or self.email, password)
        else:
            try:
                # before any token is fetched: a token never reaches another server
                oauth.check_mail_hosts(self)
            except pm_errors.ConfigError as exc:
                raise UserError(str(exc))
            auth = OAuth2Auth(self.username or self.email, oauth.token_source(self))
        allow = self._allow_private_hosts()
        folders = self.folder_ids.filtered("sync").mapped("name") or None
        return AccountConfig(
            key=str(self.id),
            imap=ServerConfig(
                host=self.imap_host,
                port=self.imap_port or 993,
                security=self.imap_security or "ssl",
                verify_tls=self.verify_tls,
                cafile=config.get("pipemail_cafile") or os.environ.get("PIPEMAIL_CAFILE") or None,
                allow_private_hosts=allow,
            ),
            smtp=ServerConfig(
                host=self.smtp_host,
                port=self.smtp_port or 465,
                security=self.smtp_security or "ssl",
                verify_tls=self.verify_tls,
                allow_private_hosts=allow,
            )
            if self.smtp_host
            else None,
            auth=auth,
            provider=self.provider,
            folders=folders,
            since=self._history_since(),
            blocklist=self._blocklist_entries(),
            internal_domains=self._internal_domains(),
            skip_internal=self.skip_internal,
        )

    def _known_secrets(self):
        """The values a log line must never show for this account."""
        known = []
        for name in ("password", "refresh_token"):
            try:
                known.append(self._get_secret(name))
            except (UserError, pm_errors.PipemailError):
                continue
        return [k for k in known if k]

    # ------------------------------------------------------------------ folders

    def _ensure_default_folders(self):
        for account in self:
            if not account.folder_ids:
                # folders are the mailbox's, not the user's to invent: created by us
                self.env["pipemail.folder"].sudo().create(
                    [
                        {"account_id": account.id, "name": "INBOX", "role": "inbox", "sync": True},
                        {"account_id": account.id, "name": "Sent", "role": "sent", "sync": True},
                    ]
                )

    def _update_folders(self, discovered):
        """Merge discovered folders (name -> role) into folder records; keep user choices."""
        self.ensure_one()
        existing = {f.name: f for f in self.folder_ids}
        by_role = {f.role: f for f in self.folder_ids if f.role not in (False, "other")}
        for name, role in discovered.items():
            folder = existing.get(name)
            if folder:
                if role and folder.role != role:
                    folder.role = role
                continue
            guessed = by_role.get(role) if role in ("sent",) else None
            if guessed and not guessed.state_json:
                # our default "Sent" guess was wrong: follow the server's name
                guessed.name = name
                continue
            self.env["pipemail.folder"].create(
                {
                    "account_id": self.id,
                    "name": name,
                    "role": role or "other",
                    "sync": role in ("inbox", "sent"),
                }
            )

    # ------------------------------------------------------------------ actions

    def _check_can_operate(self):
        """RPC-callable actions re-check that the caller may change this account."""
        self.check_access("write")

    def _pipemail_may_sign_in(self):
        return self.has_access("write") and self._pipemail_can_change_connection()

    def _check_can_sign_in(self):
        """Signing a mailbox in stores a secret for it: its owner's (or a system
        administrator's) act only."""
        self._check_can_operate()
        self._check_can_change_connection()

    def action_test_connection(self):
        self.ensure_one()
        self._check_can_operate()
        return self._action_test_connection()

    def _action_test_connection(self):
        sudo_self = self.sudo()
        try:
            report = engine.check_account(self.env, sudo_self._pipemail_config())
        except pm_errors.PipemailError as exc:
            if self.state == "draft":
                # not connected yet: the answer is for the person at the form, nothing
                # to back off from or to notify about
                sudo_self.write({"last_error": str(exc), "error_code": exc.code})
            else:
                self._record_failure(exc, notify=False)
            return notification(
                _("Connection failed"), engine.error_message(self.env, exc), "danger"
            )
        except UserError as exc:
            return notification(_("Connection failed"), exc.args[0], "warning")
        if report.folders:
            sudo_self._update_folders(report.folders)
            sudo_self.invalidate_recordset(["folder_ids"])
        vals = {"last_error": False, "error_code": False, "fail_count": 0, "next_attempt": False}
        if self.state in ("draft", "error", "reconnect"):
            vals["state"] = "connected"
        sudo_self.write(vals)
        return notification(_("Connection works"), report.summary, "success", close=True)

    def action_sync_now(self):
        self.ensure_one()
        self._check_can_operate()
        return self._action_sync_now()

    def _action_sync_now(self):
        if self.state in ("draft", "disabled"):
            raise UserError(_("Test the connection first; the mailbox is not connected yet."))
        if self.state == "reconnect":
            raise UserError(_("This mailbox needs to be reconnected before it can sync."))
        self.sudo().write({"next_attempt": False})
        self.env.ref("pipemail_sync.ir_cron_pipemail_sync").sudo()._trigger()
        return notification(
            _("Sync started"), _("New mail will appear in a moment."), "success", close=True
        )

    def action_reconnect(self):
        self.ensure_one()
        self._check_can_sign_in()
        return self._action_reconnect()

    def _action_reconnect(self):
        if self.provider in ("gmail", "microsoft"):
            return {
                "type": "ir.actions.act_url",
                "url": f"{OAUTH_START.format(provider=self.provider)}?account_id={self.id}",
                "target": "self",
            }
        # a password account: the user types the password again, then we test it
        self.sudo().write(
            {"state": "draft", "fail_count": 0, "next_attempt": False, "error_code": False}
        )
        self._close_error_activities()
        return {
            "type": "ir.actions.act_window",
            "res_model": self._name,
            "res_id": self.id,
            "view_mode": "form",
            "target": "current",
        }

    def action_disable(self):
        self.ensure_one()
        self._check_can_operate()
        self.sudo().write({"state": "disabled"})

    def action_enable(self):
        self.ensure_one()
        self._check_can_operate()
        self.sudo().write({"state": "draft", "fail_count": 0, "next_attempt": False})

    def action_connect_oauth(self):
        self.ensure_one()
        self._check_can_sign_in()
        return {
            "type": "ir.actions.act_url",
            "url": f"{OAUTH_START.format(provider=self.provider)}?account_id={self.id}",
            "target": "self",
        }

    @api.model
    def _oauth_complete(self, payload, code, redirect_uri, verifier):
        """Finish an OAuth connection: exchange the code, store the tokens encrypted.

        Called by the callback route after it checked the signed state; ``payload`` is
        that state. Returns ``{"account_id": id}`` or ``{"ok": False, "message": ...}``.
        """
        provider = payload["provider"]
        account = self.browse(payload.get("account_id") or 0).exists()
        if account:
            account._check_can_sign_in()
        else:
            self.check_access("create")
        try:
            settings = oauth.client_settings(self.env, provider)
            result = oauth.exchange_code(settings, code, redirect_uri, verifier)
        except pm_errors.PipemailError as exc:
            return {"ok": False, "message": str(exc)}
        email = (result.email or "").lower()
        if not account:
            if not email:
                return {
                    "ok": False,
                    "message": _("The provider did not tell us which mailbox was connected."),
                }
            account = self.create({"name": email, "email": email, "provider": provider})
        elif email and account.email and email != account.email.lower():
            return {
                "ok": False,
                "message": _(
                    "You signed in as %(signed)s, but this mailbox is %(expected)s. "
                    "Sign in with the right account.",
                    signed=email,
                    expected=account.email,
                ),
            }
        account._set_secret("refresh_token", result.refresh_token)
        oauth.forget_source(account)
        vals = {
            "state": "connected",
            "last_error": False,
            "error_code": False,
            "fail_count": 0,
            "next_attempt": False,
        }
        account.sudo().write(vals)
        account._close_error_activities()
        self.env.ref("pipemail_sync.ir_cron_pipemail_sync").sudo()._trigger()
        return {"account_id": account.id}

    # ------------------------------------------------------------------ sync (cron)

    @api.model
    def _acquire_next(self, ids=None, exclude=()):
        """Claim one due account for this worker, or return an empty recordset.

        ``FOR UPDATE SKIP LOCKED`` lets several workers (threads, processes, servers)
        scan the table at once without waiting on each other; the lease written
        afterwards (:data:`..lease.SYNC`) keeps the account ours across the per-batch
        commits, which release row locks. A lease left by a dead process of this host
        is taken over at once.
        """
        now = fields.Datetime.now()
        skipped = list(exclude)
        # one row locked at a time: a row locked and not taken would hide it from
        # the other workers until this one commits
        for _attempt in range(20):
            self.env.cr.execute(
                SQL(
                    """
                    SELECT id, locked_by, sync_lock_until FROM pipemail_account
                     WHERE active
                       AND state IN ('connected', 'syncing', 'error')
                       AND (next_attempt IS NULL OR next_attempt <= %(now)s)
                       AND %(free)s
                       AND (%(all)s OR id = ANY(%(ids)s))
                       AND NOT id = ANY(%(skipped)s)
                     ORDER BY last_attempt NULLS FIRST, id
                     LIMIT 1
                     FOR UPDATE SKIP LOCKED
                    """,
                    now=now,
                    free=lease.SYNC.maybe_free_sql(now),
                    all=ids is None,
                    ids=list(ids or []),
                    skipped=skipped,
                )
            )
            row = self.env.cr.fetchone()
            if not row:
                break
            account_id, owner, until = row
            if not lease.SYNC.is_free(owner, until, now):
                skipped.append(account_id)  # held by a live process of this host
                continue
            account = self.browse(account_id)
            lease.SYNC.take(self.env.cr, account.ids, now)
            account.invalidate_recordset(["sync_lock_until", "locked_by"])
            return account
        return self.browse()

    def _renew_lease(self):
        """Keep this worker's sync lease on the account (after each stored batch)."""
        lease.SYNC.renew(self.env.cr, self.ids, fields.Datetime.now())
        self.invalidate_recordset(["sync_lock_until"])

    def _release_lease(self):
        lease.SYNC.release(self.env.cr, self.ids)
        self.invalidate_recordset(["sync_lock_until", "locked_by"])

    @api.model
    def _cron_sync(self, limit_seconds=240):
        """Sync due accounts one at a time until none is left or time is up."""
        deadline = time.monotonic() + limit_seconds
        done = self.browse()
        while time.monotonic() < deadline:
            account = self._acquire_next(exclude=done.ids)
            if not account:
                self.env.cr.commit()  # end the transaction; nothing more to do
                break
            # commit the lease so other workers see the account is taken
            self.env.cr.commit()
            done |= account
            try:
                account._sync(commit=True, stop=lambda: time.monotonic() > deadline)
            finally:
                account._release_lease()
                # the lease release must be visible to other workers at once
                self.env.cr.commit()
        else:
            # out of time with accounts maybe still due: run again soon, not in 2 minutes
            self.env.ref("pipemail_sync.ir_cron_pipemail_sync")._trigger()
        return done

    def _sync(self, commit=False, stop=None):
        """Run one sync of this account through the engine; never raises for mail errors.

        ``commit`` makes the store commit every batch (crons); tests keep it off so
        that their transaction can be rolled back.
        """
        self.ensure_one()
        from ..store import OdooStore

        account = self.sudo()
        now = fields.Datetime.now()
        account.write({"last_attempt": now, "state": "syncing"})
        if commit:
            # show "Syncing" to users while the batches run
            self.env.cr.commit()
        try:
            store = OdooStore(self.env, account, commit=commit)
            # the health line is read by the owner: in their language
            owner_lang = account.user_id.lang
            result = engine.sync_account(
                self.with_context(lang=owner_lang).env if owner_lang else self.env,
                account._pipemail_config(),
                store,
                progress=store.on_progress,
                stop=stop,
            )
        except pm_errors.PipemailError as exc:
            if commit:
                self.env.cr.rollback()
            account._record_failure(exc)
            return False
        except UserError as exc:
            if commit:
                self.env.cr.rollback()
            account._record_failure(pm_errors.ConfigError(exc.args[0]))
            return False
        except Exception as exc:
            if commit:
                self.env.cr.rollback()
            _logger.exception("pipemail: unexpected failure syncing account %s", self.id)
            account._record_failure(
                pm_errors.PipemailError(
                    _("Something unexpected went wrong while syncing; the team has been told."),
                    detail=repr(exc),
                )
            )
            return False
        vals = {
            "state": "connected",
            "last_sync": fields.Datetime.now(),
            "last_error": result.error_summary or False,
            "error_code": False,
            "fail_count": 0,
            "next_attempt": False,
        }
        if not result.stopped:
            vals.update(progress=100, backlog=0)
        account.write(vals)
        if account.fail_count == 0:
            account._close_error_activities()
        if commit:
            # the health fields of a successful run must survive a later failure
            self.env.cr.commit()
        return True

    def _record_failure(self, exc, notify=True):
        """Record an error in plain words; back off; tell the owner when they must act."""
        self.ensure_one()
        account = self.sudo()
        code = getattr(exc, "code", "error")
        detail = pm_secrets.redact(getattr(exc, "detail", "") or "", self._known_secrets())
        _logger.warning(
            "pipemail: account %s sync failed (%s): %s %s", self.id, code, str(exc), detail
        )
        fail_count = account.fail_count + 1
        needs_user = isinstance(exc, pm_errors.AuthFailed | pm_secrets.SecretUnreadable)
        vals = {
            "last_error": str(exc),
            "error_code": code,
            "fail_count": fail_count,
            "last_attempt": fields.Datetime.now(),
        }
        if needs_user:
            # only the user can fix this: stop retrying until they do (no retry storm,
            # no account lock-out at the provider)
            vals["state"] = "reconnect"
            vals["next_attempt"] = False
        else:
            delay = min(timedelta(minutes=2 ** min(fail_count, 12)), MAX_BACKOFF)
            vals["state"] = "error"
            vals["next_attempt"] = fields.Datetime.now() + delay
        was_state = account.state
        account.write(vals)
        if notify and (needs_user or fail_count == 3) and was_state != "reconnect":
            account._notify_owner(str(exc), needs_user)

    def _notify_owner(self, message, needs_user):
        activity_type = self.env.ref("mail.mail_activity_data_warning", raise_if_not_found=False)
        if not activity_type or not self.user_id:
            return
        summary = (
            _("Reconnect your mailbox %(name)s", name=self.name)
            if needs_user
            else _("Mailbox %(name)s cannot sync", name=self.name)
        )
        existing = self.activity_ids.filtered(
            lambda a: a.activity_type_id == activity_type and a.user_id == self.user_id
        )
        if existing:
            return
        self.activity_schedule(
            activity_type_id=activity_type.id,
            summary=summary,
            note=message,
            user_id=self.user_id.id,
        )

    def _close_error_activities(self):
        activity_type = self.env.ref("mail.mail_activity_data_warning", raise_if_not_found=False)
        if not activity_type:
            return
        self.sudo().activity_ids.filtered(
            lambda a: a.activity_type_id == activity_type
        ).action_feedback(feedback=_("The mailbox syncs again."))

    # ------------------------------------------------------------------ push

    @api.model
    def _cron_idle_watchers(self):
        """Make sure this server runs push watchers for the connected accounts."""
        from .. import idle

        idle.ensure_watchers(self.env)

    def _set_progress(self, progress, backlog):
        """Initial-sync figures, written by the store after each committed batch.

        Another transaction (the push watcher's lease, a user's edit) may have updated
        the row since this batch's snapshot: under REPEATABLE READ that is a
        serialization error. Progress is advisory, so such a conflict skips this update
        instead of failing the batch.
        """
        self.ensure_one()
        try:
            with self.env.cr.savepoint(flush=False):
                self.env.cr.execute(
                    SQL(
                        "UPDATE pipemail_account SET progress = %s, backlog = %s WHERE id = %s",
                        max(0, min(100, int(progress))),
                        max(0, int(backlog)),
                        self.id,
                    ),
                    log_exceptions=False,  # an expected conflict, reported below
                )
        except psycopg2.errors.SerializationFailure:
            _logger.info("pipemail: progress of account %s not saved (concurrent update)", self.id)
        self.invalidate_recordset(["progress", "backlog"])
