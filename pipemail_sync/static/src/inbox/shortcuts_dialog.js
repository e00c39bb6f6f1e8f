/** The "?" help of the Sales Inbox: every keyboard shortcut it answers to. */
import { Component } from "@odoo/owl";
import { Dialog } from "@web/core/dialog/dialog";
import { _t } from "@web/core/l10n/translation";

export function inboxShortcuts() {
    return [
        { keys: ["j", "↓"], what: _t("Next conversation") },
        { keys: ["k", "↑"], what: _t("Previous conversation") },
        { keys: ["Enter"], what: _t("Open the conversation") },
        { keys: ["r"], what: _t("Reply") },
        { keys: ["a"], what: _t("Reply all") },
        { keys: ["f"], what: _t("Forward") },
        { keys: ["e"], what: _t("Archive") },
        { keys: ["#"], what: _t("Delete") },
        { keys: ["c"], what: _t("Write a new email") },
        { keys: ["?"], what: _t("Show this help") },
    ];
}

export class PipemailShortcutsDialog extends Component {
    static template = "pipemail_sync.ShortcutsDialog";
    static components = { Dialog };
    static props = { close: Function };

    get shortcuts() {
        return inboxShortcuts();
    }
}
