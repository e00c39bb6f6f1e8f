"""Data shared by the engine and its callers (the Odoo addons, the CLI, the tests).

Everything here is plain data: dataclasses that cross the seam between the engine and
whatever stores its results. The Odoo side implements :class:`Store`; the engine never
learns how rows are kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, Protocol, runtime_checkable

Provider = Literal["imap", "gmail", "microsoft"]
Security = Literal["ssl", "starttls", "none"]

_NAME_SPECIALS = frozenset(',;<>@"()[]:\\')
"""Characters that make a display name need quotes (RFC 5322 specials)."""


@dataclass(frozen=True)
class Address:
    """One mailbox: ``email`` is normalized (lower-case, IDNA domain), ``name`` decoded."""

    email: str
    name: str = ""

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2]

    def __str__(self) -> str:
        """``Name <email>``, the name quoted when it holds a comma or another special
        (``"Doe, Bob" <bob@acme.example>``), so that the text reads back as this one
        address; just the address when there is no name or the name is the address."""
        email = self.email.strip()
        name = " ".join(self.name.split())
        if not name or name.lower() == email.lower():
            return email
        if any(c in _NAME_SPECIALS for c in name):
            name = '"{}"'.format(name.replace("\\", "\\\\").replace('"', '\\"'))
        return f"{name} <{email}>"


@dataclass
class Attachment:
    filename: str
    content_type: str
    size: int
    content: bytes = b""
    content_id: str = ""
    inline: bool = False


@dataclass
class ParsedMessage:
    """A message normalized once, whatever shape it arrived in.

    ``parse_error`` is set (and ``raw`` kept) when the message could not be fully
    understood: callers store it anyway, so nothing is ever dropped.
    """

    message_id: str
    content_hash: str
    raw_size: int
    message_id_synthesized: bool = False
    in_reply_to: str = ""
    references: list[str] = field(default_factory=list)
    subject: str = ""
    sender: Address | None = None
    to: list[Address] = field(default_factory=list)
    cc: list[Address] = field(default_factory=list)
    bcc: list[Address] = field(default_factory=list)
    reply_to: list[Address] = field(default_factory=list)
    date: datetime | None = None
    text: str = ""
    html: str = ""
    snippet: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    list_id: str = ""
    list_unsubscribe: str = ""
    precedence: str = ""
    auto_submitted: str = ""
    is_automated: bool = False
    parse_error: str = ""
    raw: bytes = b""

    @property
    def participants(self) -> list[Address]:
        seen: dict[str, Address] = {}
        for addr in [self.sender, *self.to, *self.cc, *self.reply_to]:
            if addr is not None and addr.email and addr.email not in seen:
                seen[addr.email] = addr
        return list(seen.values())


@dataclass(frozen=True)
class Location:
    """Where a message sits on the server. Any UIDVALIDITY change voids it."""

    folder: str
    uidvalidity: int
    uid: int


@dataclass
class RemoteMessage:
    """One message fetched from a folder, with its server-side metadata."""

    key: str
    """Identity within the account: ``gm:<X-GM-MSGID>`` on Gmail, else a hash of
    Message-ID and content. Equal keys in two folders are the same message."""
    location: Location
    flags: frozenset[str]
    parsed: ParsedMessage
    internaldate: datetime | None = None
    size: int = 0
    modseq: int | None = None
    gm_msgid: int | None = None
    gm_thrid: int | None = None
    labels: tuple[str, ...] = ()
    truncated: bool = False
    """Only the header was fetched: the message is larger than
    ``AccountConfig.max_message_bytes``. ``key`` is then computed from the header alone,
    and the same rule applies whenever the message is looked at again."""


@dataclass(frozen=True)
class FlagChange:
    location: Location
    flags: frozenset[str]
    modseq: int | None = None
    labels: tuple[str, ...] | None = None


@dataclass
class FolderState:
    """Sync cursor of one folder; persisted by the store as ``to_json()``.

    It is only ever saved together with the rows of the batch that advanced it, so
    it can never run ahead of what is stored.
    """

    folder: str
    uidvalidity: int
    uidnext: int = 1
    highestmodseq: int | None = None
    backfill_low: int | None = None
    """Initial sync runs newest first: UIDs in [backfill_low, uidnext) are stored.
    ``None`` once the history window is complete."""
    since: date | None = None
    last_reconcile: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["since"] = self.since.isoformat() if self.since else None
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FolderState:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if values.get("since"):
            values["since"] = date.fromisoformat(values["since"])
        return cls(**values)


@dataclass
class SyncBatch:
    """Everything learnt about one folder in one step, applied by the store atomically."""

    account: str
    folder: str
    state: FolderState
    new: list[RemoteMessage] = field(default_factory=list)
    flag_changes: list[FlagChange] = field(default_factory=list)
    vanished: list[Location] = field(default_factory=list)
    reset_uidvalidity: bool = False
    """The folder's UIDVALIDITY changed: every stored location of this folder with
    another UIDVALIDITY is void. Messages are matched again by ``key``."""


WriteOp = Literal["seen", "unseen", "flag", "unflag", "archive", "delete", "move"]


@dataclass(frozen=True)
class WriteBack:
    """A change made in the CRM, to be written to the server.

    ``expect_key`` is the message's key: the engine checks that the UID still holds
    that message before touching it, so a stale address never hits another message.
    The key hashes the whole message; when the store also gives what it recorded at
    sync time (``message_id``, ``expect_size``, ``expect_internaldate``), the check
    reads only the header, RFC822.SIZE and INTERNALDATE, and reads the whole message
    only when those do not all agree.
    """

    id: Any
    op: WriteOp
    location: Location
    expect_key: str = ""
    target_folder: str = ""
    message_id: str = ""
    """The message's Message-ID (as parsed, ``<>`` optional), when known. Finds a
    message that a previous, interrupted attempt already moved, so a retry reports it
    done; and is compared with the header at the UID by the identity check."""
    expect_size: int = 0
    """RFC822.SIZE the server gave at sync time; ``0`` when unknown (the identity
    check then reads the whole message)."""
    expect_internaldate: datetime | None = None
    """INTERNALDATE given at sync time, compared too when known."""


@dataclass(frozen=True)
class WriteResult:
    id: Any
    status: Literal["done", "stale", "failed"]
    new_location: Location | None = None
    error: str = ""


@runtime_checkable
class Store(Protocol):
    """What the engine needs from whoever keeps the messages (Odoo, memory, JSON lines).

    ``apply`` must be atomic: the batch's rows and its ``state`` are committed
    together or not at all.
    """

    def load_state(self, account: str, folder: str) -> FolderState | None: ...

    def apply(self, batch: SyncBatch) -> None: ...

    def stored_flags(
        self, account: str, folder: str, uidvalidity: int, uids: Iterable[int]
    ) -> Mapping[int, frozenset[str]]: ...

    def stored_uids(self, account: str, folder: str, uidvalidity: int) -> set[int]: ...

    def pending_writes(self, account: str) -> Sequence[WriteBack]: ...

    def writes_done(self, account: str, results: Sequence[WriteResult]) -> None: ...


class TokenSource(Protocol):
    """Hands out OAuth access tokens; refreshes and persists rotated refresh tokens."""

    def access_token(self, *, force_refresh: bool = False) -> str: ...


@dataclass
class PasswordAuth:
    username: str
    password: str = field(repr=False)


@dataclass
class OAuth2Auth:
    username: str
    tokens: TokenSource = field(repr=False)


Auth = PasswordAuth | OAuth2Auth


@dataclass
class ServerConfig:
    host: str
    port: int
    security: Security = "ssl"
    verify_tls: bool = True
    cafile: str | None = None
    allow_private_hosts: bool = False
    timeout: float = 60.0


@dataclass
class AccountConfig:
    """One mailbox to sync. ``key`` is the stable id the store files rows under."""

    key: str
    imap: ServerConfig
    auth: Auth
    provider: Provider = "imap"
    smtp: ServerConfig | None = None
    folders: list[str] | None = None
    """Folder names to sync; ``None`` means the discovered Inbox and Sent."""
    since: date | None = None
    """History window start; ``None`` syncs everything."""
    blocklist: list[str] = field(default_factory=list)
    """Addresses or ``@domain`` / ``domain`` entries never synced."""
    internal_domains: list[str] = field(default_factory=list)
    skip_internal: bool = False
    batch_size: int = 200
    max_message_bytes: int = 50 * 1024 * 1024
    ignore_capabilities: list[str] = field(default_factory=list)
    """Capabilities treated as absent even when advertised (a server with a broken
    extension; tests forcing the path a server without it takes)."""
    disable_condstore: bool = False
    """Shorthand for ignoring CONDSTORE and QRESYNC: flag changes and expunges are then
    found by UID/FLAGS comparison, as on Microsoft 365."""
    reconcile_interval: float = 6 * 3600.0
    """Without CONDSTORE: seconds between full FLAGS comparisons of a folder (the
    newest ``recent_window`` messages are compared on every sync)."""
    recent_window: int = 500
