"""One IMAP connection, with every failure turned into a typed error in plain words.

Built on ``imapclient`` for its response parser, but the session decides what is sent:
CONDSTORE/QRESYNC are ENABLEd before any SELECT and their modifiers are only used when
the server advertised them and the selected folder really has mod-sequences; SEARCH and
FETCH always work on bounded UID windows (``imaplib._MAXLINE`` is a 1 MB global and a
``UID SEARCH ALL`` on a big folder overflows it); nothing is fetched per message.

Errors: anything raised by the socket, TLS or imaplib leaves this module as a
:class:`~pipemail.errors.PipemailError` subclass. A connection that died mid-command
(``ConnectionLost``) is closed for good; callers open a new session to retry.
"""

from __future__ import annotations

import imaplib
import logging
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import LoginError
from imapclient.imapclient import seq_to_parenstr_upper
from imapclient.response_parser import parse_fetch_response

from pipemail.errors import (
    AuthFailed,
    CapabilityMissing,
    ConfigError,
    ConnectFailed,
    ConnectionLost,
    PipemailError,
    ProtocolError,
    ReconnectNeeded,
    TLSFailed,
)
from pipemail.imap_parse import (
    FetchedMessage,
    FlagState,
    Mailbox,
    ServerInfo,
    _modseq,
    _text,
    _Unparsable,
    decode_labels,
    fast_parse_fetch,
    fetched_from_response,
    normalize_flags,
    parse_appenduid,
    parse_copyuid,
    parse_uid_set,
    uid_ranges,
    uid_set,
)
from pipemail.types import AccountConfig, Auth, OAuth2Auth, PasswordAuth, ServerConfig

log = logging.getLogger(__name__)

# imaplib refuses any response line longer than this module global (1,000,000 bytes by
# default). We never rely on it being large (SEARCH and FETCH are windowed), but a
# FETCH of a message with a 2 MB header line or an ESEARCH of a sparse folder must not
# kill the session, so the limit is raised once for the process.
MAXLINE = 16 * 1024 * 1024
if getattr(imaplib, "_MAXLINE", 0) < MAXLINE:
    imaplib._MAXLINE = MAXLINE  # type: ignore[attr-defined]

SEARCH_WINDOW = 20_000
"""UID values covered by one ``UID SEARCH UID a:b``; grows on sparse folders."""
MAX_SEARCH_WINDOW = 2_000_000
FLAG_WINDOW = 20_000
"""UID values covered by one flag FETCH (CHANGEDSINCE or plain)."""

AUTH_MESSAGE = "The server rejected the user name or password."
OAUTH_REJECTED = (
    "The server rejected the access token. Reconnect the account if this keeps happening."
)
LOST_MESSAGE = "The connection to the mail server was lost. The sync will try again."
CLOSED_MESSAGE = "The connection to the mail server is closed."


class FolderMissing(ProtocolError):
    """SELECT said the folder does not exist (deleted, renamed, or never there)."""

    code = "folder_missing"


# ----------------------------------------------------------------- connection


def _ssl_context(server: ServerConfig) -> ssl.SSLContext:
    """Verifying context by default; only an explicit ``verify_tls=False`` turns it off."""
    try:
        if server.verify_tls:
            ctx = ssl.create_default_context(cafile=server.cafile or None)
        else:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            "The certificate authority file could not be read.", detail=f"{server.cafile}: {exc}"
        )
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _open_socket(server: ServerConfig) -> socket.socket:
    """TCP connection through netguard when it is present (refuses private hosts)."""
    try:
        from pipemail import netguard
    except ImportError:  # pragma: no cover - netguard ships with the engine
        netguard = None  # type: ignore[assignment]
    if netguard is not None:
        return netguard.connect_checked(
            server.host,
            server.port,
            timeout=server.timeout,
            allow_private=server.allow_private_hosts,
        )
    # HOOK(netguard): without it nothing stops a user pointing the account at our own
    # network; keep this path for library users who vendor only imap.py.
    return socket.create_connection((server.host, server.port), timeout=server.timeout)


class _PlainIMAP4(imaplib.IMAP4):
    def __init__(self, host: str, port: int, factory: Callable[[], socket.socket]) -> None:
        self._factory = factory
        super().__init__(host, port)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        return self._factory()


class _TLSIMAP4(imaplib.IMAP4):
    def __init__(
        self,
        host: str,
        port: int,
        ctx: ssl.SSLContext,
        factory: Callable[[], socket.socket],
    ) -> None:
        self._factory = factory
        self.ssl_context = ctx
        super().__init__(host, port)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        sock = self._factory()
        try:
            return self.ssl_context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


class _Client(IMAPClient):
    """IMAPClient whose socket comes from netguard (connect to the checked address)."""

    def __init__(self, server: ServerConfig, ctx: ssl.SSLContext | None) -> None:
        self._server_cfg = server
        self._ctx = ctx
        super().__init__(
            server.host,
            port=server.port,
            ssl=server.security == "ssl",
            ssl_context=ctx,
            timeout=server.timeout,
        )
        self.normalise_times = False  # imapclient spells it so
        if not logging.getLogger("imapclient.imaplib").isEnabledFor(logging.DEBUG):
            # imapclient turns imaplib's per-line debug output on and routes it to a
            # logger; one call per response line is measurable on a large FETCH.
            self._imap.debug = 0

    def _create_IMAP4(self) -> imaplib.IMAP4:  # noqa: N802 - imapclient's name
        def factory() -> socket.socket:
            return _open_socket(self._server_cfg)

        if self._server_cfg.security == "ssl":
            assert self._ctx is not None
            return _TLSIMAP4(self.host, self.port, self._ctx, factory)
        return _PlainIMAP4(self.host, self.port, factory)


def _dropped(exc: LoginError) -> bool:
    """imapclient turns a connection dropped during LOGIN/AUTHENTICATE into LoginError;
    that says nothing about the credentials and must not be reported as a rejection."""
    return isinstance(exc.__context__, imaplib.IMAP4.abort | OSError)


def _connect_error(exc: BaseException, server: ServerConfig) -> PipemailError:
    where = f"{server.host}:{server.port} ({server.security})"
    if isinstance(exc, PipemailError):
        return exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TLSFailed(
            "The server's security certificate could not be verified. Check the server "
            "name, or ask an administrator to install the right certificate authority.",
            detail=f"{where}: {exc}",
        )
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError | imaplib.IMAP4.abort):
        # The connection was closed in the middle of the handshake or the greeting (a
        # dropped link, a restarting server): nothing says the settings are wrong.
        return ConnectFailed(
            "The connection to the mail server was closed while connecting. "
            "The sync will try again later.",
            detail=f"{where}: {exc}",
        )
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return TLSFailed(
            "A secure (TLS) connection could not be established with the server. "
            "Check the port and the security setting.",
            detail=f"{where}: {exc}",
        )
    if isinstance(exc, socket.gaierror):
        return ConnectFailed(
            "We could not find this server name. Check the spelling of the server address.",
            detail=f"{where}: {exc}",
        )
    if isinstance(exc, TimeoutError | socket.timeout):
        return ConnectFailed(
            "The mail server did not answer in time. Check the address and port, "
            "or try again later.",
            detail=f"{where}: {exc}",
        )
    if isinstance(exc, ConnectionRefusedError):
        return ConnectFailed(
            "The mail server refused the connection. Check the port number.",
            detail=f"{where}: {exc}",
        )
    if isinstance(exc, imaplib.IMAP4.error):
        return ConnectFailed(
            "The server did not answer like an IMAP mail server. Check the port and the "
            "security setting.",
            detail=f"{where}: {exc}",
        )
    return ConnectFailed(
        "We could not reach the mail server. Check the address and port, or try again later.",
        detail=f"{where}: {type(exc).__name__}: {exc}",
    )


class ImapSession:
    """An authenticated IMAP connection for one account.

    Use :meth:`open` (or ``with ImapSession.open(config) as s:``). Capabilities listed in
    ``ignore_capabilities`` are treated as absent even when advertised: it is how tests
    exercise the Microsoft-365-like path (no CONDSTORE) against Dovecot, and how an
    administrator works around a server with a broken extension.
    """

    def __init__(
        self,
        server: ServerConfig,
        auth: Auth,
        *,
        ignore_capabilities: Iterable[str] = (),
    ) -> None:
        if not server.host:
            raise ConfigError("The server address is empty.")
        if server.security not in ("ssl", "starttls", "none"):
            raise ConfigError(f"Unknown security setting {server.security!r}.")
        self.server = server
        self.auth = auth
        self.ignored = frozenset(c.upper() for c in ignore_capabilities)
        self._client: _Client | None = None
        self.info = ServerInfo(capabilities=frozenset())
        self.selected: Mailbox | None = None
        self.condstore = False
        self.qresync = False
        self.auth_retries = 0

    # ------------------------------------------------------------ lifecycle

    @classmethod
    def open(cls, config: AccountConfig) -> ImapSession:
        ignore = list(getattr(config, "ignore_capabilities", ()) or ())
        if getattr(config, "disable_condstore", False):
            ignore += ["CONDSTORE", "QRESYNC"]
        session = cls(config.imap, config.auth, ignore_capabilities=ignore)
        session.connect()
        return session

    def __enter__(self) -> ImapSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def alive(self) -> bool:
        return self._client is not None

    @property
    def client(self) -> IMAPClient:
        """The underlying IMAPClient, for IDLE (pipemail.idle), which has no session-level
        equivalent. Errors raised through it are NOT mapped; prefer session methods."""
        return self._require()

    def connect(self) -> None:
        """Connect, secure, authenticate, ENABLE. Raises typed errors only."""
        if isinstance(self.auth, OAuth2Auth):
            self._connect_oauth(self.auth)
        else:
            self._connect_raw()
            self._login_password(self.auth)
        self._after_login()

    def _connect_raw(self) -> None:
        server = self.server
        ctx = _ssl_context(server) if server.security in ("ssl", "starttls") else None
        try:
            client = _Client(server, ctx)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            raise _connect_error(exc, server)
        try:
            self.info.greeting = _text(client.welcome or "")[:200]
            if server.security == "starttls":
                caps = {_text(c).upper() for c in client.capabilities()}
                if "STARTTLS" not in caps:
                    raise TLSFailed(
                        "The server does not offer STARTTLS on this port. Use SSL/TLS "
                        "(usually port 993) instead.",
                        detail=f"{server.host}:{server.port} capabilities: {sorted(caps)}",
                    )
                client.starttls(ctx)
            sock = client.socket()
            if isinstance(sock, ssl.SSLSocket):
                self.info.tls = f"{sock.version()} {(sock.cipher() or ('',))[0]}"
        except BaseException as exc:
            _shutdown(client)
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            raise _connect_error(exc, server)
        self._client = client

    def _login_password(self, auth: PasswordAuth) -> None:
        client = self._require()
        try:
            try:
                auth.password.encode("ascii")
                ascii_password = True
            except UnicodeEncodeError:
                ascii_password = False
            caps = {_text(c).upper() for c in client.capabilities()}
            if not ascii_password and "AUTH=PLAIN" in caps:
                # LOGIN sends the password as a quoted ASCII string; PLAIN is base64 of UTF-8.
                client.plain_login(auth.username, auth.password)
            else:
                client.login(auth.username, auth.password)
        except LoginError as exc:
            self.close()
            if _dropped(exc):
                raise _connect_error(exc.__context__, self.server)
            raise AuthFailed(AUTH_MESSAGE, detail=_text(exc))
        except PipemailError:
            self.close()
            raise
        except Exception as exc:  # noqa: BLE001 - mapped to a typed error below
            self.close()
            raise self._map(exc, "login")

    def _connect_oauth(self, auth: OAuth2Auth) -> None:
        """XOAUTH2 (or OAUTHBEARER); one forced refresh and one retry on rejection.

        The retry uses a fresh connection: after a failed SASL exchange some servers
        (Gmail) want an empty continuation or close the connection, and starting over
        is the one behaviour every server accepts.
        """
        token = auth.tokens.access_token()
        for attempt in range(2):
            self._connect_raw()
            client = self._require()
            try:
                caps = {_text(c).upper() for c in client.capabilities()}
                mech = (
                    "OAUTHBEARER"
                    if "AUTH=OAUTHBEARER" in caps and "AUTH=XOAUTH2" not in caps
                    else "XOAUTH2"
                )
                client.sasl_login(mech, _oauth_mech(mech, auth.username, token))
                return
            except LoginError as exc:
                self.close()
                if _dropped(exc):
                    raise _connect_error(exc.__context__, self.server)
                if attempt == 1:
                    raise AuthFailed(OAUTH_REJECTED, detail=_text(exc))
                self.auth_retries += 1
                log.info("access token rejected for %s, refreshing once", auth.username)
                try:
                    token = auth.tokens.access_token(force_refresh=True)
                except ReconnectNeeded:
                    raise
            except PipemailError:
                self.close()
                raise
            except Exception as exc:  # noqa: BLE001 - mapped to a typed error below
                self.close()
                raise self._map(exc, "authenticate")

    def _after_login(self) -> None:
        client = self._require()
        with self._guard("capability"):
            client._cached_capabilities = None
            caps = frozenset(_text(c).upper() for c in client.capabilities())
        self.info.capabilities = caps
        enabled: set[str] = set()
        if self.has("ENABLE"):
            wanted = [c for c in ("QRESYNC", "CONDSTORE") if self.has(c)]
            if "QRESYNC" in wanted:
                wanted = ["QRESYNC"]  # implies CONDSTORE (RFC 7162 3.2.3)
            if wanted:
                with self._guard("enable"):
                    enabled = {_text(c).upper() for c in client.enable(*wanted)}
        self.qresync = "QRESYNC" in enabled
        self.condstore = self.qresync or "CONDSTORE" in enabled or self.has("CONDSTORE")
        if self.qresync:
            enabled.add("CONDSTORE")
        self.info.enabled = frozenset(enabled)

    def close(self) -> None:
        client, self._client = self._client, None
        self.selected = None
        if client is None:
            return
        try:
            client.logout()
        except Exception:  # noqa: BLE001 - closing a dead connection is not an error
            _shutdown(client)

    def _dead(self) -> None:
        client, self._client = self._client, None
        self.selected = None
        if client is not None:
            _shutdown(client)

    # ------------------------------------------------------------ capabilities

    def has(self, capability: str) -> bool:
        cap = capability.upper()
        if cap in self.ignored:
            return False
        return cap in self.info.capabilities

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset(c for c in self.info.capabilities if c not in self.ignored)

    @property
    def is_gmail(self) -> bool:
        return self.has("X-GM-EXT-1")

    # ------------------------------------------------------------ error mapping

    def _require(self) -> _Client:
        if self._client is None:
            raise ConnectionLost(CLOSED_MESSAGE)
        return self._client

    def _map(self, exc: BaseException, what: str) -> PipemailError:
        if isinstance(exc, PipemailError):
            return exc
        if isinstance(exc, LoginError):
            return AuthFailed(AUTH_MESSAGE, detail=_text(exc))
        if isinstance(exc, imaplib.IMAP4.abort | OSError | EOFError):
            # abort: BYE or a broken response; OSError covers resets, timeouts and TLS
            # errors on a socket that was working (ssl.SSLError is an OSError).
            self._dead()
            if isinstance(exc, TimeoutError | socket.timeout):
                return ConnectionLost(
                    "The mail server stopped answering. The sync will try again.",
                    detail=f"{what}: timeout",
                )
            return ConnectionLost(LOST_MESSAGE, detail=f"{what}: {type(exc).__name__}: {exc}")
        if isinstance(exc, imaplib.IMAP4.error):
            text = _text(exc)
            if what.startswith("select") and re.search(
                r"NONEXISTENT|doesn't exist|does not exist|not found|unknown mailbox",
                text,
                re.I,
            ):
                return FolderMissing("This folder no longer exists on the server.", detail=text)
            return ProtocolError(
                f"The mail server refused a command ({what.split(' ')[0]}).",
                detail=f"{what}: {text}",
            )
        return ProtocolError(
            "The mail server sent an answer we could not read.",
            detail=f"{what}: {type(exc).__name__}: {exc}",
        )

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        self._require()
        try:
            yield
        except (KeyboardInterrupt, SystemExit):
            self._dead()
            raise
        except PipemailError:
            raise
        except Exception as exc:  # noqa: BLE001 - everything becomes a typed error
            raise self._map(exc, what)

    # ------------------------------------------------------------ folders

    def list_folders(self) -> list[tuple[tuple[str, ...], str, str]]:
        """(flags, delimiter, name) with names decoded from modified UTF-7."""
        client = self._require()
        with self._guard("list"):
            rows = client.list_folders()
        out = []
        for flags, delim, name in rows:
            out.append(
                (
                    tuple(_text(f) for f in flags),
                    _text(delim) if delim is not None else "",
                    _text(name),
                )
            )
        return out

    def status(self, folder: str, items: Sequence[str] | None = None) -> dict[str, int]:
        client = self._require()
        wanted = list(items or ("MESSAGES", "UNSEEN", "UIDNEXT", "UIDVALIDITY"))
        if "HIGHESTMODSEQ" in wanted and not self.condstore:
            wanted.remove("HIGHESTMODSEQ")
        with self._guard(f"status {folder}"):
            data = client.folder_status(folder, wanted)
        return {_text(k).upper(): int(v) for k, v in data.items() if isinstance(v, int)}

    def select(self, folder: str, *, readonly: bool = False) -> Mailbox:
        """SELECT/EXAMINE; UIDNEXT falls back to STATUS for servers that omit it."""
        client = self._require()
        self.selected = None
        with self._guard(f"select {folder}"):
            resp = client.select_folder(folder, readonly=readonly)
        try:
            uidvalidity = int(resp[b"UIDVALIDITY"])
        except (KeyError, TypeError, ValueError):
            raise ProtocolError(
                "The mail server did not give this folder's UIDVALIDITY.", detail=str(resp)
            )
        uidnext = resp.get(b"UIDNEXT")
        if not isinstance(uidnext, int):
            uidnext = self._uidnext_fallback(folder)
        highest: int | None = None
        if self.condstore and b"NOMODSEQ" not in resp:
            value = resp.get(b"HIGHESTMODSEQ")
            highest = value if isinstance(value, int) and value > 0 else None
        mailbox = Mailbox(
            name=folder,
            uidvalidity=uidvalidity,
            uidnext=int(uidnext),
            exists=int(resp.get(b"EXISTS") or 0),
            highestmodseq=highest,
            readonly=readonly,
        )
        self.selected = mailbox
        self._drop_untagged()
        return mailbox

    def _uidnext_fallback(self, folder: str) -> int:
        with self._guard(f"fetch * {folder}"):
            data = self._fetch("*", ["UID"])
        highest = max(data.keys(), default=0)
        return int(highest) + 1

    def _drop_untagged(self, *names: str) -> None:
        """Forget unsolicited responses imaplib keeps forever (EXISTS, VANISHED, FETCH...)."""
        client = self._client
        if client is None:
            return
        untagged = client._imap.untagged_responses
        if names:
            for name in names:
                untagged.pop(name, None)
        else:
            untagged.clear()

    def _pop_untagged(self, name: str) -> list[Any]:
        client = self._client
        if client is None:
            return []
        return list(client._imap.untagged_responses.pop(name, []) or [])

    # ------------------------------------------------------------ search

    def search_uids(
        self,
        low: int,
        high: int,
        criteria: Sequence[Any] = (),
        *,
        descending: bool = False,
    ) -> Iterator[tuple[int, int, list[int]]]:
        """UIDs in [low, high] matching ``criteria``, one UID window at a time.

        Yields ``(window_low, window_high, uids)`` with the UIDs sorted in the walking
        direction, windows covering [low, high] without gaps. The window grows when the
        folder is sparse and shrinks when it is crowded, so neither the command count
        nor one response line explodes.
        """
        if high < low:
            return
        window = SEARCH_WINDOW
        if descending:
            top = high
            while top >= low:
                bottom = max(low, top - window + 1)
                found = self._search_window(bottom, top, criteria)
                yield bottom, top, sorted(found, reverse=True)
                top = bottom - 1
                window = _adapt(window, len(found))
        else:
            bottom = low
            while bottom <= high:
                top = min(high, bottom + window - 1)
                found = self._search_window(bottom, top, criteria)
                yield bottom, top, sorted(found)
                bottom = top + 1
                window = _adapt(window, len(found))

    def _search_window(self, low: int, high: int, criteria: Sequence[Any]) -> list[int]:
        client = self._require()
        crit: list[Any] = ["UID", f"{low}:{high}", *criteria]
        if self.has("ESEARCH"):
            args = [b"RETURN", b"(ALL)"] + [_search_arg(c) for c in crit]
            with self._guard(f"search {low}:{high}"):
                data = client._raw_command_untagged(b"SEARCH", args, response_name="ESEARCH")
            uids: list[int] = []
            for line in data:
                if not line:
                    continue
                match = re.search(rb"\bALL\s+([\d:,]+)", line if isinstance(line, bytes) else b"")
                if match:
                    uids.extend(parse_uid_set(match.group(1), limit=high - low + 1))
            return [u for u in uids if low <= u <= high]
        with self._guard(f"search {low}:{high}"):
            found = client.search(crit)
        # A server may answer "n:*" style ranges loosely; keep exactly what was asked.
        return [int(u) for u in found if low <= int(u) <= high]

    def count(self, criteria: Sequence[Any]) -> int | None:
        """Number of messages matching ``criteria`` via ESEARCH COUNT, if available."""
        if not self.has("ESEARCH"):
            return None
        client = self._require()
        args = [b"RETURN", b"(COUNT)"] + [_search_arg(c) for c in criteria]
        if not criteria:
            args.append(b"ALL")
        with self._guard("search count"):
            data = client._raw_command_untagged(b"SEARCH", args, response_name="ESEARCH")
        for line in data:
            match = re.search(rb"\bCOUNT\s+(\d+)", line if isinstance(line, bytes) else b"")
            if match:
                return int(match.group(1))
        return 0

    def uid_exists(self, uid: int) -> bool:
        client = self._require()
        with self._guard(f"search uid {uid}"):
            found = client.search(["UID", str(uid)])
        return uid in {int(u) for u in found}

    # ------------------------------------------------------------ fetch

    def _fetch(
        self, target: str, items: Sequence[str], modifiers: Sequence[str] | None = None
    ) -> dict[int, dict[bytes, Any]]:
        """UID FETCH keyed by UID; unsolicited FETCHes (no UID item) are dropped.

        imapclient's own ``fetch`` keys unsolicited flag updates by sequence number,
        which can collide with a UID, and cannot filter a string sequence set.
        """
        client = self._require()
        imap = client._imap
        tag = imap._command(
            "UID",
            "FETCH",
            target,
            seq_to_parenstr_upper(items),
            seq_to_parenstr_upper(modifiers) if modifiers else None,
        )
        typ, data = imap._command_complete("FETCH", tag)
        client._checkok("fetch", typ, data)
        typ, data = imap._untagged_response(typ, data, "FETCH")
        try:
            return fast_parse_fetch(data)
        except (_Unparsable, ValueError) as exc:
            log.debug("fast FETCH parse declined (%s); using imapclient's parser", exc)
        parsed = parse_fetch_response(data, False, False)
        out: dict[int, dict[bytes, Any]] = {}
        for item in parsed.values():
            uid = item.get(b"UID")
            if isinstance(uid, int):
                out.setdefault(uid, {}).update(item)
        return out

    def fetch_sizes(self, uids: Sequence[int]) -> dict[int, int]:
        """RFC822.SIZE per UID: lets the caller plan body FETCHes under a byte budget."""
        if not uids:
            return {}
        with self._guard("fetch sizes"):
            data = self._fetch(uid_set(uids), ["UID", "RFC822.SIZE"])
        self._drop_untagged("FETCH")
        return {int(uid): int(item.get(b"RFC822.SIZE") or 0) for uid, item in data.items()}

    def message_items(self, *, header_only: bool = False) -> list[str]:
        items = ["UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE"]
        items.append("BODY.PEEK[HEADER]" if header_only else "BODY.PEEK[]")
        if self.selected is not None and self.selected.highestmodseq is not None:
            items.append("MODSEQ")
        if self.is_gmail:
            items += ["X-GM-MSGID", "X-GM-THRID", "X-GM-LABELS"]
        return items

    def fetch_messages(
        self, uids: Sequence[int], *, header_only: bool = False
    ) -> dict[int, FetchedMessage]:
        """One UID FETCH for all ``uids``: flags, date, size, body (or header), ids."""
        if not uids:
            return {}
        items = self.message_items(header_only=header_only)
        with self._guard("fetch messages"):
            data = self._fetch(uid_set(uids), items)
        self._drop_untagged("FETCH")
        wanted = set(uids)
        return {
            int(uid): fetched_from_response(int(uid), item)
            for uid, item in data.items()
            if int(uid) in wanted
        }

    def fetch_identity(self, uids: Sequence[int]) -> dict[int, FetchedMessage]:
        """Size (+ Gmail ids); enough to decide whether a body must be fetched."""
        if not uids:
            return {}
        items = ["UID", "RFC822.SIZE", "FLAGS"]
        if self.is_gmail:
            items += ["X-GM-MSGID", "X-GM-LABELS"]
        with self._guard("fetch identity"):
            data = self._fetch(uid_set(uids), items)
        self._drop_untagged("FETCH")
        return {int(uid): fetched_from_response(int(uid), item) for uid, item in data.items()}

    def fetch_flags(
        self,
        uids: str | Sequence[int],
        *,
        changedsince: int | None = None,
        vanished: bool = False,
        labels: bool = False,
    ) -> tuple[dict[int, FlagState], list[tuple[int, int]]]:
        """FLAGS (+MODSEQ, X-GM-LABELS) for a UID set; CHANGEDSINCE/VANISHED if asked.

        Returns the flags and the VANISHED ranges seen while the command ran (the
        EARLIER ones it asked for and any unsolicited ones: both are real expunges of
        the selected folder). Never sends a mod-sequence modifier to a folder without
        mod-sequences: that raises, because silently dropping it would turn "what
        changed" into "nothing changed".
        """
        self._require()
        use_modseq = self.selected is not None and self.selected.highestmodseq is not None
        if changedsince is not None and not use_modseq:
            raise ProtocolError(
                "Internal error: CHANGEDSINCE asked for a folder without mod-sequences."
            )
        if vanished and not (self.qresync and changedsince is not None):
            raise ProtocolError("Internal error: VANISHED asked without QRESYNC.")
        items = ["UID", "FLAGS"]
        if use_modseq:
            items.append("MODSEQ")
        if labels and self.is_gmail:
            items.append("X-GM-LABELS")
        modifiers: list[str] = []
        if changedsince is not None:
            modifiers.append(f"CHANGEDSINCE {int(changedsince)}")
            if vanished:
                modifiers.append("VANISHED")
        target = uids if isinstance(uids, str) else uid_set(uids)
        self._drop_untagged("VANISHED")
        with self._guard("fetch flags"):
            data = self._fetch(target, items, modifiers or None)
        gone: list[tuple[int, int]] = []
        for line in self._pop_untagged("VANISHED"):
            text = _text(line).strip()
            if text.upper().startswith("(EARLIER)"):
                text = text[len("(EARLIER)") :].strip()
            gone.extend(uid_ranges(text))
        self._drop_untagged("FETCH")
        if isinstance(uids, str):
            wanted = None
        else:
            wanted = set(uids)
        out: dict[int, FlagState] = {}
        for uid, item in data.items():
            if wanted is not None and int(uid) not in wanted:
                continue
            if b"FLAGS" not in item:
                continue
            labels_value = item.get(b"X-GM-LABELS")
            out[int(uid)] = FlagState(
                flags=normalize_flags(item.get(b"FLAGS", ())),
                modseq=_modseq(item.get(b"MODSEQ")),
                labels=decode_labels(labels_value) if labels_value is not None else None,
            )
        return out, gone

    # ------------------------------------------------------------ changes

    def store_flags(self, uids: Sequence[int], flags: Sequence[str], *, add: bool) -> None:
        client = self._require()
        with self._guard("store"):
            if add:
                client.add_flags(uid_set(uids), list(flags), silent=True)
            else:
                client.remove_flags(uid_set(uids), list(flags), silent=True)
        self._drop_untagged("FETCH")

    def store_labels(self, uids: Sequence[int], labels: Sequence[str], *, add: bool) -> None:
        client = self._require()
        with self._guard("store labels"):
            if add:
                client.add_gmail_labels(uid_set(uids), list(labels), silent=True)
            else:
                client.remove_gmail_labels(uid_set(uids), list(labels), silent=True)
        self._drop_untagged("FETCH")

    def expunge_uids(self, uids: Sequence[int]) -> None:
        """UID EXPUNGE of exactly these UIDs (UIDPLUS): never another client's
        ``\\Deleted`` messages, as a plain EXPUNGE would."""
        client = self._require()
        with self._guard("expunge"):
            client.expunge(list(uids))
        self._drop_untagged("EXPUNGE", "VANISHED")

    def move(self, uids: Sequence[int], folder: str) -> tuple[int, dict[int, int]] | None:
        """UID MOVE (or COPY + EXPUNGE of exactly these UIDs); returns COPYUID if given.

        Without MOVE we only proceed when UIDPLUS lets us expunge the moved UIDs alone:
        a plain EXPUNGE would also remove every other \\Deleted message of the folder.
        """
        client = self._require()
        self._drop_untagged("COPYUID", "OK")
        target = uid_set(uids)
        if self.has("MOVE"):
            with self._guard(f"move {folder}"):
                client.move(target, folder)
        else:
            if not self.has("UIDPLUS"):
                raise CapabilityMissing(
                    "This server can neither move messages nor delete only chosen ones "
                    "(no MOVE and no UIDPLUS), so we do not change folders on it."
                )
            with self._guard(f"copy {folder}"):
                resp = client.copy(target, folder)
                copied = parse_copyuid(resp) or self._copyuid()
                client.add_flags(target, ["\\Deleted"], silent=True)
                client.uid_expunge(target)
            self._drop_untagged("FETCH", "EXPUNGE", "VANISHED")
            return copied
        copied = self._copyuid()
        self._drop_untagged("FETCH", "EXPUNGE", "VANISHED")
        return copied

    def _copyuid(self) -> tuple[int, dict[int, int]] | None:
        """COPYUID from the last COPY/MOVE (imaplib files response codes as untagged)."""
        found = None
        for value in self._pop_untagged("COPYUID"):
            found = parse_copyuid(value) or found
        return found

    def append(
        self,
        folder: str,
        raw: bytes,
        *,
        flags: Sequence[str] = (),
        when: datetime | None = None,
    ) -> tuple[int, int] | None:
        """APPEND; returns (UIDVALIDITY, UID) from APPENDUID when the server has UIDPLUS."""
        client = self._require()
        self._drop_untagged("APPENDUID")
        with self._guard(f"append {folder}"):
            resp = client.append(folder, raw, flags=tuple(flags), msg_time=when)
        found = parse_appenduid(resp)
        if found is None:
            for value in self._pop_untagged("APPENDUID"):
                found = parse_appenduid(
                    b"APPENDUID " + (value if isinstance(value, bytes) else b"")
                )
                if found:
                    break
        return found

    def noop(self) -> None:
        client = self._require()
        with self._guard("noop"):
            client.noop()
        self._drop_untagged()


# ----------------------------------------------------------------- helpers


def _adapt(window: int, found: int) -> int:
    if found == 0:
        return min(window * 4, MAX_SEARCH_WINDOW)
    if found < SEARCH_WINDOW // 4:
        return min(window * 2, MAX_SEARCH_WINDOW)
    if found > SEARCH_WINDOW * 2:
        return max(window // 2, 1000)
    return window


def _search_arg(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        return imap_date(value).encode("ascii")
    return str(value).encode("ascii")


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def imap_date(value: date) -> str:
    """SEARCH date (``1-Feb-2024``), built without strftime so locale never matters."""
    return f"{value.day}-{_MONTHS[value.month - 1]}-{value.year}"


def _oauth_mech(mech: str, user: str, token: str) -> Callable[[bytes], bytes]:
    """SASL responder: credentials first, then an empty reply to an error challenge."""
    if mech == "OAUTHBEARER":
        escaped = user.replace("=", "=3D").replace(",", "=2C")
        gs2 = f"n,a={escaped},"
        first = f"{gs2}\x01auth=Bearer {token}\x01\x01".encode()
    else:
        first = f"user={user}\x01auth=Bearer {token}\x01\x01".encode()
    calls = {"n": 0}

    def respond(_challenge: bytes) -> bytes:
        calls["n"] += 1
        return first if calls["n"] == 1 else b""

    return respond


def _shutdown(client: IMAPClient) -> None:
    try:
        client.shutdown()
    except Exception as exc:  # noqa: BLE001 - the socket may already be gone
        log.debug("shutdown of a dead connection: %s", exc)


def retry_delay(attempt: int, *, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential back-off between reconnect attempts (jitter-free: callers are few)."""
    return min(cap, base * (2.0**attempt))


def sleep(seconds: float) -> None:
    time.sleep(seconds)
