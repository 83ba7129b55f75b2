"""The gate's tornado handlers: the OAuth callback, the HTTP proxy and the websocket proxy.

Every proxied request is authorized by the hub before a single byte goes to the app:
``prepare`` asks the hub (through ``HubOAuth``, cached) who the request is from, and checks
the scopes the hub granted against ``JUPYTERHUB_OAUTH_ACCESS_SCOPES``. The gate keeps no user
lists: an owner, an admin or anyone the hub's RBAC grants ``access:servers`` on this server
gets in, everyone else gets a 403 (or the hub's login, for an anonymous page view).

Cross-site requests are refused with the algorithm of tornado's ``cross_origin_protection``
(Fetch Metadata, then ``Origin``), applied in ``prepare`` and by HubOAuth's cookie check; it
stands in for the hub's own XSRF token, which the apps behind the gate cannot send, so a
cookie is accepted for any same-origin request instead.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import urlsplit

import jupyterhub
from jupyterhub.services.auth import (
    HubOAuth,
    HubOAuthCallbackHandler,
    HubOAuthenticated,
    UserNotAllowed,
)
from tornado import httputil
from tornado.escape import xhtml_escape
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.iostream import StreamClosedError
from tornado.web import HTTPError, RequestHandler, stream_request_body
from tornado.websocket import WebSocketClosedError, WebSocketHandler, websocket_connect

from . import rewrite
from .activity import ActivityReporter
from .client import Exchange, UpstreamPool, UpstreamUnavailable
from .upstream import Upstream

log = logging.getLogger("tycho_gate")
#: A refused request's body is read (and dropped) up to this size before answering.
MAX_DRAINED = 1 << 20


@dataclass
class Gate:
    """What every handler shares; one per process, in the application's settings."""

    hub_auth: HubOAuth
    upstream: Upstream
    pool: UpstreamPool
    paths: rewrite.PathMap
    activity: ActivityReporter
    websocket_max_message_size: int
    prefix_header: str = ""


class GateAuthenticated(HubOAuthenticated):
    """Hub authentication done once, asynchronously, in ``prepare``."""

    @property
    def gate(self) -> Gate:
        return self.settings["tycho_gate"]

    @property
    def hub_auth(self) -> HubOAuth:  # type: ignore[override]
        return self.settings["tycho_gate"].hub_auth

    def set_default_headers(self) -> None:
        # The hub compares this with its own version when it checks that the server is up.
        self.set_header("X-JupyterHub-Version", jupyterhub.__version__)

    async def authenticate(self) -> Optional[dict]:
        """The hub's model of the requester if the hub lets them use this server, else None.

        Raises 403 for a known user or service the hub does not grant access to, so that
        they see why instead of being sent round the login again.
        """
        model = await self.hub_auth.get_user(self, sync=False)
        if model is None:
            return None
        try:
            return self.check_hub_user(model)
        except UserNotAllowed:
            raise HTTPError(
                403, "%s %s may not use this server", model.get("kind", "user"), model.get("name")
            ) from None

    def check_xsrf_cookie(self) -> None:
        """Called by HubOAuth before it accepts a cookie on a non-navigation request.

        The apps behind the gate cannot echo the hub's XSRF token, so the cookie is accepted
        for same-origin requests (tornado's cross-origin check: Sec-Fetch-Site, then Origin).
        """
        # tornado 6.6's implementation of its cross_origin_protection setting (pinned).
        error = self._check_cross_origin(self.check_trusted_origin)  # type: ignore[attr-defined]
        if error is not None:
            raise HTTPError(403, error)

    def token_authenticated(self) -> bool:
        return bool(getattr(self, "_token_authenticated", False))

    def upstream_target(self) -> str:
        return self.gate.paths.to_upstream(self.request.uri or "/", drop_token=self.token_authenticated())

    def upstream_headers(self, websocket: bool = False) -> httputil.HTTPHeaders:
        request = self.request
        headers = httputil.HTTPHeaders()
        for name, value in rewrite.forward_request_headers(
            request.headers.get_all(),
            gate_cookie=self.hub_auth.cookie_name,
            drop_authorization=self.token_authenticated(),
            remote_ip=request.remote_ip or "",
            scheme=request.headers.get("X-Forwarded-Proto", request.protocol).split(",")[0].strip(),
            host=request.host,
            prefix=self.gate.paths.prefix,
            websocket=websocket,
            prefix_header=self.gate.prefix_header,
        ):
            headers.add(name, value)
        return headers

    def own_netlocs(self) -> set:
        """Hosts under which the app may refer to itself in absolute URLs."""
        return {self.gate.upstream.netloc, self.request.host}

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        reason = self._reason
        message = ""
        exc_info = kwargs.get("exc_info")
        if exc_info and isinstance(exc_info[1], HTTPError) and exc_info[1].log_message:
            err = exc_info[1]
            message = err.log_message % err.args if err.args else err.log_message
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(
            "<!doctype html><html><head><title>{code} {reason}</title></head><body>"
            "<h1>{code} {reason}</h1><p>{message}</p></body></html>".format(
                code=status_code,
                reason=xhtml_escape(reason),
                message=xhtml_escape(message),
            )
        )


class OAuthCallbackHandler(GateAuthenticated, HubOAuthCallbackHandler):
    """The end of the hub's login: stores the user's token in the gate's own cookie."""


class _Relay(httputil.HTTPMessageDelegate):
    """Writes the app's response to the browser as it arrives, one chunk at a time."""

    def __init__(self, handler: "HTTPProxyHandler"):
        self.handler = handler
        self.started = False
        self.client_gone = False

    def headers_received(self, start_line, headers):  # type: ignore[override]
        if not isinstance(start_line, httputil.ResponseStartLine) or start_line.code < 200:
            return None
        self.started = True
        self.handler.relay_headers(start_line, headers)
        return None

    async def data_received(self, chunk: bytes) -> None:  # type: ignore[override]
        if self.client_gone:
            return
        self.handler.write(chunk)
        try:
            await self.handler.flush()
        except StreamClosedError:
            # The browser went away: stop reading from the app (closing the connection ends
            # the read quietly; raising here would log a traceback for a normal event).
            self.client_gone = True
            if self.handler.exchange is not None:
                self.handler.exchange.abort()

    def finish(self) -> None:
        pass

    def on_connection_close(self) -> None:
        pass


@stream_request_body
class HTTPProxyHandler(GateAuthenticated, RequestHandler):
    """Plain HTTP to the app, request and response bodies streamed in both directions."""

    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS")
    exchange: Optional[Exchange] = None
    body_sent = False

    def compute_etag(self) -> Optional[str]:
        # The body streams through; tornado must not hash (an empty) buffer into an ETag.
        return None

    def clear(self) -> None:
        super().clear()
        # tornado's defaults would claim a type the app never sent.
        self.clear_header("Content-Type")
        self.clear_header("Server")

    refusal: Optional[HTTPError] = None
    drained = 0

    async def prepare(self) -> None:
        try:
            if self.request.method not in ("GET", "HEAD", "OPTIONS"):
                # Same rule as tornado's cross_origin_protection setting, applied here so the
                # refusal can wait for the body (see below).
                self.check_xsrf_cookie()
            user = await self.authenticate()
            if user is None:
                if self.request.method in ("GET", "HEAD"):
                    self.redirect(self.get_login_url())
                    return
                raise HTTPError(403, "Sign in through the hub first")
        except HTTPError as err:
            if not self._has_body():
                raise
            # Answering before the body is read makes the kernel reset the connection, and
            # the hub's proxy would show a 503 instead of this answer: read it first.
            self.refusal = err
            return
        self.current_user = user
        self.gate.activity.touch()
        self.exchange = await self._open()

    def _has_body(self) -> bool:
        headers = self.request.headers
        return headers.get("Content-Length", "0") != "0" or "Transfer-Encoding" in headers

    async def _open(self, fresh: bool = False) -> Exchange:
        try:
            exchange = await Exchange.open(self.gate.pool, fresh=fresh)
            await exchange.start(self.request.method or "GET", self.upstream_target(), self.upstream_headers())
        except UpstreamUnavailable as err:
            log.warning("the app is not answering: %s", err)
            raise HTTPError(502, "The app is not answering. It may still be starting, or it stopped.")
        except StreamClosedError:
            if fresh:
                raise HTTPError(502, "The app closed the connection.")
            return await self._open(fresh=True)
        return exchange

    async def data_received(self, chunk: bytes) -> None:
        if self.refusal is not None:
            self.drained += len(chunk)
            if self.drained > MAX_DRAINED:
                self.request.connection.close()
            return
        if self.exchange is None:
            return
        self.body_sent = True
        try:
            await self.exchange.write(chunk)
        except StreamClosedError:
            self.exchange = None
            self.refusal = HTTPError(502, "The app closed the connection while receiving the request.")

    def relay_headers(self, start_line: httputil.ResponseStartLine, headers: httputil.HTTPHeaders) -> None:
        self.set_status(start_line.code, start_line.reason or None)
        paths = self.gate.paths
        for name, value in rewrite.end_to_end(headers.get_all()):
            low = name.lower()
            if low == "location":
                value = paths.location(value, self.own_netlocs())
            elif low == "set-cookie":
                value = paths.set_cookie(value)
            self.add_header(name, value)

    async def relay(self, *path_args: str) -> None:
        if self.refusal is not None:
            raise self.refusal
        exchange = self.exchange
        if exchange is None:
            return
        relay = _Relay(self)
        try:
            ok = await exchange.respond(relay)
        except StreamClosedError:
            ok = False
        if relay.client_gone:
            exchange.abort()
            return
        if not relay.started:
            exchange.abort()
            if exchange.reused and not self.body_sent:
                # An idle connection the app had just closed: once more on a new one.
                self.exchange = await self._open(fresh=True)
                return await self.relay()
            raise HTTPError(502, "The app closed the connection without answering.")
        self.exchange = None  # done with it: back in the pool, or closed
        if not ok:
            # Broken in the middle of the body: the browser must not take it as complete.
            log.warning("the app broke off a response to %s", self.request.path)
            self.request.connection.close()

    def on_connection_close(self) -> None:
        if self.exchange is not None:
            self.exchange.abort()

    get = head = post = delete = patch = put = options = relay  # type: ignore[assignment]


class WebSocketProxyHandler(GateAuthenticated, WebSocketHandler):
    """Websockets to the app: authorized and origin-checked before the app sees the upgrade."""

    upstream_ws: Any = None
    _pump_task: Optional[asyncio.Task] = None

    async def prepare(self) -> None:
        user = await self.authenticate()
        if user is None:
            raise HTTPError(403, "Sign in through the hub first")
        self.current_user = user

    def check_origin(self, origin: str) -> bool:
        """Same host as the page, also when a front proxy rewrote Host (X-Forwarded-Host)."""
        netloc = urlsplit(origin).netloc.lower()
        hosts = {self.request.host.lower()}
        forwarded = self.request.headers.get("X-Forwarded-Host")
        if forwarded:
            hosts.update(h.strip().lower() for h in forwarded.split(","))
        return netloc in hosts

    def get_compression_options(self) -> Optional[dict]:
        return None

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if self.request.headers.get("Upgrade", "").lower() == "websocket":
            # Refuse a cross-site upgrade here, before the app is contacted at all.
            error = self._check_cross_origin(self.check_origin)  # type: ignore[attr-defined]
            if error is not None:
                raise HTTPError(403, "Cross-origin websocket refused")
            await self._connect_upstream()
        self.gate.activity.touch()
        await super().get(*args, **kwargs)

    async def _connect_upstream(self) -> None:
        gate = self.gate
        protocols = [
            p.strip()
            for p in self.request.headers.get("Sec-WebSocket-Protocol", "").split(",")
            if p.strip()
        ]
        request = HTTPRequest(
            gate.upstream.url(self.upstream_target(), scheme="ws"),
            headers=self.upstream_headers(websocket=True),
            connect_timeout=gate.pool.connect_timeout,
            request_timeout=gate.pool.connect_timeout,
            follow_redirects=False,
        )
        try:
            self.upstream_ws = await websocket_connect(
                request,
                subprotocols=protocols or None,
                max_message_size=gate.websocket_max_message_size,
                resolver=gate.upstream.resolver(),
            )
        except HTTPClientError as err:
            code = err.code if 400 <= err.code < 600 and err.code != 599 else 502
            raise HTTPError(code, "The app refused the websocket: %s", err.code)
        except (OSError, StreamClosedError, asyncio.TimeoutError) as err:
            log.warning("websocket to the app failed: %s", err)
            raise HTTPError(502, "The app is not answering.")
        except Exception as err:
            # Any other failure is an answer that is no websocket handshake (tornado's
            # WebSocketError "Non-websocket response" for a plain page, a wrong
            # Sec-WebSocket-Accept): the app's doing, so 502, and tornado's one warning line
            # (this message) in the log rather than a traceback.
            raise HTTPError(502, "The app did not accept a websocket here (%s).", str(err) or type(err).__name__)

    def select_subprotocol(self, subprotocols: list) -> Optional[str]:
        return self.upstream_ws.selected_subprotocol if self.upstream_ws is not None else None

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.set_nodelay(True)
        self._pump_task = asyncio.ensure_future(self._pump())

    async def _pump(self) -> None:
        """The app's messages to the browser, each written before the next is read."""
        upstream = self.upstream_ws
        while True:
            message = await upstream.read_message()
            if message is None:
                self.close(_sendable(upstream.close_code), upstream.close_reason)
                return
            try:
                behind = _behind(self.write_message(message, binary=isinstance(message, bytes)), self.ws_connection)
                if behind is not None:
                    await behind
            except WebSocketClosedError:
                upstream.close()
                return

    def on_message(self, message: Any) -> Optional["asyncio.Future"]:
        # Not a coroutine: tornado awaits what this returns before reading the next message,
        # so returning the write only while the app is behind gives back-pressure without a
        # coroutine per message.
        self.gate.activity.touch()
        try:
            write = self.upstream_ws.write_message(message, binary=isinstance(message, bytes))
        except WebSocketClosedError:
            self.close(1011, "the app closed the connection")
            return None
        return _behind(write, self.upstream_ws.protocol)

    def on_close(self) -> None:
        if self.upstream_ws is not None:
            self.upstream_ws.close(_sendable(self.close_code), self.close_reason)

    def on_connection_close(self) -> None:
        super().on_connection_close()
        if self.upstream_ws is not None and self.ws_connection is None:
            self.upstream_ws.close()


def _behind(write: "asyncio.Future", protocol: Any) -> Optional["asyncio.Future"]:
    """The forwarded message's write if the receiving side is behind, else None.

    Waiting on every write costs event-loop turns per message; never waiting would let a
    slow receiver pile messages up in memory. So the caller waits only while the socket
    still has unsent data (back-pressure); otherwise a failed write is collected quietly
    (the close that caused it reaches the other side by itself).
    """
    stream = getattr(protocol, "stream", None)
    if stream is None or stream.writing():
        return write
    write.add_done_callback(lambda f: f.cancelled() or f.exception())
    return None


def _sendable(code: Optional[int]) -> Optional[int]:
    """Close codes that may be sent on the wire (1005, 1006 and 1015 are reserved)."""
    if code is None:
        return None
    if code in (1000, 1001, 1002, 1003) or 1007 <= code <= 1014 or 3000 <= code <= 4999:
        return code
    return None


class NotFoundHandler(RequestHandler):
    """Anything outside this server's prefix: the hub's proxy never sends such requests."""

    def prepare(self) -> None:
        raise HTTPError(404)
