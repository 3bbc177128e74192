"""A loopback TCP proxy in front of the test Postgres: it counts the connections made through it and can
cut them all and refuse new ones, like a database host that goes away, then let them through again."""
from __future__ import annotations

import socket
import threading
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa


def _upstream_address(url: str) -> tuple[int, object]:
    """``(family, address)`` of the server ``url`` points at (a unix socket directory in ``?host=`` too)."""
    parts = urlsplit(url)
    host = parse_qs(parts.query).get("host", [parts.hostname or "127.0.0.1"])[0]
    port = parts.port or 5432
    if host.startswith("/"):
        return socket.AF_UNIX, f"{host}/.s.PGSQL.{port}"
    return socket.AF_INET, (host, port)


class PostgresProxy:
    """Forwards 127.0.0.1:<port> to the database of ``url``. ``url`` is the proxied URL;
    ``connections_total`` counts connections accepted while not :meth:`cut`."""

    def __init__(self, database_url: str) -> None:
        self._family, self._address = _upstream_address(database_url)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        port = self._listener.getsockname()[1]
        self.url = sa.make_url(database_url).set(host="127.0.0.1", port=port, query={}) \
            .render_as_string(hide_password=False)
        self.connections_total = 0
        self._refusing = False
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="pg-proxy", daemon=True)
        self._thread.start()

    def cut(self) -> None:
        """Close every open connection and refuse new ones (they are closed at once)."""
        with self._lock:
            self._refusing = True
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            _close(sock)

    def restore(self) -> None:
        with self._lock:
            self._refusing = False

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.cut()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                refusing = self._refusing
                if not refusing:
                    self.connections_total += 1
            if refusing:
                _close(client)
                continue
            try:
                upstream = socket.socket(self._family, socket.SOCK_STREAM)
                upstream.settimeout(5)
                upstream.connect(self._address)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._open.update((client, upstream))
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, target), daemon=True).start()


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        _close(source)
        _close(target)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
