"""Which folder is the Inbox, Sent, Archive, Trash... on this server.

RFC 6154 SPECIAL-USE attributes are the truth when the server sends them (Dovecot,
Gmail, Fastmail, recent Exchange). Older servers only have names, and those vary by
provider and language, so a short list of well-known names is the fallback. A name
match never overrides an attribute.

Names are handled decoded (modified UTF-7 -> str) everywhere in the engine;
imapclient encodes them again on the way out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from pipemail.imap import ImapSession

Role = Literal["inbox", "sent", "archive", "trash", "all", "junk", "drafts", "flagged"]

ROLE_ATTRIBUTES: dict[str, Role] = {
    "\\sent": "sent",
    "\\archive": "archive",
    "\\trash": "trash",
    "\\all": "all",
    "\\allmail": "all",  # XLIST spelling
    "\\junk": "junk",
    "\\spam": "junk",  # XLIST spelling
    "\\drafts": "drafts",
    "\\flagged": "flagged",
    "\\starred": "flagged",
    "\\inbox": "inbox",  # XLIST spelling
}

# Lower-case leaf names (after the last delimiter) and full names, in order of preference.
WELL_KNOWN: dict[Role, tuple[str, ...]] = {
    "sent": (
        "[gmail]/sent mail",
        "[google mail]/sent mail",
        "sent",
        "sent items",
        "sent messages",
        "sent mail",
        "inbox.sent",
        "inbox/sent",
        "gesendet",
        "gesendete elemente",
        "éléments envoyés",
        "envoyés",
        "elementos enviados",
        "enviados",
        "posta inviata",
        "verzonden items",
    ),
    "archive": ("archive", "archives", "inbox.archive", "archiv", "archivo", "archief"),
    "trash": (
        "[gmail]/trash",
        "[gmail]/bin",
        "[google mail]/trash",
        "[google mail]/bin",
        "trash",
        "deleted items",
        "deleted messages",
        "deleted",
        "bin",
        "inbox.trash",
        "papierkorb",
        "gelöschte elemente",
        "éléments supprimés",
        "corbeille",
        "elementos eliminados",
        "papelera",
        "cestino",
    ),
    "all": ("[gmail]/all mail", "[google mail]/all mail", "all mail"),
    "junk": (
        "[gmail]/spam",
        "[google mail]/spam",
        "junk",
        "junk e-mail",
        "junk email",
        "spam",
        "bulk mail",
        "inbox.junk",
        "inbox.spam",
    ),
    "drafts": ("[gmail]/drafts", "[google mail]/drafts", "drafts", "inbox.drafts", "entwürfe"),
    "flagged": ("[gmail]/starred",),
}


_WELL_KNOWN_ROLE: dict[str, Role] = {
    name: role for role, names in WELL_KNOWN.items() for name in reversed(names)
}


def role_for(value: str | None, *, delimiter: str = "/") -> Role | None:
    """The role a folder name or a special-use attribute stands for, or ``None``.

    ``"\\Sent"`` → ``sent`` (RFC 6154 / XLIST attribute), ``"INBOX"`` → ``inbox``,
    ``"Gesendete Elemente"`` or ``"INBOX.Sent"`` → ``sent`` (the well-known names, in
    every language the table has, full name or last segment after ``delimiter``).
    The table :func:`classify` uses, for callers that only have a name.
    """
    text = (value or "").strip().lower()
    if not text:
        return None
    if text.startswith("\\"):
        return ROLE_ATTRIBUTES.get(text)
    if text == "inbox":
        return "inbox"
    if text in _WELL_KNOWN_ROLE:
        return _WELL_KNOWN_ROLE[text]
    return _WELL_KNOWN_ROLE.get(text.rsplit(delimiter, 1)[-1]) if delimiter else None


@dataclass(frozen=True)
class FolderInfo:
    name: str
    """Decoded display name, also what the engine passes back to the server."""
    delimiter: str = "/"
    attributes: tuple[str, ...] = ()
    role: Role | None = None

    @property
    def selectable(self) -> bool:
        lowered = {a.lower() for a in self.attributes}
        return not ({"\\noselect", "\\nonexistent"} & lowered)

    @property
    def leaf(self) -> str:
        if self.delimiter and self.delimiter in self.name:
            return self.name.rsplit(self.delimiter, 1)[1]
        return self.name


@dataclass
class FolderMap:
    folders: list[FolderInfo] = field(default_factory=list)
    roles: dict[str, str] = field(default_factory=dict)
    """role -> folder name; ``inbox`` is always present."""

    def get(self, role: Role) -> str | None:
        return self.roles.get(role)

    def names(self) -> list[str]:
        return [f.name for f in self.folders]

    def exists(self, name: str) -> bool:
        return any(_same(f.name, name) for f in self.folders)

    def resolve(self, name: str) -> str | None:
        """The server's spelling of ``name`` (INBOX is case-insensitive)."""
        for info in self.folders:
            if _same(info.name, name):
                return info.name
        return None


def _same(a: str, b: str) -> bool:
    if a.upper() == "INBOX" or b.upper() == "INBOX":
        return a.upper() == b.upper()
    return a == b


def classify(rows: Iterable[tuple[Sequence[str], str, str]]) -> FolderMap:
    """Build the role map from LIST rows ``(attributes, delimiter, name)``.

    Pure function: the Gmail and Exchange LIST shapes are tested without those servers.
    """
    infos: list[FolderInfo] = []
    roles: dict[Role, str] = {}
    for attrs, delim, name in rows:
        attrs = tuple(attrs)
        role: Role | None = None
        for attr in attrs:
            found = ROLE_ATTRIBUTES.get(attr.lower())
            if found:
                role = found
                break
        if name.upper() == "INBOX":
            role = "inbox"
        info = FolderInfo(name=name, delimiter=delim or "/", attributes=attrs, role=role)
        infos.append(info)
        if role and role not in roles and info.selectable:
            roles[role] = name

    by_lower: dict[str, FolderInfo] = {}
    for info in infos:
        if info.selectable:
            by_lower.setdefault(info.name.lower(), info)
            by_lower.setdefault(info.leaf.lower(), info)
    for role, candidates in WELL_KNOWN.items():
        if role in roles:
            continue
        for candidate in candidates:
            match = by_lower.get(candidate)
            if match is not None and match.role in (None, role):
                roles[role] = match.name
                break

    roles.setdefault("inbox", "INBOX")
    for index, info in enumerate(infos):
        if info.role is None:
            for role, name in roles.items():
                if name == info.name:
                    infos[index] = FolderInfo(info.name, info.delimiter, info.attributes, role)
                    break
    return FolderMap(folders=infos, roles={r: n for r, n in roles.items()})  # as dict[str, str]


def discover(session: ImapSession) -> FolderMap:
    """LIST every folder and work out the roles."""
    return classify(session.list_folders())


def default_sync_folders(folders: FolderMap, *, gmail: bool) -> list[str]:
    """Inbox and Sent; on Gmail only All Mail (labels are folders there, so syncing
    several of them would fetch the same message once per label)."""
    if gmail:
        all_mail = folders.get("all")
        if all_mail:
            return [all_mail]
    out = [folders.get("inbox") or "INBOX"]
    sent = folders.get("sent")
    if sent and sent not in out:
        out.append(sent)
    return out
