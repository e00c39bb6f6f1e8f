from odoo import api, models

from .. import access


class PipemailGuarded(models.AbstractModel):
    """What users may set on a record by hand, and which names they may see.

    Every create and write goes through here, RPC included: a user sets only the
    fields the model lists, and only to records they can read; superuser code (the
    sync, the checked server methods) passes. A name computed with the target's rights
    bypassed (a many2one shown on a record the user can read) is replaced by a neutral
    label when the user cannot read the record itself.
    """

    _name = "pipemail.guarded.mixin"
    _description = "Email Sync: user-settable fields and hidden names"

    _pipemail_user_create = frozenset()
    """Fields a user may give when creating a record (nothing: the server creates)."""
    _pipemail_user_write = frozenset()
    """Fields a user may change."""

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            access.check_values(self, vals, self._pipemail_user_create)
        return super().create(vals_list)

    def write(self, vals):
        access.check_values(self, vals, self._pipemail_user_write)
        return super().write(vals)

    @api.depends_context("uid")
    def _compute_display_name(self):
        res = super()._compute_display_name()
        access.hide_unreadable_names(self, self._pipemail_hidden_name())
        return res

    def _pipemail_hidden_name(self):
        """What a name the reader may not see reads as."""
        return self.env._("Hidden")
