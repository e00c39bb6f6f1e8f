/** @odoo-module **/
import { registry } from "@web/core/registry";

function expectValue(selector, expected) {
    return {
        content: `${selector} holds ${expected}`,
        trigger: selector,
        run() {
            const value = document.querySelector(selector).value;
            if (value !== expected) {
                throw new Error(`${selector}: expected "${expected}", got "${value}"`);
            }
        },
    };
}

/* Write, see the draft saved, send, undo (the composer comes back as it was), then
   schedule it for later. */
registry.category("web_tour.tours").add("pipemail_undo_send_tour", {
    url: "/odoo/sales-inbox",
    steps: () => [
        { trigger: ".o_list_view button:contains(New Email)", run: "click" },
        {
            trigger: ".modal .o_field_widget[name=email_to] input",
            run: "edit Carla Customer <carla@customer.example>",
        },
        { trigger: ".modal .o_field_widget[name=subject] input", run: "edit Tour undo" },
        { trigger: ".modal .o_pipemail_draft_autosave:contains(Draft saved)" },
        { trigger: ".modal-footer button[name=action_send_undoable]", run: "click" },
        { trigger: ".o_notification button:contains(Undo)", run: "click" },
        expectValue(".modal .o_field_widget[name=subject] input", "Tour undo"),
        expectValue(
            ".modal .o_field_widget[name=email_to] input",
            "Carla Customer <carla@customer.example>"
        ),
        {
            trigger: ".modal .o_field_widget[name=scheduled_at] input",
            run: "edit 12/24/2099 09:30:00",
        },
        // leaving the date field commits it; the primary button becomes Send Later
        { trigger: ".modal .o_field_widget[name=subject] input", run: "click" },
        { trigger: ".modal-footer button[name=action_send_later]", run: "click" },
        { trigger: ".o_notification:contains(Email scheduled)" },
        { trigger: "body:not(:has(.modal))" },
    ],
});

/* A draft left in the composer... */
registry.category("web_tour.tours").add("pipemail_draft_write_tour", {
    url: "/odoo/sales-inbox",
    steps: () => [
        { trigger: ".o_list_view button:contains(New Email)", run: "click" },
        { trigger: ".modal .o_field_widget[name=subject] input", run: "edit Tour draft" },
        {
            trigger: ".modal .o_field_widget[name=email_to] input",
            run: "edit dora@customer.example",
        },
        { trigger: ".modal .o_pipemail_draft_autosave:contains(Draft saved)" },
        { trigger: ".modal .btn-close", run: "click" },
        { trigger: "body:not(:has(.modal))" },
    ],
});

/* ... reopened in another session, as it was left. */
registry.category("web_tour.tours").add("pipemail_draft_reopen_tour", {
    url: "/odoo/sales-drafts",
    steps: () => [
        { trigger: ".o_data_row td[name=subject]:contains(Tour draft)", run: "click" },
        expectValue(".modal .o_field_widget[name=subject] input", "Tour draft"),
        expectValue(".modal .o_field_widget[name=email_to] input", "dora@customer.example"),
        { trigger: ".modal-footer button[name=action_discard_draft]", run: "click" },
        { trigger: ".modal-footer button:contains(Ok)", run: "click" },
        { trigger: ".o_list_view:not(:has(.o_data_row))" },
    ],
});
