"""A plain TCP relay on a loopback port, for outages the tests cause on purpose.

Clients are given the relay's address instead of a server's; `stop()` closes the port and
every connection through it (clients see refused and reset connections, as when the server is
down), `start()` opens it again. Bytes pass untouched (TLS goes end to end). Not a fake: the
server behind it is the real one.
"""
from __future__ import annotations

import socket
import socketserver
import threading


class TcpRelay:
    def __init__(self, port: int, target: tuple):
        self.port = port
        self.target = target
        self._server: socketserver.ThreadingTCPServer | None = None
        self._sockets: set = set()
        self._lock = threading.Lock()

    def start(self) -> "TcpRelay":
        relay = self

        class Pipe(socketserver.BaseRequestHandler):
            def handle(self):
                try:
                    upstream = socket.create_connection(relay.target)
                except OSError:
                    return
                with relay._lock:
                    relay._sockets |= {self.request, upstream}
                back = threading.Thread(target=_pump, args=(upstream, self.request), daemon=True)
                back.start()
                _pump(self.request, upstream)
                back.join()
                with relay._lock:
                    relay._sockets -= {self.request, upstream}
                upstream.close()

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", self.port), Pipe)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Close the port and cut every connection through it."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
