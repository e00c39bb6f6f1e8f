/** @odoo-module **/
import { registry } from "@web/core/registry";

/* A group email begun from the opportunities list, left once its draft is saved... */
registry.category("web_tour.tours").add("pipemail_group_draft_write_tour", {
    steps: () => [
        { trigger: ".o_list_view .o_data_row:contains(Tour deal B)" },
        { trigger: ".o_list_view thead .o_list_record_selector input", run: "click" },
        { trigger: ".o_control_panel .o_cp_action_menus button", run: "click" },
        { trigger: ".o-dropdown--menu .o-dropdown-item:contains(Send group email)", run: "click" },
        { trigger: ".modal .o_field_widget[name=subject] input", run: "edit Tour group draft" },
        { trigger: ".modal .o_pipemail_draft_autosave:contains(Draft saved)" },
        { trigger: ".modal .btn-close", run: "click" },
        { trigger: "body:not(:has(.modal))" },
    ],
});

/* ... reopened in another session as it was left, then deleted. */
registry.category("web_tour.tours").add("pipemail_group_draft_reopen_tour", {
    url: "/odoo/sales-drafts",
    steps: () => [
        { trigger: ".o_data_row td[name=subject]:contains(Tour group draft)", run: "click" },
        {
            content: "the subject as it was left",
            trigger: ".modal .o_field_widget[name=subject] input",
            run() {
                const value = document.querySelector(
                    ".modal .o_field_widget[name=subject] input"
                ).value;
                if (value !== "Tour group draft") {
                    throw new Error(`subject: got "${value}"`);
                }
            },
        },
        { trigger: ".modal .nav-link:contains(Recipients)", run: "click" },
        { trigger: ".modal .o_field_widget[name=selected_count]:contains(2)" },
        { trigger: ".modal-footer button[name=action_discard_draft]", run: "click" },
        { trigger: ".modal-footer button:contains(Ok)", run: "click" },
        { trigger: ".o_list_view:not(:has(.o_data_row))" },
    ],
});
