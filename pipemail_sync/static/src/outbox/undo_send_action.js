/** @odoo-module **/
import { registry } from "@web/core/registry";

/**
 * After Send: a toast with an Undo button for the grace period. Undo takes the
 * email back (the server refuses once it has left) and reopens it in the composer;
 * when the period is over the browser asks the server to send it at once, and the
 * outbox cron sends it anyway if this page is gone by then.
 */
export function undoSendAction(env, action) {
    const { outbox_ids: ids, seconds, title, message, undo } = action.params;
    const { notification, orm } = env.services;
    let settled = false;
    const timer = setTimeout(async () => {
        if (settled) {
            return;
        }
        settled = true;
        closeToast();
        const result = await orm.call("pipemail.outbox", "action_send_held", [ids]);
        if (result) {
            await env.services.action.doAction(result);
        }
    }, seconds * 1000 + 500);
    const closeToast = notification.add(message, {
        title,
        type: "info",
        sticky: true,
        className: "o_pipemail_undo_send",
        buttons: [
            {
                name: undo,
                primary: true,
                onClick: async () => {
                    if (settled) {
                        return;
                    }
                    settled = true;
                    clearTimeout(timer);
                    closeToast();
                    const reopen = await orm.call("pipemail.outbox", "action_undo_send", [ids]);
                    await env.services.action.doAction(reopen);
                },
            },
        ],
    });
    return { type: "ir.actions.act_window_close" };
}

registry.category("actions").add("pipemail_undo_send", undoSendAction);
