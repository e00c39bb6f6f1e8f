/** @odoo-module **/
import { registry } from "@web/core/registry";

const pane = ".o_pipemail_reading_pane";

function subjectInPane(subject) {
    return { content: `the pane shows ${subject}`, trigger: `${pane} h1:contains(${subject})` };
}

function inputHolds(selector, text) {
    return {
        content: `${selector} holds ${text}`,
        trigger: selector,
        run() {
            const value = document.querySelector(selector).value;
            if (!value.includes(text)) {
                throw new Error(`${selector}: expected "${text}" in "${value}"`);
            }
        },
    };
}

/* The folders pane: counts shown, a label and a team mailbox narrow the list, Drafts
   opens the drafts. */
registry.category("web_tour.tours").add("pipemail_inbox_folders_tour", {
    url: "/odoo/sales-inbox",
    steps: () => [
        { trigger: ".o_pipemail_folder[data-folder=all] .o_pipemail_folder_count:contains(2)" },
        { trigger: ".o_pipemail_folder[data-folder=mine-inbox] .o_pipemail_folder_count:contains(1)" },
        { trigger: ".o_pipemail_folder[data-folder=drafts] .o_pipemail_folder_count:contains(1)" },
        { trigger: ".o_pipemail_result_count:contains(3 conversations)" },
        { trigger: ".o_pipemail_folder:contains(Ivy Hot)", run: "click" },
        { trigger: ".o_pipemail_result_count:contains(1 conversation)" },
        { trigger: ".o_data_row:contains(Alpha order)" },
        { trigger: ".o_list_view:not(:has(.o_data_row:contains(Beta question)))" },
        { trigger: ".o_pipemail_folder_group:contains(Ivy Team) + .o_pipemail_folder", run: "click" },
        { trigger: ".o_data_row:contains(Gamma team)" },
        { trigger: ".o_list_view:not(:has(.o_data_row:contains(Alpha order)))" },
        { trigger: ".o_pipemail_folder[data-folder=all]", run: "click" },
        { trigger: ".o_pipemail_result_count:contains(3 conversations)" },
        { trigger: ".o_pipemail_folder[data-folder=drafts]", run: "click" },
        { trigger: ".o_list_view .o_data_row:contains(Ivy draft)" },
        { trigger: ".o_breadcrumb:contains(Sales Inbox)" },
    ],
});

/* The reading pane: open one, it is marked read after a moment, then up/down move. */
registry.category("web_tour.tours").add("pipemail_inbox_pane_tour", {
    url: "/odoo/sales-inbox",
    steps: () => [
        { trigger: ".o_data_row:contains(Alpha order) td[name=subject]", run: "click" },
        subjectInPane("Alpha order"),
        { trigger: ".o_data_row.o_pipemail_current:contains(Alpha order)" },
        // marked read: the Inbox has nothing unread any more
        { trigger: ".o_pipemail_folder[data-folder=mine-inbox]:not(:has(.o_pipemail_folder_count))" },
        { trigger: `${pane} button[name=action_mark_unread]` },
        // the conversation in the pane follows: its message is no longer marked unread
        { trigger: `${pane} .o_pipemail_message:not(.o_pipemail_unread)` },
        { trigger: "body", run: "press j" },
        subjectInPane("Beta question"),
        { trigger: "body", run: "press ArrowDown" },
        subjectInPane("Gamma team"),
        { trigger: ".o_data_row.o_pipemail_current:contains(Gamma team)" },
        { trigger: "body", run: "press k" },
        subjectInPane("Beta question"),
        { trigger: "body", run: "press ArrowUp" },
        subjectInPane("Alpha order"),
        { trigger: `${pane} .o_pipemail_pane_close`, run: "click" },
        { trigger: `body:not(:has(${pane}))` },
    ],
});

/* The shortcuts: "?" lists them, c writes, r replies to the selected one, # asks
   before deleting, e archives. */
registry.category("web_tour.tours").add("pipemail_inbox_keys_tour", {
    url: "/odoo/sales-inbox",
    steps: () => [
        { trigger: ".o_pipemail_folders .o_pipemail_folder" },
        { trigger: ".o_data_row:contains(Alpha order)" },
        { trigger: "body", run: "press ?" },
        { trigger: ".modal .modal-title:contains(Keyboard Shortcuts)" },
        { trigger: ".modal td:contains(Reply all)" },
        { trigger: ".modal-footer .btn-primary:contains(Close)", run: "click" },
        { trigger: "body:not(:has(.modal))" },
        { trigger: "body", run: "press c" },
        { trigger: ".modal .o_pipemail_compose .o_field_widget[name=subject] input" },
        { trigger: ".modal .btn-close", run: "click" },
        { trigger: "body:not(:has(.modal))" },
        { trigger: "body", run: "press j" },
        { trigger: ".o_data_row.o_pipemail_current:contains(Alpha order)" },
        { trigger: "body", run: "press r" },
        inputHolds(".modal .o_field_widget[name=subject] input", "Alpha order"),
        { trigger: ".modal .btn-close", run: "click" },
        { trigger: "body:not(:has(.modal))" },
        { trigger: "body", run: "press #" },
        { trigger: ".modal:contains(Delete this conversation)" },
        { trigger: ".modal-footer .btn-secondary", run: "click" },
        { trigger: "body:not(:has(.modal))" },
        { trigger: "body", run: "press e" },
        { trigger: ".o_list_view:not(:has(.o_data_row:contains(Alpha order)))" },
        { trigger: ".o_data_row.o_pipemail_current:contains(Beta question)" },
    ],
});

/* A lead's Emails button: its conversations with the reading pane and the keyboard, no
   folders (they are the mailbox's); "c" writes a new email about the lead. */
registry.category("web_tour.tours").add("pipemail_record_emails_tour", {
    steps: () => [
        { trigger: ".o_form_view button[name=action_view_pipemail_threads]", run: "click" },
        // the form's Emails tab shows the same list: wait for the form to give way
        { trigger: "body:not(:has(.o_form_view))" },
        { trigger: ".o_pipemail_result_count:contains(1 conversation)" },
        { trigger: ".o_pipemail_inbox_split:not(:has(.o_pipemail_folders))" },
        { trigger: ".o_data_row:contains(Alpha order) td[name=subject]", run: "click" },
        subjectInPane("Alpha order"),
        { trigger: "body", run: "press c" },
        inputHolds(".modal .o_field_widget[name=email_to] input", "carla@customer.example"),
        { trigger: ".modal .btn-close", run: "click" },
        { trigger: "body:not(:has(.modal))" },
    ],
});

/* A lead's Emails tab: the same view inside the form (list, reading pane, keyboard,
   search, pager), no folders, no second breadcrumbs; "c" writes about the lead. */
const tab = ".o_pipemail_record_emails";
registry.category("web_tour.tours").add("pipemail_record_tab_tour", {
    steps: () => [
        { trigger: ".o_notebook_headers a.nav-link:contains(Emails)", run: "click" },
        { trigger: `${tab} .o_pipemail_result_count:contains(1 conversation)` },
        { trigger: `${tab} .o_pipemail_inbox_split:not(:has(.o_pipemail_folders))` },
        { trigger: `${tab}:not(:has(.breadcrumb)) .o_searchview` },
        { trigger: `${tab} .o_data_row:contains(Alpha order) td[name=subject]`, run: "click" },
        { trigger: `${tab} ${pane} h1:contains(Alpha order)` },
        { trigger: `${tab} .o_data_row.o_pipemail_current:contains(Alpha order)` },
        { trigger: "body", run: "press c" },
        inputHolds(".modal .o_field_widget[name=email_to] input", "carla@customer.example"),
        { trigger: ".modal .btn-close", run: "click" },
        { trigger: "body:not(:has(.modal))" },
        // the lead's own form is still there around it
        { trigger: ".o_form_view .o_field_widget[name=name]:contains(Alpha deal), .o_form_view .o_field_widget[name=name] textarea" },
    ],
});
