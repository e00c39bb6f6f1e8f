import json

from odoo import api, fields, models

from pipemail.types import FolderState

FOLDER_ROLES = [
    ("inbox", "Inbox"),
    ("sent", "Sent"),
    ("archive", "Archives"),
    ("trash", "Trash"),
    ("all", "All Mail"),
    ("junk", "Junk"),
    ("drafts", "Drafts"),
    ("other", "Other"),
]


USER_FIELDS = frozenset({"sync", "role"})
"""Folders are the server's: the owner chooses which ones sync and what they are for."""


class PipemailFolder(models.Model):
    _name = "pipemail.folder"
    _inherit = ["pipemail.guarded.mixin"]
    _pipemail_user_create = frozenset()
    _pipemail_user_write = USER_FIELDS
    _description = "Synced Mail Folder"
    _order = "account_id, sequence, name"

    account_id = fields.Many2one("pipemail.account", required=True, ondelete="cascade", index=True)
    company_id = fields.Many2one(related="account_id.company_id", store=True)
    name = fields.Char(required=True, help="The folder's name on the server.")
    sequence = fields.Integer(compute="_compute_sequence", store=True)
    role = fields.Selection(FOLDER_ROLES, required=True, default="other")
    sync = fields.Boolean(default=False)
    state_json = fields.Text(
        copy=False,
        readonly=True,
        help="The engine's sync cursor; saved only together with the messages it covers.",
    )
    message_count = fields.Integer(compute="_compute_message_count")

    _sql_constraints = [
        ("name_account_uniq", "UNIQUE(account_id, name)", "A folder is listed once per mailbox."),
    ]

    def _pipemail_hidden_name(self):
        return self.env._("Mail folder")

    @api.depends("role")
    def _compute_sequence(self):
        order = [role for role, _label in FOLDER_ROLES]
        for folder in self:
            folder.sequence = order.index(folder.role) if folder.role in order else len(order)

    def _compute_message_count(self):
        counts = dict(
            self.env["pipemail.message.location"]._read_group(
                [("folder_id", "in", self.ids)], ["folder_id"], ["__count"]
            )
        )
        for folder in self:
            folder.message_count = counts.get(folder, 0)

    def _folder_state(self):
        self.ensure_one()
        if not self.state_json:
            return None
        return FolderState.from_json(json.loads(self.state_json))
