/**
 * The folders pane of the Sales Inbox: the groups and folders the server returns
 * (``pipemail.thread.pipemail_folder_counts``), each with its unread or pending count.
 * It only shows them: the inbox controller loads them, keeps them current (bus) and
 * decides what a click does.
 */
import { Component } from "@odoo/owl";
import { _t } from "@web/core/l10n/translation";

export class PipemailFoldersPane extends Component {
    static template = "pipemail_sync.FoldersPane";
    static props = {
        groups: Array,
        allCount: Number,
        selectedKey: String,
        onSelect: Function,
    };

    countTitle(folder) {
        return folder.count_kind === "pending" ? _t("Pending") : _t("Unread");
    }
}
