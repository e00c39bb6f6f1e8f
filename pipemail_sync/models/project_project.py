from odoo import fields, models


class ProjectProject(models.Model):
    _inherit = "project.project"

    pipemail_thread_ids = fields.One2many("pipemail.thread", "project_id", string="Emails")
    pipemail_thread_count = fields.Integer(
        string="Email Conversations", compute="_compute_pipemail_thread_count"
    )

    def _compute_pipemail_thread_count(self):
        counts = dict(
            self.env["pipemail.thread"]._read_group(
                [("project_id", "in", self.ids)], ["project_id"], ["__count"]
            )
        )
        for project in self:
            project.pipemail_thread_count = counts.get(project, 0)

    def action_view_pipemail_threads(self):
        self.ensure_one()
        return self.env["pipemail.thread"]._action_for_records(
            [("project_id", "=", self.id)], {"default_project_id": self.id}, record=self
        )
