"""Where the app listens: a loopback TCP address or a Unix socket, parsed once at start.

Both kinds are reached through tornado's TCPClient with a resolver that returns the socket
address, so the HTTP client and the websocket client share one code path for either kind.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import List, Tuple
from urllib.parse import urlsplit

from tornado.netutil import Resolver

#: Host name used in upstream URLs when the app listens on a Unix socket.
UNIX_HOST = "unix-socket"


class UpstreamError(ValueError):
    """The ``--upstream`` value is not an address the gate can forward to."""


@dataclass(frozen=True)
class Upstream:
    """The app's address. ``base_path`` is prepended to every forwarded path (no trailing /)."""

    host: str
    port: int
    socket_path: str = ""
    base_path: str = ""

    @classmethod
    def parse(cls, value: str) -> "Upstream":
        """Accept ``http://HOST:PORT[/base]`` or ``unix:/absolute/path.sock``."""
        if value.startswith("unix:"):
            path = value[len("unix:"):]
            if not path.startswith("/"):
                raise UpstreamError(f"--upstream {value!r}: a Unix socket needs an absolute path")
            return cls(host=UNIX_HOST, port=80, socket_path=path)
        parts = urlsplit(value)
        if parts.scheme != "http":
            raise UpstreamError(
                f"--upstream {value!r}: use http://HOST:PORT or unix:/path/to.sock "
                "(the app is on the pod's own loopback, so there is no TLS to it)"
            )
        if not parts.hostname:
            raise UpstreamError(f"--upstream {value!r}: no host")
        if parts.query or parts.fragment or parts.username:
            raise UpstreamError(f"--upstream {value!r}: no query, fragment or credentials allowed")
        try:
            port = parts.port or 80
        except ValueError as err:
            raise UpstreamError(f"--upstream {value!r}: {err}") from None
        return cls(host=parts.hostname, port=port, base_path=parts.path.rstrip("/"))

    @property
    def netloc(self) -> str:
        """``host:port`` as the app sees itself addressed (used to spot its own absolute URLs)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def url(self, path: str, scheme: str = "http") -> str:
        return f"{scheme}://{self.netloc}{path}"

    def resolver(self) -> Resolver:
        return _SocketResolver(self)

    def __str__(self) -> str:
        if self.socket_path:
            return f"unix:{self.socket_path}"
        return f"http://{self.netloc}{self.base_path}"


class _SocketResolver(Resolver):
    """Resolves the upstream's name to its socket address, without DNS: the app is local."""

    def initialize(self, upstream: Upstream) -> None:  # type: ignore[override]
        self.upstream = upstream

    async def resolve(
        self, host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> List[Tuple[int, object]]:
        up = self.upstream
        if up.socket_path:
            return [(socket.AF_UNIX, up.socket_path)]
        infos = socket.getaddrinfo(up.host, up.port, family, socket.SOCK_STREAM)
        return [(info[0], info[4]) for info in infos]
