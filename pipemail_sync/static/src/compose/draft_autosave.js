/** @odoo-module **/
import { Component, onMounted, onWillUnmount, useRef, useState } from "@odoo/owl";
import { _t } from "@web/core/l10n/translation";
import { registry } from "@web/core/registry";
import { useService } from "@web/core/utils/hooks";
import { useRecordObserver } from "@web/model/relational_model/utils";
import { standardFieldProps } from "@web/views/fields/standard_field_props";

const DELAY = 1500;
/** What the person writes in the composer; a change to any of them is worth a save. */
const WATCHED = [
    "account_id",
    "email_to",
    "email_cc",
    "email_bcc",
    "individual",
    "subject",
    "body",
    "template_id",
    "attachment_ids",
    "tracking",
    "scheduled_at",
];

/**
 * Saves the composer (or another form with an ``action_save_draft`` method, as the
 * group email wizard) as the user's draft a moment after they stop typing. The
 * record is saved first (the editor hands over its text), then the server copies
 * it into the draft after checking everything it points at. The fields watched are
 * the composer's unless the view lists others in ``options="{'watched': [...]}"``;
 * ``'also_watched'`` adds to them (options another addon puts in the composer).
 */
export class DraftAutosave extends Component {
    static template = "pipemail_sync.DraftAutosave";
    static props = {
        ...standardFieldProps,
        watched: { type: Array, optional: true },
        alsoWatched: { type: Array, optional: true },
    };

    setup() {
        this.orm = useService("orm");
        this.state = useState({ status: "" });
        this.root = useRef("root");
        this.timer = null;
        this.saving = false;
        let first = true;
        const watched = [...(this.props.watched || WATCHED), ...(this.props.alsoWatched || [])];
        useRecordObserver((record) => {
            for (const name of watched) {
                void record.data[name];
            }
            if (first) {
                first = false;
                return;
            }
            this.schedule();
        });
        const onInput = () => this.schedule();
        onMounted(() => {
            this.form = this.root.el.closest(".o_form_view") || this.root.el.parentElement;
            this.form.addEventListener("input", onInput);
        });
        onWillUnmount(() => {
            clearTimeout(this.timer);
            this.form?.removeEventListener("input", onInput);
        });
    }

    schedule() {
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.save(), DELAY);
    }

    async save() {
        if (this.saving) {
            this.schedule();
            return;
        }
        const record = this.props.record;
        this.saving = true;
        try {
            await record.isDirty(); // the editor hands its text over
            if (!record._checkValidity({ silent: true })) {
                return;
            }
            if (!(await record.save({ reload: false }))) {
                return;
            }
            const result = await this.orm.call(record.resModel, "action_save_draft", [
                [record.resId],
            ]);
            if (result) {
                if (!record.data.draft_id) {
                    // readonly: shown (Delete Draft), never sent back on save
                    await record.update({ draft_id: [result.draft_id, _t("Draft")] });
                }
                this.state.status = _t("Draft saved");
            }
        } finally {
            this.saving = false;
        }
    }
}

registry.category("fields").add("pipemail_draft_autosave", {
    component: DraftAutosave,
    supportedTypes: ["many2one"],
    extractProps: ({ options }) => ({
        watched: options.watched,
        alsoWatched: options.also_watched,
    }),
});
