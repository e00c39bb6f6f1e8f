/** @odoo-module **/
/**
 * One AI request from the browser: a progress state, a Cancel that both stops waiting
 * and tells the server to stop asking the model (pipemail.ai.usage.action_pipemail_cancel),
 * and the server's plain-words refusal or failure shown as one sentence.
 */
import { _t } from "@web/core/l10n/translation";

export function newRunToken() {
    return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
}

export function errorText(error) {
    return (
        error?.data?.message ||
        error?.message ||
        _t("The AI helper failed: try again in a moment.")
    );
}

/**
 * Run `call(runToken)` (an orm.call promise) with `state.busy` / `state.error` set,
 * returning its result, or null when it failed or was cancelled.
 */
export async function runAi(orm, state, call) {
    const token = newRunToken();
    state.busy = true;
    state.error = "";
    state.started = Date.now();
    const promise = call(token);
    state.cancel = () => {
        orm.silent.call("pipemail.ai.usage", "action_pipemail_cancel", [token]).catch(() => {});
        promise.abort?.(false);
        state.busy = false;
        state.cancel = null;
    };
    try {
        return await promise;
    } catch (error) {
        if (state.busy) {
            state.error = errorText(error);
        }
        return null;
    } finally {
        state.busy = false;
        state.cancel = null;
    }
}
