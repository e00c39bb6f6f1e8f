/**
 * Previous / next in the group email's Preview tab. The index is a field of the wizard:
 * changing it here recomputes the preview (an onchange), so the dialog stays as it is,
 * on its Preview tab. (A server button would reopen the dialog on its first tab.)
 */
import { Component } from "@odoo/owl";
import { _t } from "@web/core/l10n/translation";
import { registry } from "@web/core/registry";
import { standardFieldProps } from "@web/views/fields/standard_field_props";

export class PipemailPreviewPager extends Component {
    static template = "pipemail_campaigns.PreviewPager";
    static props = { ...standardFieldProps };

    get position() {
        return this.props.record.data.preview_position || "";
    }

    get previousLabel() {
        return _t("Previous recipient");
    }

    get nextLabel() {
        return _t("Next recipient");
    }

    async step(delta) {
        const index = this.props.record.data[this.props.name] || 0;
        await this.props.record.update({ [this.props.name]: index + delta });
    }
}

registry.category("fields").add("pipemail_preview_pager", {
    component: PipemailPreviewPager,
    supportedTypes: ["integer"],
    relatedFields: [{ name: "preview_position", type: "char" }],
});
