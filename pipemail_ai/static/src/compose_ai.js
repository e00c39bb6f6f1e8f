/** @odoo-module **/
/**
 * The AI bar of the composer. It reads the body the person is editing, asks the server
 * (pipemail.compose.pipemail_ai_compose) for a new body in which only the person's text
 * changed (signature and quoted history kept as they were), and puts it in the editor
 * as editable text. Undo puts back the body as it was before. Nothing is saved or sent:
 * the person edits and presses Send.
 */
import { Component, markup, useState } from "@odoo/owl";
import { _t } from "@web/core/l10n/translation";
import { registry } from "@web/core/registry";
import { useService } from "@web/core/utils/hooks";
import { standardWidgetProps } from "@web/views/widgets/standard_widget_props";
import { runAi } from "./ai_run";

export class PipemailAiCompose extends Component {
    static template = "pipemail_ai.ComposeBar";
    static props = { ...standardWidgetProps };

    setup() {
        this.orm = useService("orm");
        this.state = useState({
            instruction: "",
            language: "",
            busy: false,
            error: "",
            cancel: null,
            undo: null,
            model: "",
        });
        this.tones = [
            ["formal", _t("Formal")],
            ["friendly", _t("Friendly")],
            ["direct", _t("Direct")],
        ];
    }

    get record() {
        return this.props.record;
    }

    get threadId() {
        const thread = this.record.data.thread_id;
        return (thread && (thread.id || thread[0])) || false;
    }

    async currentBody() {
        // the editor keeps its text until it is committed to the record
        const proms = [];
        this.record.model.bus.trigger("NEED_LOCAL_CHANGES", { proms });
        await Promise.all(proms);
        return (this.record.data.body || "").toString();
    }

    async run(action, options = {}) {
        const before = await this.currentBody();
        const result = await runAi(this.orm, this.state, (token) =>
            this.orm.call("pipemail.compose", "pipemail_ai_compose", [action], {
                body: before,
                thread_id: this.threadId,
                instruction: this.state.instruction,
                tone: options.tone || false,
                language: this.state.language,
                run_token: token,
            })
        );
        if (!result) {
            return;
        }
        this.state.undo = before;
        this.state.model = result.model;
        await this.record.update({ body: markup(result.body) });
    }

    async undo() {
        if (this.state.undo === null) {
            return;
        }
        const previous = this.state.undo;
        this.state.undo = null;
        this.state.model = "";
        await this.currentBody();
        await this.record.update({ body: markup(previous) });
    }
}

registry.category("view_widgets").add("pipemail_ai_compose", {
    component: PipemailAiCompose,
});
