/**
 * The reading pane: the conversation's own form view beside the list. The form is
 * the standard one (buttons, labels, the conversation widget); around it the pane
 * keeps the inbox's breadcrumb and title and tells the inbox when a button changed
 * something.
 *
 * The conversation form (``pipemail_thread_form``, in the pane and full page alike, as
 * on phones) marks a conversation its holder opens as read after a moment, through
 * ``action_mark_read``, which queues the write-back to the mail server.
 */
import { Component, onWillUnmount, useEffect, useSubEnv } from "@odoo/owl";
import { registry } from "@web/core/registry";
import { useBus } from "@web/core/utils/hooks";
import { View } from "@web/views/view";
import { formView } from "@web/views/form/form_view";
import { FormController } from "@web/views/form/form_controller";

export const MARK_READ_DELAY = 1000;

export class PipemailPaneFormController extends FormController {
    static props = {
        ...FormController.props,
        onChanged: { type: Function, optional: true },
    };

    setup() {
        super.setup();
        this.markReadTimer = null;
        useEffect(
            () => this.onRecordLoaded(),
            () => [this.model.root?.resId, this.model.root?.data?.is_unread]
        );
        onWillUnmount(() => clearTimeout(this.markReadTimer));
        if (this.env.pipemailInboxBus) {
            // new mail in the open conversation: shown in place, unless it is being edited
            useBus(this.env.pipemailInboxBus, "THREADS_CHANGED", async ({ detail }) => {
                const record = this.model.root;
                if (detail.ids.includes(record.resId) && !(await record.isDirty())) {
                    await record.load();
                }
            });
        }
    }

    onRecordLoaded() {
        clearTimeout(this.markReadTimer);
        const record = this.model.root;
        if (!record.resId || !record.data.is_unread || !record.data.in_my_inbox) {
            return;
        }
        const resId = record.resId;
        this.markReadTimer = setTimeout(async () => {
            if (this.model.root.resId !== resId) {
                return;
            }
            await this.orm.call("pipemail.thread", "action_mark_read", [[resId]]);
            await this.model.root.load();
            this.props.onChanged?.({ markedRead: resId });
        }, MARK_READ_DELAY);
    }

    async afterExecuteActionButton(clickParams) {
        await super.afterExecuteActionButton(clickParams);
        this.props.onChanged?.({ button: clickParams.name });
    }
}

export const pipemailPaneFormView = {
    ...formView,
    Controller: PipemailPaneFormController,
};
registry.category("views").add("pipemail_thread_form", pipemailPaneFormView);

export class PipemailReadingPane extends Component {
    static template = "pipemail_sync.ReadingPane";
    static components = { View };
    static props = {
        resId: Number,
        context: { type: Object, optional: true },
        onChanged: Function,
        onClose: Function,
    };

    setup() {
        // the form in the pane must not rename the inbox's breadcrumb or leave it
        useSubEnv({
            config: {
                ...this.env.config,
                setDisplayName: () => {},
                historyBack: () => this.props.onClose(),
            },
        });
    }

    get viewProps() {
        return {
            type: "form",
            jsClass: "pipemail_thread_form",
            resModel: "pipemail.thread",
            resId: this.props.resId,
            context: this.props.context || {},
            display: { controlPanel: false },
            onChanged: this.props.onChanged,
        };
    }
}
