/**
 * The Sales Inbox as a mail client: the standard list of conversations with the
 * folders pane on its left and, on wide screens, the reading pane on its right.
 *
 * - Folders come from the server with their counts and domains
 *   (``pipemail_folder_counts``); a folder of conversations narrows the list (its
 *   domain is added to the search's), one of drafts or outgoing emails opens its list.
 * - The bus notice a conversation's holders get when the sync or one of them changes
 *   it (``pipemail.inbox/changed``) reloads the counts and the list in place.
 * - Keyboard: Odoo's hotkey service for letters, arrows and Enter; "?" and "#" are
 *   not keys the hotkey service accepts, so a window listener takes those two.
 */
import {
    EventBus,
    onWillStart,
    onWillUnmount,
    useEffect,
    useExternalListener,
    useState,
    useSubEnv,
} from "@odoo/owl";
import { ConfirmationDialog } from "@web/core/confirmation_dialog/confirmation_dialog";
import { Domain } from "@web/core/domain";
import { useHotkey } from "@web/core/hotkeys/hotkey_hook";
import { _t } from "@web/core/l10n/translation";
import { registry } from "@web/core/registry";
import { SIZES } from "@web/core/ui/ui_service";
import { useDebounced } from "@web/core/utils/timing";
import { useBus, useService } from "@web/core/utils/hooks";
import { RelationalModel } from "@web/model/relational_model/relational_model";
import { ListController } from "@web/views/list/list_controller";
import { ListRenderer } from "@web/views/list/list_renderer";
import { listView } from "@web/views/list/list_view";
import { PipemailFoldersPane } from "./folders_pane";
import { PipemailReadingPane } from "./reading_pane";
import { PipemailShortcutsDialog } from "./shortcuts_dialog";

export const INBOX_NOTICE = "pipemail.inbox/changed";
/** A sync stores mail in batches: their notices are taken together. */
const NOTICE_DELAY = 800;
const COMPOSE_ACTION = "pipemail_sync.pipemail_compose_action";

/** The list's model, with the selected folder's domain added to the search's. */
export class PipemailInboxModel extends RelationalModel {
    /**
     * Counted up to a thousand conversations, as mail clients do ("More than 1000";
     * the pager's count still gets the exact figure on a click): a common word's
     * search then stops early instead of finding every match (bench_inbox.py).
     */
    static DEFAULT_COUNT_LIMIT = 1000;

    setup(params, services) {
        super.setup(params, services);
        this.baseDomain = null;
        this.folderDomain = [];
    }

    async load(params = {}) {
        if ("domain" in params) {
            this.baseDomain = params.domain;
        }
        if (this.baseDomain && this.folderDomain.length) {
            params = {
                ...params,
                domain: Domain.and([this.baseDomain, this.folderDomain]).toList(),
            };
        }
        return super.load(params);
    }
}

/** Beside the reading pane the list keeps who, what and when, as mail clients do. */
export const PANE_COLUMNS = ["participants_display", "subject", "last_date"];

export class PipemailInboxRenderer extends ListRenderer {
    setup() {
        super.setup();
        this.inbox = useState(this.env.pipemailInbox);
    }

    getActiveColumns(list) {
        const columns = super.getActiveColumns(list);
        // read through this renderer's own state: opening the pane renders it again
        if (!this.inbox.openId || !this.env.pipemailPaneOpen()) {
            return columns;
        }
        return columns.filter((col) => col.type !== "field" || PANE_COLUMNS.includes(col.name));
    }

    getRowClass(record) {
        const classNames = super.getRowClass(record);
        if (record.resId && record.resId === this.inbox.selectedId) {
            return `${classNames} o_pipemail_current`;
        }
        return classNames;
    }
}

export class PipemailInboxController extends ListController {
    static template = "pipemail_sync.InboxListView";
    static components = {
        ...ListController.components,
        PipemailFoldersPane,
        PipemailReadingPane,
    };

    setup() {
        // a keyboard-driven inbox: typed letters are shortcuts, not a search, until
        // the person goes to the search box
        this.env.config.disableSearchBarAutofocus = true;
        super.setup();
        this.orm = useService("orm");
        this.ui = useService("ui");
        this.busService = useService("bus_service");
        this.inbox = useState({
            groups: [],
            unread: 0,
            folderKey: "all",
            selectedId: false,
            openId: false,
        });
        // tells the conversation in the reading pane that the sync changed it
        this.inboxBus = new EventBus();
        useSubEnv({
            pipemailInbox: this.inbox,
            pipemailInboxBus: this.inboxBus,
            pipemailPaneOpen: () => this.splitView && Boolean(this.inbox.openId),
        });
        useBus(this.ui.bus, "resize", () => this.render());
        onWillStart(() => this.loadFolders());

        this.noticedIds = new Set();
        this.flushNotices = useDebounced(this.onInboxChanged, NOTICE_DELAY);
        const onNotice = (payload) => {
            for (const id of payload?.thread_ids || []) {
                this.noticedIds.add(id);
            }
            this.flushNotices();
        };
        this.busService.subscribe(INBOX_NOTICE, onNotice);
        onWillUnmount(() => this.busService.unsubscribe(INBOX_NOTICE, onNotice));

        const keys = {
            j: () => this.move(1),
            arrowdown: () => this.move(1),
            k: () => this.move(-1),
            arrowup: () => this.move(-1),
            enter: () => this.openSelected(),
            r: () => this.compose("reply"),
            a: () => this.compose("reply_all"),
            f: () => this.compose("forward"),
            e: () => this.archiveCurrent(),
            c: () => this.compose("new"),
        };
        for (const [key, callback] of Object.entries(keys)) {
            // Enter keeps its usual meaning (a focused button or link) until a
            // conversation is selected
            const options = key === "enter" ? { isAvailable: () => this.canOpenSelected } : {};
            useHotkey(key, callback, options);
        }
        useExternalListener(window, "keydown", this.onWindowKeydown);
        // the list narrows or widens with the pane: its column widths are measured again
        let paneWasOpen = false;
        useEffect(
            (paneOpen) => {
                if (paneOpen !== paneWasOpen) {
                    paneWasOpen = paneOpen;
                    window.dispatchEvent(new Event("resize"));
                }
            },
            () => [this.env.pipemailPaneOpen()]
        );
        useEffect(
            (selectedId) => {
                const record = this.currentRecords.find((r) => r.resId === selectedId);
                const row =
                    record && this.rootRef.el?.querySelector(`.o_data_row[data-id="${record.id}"]`);
                row?.scrollIntoView({ block: "nearest" });
            },
            () => [this.inbox.selectedId]
        );
    }

    // ------------------------------------------------------------------ state

    get splitView() {
        return this.ui.size >= SIZES.LG;
    }

    get currentRecords() {
        const root = this.model.root;
        return root.isGrouped ? [] : root.records;
    }

    get currentId() {
        return this.inbox.openId || this.inbox.selectedId;
    }

    get resultCount() {
        const root = this.model.root;
        return root.isGrouped ? root.recordCount : root.count;
    }

    get resultCountText() {
        const count = this.resultCount;
        if (!this.model.root.isRecordCountTrustable) {
            return _t("More than %(count)s conversations", { count });
        }
        return count === 1
            ? _t("1 conversation")
            : _t("%(count)s conversations", { count });
    }

    get readingPaneContext() {
        return this.props.context;
    }

    /**
     * The emails of one lead, project or contact (its Emails button) get the reading
     * pane and the keyboard, not the folders: those are the mailbox's, not the record's.
     */
    get showFolders() {
        return !this.props.context.pipemail_record_emails;
    }

    async loadFolders() {
        if (!this.showFolders) {
            return;
        }
        const result = await this.orm.call("pipemail.thread", "pipemail_folder_counts", []);
        this.inbox.groups = result.groups;
        this.inbox.unread = result.unread;
    }

    async refresh() {
        await Promise.all([this.loadFolders(), this.model.root.load()]);
        const ids = this.currentRecords.map((r) => r.resId);
        if (this.inbox.openId && !ids.includes(this.inbox.openId)) {
            this.inbox.openId = false;
        }
    }

    async onInboxChanged() {
        const ids = [...this.noticedIds];
        this.noticedIds.clear();
        await this.refresh();
        this.inboxBus.trigger("THREADS_CHANGED", { ids });
    }

    async onPaneChanged() {
        await this.refresh();
    }

    closePane() {
        this.inbox.openId = false;
    }

    // ------------------------------------------------------------------ folders

    async selectFolder(folder) {
        if (folder && folder.action) {
            return this.actionService.doAction(folder.action);
        }
        this.inbox.folderKey = folder ? folder.key : "all";
        this.inbox.openId = false;
        this.inbox.selectedId = false;
        this.model.folderDomain = (folder && folder.domain) || [];
        await Promise.all([this.model.load({ domain: this.model.baseDomain }), this.loadFolders()]);
    }

    // ------------------------------------------------------------------ reading

    async openRecord(record) {
        this.inbox.selectedId = record.resId;
        if (!this.splitView) {
            return super.openRecord(record);
        }
        this.inbox.openId = record.resId;
    }

    async move(step) {
        let records = this.currentRecords;
        if (!records.length) {
            return;
        }
        let index = records.findIndex((r) => r.resId === this.inbox.selectedId);
        if (index < 0) {
            index = step > 0 ? 0 : records.length - 1;
        } else if (index + step < 0 || index + step >= records.length) {
            // past the page's end: the next (or previous) page, as the pager would
            const root = this.model.root;
            const offset = root.offset + step * root.limit;
            if (offset < 0 || offset >= root.count) {
                return;
            }
            await root.load({ limit: root.limit, offset });
            records = this.currentRecords;
            index = step > 0 ? 0 : records.length - 1;
        } else {
            index += step;
        }
        const record = records[index];
        if (!record) {
            return;
        }
        this.inbox.selectedId = record.resId;
        if (this.splitView && this.inbox.openId) {
            this.inbox.openId = record.resId;
        }
    }

    get canOpenSelected() {
        const focused = document.activeElement;
        const onControl = focused && focused.matches("a, button, [role=button]");
        return Boolean(this.inbox.selectedId) && !onControl;
    }

    openSelected() {
        const record = this.currentRecords.find((r) => r.resId === this.inbox.selectedId);
        if (record) {
            return this.openRecord(record);
        }
    }

    // ------------------------------------------------------------------ actions

    async compose(mode) {
        const context = { default_mode: mode };
        const recordContext = this.props.context;
        if (mode === "new" && recordContext.pipemail_record_model) {
            // from a record's emails, a new email is written about that record
            context.default_res_model = recordContext.pipemail_record_model;
            context.default_res_id = recordContext.pipemail_record_id;
        }
        if (mode !== "new") {
            if (!this.currentId) {
                return;
            }
            context.default_thread_id = this.currentId;
        }
        await this.actionService.doAction(COMPOSE_ACTION, {
            additionalContext: context,
            // what was sent joins the conversation: the list and the pane show it
            onClose: async () => {
                await this.refresh();
                this.inboxBus.trigger("THREADS_CHANGED", { ids: [context.default_thread_id] });
            },
        });
    }

    async archiveCurrent() {
        const id = this.currentId;
        if (!id) {
            return;
        }
        await this.orm.call("pipemail.thread", "action_archive_remote", [[id]]);
        await this.afterRemoval(id);
    }

    deleteCurrent() {
        const id = this.currentId;
        if (!id) {
            return;
        }
        this.dialogService.add(ConfirmationDialog, {
            body: _t("Delete this conversation? It moves to the mailbox's trash."),
            confirmLabel: _t("Delete"),
            confirm: async () => {
                await this.orm.call("pipemail.thread", "action_delete_remote", [[id]]);
                await this.afterRemoval(id);
            },
            cancel: () => {},
        });
    }

    /** After archive or delete, the next conversation takes the removed one's place. */
    async afterRemoval(id) {
        const before = this.currentRecords;
        const index = before.findIndex((r) => r.resId === id);
        const neighbours = [before[index + 1], before[index - 1]].filter(Boolean);
        const wasOpen = this.inbox.openId === id;
        await Promise.all([this.loadFolders(), this.model.root.load()]);
        const ids = this.currentRecords.map((r) => r.resId);
        const next = neighbours.find((r) => ids.includes(r.resId));
        this.inbox.selectedId = next ? next.resId : false;
        this.inbox.openId = wasOpen && next && this.splitView ? next.resId : false;
    }

    showShortcuts() {
        this.dialogService.add(PipemailShortcutsDialog, {});
    }

    onWindowKeydown(ev) {
        if (ev.key !== "?" && ev.key !== "#") {
            return;
        }
        if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.defaultPrevented) {
            return;
        }
        const target = ev.target;
        if (
            target instanceof HTMLElement &&
            (/input|textarea|select/i.test(target.tagName) || target.isContentEditable)
        ) {
            return;
        }
        // nothing on top of the inbox (a dialog, the composer)
        if (this.ui.activeElement !== document) {
            return;
        }
        ev.preventDefault();
        if (ev.key === "?") {
            this.showShortcuts();
        } else {
            this.deleteCurrent();
        }
    }
}

export const pipemailInboxView = {
    ...listView,
    Controller: PipemailInboxController,
    Renderer: PipemailInboxRenderer,
    Model: PipemailInboxModel,
};

registry.category("views").add("pipemail_inbox", pipemailInboxView);
