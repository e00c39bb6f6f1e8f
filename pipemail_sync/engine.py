"""The one seam between the Odoo addon and the engine's sync entry points.

Models call these functions and never reach into ``pipemail.sync`` / ``pipemail.imap``
themselves, so the addon depends on a handful of names only and the engine's report
objects are turned here into the two small shapes the models need.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from pipemail import errors as pm_errors
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


def _engine(name: str):
    try:
        return importlib.import_module(f"pipemail.{name}")
    except ImportError as exc:
        raise pm_errors.ConfigError(
            "The mail sync engine is not installed completely on this server. "
            "Ask an administrator to update pipemail.",
            detail=f"pipemail.{name}: {exc}",
        )


def _role(value: Any) -> str:
    if not value:
        return "other"
    text = str(getattr(value, "value", value)).lower()
    text = ROLE_ALIASES.get(text, text.lstrip("\\"))
    return text if text in ROLES else "other"


def _folders(report: Any) -> dict[str, str]:
    folders = getattr(report, "folders", None) or {}
    out: dict[str, str] = {}
    if isinstance(folders, dict):
        for name, role in folders.items():
            out[str(name)] = _role(role)
        return out
    for folder in folders:
        if isinstance(folder, str):
            out[folder] = "other"
            continue
        name = getattr(folder, "name", None) or str(folder)
        out[name] = _role(getattr(folder, "role", None))
    return out


def check_account(config) -> CheckResult:
    """Connect, log in, list folders; raise a typed engine error on failure."""
    sync = _engine("sync")
    report = sync.check_account(config)
    summary = getattr(report, "summary", None)
    if callable(summary):
        summary = summary()
    if not summary:
        parts = ["Logged in."]
        folders = _folders(report)
        if folders:
            parts.append(f"{len(folders)} folders found.")
        summary = " ".join(parts)
    return CheckResult(summary=str(summary), folders=_folders(report))


def sync_account(config, store, *, progress=None) -> SyncResult:
    """Sync one account into ``store`` (an :class:`~pipemail.types.Store`)."""
    sync = _engine("sync")
    kwargs = {}
    if progress is not None:
        kwargs["progress"] = progress
    report = sync.sync_account(config, store, **kwargs)
    backlog = int(getattr(report, "backlog", 0) or 0)
    problems = getattr(report, "errors", None) or getattr(report, "problems", None) or []
    quarantined = getattr(report, "quarantined", None) or []
    words = []
    if quarantined:
        words.append(f"{len(quarantined)} messages could not be downloaded and will be retried.")
    if problems:
        words.append("; ".join(str(p) for p in list(problems)[:3]))
    return SyncResult(backlog=backlog, error_summary=" ".join(words), raw=report)


def token_source(account):
    """An engine TokenSource for an OAuth account (see ``pipemail_sync.oauth``)."""
    from .oauth import OdooTokenSource

    return OdooTokenSource(account)
