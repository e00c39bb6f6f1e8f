"""The one seam between the Odoo addon and the engine's sync entry points.

Models call these functions and never reach into ``pipemail.sync`` / ``pipemail.imap``
themselves, so the addon depends on a handful of names only and the engine's report
objects are turned here into the two small shapes the models need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from odoo.exceptions import UserError

from pipemail.folders import role_for
from pipemail.headers import (  # noqa: F401 - re-exported for the models
    RecipientError,
    format_address,
    join_addresses,
    parse_recipients,
)
from pipemail.html import mark_fragment  # noqa: F401 - re-exported for the models
from pipemail.netguard import check_host  # noqa: F401 - re-exported for the models

ROLES = {"inbox", "sent", "archive", "trash", "all", "junk", "drafts", "other"}


@dataclass
class CheckResult:
    summary: str
    folders: dict[str, str] = field(default_factory=dict)
    """Folder name -> role (inbox, sent, archive, trash, all, junk, drafts, other)."""


@dataclass
class SyncResult:
    backlog: int = 0
    error_summary: str = ""
    """Plain words about messages that were stored raw or skipped, if any."""
    raw: Any = None


def folder_role(value: Any, *, delimiter: str = "/") -> str:
    """The pipemail.folder role for an engine role, a special-use attribute or a folder
    name (the engine's multilingual table, :func:`pipemail.folders.role_for`)."""
    text = str(getattr(value, "value", value) or "")
    role = text if text in ROLES else role_for(text, delimiter=delimiter)
    return role if role in ROLES else "other"


def check_account(config) -> CheckResult:
    """Connect, log in, list folders; raise a typed engine error on failure."""
    from pipemail import check

    report = check.check_account(config)
    folders = {f.name: folder_role(f.role) for f in report.folders if f.selectable}
    inbox = next((f for f in report.folders if f.role == "inbox"), None)
    parts = [f"Logged in to {report.host} ({report.tls or 'no encryption'})."]
    if inbox is not None and inbox.messages is not None:
        parts.append(f"{inbox.messages} messages in the Inbox.")
    parts.append(f"{len(folders)} folders; will sync {', '.join(report.sync_folders)}.")
    parts.extend(report.notes)
    return CheckResult(summary=" ".join(parts), folders=folders)


def sync_account(config, store, *, progress=None, stop=None) -> SyncResult:
    """Sync one account into ``store`` (an :class:`~pipemail.types.Store`)."""
    from pipemail import sync

    report = sync.sync_account(config, store, progress=progress, stop=stop)
    words = []
    if report.quarantined:
        words.append(
            f"{report.quarantined} messages could not be downloaded; they are kept aside "
            "and tried again later."
        )
    for error in report.errors[:3]:
        words.append(f"{error.folder}: {error.message}")
    return SyncResult(backlog=0, error_summary=" ".join(words), raw=report)


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
