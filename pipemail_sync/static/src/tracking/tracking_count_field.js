/** @odoo-module **/
/**
 * Eye (opens) or cursor (clicks) icon with the count of human hits of a sent email or
 * conversation. Nothing is shown for mail that was not tracked, a muted icon while
 * nobody opened or clicked, a coloured one with the count afterwards; the tooltip
 * gives the first and last open when the view carries them.
 */
import { Component } from "@odoo/owl";
import { _t } from "@web/core/l10n/translation";
import { formatDateTime } from "@web/core/l10n/dates";
import { registry } from "@web/core/registry";
import { standardFieldProps } from "@web/views/fields/standard_field_props";

export class PipemailTrackingCount extends Component {
    static template = "pipemail_sync.TrackingCount";
    static props = { ...standardFieldProps, kind: { type: String, optional: true } };

    get data() {
        return this.props.record.data;
    }

    get value() {
        return this.data[this.props.name] || 0;
    }

    get isClick() {
        return this.props.kind === "click";
    }

    get tracked() {
        for (const name of ["pipemail_tracked", "tracking"]) {
            if (name in this.data) {
                return Boolean(this.data[name]);
            }
        }
        return this.value > 0;
    }

    get title() {
        if (this.isClick) {
            return this.value ? _t("Clicked %s time(s)", this.value) : _t("No click yet");
        }
        if (!this.value) {
            return _t("Not opened yet");
        }
        const first = this.data.pipemail_first_open || this.data.first_open;
        const last = this.data.pipemail_last_open || this.data.last_open;
        let title = _t("Opened %s time(s)", this.value);
        if (first) {
            title += " · " + _t("first %s", formatDateTime(first));
        }
        if (last) {
            title += " · " + _t("last %s", formatDateTime(last));
        }
        return title;
    }
}

registry.category("fields").add("pipemail_tracking_count", {
    component: PipemailTrackingCount,
    supportedTypes: ["integer"],
    extractProps: ({ options }) => ({ kind: options.kind || "open" }),
});
