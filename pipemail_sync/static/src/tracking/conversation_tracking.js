/** @odoo-module **/
/**
 * Tracking icons on each sent email of the conversation reader (eye: human opens,
 * cursor: human clicks), read in one extra call after the messages are loaded.
 */
import { useState } from "@odoo/owl";
import { _t } from "@web/core/l10n/translation";
import { deserializeDateTime, formatDateTime } from "@web/core/l10n/dates";
import { patch } from "@web/core/utils/patch";
import { PipemailConversation } from "@pipemail_sync/conversation/conversation_field";

const TRACKING_FIELDS = [
    "pipemail_tracked",
    "pipemail_open_count",
    "pipemail_click_count",
    "pipemail_first_open",
    "pipemail_last_open",
];

patch(PipemailConversation.prototype, {
    setup() {
        super.setup(...arguments);
        this.tracking = useState({});
    },

    async load(props) {
        await super.load(...arguments);
        const ids = this.state.messages.filter((m) => m.direction === "out").map((m) => m.id);
        if (!ids.length) {
            return;
        }
        const rows = await this.orm.read("pipemail.message", ids, TRACKING_FIELDS);
        for (const row of rows) {
            this.tracking[row.id] = row;
        }
    },

    trackingOf(message) {
        const row = this.tracking[message.id];
        return row && row.pipemail_tracked ? row : null;
    },

    openTitle(row) {
        if (!row.pipemail_open_count) {
            return _t("Not opened yet");
        }
        const last = row.pipemail_last_open
            ? formatDateTime(deserializeDateTime(row.pipemail_last_open))
            : "";
        const first = row.pipemail_first_open
            ? formatDateTime(deserializeDateTime(row.pipemail_first_open))
            : "";
        return _t("Opened %(count)s time(s) · first %(first)s · last %(last)s", {
            count: row.pipemail_open_count,
            first,
            last,
        });
    },

    clickTitle(row) {
        return row.pipemail_click_count
            ? _t("Clicked %s time(s)", row.pipemail_click_count)
            : _t("No click yet");
    },
});
