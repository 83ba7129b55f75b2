"""A streaming HTTP/1.1 client for the app, with keep-alive connections.

tornado's AsyncHTTPClient opens a connection per request and calls its streaming callback
without waiting, so a fast app and a slow browser pile the body up in memory. This client
drives tornado's own ``HTTP1Connection`` directly instead: each body chunk is handed to a
delegate whose returned future (the browser side's flush) is awaited before the next chunk
is read, so memory stays bounded by the socket buffers whatever the body size, and idle
connections are kept for the next request, which saves a connect per request on the hot path.
"""
from __future__ import annotations

import asyncio
from typing import Awaitable, List, Optional

from tornado import httputil
from tornado.http1connection import HTTP1Connection, HTTP1ConnectionParameters
from tornado.iostream import IOStream, StreamClosedError
from tornado.tcpclient import TCPClient

from .upstream import Upstream

#: Largest response header block accepted from the app.
MAX_HEADER_SIZE = 64 * 1024
#: Largest body the app may send in one response (streamed, never held whole).
MAX_BODY_SIZE = 1 << 62
#: How much of the app's response is read at a time. tornado's 64 KiB default left the app's
#: small tail segments waiting on delayed ACKs (1 MB p99 9 ms -> 5 ms in bench/gate_bench.py);
#: the cost is this much buffer per response in flight.
READ_CHUNK = 256 * 1024


class UpstreamUnavailable(Exception):
    """The app did not accept a connection (not started yet, crashed, wrong address)."""


class UpstreamPool:
    """Idle keep-alive connections to the app, reused most-recent first."""

    def __init__(self, upstream: Upstream, max_idle: int = 32, connect_timeout: float = 10.0):
        self.upstream = upstream
        self.max_idle = max_idle
        self.connect_timeout = connect_timeout
        self._idle: List[IOStream] = []
        self._tcp = TCPClient(resolver=upstream.resolver())
        self.params = HTTP1ConnectionParameters(
            no_keep_alive=False,
            max_header_size=MAX_HEADER_SIZE,
            max_body_size=MAX_BODY_SIZE,
            decompress=False,
            chunk_size=READ_CHUNK,
        )

    async def connect(self) -> IOStream:
        try:
            stream = await asyncio.wait_for(
                self._tcp.connect(self.upstream.host, self.upstream.port), self.connect_timeout
            )
        except (OSError, StreamClosedError, asyncio.TimeoutError) as err:
            raise UpstreamUnavailable(f"{self.upstream}: {err or type(err).__name__}") from None
        stream.set_nodelay(True)
        stream.read_chunk_size = READ_CHUNK
        return stream

    def take_idle(self) -> Optional[IOStream]:
        while self._idle:
            stream = self._idle.pop()
            if not stream.closed():
                return stream
        return None

    def give_back(self, stream: IOStream) -> None:
        if stream.closed():
            return
        if len(self._idle) >= self.max_idle:
            stream.close()
            return
        self._idle.append(stream)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


class Exchange:
    """One request/response with the app over one connection.

    Usage: ``start`` (headers), ``write`` for each body chunk, then ``respond`` with a
    delegate that receives the response; the connection goes back to the pool only when both
    messages were complete and the app did not ask to close.
    """

    def __init__(self, pool: UpstreamPool, stream: IOStream, reused: bool):
        self.pool = pool
        self.stream = stream
        self.reused = reused
        self.conn = HTTP1Connection(stream, True, pool.params)
        self._request_done = False

    @classmethod
    async def open(cls, pool: UpstreamPool, fresh: bool = False) -> "Exchange":
        """On an idle connection if there is one (unless ``fresh``), else on a new one."""
        stream = None if fresh else pool.take_idle()
        if stream is not None:
            return cls(pool, stream, reused=True)
        return cls(pool, await pool.connect(), reused=False)

    def start(self, method: str, target: str, headers: httputil.HTTPHeaders) -> Awaitable[None]:
        start_line = httputil.RequestStartLine(method, target, "HTTP/1.1")
        return self.conn.write_headers(start_line, headers)

    def write(self, chunk: bytes) -> Awaitable[None]:
        return self.conn.write(chunk)

    async def respond(self, delegate: httputil.HTTPMessageDelegate) -> bool:
        """Finish the request and relay the response; False if the connection broke."""
        self.conn.finish()
        self._request_done = True
        watcher = _KeepAliveWatcher(delegate)
        ok = await self.conn.read_response(watcher)
        if ok and watcher.reusable and not self.stream.closed():
            self.pool.give_back(self.stream)
        else:
            self.stream.close()
        return ok

    def abort(self) -> None:
        self.stream.close()


class _KeepAliveWatcher(httputil.HTTPMessageDelegate):
    """Passes the response through, noting whether the app allows reusing the connection."""

    def __init__(self, inner: httputil.HTTPMessageDelegate):
        self.inner = inner
        self.reusable = False

    def headers_received(self, start_line, headers):  # type: ignore[override]
        if isinstance(start_line, httputil.ResponseStartLine) and start_line.code >= 200:
            connection = (headers.get("Connection") or "").lower()
            chunked = (headers.get("Transfer-Encoding") or "").lower() == "chunked"
            delimited = "Content-Length" in headers or chunked
            self.reusable = (
                start_line.version == "HTTP/1.1"
                and "close" not in connection
                and (delimited or start_line.code in (204, 304))
            )
        return self.inner.headers_received(start_line, headers)

    def data_received(self, chunk):  # type: ignore[override]
        return self.inner.data_received(chunk)

    def finish(self):  # type: ignore[override]
        return self.inner.finish()

    def on_connection_close(self):  # type: ignore[override]
        self.reusable = False
        return self.inner.on_connection_close()
