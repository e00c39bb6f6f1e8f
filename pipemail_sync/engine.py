"""The one seam between the Odoo addons and the engine (``pipemail``).

The addons import the engine through this module only, with two exceptions that are
plain data: :mod:`pipemail.types` (the dataclasses that cross the seam) and
:mod:`pipemail.errors` (the typed errors, whose messages are shown to users); and
``pipemail_ai`` uses the AI engine, :mod:`pipemail.ai`, which is a seam of its own.

What is here:

* the engine modules the models call, by name (``engine.outbound.build_mime``...):
  :data:`dsn`, :data:`html`, :data:`idle`, :data:`linking`, :data:`mime`,
  :data:`oauth`, :data:`outbound`, :data:`pacing`, :data:`secrets`, :data:`send_policy`,
  :data:`smtp`, :data:`threads`, :data:`tracking`, :data:`unsubscribe`, :data:`writeback`;
* functions that turn the sync's and the connection check's reports into the small
  shapes the models need (:func:`check_account`, :func:`sync_account`), in the user's
  words;
* the address helpers with a UserError in the user's language (:func:`parse_addresses`);
* an engine error's message in the user's language when it is a fixed one
  (:func:`error_message`).

Nothing else of the engine (``pipemail.sync``, ``pipemail.imap``, ``pipemail.check``...)
is imported by an addon.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from odoo.exceptions import UserError

from pipemail import (  # noqa: F401 - the engine modules the addons use, by name
    dsn,
    html,
    idle,
    linking,
    mime,
    oauth,
    outbound,
    pacing,
    secrets,
    send_policy,
    smtp,
    threads,
    tracking,
    unsubscribe,
    writeback,
)
from pipemail.folders import role_for
from pipemail.headers import (  # noqa: F401 - re-exported for the models
    RecipientError,
    format_address,
    join_addresses,
    parse_recipients,
)
from pipemail.html import mark_fragment  # noqa: F401 - re-exported for the models
from pipemail.netguard import check_host  # noqa: F401 - re-exported for the models
from pipemail.text import (  # noqa: F401 - re-exported for the models
    detect_direction,
    html_to_text,
    normalize_subject,
)

ROLES = {"inbox", "sent", "archive", "trash", "all", "junk", "drafts", "other"}


@dataclass
class CheckResult:
    summary: str
    folders: dict[str, str] = field(default_factory=dict)
    """Folder name -> role (inbox, sent, archive, trash, all, junk, drafts, other)."""


@dataclass
class SyncResult:
    error_summary: str = ""
    """Plain words about messages that were stored raw or skipped, if any."""
    stopped: bool = False
    """The run stopped before the end (asked to, or its time was up): more to fetch."""


def folder_role(value: Any, *, delimiter: str = "/") -> str:
    """The pipemail.folder role for an engine role, a special-use attribute or a folder
    name (the engine's multilingual table, :func:`pipemail.folders.role_for`)."""
    text = str(getattr(value, "value", value) or "")
    role = text if text in ROLES else role_for(text, delimiter=delimiter)
    return role if role in ROLES else "other"


def _note(env, note) -> str:
    """A remark of the connection check in the user's language (English when the
    engine has a remark this list does not know yet)."""
    params = getattr(note, "params", {})
    code = getattr(note, "code", "")
    if code == "folders_cut":
        return env._("Only the first %(shown)s of %(total)s folders are shown.", **params)
    if code == "no_tls":
        return env._("No encryption: the password and the mail cross the network in clear.")
    if code == "no_verify":
        return env._("The server certificate is not verified (insecure setting).")
    if code == "no_uidplus":
        return env._("No UIDPLUS: moved messages are found again by the next sync.")
    if code == "no_move":
        return env._("No MOVE: archive and delete copy the message, then expunge it alone.")
    if code == "no_condstore":
        return env._(
            "No CONDSTORE: flag changes are found by comparing flags, the newest "
            "%(recent)s messages each sync and every message every %(hours)s h.",
            **params,
        )
    return str(note)


def error_message(env, exc) -> str:
    """An engine error's message in the user's language, for the errors whose message
    is fixed (the engine's own messages are English); any other error as the engine
    wrote it."""
    if getattr(exc, "code", "") == "host_refused":
        return env._(
            "This server address is not allowed. Ask an administrator if it is a private server."
        )
    return str(exc)


def check_account(env, config) -> CheckResult:
    """Connect, log in, list folders; raise a typed engine error on failure. The
    summary is in the language of ``env``'s user."""
    from pipemail import check

    report = check.check_account(config)
    folders = {f.name: folder_role(f.role) for f in report.folders if f.selectable}
    inbox = next((f for f in report.folders if f.role == "inbox"), None)
    parts = [
        env._(
            "Logged in to %(host)s (%(tls)s).",
            host=report.host,
            tls=report.tls or env._("no encryption"),
        )
    ]
    if inbox is not None and inbox.messages is not None:
        parts.append(env._("%(count)s messages in the Inbox.", count=inbox.messages))
    parts.append(
        env._(
            "%(count)s folders; will sync %(names)s.",
            count=len(folders),
            names=", ".join(report.sync_folders),
        )
    )
    parts.extend(_note(env, note) for note in report.notes)
    return CheckResult(summary=" ".join(parts), folders=folders)


def sync_account(env, config, store, *, progress=None, stop=None) -> SyncResult:
    """Sync one account into ``store`` (an :class:`~pipemail.types.Store`); the error
    summary is in the language of ``env``'s user."""
    from pipemail import sync

    report = sync.sync_account(config, store, progress=progress, stop=stop)
    words = []
    if report.quarantined:
        words.append(
            env._(
                "%(count)s messages could not be downloaded; they are kept aside and "
                "tried again later.",
                count=report.quarantined,
            )
        )
    for error in report.errors[:3]:
        words.append(f"{error.folder}: {error.message}")
    return SyncResult(error_summary=" ".join(words), stopped=report.stopped)


def parse_addresses(env, text, strict=True):
    """The engine's :func:`~pipemail.headers.parse_recipients`, its refusal turned into
    a UserError in the user's language."""
    try:
        return parse_recipients(text, strict=strict)
    except RecipientError as exc:
        if exc.address:
            raise UserError(
                env._("“%(address)s” is not a valid email address.", address=exc.address)
            ) from None
        raise UserError(
            env._("An address field contains a line break or a control character; remove it.")
        ) from None
