"""A fault-injecting TCP proxy for loopback servers.

The engine must survive a connection that dies in the middle of a 20 MB literal, a server
that answers slowly, or one that stops answering. Putting this proxy between client and
server makes those faults exact and repeatable: cut after N bytes downstream, add latency,
swallow traffic, refuse or drop connections.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from dataclasses import dataclass

from ._common import LOOPBACK


@dataclass
class _CutRule:
    n_bytes: int
    remaining: int | None  # None = every connection
    reset: bool


class _Conn:
    def __init__(self, proxy: TCPProxy, client: socket.socket, server: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.server = server
        self.down = 0  # server -> client bytes forwarded
        self.up = 0
        self.cut_base: int | None = None  # downstream count when the cut rule applied
        # set before the last bytes of a cut go to the client: whatever the client sends
        # in answer to them must not reach the server in the instant before the close
        self.cutting = threading.Event()
        self.closed = threading.Event()
        self._close_lock = threading.Lock()

    def close(self, reset: bool = False) -> None:
        with self._close_lock:
            if self.closed.is_set():
                return
            self.closed.set()
        for sock in (self.client, self.server):
            try:
                if reset:
                    # SO_LINGER 0 makes close() send RST: the peer sees ECONNRESET.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                else:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                sock.close()
            except OSError:
                pass


class TCPProxy:
    """Forward ``127.0.0.1:<port>`` to ``target_host:target_port`` with injectable faults.

    ``connections`` counts accepted client connections (reconnect attempts are visible
    there); ``active`` is how many are open now.
    """

    def __init__(
        self, target_host: str, target_port: int, *, host: str = LOOPBACK, start: bool = True
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.host = host
        self.port = 0
        self.connections = 0
        self.bytes_down = 0
        self.bytes_up = 0
        self.cuts = 0
        self._delay = 0.0
        self._blackhole = False
        self._refuse = False
        self._cut: _CutRule | None = None
        self._conns: set[_Conn] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        if start:
            self.start()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> TCPProxy:
        if self._listener is not None:
            return self
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(128)
        # close() does not wake a thread blocked in accept() on Linux: poll instead.
        listener.settimeout(0.1)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._accept_loop, daemon=True, name=f"tcp-proxy-{self.port}"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and drop every connection."""
        self._stopping.set()
        if self._listener is not None:
            try:
                self._listener.close()
            except OSError:
                pass
            self._listener = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.close_all()

    close = stop

    def __enter__(self) -> TCPProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def active(self) -> int:
        with self._lock:
            return len(self._conns)

    # ------------------------------------------------------------------ controls

    def cut_after(self, n_bytes: int, times: int | None = 1, reset: bool = False) -> None:
        """Cut a connection once ``n_bytes`` more have flowed server -> client.

        Bytes are counted from now for open connections and from the start for new ones.
        Exactly ``n_bytes`` reach the client, then both sides are closed (FIN, or RST with
        ``reset=True``). Applies to ``times`` connections (None: every one until cleared).
        """
        if n_bytes < 0:
            raise ValueError("n_bytes must be >= 0")
        with self._lock:
            self._cut = _CutRule(n_bytes, times, reset)
            for conn in self._conns:
                conn.cut_base = conn.down

    def clear_cut(self) -> None:
        with self._lock:
            self._cut = None

    def delay(self, seconds: float) -> None:
        """Hold each forwarded chunk (both directions) this long; 0 turns it off."""
        self._delay = max(0.0, seconds)

    def blackhole(self, enabled: bool = True) -> None:
        """Keep connections open but forward nothing (a hung server or dead NAT path)."""
        self._blackhole = enabled

    def refuse(self, enabled: bool = True) -> None:
        """Accept and immediately close new connections (server unreachable)."""
        self._refuse = enabled

    def close_all(self, reset: bool = False) -> int:
        """Drop every open connection now; returns how many were dropped."""
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            conn.close(reset=reset)
        return len(conns)

    # ------------------------------------------------------------------ pumping

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            with self._lock:
                self.connections += 1
            if self._refuse:
                client.close()
                continue
            try:
                server = socket.create_connection((self.target_host, self.target_port), timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(self, client, server)
            with self._lock:
                conn.cut_base = 0 if self._cut is not None else None
                self._conns.add(conn)
            threading.Thread(target=self._pump, args=(conn, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(conn, False), daemon=True).start()

    def _pump(self, conn: _Conn, downstream: bool) -> None:
        src, dst = (conn.server, conn.client) if downstream else (conn.client, conn.server)
        try:
            while not conn.closed.is_set():
                try:
                    ready, _, _ = select.select([src], [], [], 0.2)
                except (OSError, ValueError):
                    break
                if not ready:
                    continue
                try:
                    data = src.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                while self._blackhole and not conn.closed.is_set():
                    time.sleep(0.05)
                if self._delay:
                    time.sleep(self._delay)
                if downstream and self._forward_down(conn, data):
                    return
                if not downstream:
                    if conn.cutting.is_set():
                        break
                    dst.sendall(data)
                    with self._lock:
                        conn.up += len(data)
                        self.bytes_up += len(data)
        except OSError:
            pass
        finally:
            conn.close()
            with self._lock:
                self._conns.discard(conn)

    def _forward_down(self, conn: _Conn, data: bytes) -> bool:
        """Send ``data`` to the client, honouring a cut rule; True when the conn was cut."""
        with self._lock:
            rule = self._cut
            cut_at: int | None = None
            if rule is not None and (rule.remaining is None or rule.remaining > 0):
                if conn.cut_base is None:
                    conn.cut_base = conn.down
                budget = conn.cut_base + rule.n_bytes - conn.down
                if len(data) >= budget:
                    cut_at = max(0, budget)
                    if rule.remaining is not None:
                        rule.remaining -= 1
                        if rule.remaining == 0:
                            self._cut = None
                    self.cuts += 1
        if cut_at is not None:
            conn.cutting.set()
        chunk = data if cut_at is None else data[:cut_at]
        if chunk:
            conn.client.sendall(chunk)
            with self._lock:
                conn.down += len(chunk)
                self.bytes_down += len(chunk)
        if cut_at is not None:
            conn.close(reset=rule.reset if rule else False)
            return True
        return False
