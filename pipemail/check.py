"""The connection check behind "Test connection": log in, list the folders with their
counts, and say which sync strategy and folders :mod:`pipemail.sync` would use.

Nothing is stored; the same typed errors as a sync are raised for a server that cannot
be used.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pipemail import folders as folders_mod
from pipemail.errors import AuthFailed, ConnectionLost, PipemailError
from pipemail.imap import ImapSession
from pipemail.sync import choose_folders, strategy_name
from pipemail.types import AccountConfig


class Note(str):
    """One remark of the check, in English; ``code`` and ``params`` let a caller say it
    in the user's language."""

    code: str
    params: dict[str, object]

    def __new__(cls, code: str, text: str, **params: object) -> Note:
        note = super().__new__(cls, text)
        note.code = code
        note.params = params
        return note


@dataclass
class FolderCheck:
    name: str
    role: str | None
    attributes: tuple[str, ...]
    selectable: bool
    messages: int | None = None
    unseen: int | None = None
    uidnext: int | None = None
    uidvalidity: int | None = None
    highestmodseq: int | None = None
    error: str = ""


@dataclass
class CheckReport:
    """What "Test connection" shows: the server, its features, folders and counts."""

    host: str
    port: int
    security: str
    tls: str
    greeting: str
    capabilities: list[str]
    strategy: str
    gmail: bool
    folders: list[FolderCheck]
    roles: dict[str, str]
    sync_folders: list[str]
    login_seconds: float
    notes: list[Note] = field(default_factory=list)


def check_account(config: AccountConfig, *, max_folders: int = 200) -> CheckReport:
    """Connect, log in, list folders with counts, and say which strategy sync would use.

    Raises the same typed errors as :func:`sync_account` for a server we cannot use.
    """
    started = time.monotonic()
    with ImapSession.open(config) as s:
        login_seconds = time.monotonic() - started
        fmap = folders_mod.discover(s)
        checks: list[FolderCheck] = []
        notes: list[Note] = []
        items = ["MESSAGES", "UNSEEN", "UIDNEXT", "UIDVALIDITY"]
        if s.condstore:
            items.append("HIGHESTMODSEQ")
        for info in fmap.folders[:max_folders]:
            check = FolderCheck(
                name=info.name,
                role=info.role,
                attributes=info.attributes,
                selectable=info.selectable,
            )
            if info.selectable:
                try:
                    st = s.status(info.name, items)
                    check.messages = st.get("MESSAGES")
                    check.unseen = st.get("UNSEEN")
                    check.uidnext = st.get("UIDNEXT")
                    check.uidvalidity = st.get("UIDVALIDITY")
                    check.highestmodseq = st.get("HIGHESTMODSEQ")
                except (ConnectionLost, AuthFailed):
                    raise
                except PipemailError as exc:
                    check.error = str(exc)
            checks.append(check)
        if len(fmap.folders) > max_folders:
            notes.append(
                Note(
                    "folders_cut",
                    f"Only the first {max_folders} of {len(fmap.folders)} folders are shown.",
                    shown=max_folders,
                    total=len(fmap.folders),
                )
            )
        sync = choose_folders(config, s, fmap)
        if config.imap.security == "none":
            notes.append(
                Note(
                    "no_tls",
                    "No encryption: the password and the mail cross the network in clear.",
                )
            )
        elif not config.imap.verify_tls:
            notes.append(
                Note("no_verify", "The server certificate is not verified (insecure setting).")
            )
        if not s.has("UIDPLUS"):
            notes.append(
                Note("no_uidplus", "No UIDPLUS: moved messages are found again by the next sync.")
            )
        if not s.has("MOVE"):
            notes.append(
                Note(
                    "no_move",
                    "No MOVE: archive and delete copy the message, then expunge it alone.",
                )
            )
        if not s.condstore:
            hours = f"{config.reconcile_interval / 3600:g}"
            notes.append(
                Note(
                    "no_condstore",
                    "No CONDSTORE: flag changes are found by comparing flags, the newest "
                    f"{config.recent_window} messages each sync and every message every "
                    f"{hours} h.",
                    recent=config.recent_window,
                    hours=hours,
                )
            )
        return CheckReport(
            host=config.imap.host,
            port=config.imap.port,
            security=config.imap.security,
            tls=s.info.tls,
            greeting=s.info.greeting,
            capabilities=sorted(s.capabilities),
            strategy=strategy_name(s),
            gmail=s.is_gmail,
            folders=checks,
            roles=dict(fmap.roles),
            sync_folders=sync,
            login_seconds=login_seconds,
            notes=notes,
        )
