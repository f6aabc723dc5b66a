"""A TLS terminator in front of the broker, built like stunnel: blocking sockets, two threads a connection.

asyncio's TLS server aborts a connection whose handshake fails without flushing the TLS alert; real brokers
and terminators send it (a client then learns, say, that its certificate was required), so this one does too.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading


class TlsTerminator:
    def __init__(self, listen_port: int, target_port: int, context: ssl.SSLContext) -> None:
        self._target = ("127.0.0.1", target_port)
        self._context = context
        self._server = socket.create_server(("127.0.0.1", listen_port), reuse_port=False)
        self._server.settimeout(0.2)
        self._stopping = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self) -> TlsTerminator:
        self._spawn(self._accept)
        return self

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                raw, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._spawn(self._serve, raw)

    def _serve(self, raw: socket.socket) -> None:
        self._track(raw)
        raw.settimeout(30)
        try:
            client = self._context.wrap_socket(raw, server_side=True)  # a failed handshake sends its alert
        except (ssl.SSLError, OSError):
            raw.close()
            return
        self._track(client)
        try:
            broker = socket.create_connection(self._target, timeout=30)
        except OSError:
            client.close()
            return
        self._track(broker)
        client.settimeout(None)
        broker.settimeout(None)
        self._spawn(self._pipe, broker, client)
        self._pipe(client, broker)

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(256 * 1024):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def stop(self) -> None:
        self._stopping.set()
        self._server.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(timeout=5)
