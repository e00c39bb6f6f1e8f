/** @odoo-module **/
import { registry } from "@web/core/registry";

/* Group email from the contacts list: the Preview tab's previous / next step through
   the recipients and the dialog stays on that tab. */
registry.category("web_tour.tours").add("pipemail_group_email_preview_tour", {
    steps: () => [
        { trigger: ".o_data_row:contains(Tour Ann) .o_list_record_selector input", run: "click" },
        { trigger: ".o_data_row:contains(Tour Bob) .o_list_record_selector input", run: "click" },
        { trigger: ".o_cp_action_menus .dropdown-toggle", run: "click" },
        { trigger: ".o-dropdown--menu .dropdown-item:contains(Send group email)", run: "click" },
        { trigger: ".modal .o_field_widget[name=subject] input", run: "edit Hello there" },
        { trigger: ".modal .nav-link:contains(Preview)", run: "click" },
        { trigger: ".modal .o_pipemail_preview_position:contains(1 of 2)" },
        { trigger: ".modal .o_pipemail_preview_next", run: "click" },
        { trigger: ".modal .o_pipemail_preview_position:contains(2 of 2)" },
        { trigger: ".modal .nav-link.active:contains(Preview)" },
        { trigger: ".modal .o_pipemail_preview_previous", run: "click" },
        { trigger: ".modal .o_pipemail_preview_position:contains(1 of 2)" },
        { trigger: ".modal .nav-link.active:contains(Preview)" },
        { trigger: ".modal .btn-close", run: "click" },
        { trigger: "body:not(:has(.modal))" },
    ],
});
