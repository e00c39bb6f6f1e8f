/** @odoo-module **/
/**
 * AI in the conversation reader: "Summarize" above the messages (points citing the
 * messages they come from; a citation opens its message), and three suggested replies
 * below an incoming conversation (one click opens the reply composer with it).
 *
 * Everything the model wrote is shown as text (t-esc), never as HTML. The buttons
 * appear only when the server says the helper is on for this user and this
 * conversation (pipemail_ai_state); the server checks again on every request.
 */
import { status, useState } from "@odoo/owl";
import { _t } from "@web/core/l10n/translation";
import { patch } from "@web/core/utils/patch";
import { PipemailConversation } from "@pipemail_sync/conversation/conversation_field";
import { runAi } from "./ai_run";

const KIND_LABELS = {
    request: _t("Request"),
    decision: _t("Decision"),
    question: _t("Open question"),
    next_step: _t("Next step"),
};

patch(PipemailConversation.prototype, {
    setup() {
        super.setup(...arguments);
        this.ai = useState({
            summary: { enabled: false, result: null, busy: false, error: "", cancel: null },
            replies: { enabled: false, result: null, busy: false, error: "", cancel: null },
        });
    },

    async load(props) {
        await super.load(...arguments);
        const record = props.record;
        if (!record.resId || record.data.content_hidden || !this.state.messages.length) {
            this.ai.summary.enabled = this.ai.replies.enabled = false;
            return;
        }
        const aiState = await this.orm.silent.call("pipemail.thread", "pipemail_ai_state", [
            [record.resId],
        ]);
        if (status(this) === "destroyed") {
            return;
        }
        for (const helper of ["summary", "replies"]) {
            this.ai[helper].enabled = Boolean(aiState[helper]);
            this.ai[helper].result = aiState[helper] ? aiState[helper].result || null : null;
        }
    },

    aiKindLabel(kind) {
        return KIND_LABELS[kind] || KIND_LABELS.request;
    },

    /** The position (1 = oldest) of a cited message in the reader, or 0. */
    aiCitationNumber(messageId) {
        return this.state.messages.findIndex((m) => m.id === messageId) + 1;
    },

    get aiCanSuggest() {
        const last = this.state.messages[this.state.messages.length - 1];
        return this.ai.replies.enabled && this.canCompose && last && last.direction === "in";
    },

    async aiSummarize(refresh = false) {
        const resId = this.props.record.resId;
        const result = await runAi(this.orm, this.ai.summary, (token) =>
            this.orm.call("pipemail.thread", "action_pipemail_ai_summarize", [[resId]], {
                refresh,
                run_token: token,
            })
        );
        if (result) {
            this.ai.summary.result = result;
        }
    },

    async aiSuggest(refresh = false) {
        const resId = this.props.record.resId;
        const result = await runAi(this.orm, this.ai.replies, (token) =>
            this.orm.call("pipemail.thread", "action_pipemail_ai_suggest", [[resId]], {
                refresh,
                run_token: token,
            })
        );
        if (result) {
            this.ai.replies.result = result;
        }
    },

    async aiOpenCitation(ev, messageId) {
        this.state.open[messageId] = true;
        const root = ev.target.closest(".o_pipemail_conversation");
        await new Promise((resolve) => requestAnimationFrame(resolve));
        const card = root && root.querySelector(`[data-message-id="${messageId}"]`);
        if (card) {
            card.scrollIntoView({ behavior: "smooth", block: "start" });
            card.classList.add("o_pipemail_ai_cited");
            setTimeout(() => card.classList.remove("o_pipemail_ai_cited"), 1600);
        }
    },

    async aiUseReply(reply) {
        const record = this.props.record;
        const last = this.state.messages[this.state.messages.length - 1];
        if ((await record.save()) === false) {
            return;
        }
        const action = await this.orm.call("pipemail.message", "action_pipemail_ai_reply", [
            [last.id],
            reply.text,
        ]);
        await this.action.doAction(action, {
            onClose: () => status(this) !== "destroyed" && record.load(),
        });
    },
});
