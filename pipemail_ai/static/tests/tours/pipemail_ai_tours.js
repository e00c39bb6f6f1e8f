/** @odoo-module **/
import { registry } from "@web/core/registry";

const BODY = ".modal .o_field_widget[name=body]";
const FIRST = ".o_pipemail_message:has(.o_pipemail_from:contains(Dana Buyer))";
/* "Written by AI · <model>" under a result */
const AI_LABEL = ".o_pipemail_ai_label:contains(Written by AI):contains(scripted-model)";

/* The composer's body holds `present` and not `absent` (the editor may lag a frame). */
function bodyHolds(present, absent) {
    return {
        content: `the body holds "${present}", not "${absent}"`,
        trigger: `${BODY}:contains(${present})`,
        run() {
            const text = document.querySelector(BODY).textContent;
            if (text.includes(absent)) {
                throw new Error(`the body still holds "${absent}": ${text}`);
            }
        },
    };
}

/* As a salesperson in the Sales Inbox reader: summarize (points citing messages, the
   AI label with the model), open a cited message, take a suggested reply into the
   composer, shorten it with the AI bar, undo. Nothing is sent. */
registry.category("web_tour.tours").add("pipemail_ai_tour", {
    url: "/odoo/sales-inbox",
    steps: () => [
        { trigger: ".o_data_row td[name=subject]:contains(Tour quote)", run: "click" },
        // the oldest message is folded to a line; the summary is not there yet
        { trigger: `${FIRST}:not(:has(.o_pipemail_body))` },
        { trigger: ".o_pipemail_ai_summary:not(:has(.o_pipemail_ai_points))" },
        { trigger: ".o_pipemail_ai_summarize", run: "click" },
        { trigger: ".o_pipemail_ai_points li:contains(Dana wants 40 licences.)" },
        { trigger: ".o_pipemail_ai_points li:contains(Send the quote by Friday.)" },
        {
            content: "the summary says it was written by AI and by which model",
            trigger: `.o_pipemail_ai_summary ${AI_LABEL}`,
        },
        // the first point cites message 1, the second message 3
        {
            trigger:
                ".o_pipemail_ai_points li:contains(Dana wants) .o_pipemail_ai_cite:contains([1])",
            run: "click",
        },
        // marked for a moment (scrolled to), and opened
        { trigger: `${FIRST}.o_pipemail_ai_cited` },
        { trigger: `${FIRST} .o_pipemail_body` },
        {
            trigger:
                ".o_pipemail_ai_points li:contains(Friday.) .o_pipemail_ai_cite:contains([3])",
        },
        // suggested replies under the incoming conversation: one click, the reply composer
        { trigger: ".o_pipemail_ai_suggest", run: "click" },
        { trigger: ".o_pipemail_ai_reply:contains(I will call you today.)" },
        { trigger: `.o_pipemail_ai_replies ${AI_LABEL}` },
        { trigger: ".o_pipemail_ai_reply:contains(Yes, Friday works.)", run: "click" },
        { trigger: `${BODY}:contains(Yes, Friday works.)` },
        { trigger: ".modal .o_field_widget[name=subject] input:value(Re: Tour quote)" },
        // the AI bar: shorten replaces the text, the quoted email stays, Undo brings it back
        { trigger: ".modal .o_pipemail_ai_compose:not(:has(.o_pipemail_ai_undo))" },
        { trigger: ".modal .o_pipemail_ai_shorten", run: "click" },
        bodyHolds("Friday is fine.", "Yes, Friday works."),
        { trigger: `${BODY}:contains(Can you send the quote by Friday?)` },
        { trigger: `.modal .o_pipemail_ai_compose ${AI_LABEL}` },
        { trigger: ".modal .o_pipemail_ai_undo", run: "click" },
        bodyHolds("Yes, Friday works.", "Friday is fine."),
        { trigger: ".modal .o_pipemail_ai_compose:not(:has(.o_pipemail_ai_undo))" },
        { trigger: ".modal .btn-close", run: "click" },
        { trigger: "body:not(:has(.modal))" },
    ],
});
