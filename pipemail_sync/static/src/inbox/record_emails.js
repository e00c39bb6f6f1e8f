/** @odoo-module **/
/**
 * A lead's, project's or contact's Emails tab: its conversations in the Sales Inbox's
 * own view (list, reading pane beside it on wide screens, the keyboard, a search and a
 * pager), without the folders, which are the mailbox's. What it lists comes from the
 * record's Emails button (action_view_pipemail_threads), searched as the reader.
 */
import { Component, onWillStart, onWillUpdateProps } from "@odoo/owl";
import { registry } from "@web/core/registry";
import { useService } from "@web/core/utils/hooks";
import { View } from "@web/views/view";
import { standardWidgetProps } from "@web/views/widgets/standard_widget_props";

export class PipemailRecordEmails extends Component {
    static template = "pipemail_sync.RecordEmails";
    static components = { View };
    static props = { ...standardWidgetProps };

    setup() {
        this.orm = useService("orm");
        this.actionService = useService("action");
        this.viewProps = null;
        onWillStart(() => this.load(this.props.record));
        // the form's pager moves to another record: its emails
        onWillUpdateProps((next) => {
            if (next.record.resId !== this.props.record.resId) {
                return this.load(next.record);
            }
        });
    }

    async load({ resModel, resId }) {
        this.viewProps = null;
        if (!resId) {
            return;
        }
        const action = await this.orm.call(resModel, "action_view_pipemail_threads", [[resId]]);
        const list = action.views.find((view) => view[1] === "list");
        const form = action.views.find((view) => view[1] === "form");
        this.viewProps = {
            resModel: action.res_model,
            type: "list",
            viewId: list[0],
            views: [
                [list[0], "list"],
                [false, "search"],
            ],
            domain: action.domain,
            context: action.context,
            // the search and the pager, not the form's breadcrumbs again
            noBreadcrumbs: true,
            allowSelectors: false,
            // one column (a phone): the conversation opens full page, as from the button
            selectRecord: (threadId) =>
                this.actionService.doAction({
                    type: "ir.actions.act_window",
                    res_model: action.res_model,
                    res_id: threadId,
                    views: [[form ? form[0] : false, "form"]],
                    context: action.context,
                }),
        };
    }
}

registry.category("view_widgets").add("pipemail_record_emails", {
    component: PipemailRecordEmails,
});
