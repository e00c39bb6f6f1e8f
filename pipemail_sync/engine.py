"""The one seam between the Odoo addon and the engine's sync entry points.

Models call these functions and never reach into ``pipemail.sync`` / ``pipemail.imap``
themselves, so the addon depends on a handful of names only and the engine's report
objects are turned here into the two small shapes the models need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipemail.netguard import check_host  # noqa: F401 - re-exported for the models

ROLE_ALIASES = {
    "\\inbox": "inbox",
    "\\sent": "sent",
    "\\archive": "archive",
    "\\trash": "trash",
    "\\all": "all",
    "\\junk": "junk",
    "\\drafts": "drafts",
}
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


def _role(value: Any) -> str:
    if not value:
        return "other"
    text = str(getattr(value, "value", value)).lower()
    text = ROLE_ALIASES.get(text, text.lstrip("\\"))
    return text if text in ROLES else "other"


def check_account(config) -> CheckResult:
    """Connect, log in, list folders; raise a typed engine error on failure."""
    from pipemail import sync

    report = sync.check_account(config)
    folders = {f.name: _role(f.role) for f in report.folders if f.selectable}
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
