/** @odoo-module **/
/**
 * The conversation reader: the messages of a conversation, oldest first, each body in
 * a sandboxed frame.
 *
 * Bodies are sanitized by the server when stored (fields.Html). The frame is the
 * second wall: `sandbox` without `allow-scripts` means no script runs, whatever the
 * HTML holds, and its Content-Security-Policy keeps remote images (tracking pixels)
 * off until the reader asks for them. Everything else (names, addresses, file
 * names) is text, rendered with t-esc.
 *
 * Each opened message carries its own Reply / Reply All / Forward: the composer then
 * quotes and threads on that message, not only on the latest one. Whether the
 * buttons show follows the header's rule (in_my_inbox, content visible); the server
 * checks it again when the composer is asked for.
 */
import { Component, status, useState } from "@odoo/owl";
import { _t } from "@web/core/l10n/translation";
import { deserializeDateTime, formatDateTime } from "@web/core/l10n/dates";
import { registry } from "@web/core/registry";
import { useService } from "@web/core/utils/hooks";
import { useRecordObserver } from "@web/model/relational_model/utils";
import { standardFieldProps } from "@web/views/fields/standard_field_props";

const MESSAGE_SPEC = {
    subject: {},
    email_from: {},
    email_to: {},
    email_cc: {},
    date: {},
    direction: {},
    is_read: {},
    snippet: {},
    body_html: {},
    text_direction: {},
    parse_error: {},
    attachment_ids: { fields: { name: {}, mimetype: {}, file_size: {} } },
};

const FRAME_STYLE =
    "body{margin:0;padding:0 2px;font:14px/1.5 -apple-system,'Segoe UI',Roboto,Arial,sans-serif;" +
    "color:#212529;overflow-wrap:anywhere}img{max-width:100%;height:auto}" +
    "blockquote{margin:0 0 0 .5em;padding-left:.75em;border-left:2px solid #ccc;color:#666}" +
    "pre{white-space:pre-wrap}table{max-width:100%}";

/**
 * The document shown in a message's frame. `body` is the server-sanitized HTML; it is
 * never inserted into the Odoo page itself.
 */
export function frameDocument(body, { remoteImages = false, rtl = false } = {}) {
    const images = remoteImages ? "img-src data: 'self' https: http:" : "img-src data: 'self'";
    const csp = `default-src 'none'; ${images}; style-src 'unsafe-inline'; font-src data:`;
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>" +
        `<meta http-equiv="Content-Security-Policy" content="${csp}">` +
        "<base target='_blank'><meta name='referrer' content='no-referrer'>" +
        `<style>${FRAME_STYLE}</style></head><body dir='${rtl ? "rtl" : "auto"}'>` +
        (body || "") +
        "</body></html>"
    );
}

export class PipemailConversation extends Component {
    static template = "pipemail_sync.Conversation";
    static props = { ...standardFieldProps };

    setup() {
        this.orm = useService("orm");
        this.action = useService("action");
        this.state = useState({ messages: [], loading: true, open: {}, images: {} });
        // also when the record is reloaded in place (new mail synced into the open
        // conversation, marked read): the fields load() reads are observed
        // (read through the observed ``record``, not the props' one, to be observed)
        useRecordObserver((record, props) => this.load({ ...props, record }));
    }

    ids(props) {
        return [...(props.record.data[props.name]?.currentIds || [])];
    }

    async load(props) {
        const ids = this.ids(props);
        // reload when the conversation changed under us (read state, new message)
        const data = props.record.data;
        const key = [ids.join(","), data.is_unread, data.message_count, data.last_date].join("|");
        if (key === this.loadedKey) {
            return;
        }
        this.loadedKey = key;
        if (!ids.length) {
            this.state.messages = [];
            this.state.loading = false;
            return;
        }
        const messages = await this.orm.webRead("pipemail.message", ids, {
            specification: MESSAGE_SPEC,
            context: { bin_size: true },
        });
        messages.sort((a, b) => (a.date || "").localeCompare(b.date || "") || a.id - b.id);
        const open = {};
        messages.forEach((m, index) => {
            // the newest and the unread are open; older read ones fold to a line
            open[m.id] = index === messages.length - 1 || !m.is_read || messages.length <= 2;
        });
        this.state.open = open;
        this.state.messages = messages;
        this.state.loading = false;
    }

    toggle(message) {
        this.state.open[message.id] = !this.state.open[message.id];
    }

    get canCompose() {
        const data = this.props.record.data;
        return Boolean(data.in_my_inbox && !data.content_hidden);
    }

    /** Reply to, reply to all or forward this message in the composer dialog. */
    async compose(message, mode) {
        const record = this.props.record;
        // like the header's action buttons: pending edits (labels, visibility) first
        if ((await record.save()) === false) {
            return;
        }
        const action = await this.orm.call("pipemail.message", "action_pipemail_compose", [
            [message.id],
            mode,
        ]);
        await this.action.doAction(action, {
            // the sent email joins the conversation: show it (if the reader is still open)
            onClose: () => status(this) !== "destroyed" && record.load(),
        });
    }

    showImages(message) {
        this.state.images[message.id] = true;
    }

    hasRemoteImages(message) {
        return /<img[^>]+src=["']?https?:/i.test(message.body_html || "");
    }

    formatDate(value) {
        return value ? formatDateTime(deserializeDateTime(value)) : "";
    }

    srcdoc(message) {
        return frameDocument(message.body_html, {
            remoteImages: !!this.state.images[message.id],
            rtl: message.text_direction === "rtl",
        });
    }

    downloadUrl(attachment) {
        return `/web/content/${encodeURIComponent(attachment.id)}?download=true`;
    }

    fileSize(attachment) {
        const size = attachment.file_size || 0;
        if (size > 1024 * 1024) {
            return `${(size / 1024 / 1024).toFixed(1)} MB`;
        }
        return `${Math.max(1, Math.round(size / 1024))} kB`;
    }

    directionLabel(message) {
        return message.direction === "out" ? _t("Sent") : _t("Received");
    }

    onFrameLoad(ev) {
        // same origin (sandbox allow-same-origin, no scripts): size the frame to its text
        const frame = ev.target;
        try {
            // a document is never shorter than its frame: shrink the frame, then measure
            frame.style.height = "0px";
            const height = frame.contentDocument.documentElement.scrollHeight + 8;
            frame.style.height = `${Math.min(Math.max(height, 40), 4000)}px`;
        } catch {
            frame.style.height = "400px";
        }
    }
}

export const pipemailConversation = {
    component: PipemailConversation,
    supportedTypes: ["one2many"],
    relatedFields: [{ name: "date", type: "datetime" }],
    // the per-message compose buttons follow the same rule as the form's header
    fieldDependencies: [
        { name: "in_my_inbox", type: "boolean" },
        { name: "content_hidden", type: "boolean" },
    ],
    isEmpty: () => false,
};

registry.category("fields").add("pipemail_conversation", pipemailConversation);

/** One message's body, alone (message form): the same sandboxed frame. */
export class PipemailSandboxedHtml extends Component {
    static template = "pipemail_sync.SandboxedHtml";
    static props = { ...standardFieldProps };

    setup() {
        this.state = useState({ images: false });
    }

    get srcdoc() {
        return frameDocument(this.props.record.data[this.props.name], {
            remoteImages: this.state.images,
        });
    }

    onFrameLoad(ev) {
        PipemailConversation.prototype.onFrameLoad.call(this, ev);
    }
}

registry.category("fields").add("pipemail_sandboxed_html", {
    component: PipemailSandboxedHtml,
    supportedTypes: ["html"],
});
