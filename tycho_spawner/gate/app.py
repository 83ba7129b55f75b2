"""``tycho-gate``: the command line, the wait for the app, and the tornado application.

The gate listens only once the app answers: the hub (and the pod's readiness probe) take a
listening server for a ready one, so listening early would send the first users to an error
page. Options come from the command line and from the ``JUPYTERHUB_*`` environment the
spawner gives the gate's container; see ``tycho-gate --help-all``.
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import signal
import sys
import time
from typing import Optional
from urllib.parse import urlsplit

from jupyterhub.services.auth import HubOAuth
from tornado import httputil
from tornado.httpserver import HTTPServer
from tornado.ioloop import PeriodicCallback
from tornado.iostream import StreamClosedError
from tornado.routing import Matcher, PathMatches, Rule
from tornado.web import Application
from traitlets import Bool, Float, Integer, Unicode, default
from traitlets.config import Application as TraitletsApplication

from .activity import ActivityReporter
from .client import Exchange, UpstreamPool, UpstreamUnavailable
from .handlers import Gate, HTTPProxyHandler, NotFoundHandler, OAuthCallbackHandler, WebSocketProxyHandler
from .rewrite import PathMap
from .upstream import Upstream, UpstreamError

#: Environment the hub gives every server; without these the gate cannot authenticate anyone.
REQUIRED_ENV = ("JUPYTERHUB_API_TOKEN", "JUPYTERHUB_CLIENT_ID", "JUPYTERHUB_SERVICE_PREFIX")


class WebSocketUpgrade(Matcher):
    """Matches websocket upgrades under a path, so one prefix serves both kinds of request."""

    def __init__(self, path_pattern: str):
        self.path = PathMatches(path_pattern)

    def match(self, request: httputil.HTTPServerRequest) -> Optional[dict]:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return None
        return self.path.match(request)


class GateApp(TraitletsApplication):
    name = "tycho-gate"
    description = """Hub-authenticated reverse proxy for one web app (tycho_spawner).

    Runs in front of an app that listens on 127.0.0.1 or a Unix socket. Anonymous visitors
    are sent through the JupyterHub login; only users the hub grants access to this server
    get through; the hub's token and cookies never reach the app. The OAuth client, the
    listening address and the prefix come from the JUPYTERHUB_* environment the spawner sets.
    """
    examples = """tycho-gate --upstream http://127.0.0.1:8787
tycho-gate --upstream unix:/tmp/app/app.sock --keep-prefix
"""

    upstream = Unicode(
        "",
        help="""Where the app listens: http://127.0.0.1:PORT[/base-path] or unix:/path/to.sock.

        Keep the app on the pod's loopback (or a socket in a shared emptyDir): the gate is
        meant to be the only way in.""",
    ).tag(config=True)

    keep_prefix = Bool(
        False,
        help="""Pass /user/<name>/... to the app unchanged (the app is configured with that root
        path). By default the prefix is stripped, so the app thinks it lives at /, and the
        Location headers and cookie paths it sends back are moved under the prefix.""",
    ).tag(config=True)

    prefix_header = Unicode(
        "",
        help="""Also send the public prefix (/user/<name>) to the app in this request header,
        e.g. X-RStudio-Root-Path for RStudio. X-Forwarded-Prefix is always sent.""",
    ).tag(config=True)

    ip = Unicode(help="Address to listen on (default: the host of $JUPYTERHUB_SERVICE_URL, else 0.0.0.0).").tag(
        config=True
    )

    @default("ip")
    def _default_ip(self) -> str:
        return urlsplit(os.environ.get("JUPYTERHUB_SERVICE_URL", "")).hostname or "0.0.0.0"

    port = Integer(help="Port to listen on (default: the port of $JUPYTERHUB_SERVICE_URL, else 8888).").tag(
        config=True
    )

    @default("port")
    def _default_port(self) -> int:
        return urlsplit(os.environ.get("JUPYTERHUB_SERVICE_URL", "")).port or 8888

    activity_interval = Float(
        help="""Seconds between activity reports to the hub (default: $JUPYTERHUB_ACTIVITY_INTERVAL,
        else 300). A report is only sent when there was a request since the last one.""",
    ).tag(config=True)

    @default("activity_interval")
    def _default_activity_interval(self) -> float:
        return float(os.environ.get("JUPYTERHUB_ACTIVITY_INTERVAL") or 300)

    ready_timeout = Float(
        0,
        help="""Seconds to wait for the app to answer before giving up with exit status 1
        (0: wait forever; the hub's own start timeout then decides).""",
    ).tag(config=True)

    connect_timeout = Float(10, help="Seconds to wait for a connection to the app.").tag(config=True)

    pool_size = Integer(32, help="Idle keep-alive connections to the app kept for reuse.").tag(config=True)

    websocket_max_message_size = Integer(
        64 * 1024 * 1024, help="Largest websocket message (bytes) passed in either direction."
    ).tag(config=True)

    aliases = {
        "upstream": "GateApp.upstream",
        "prefix-header": "GateApp.prefix_header",
        "ip": "GateApp.ip",
        "port": "GateApp.port",
        "activity-interval": "GateApp.activity_interval",
        "ready-timeout": "GateApp.ready_timeout",
        "log-level": "Application.log_level",
    }
    flags = {
        "keep-prefix": ({"GateApp": {"keep_prefix": True}}, keep_prefix.help),
        "debug": ({"Application": {"log_level": logging.DEBUG}}, "Log every request and hub call."),
    }

    @default("log_level")
    def _default_log_level(self) -> int:
        return logging.INFO

    def _log_format_default(self) -> str:
        return "[%(name)s %(levelname)s %(asctime)s] %(message)s"

    def fail(self, message: str) -> None:
        self.log.critical(message)
        sys.exit(2)

    def make_gate(self) -> Gate:
        missing = [name for name in REQUIRED_ENV if not os.environ.get(name)]
        if missing:
            self.fail(
                f"{', '.join(missing)} not set: tycho-gate runs as a JupyterHub server "
                "and reads its OAuth client from the environment the spawner sets"
            )
        if not self.upstream:
            self.fail("--upstream is required (http://127.0.0.1:PORT or unix:/path/to.sock)")
        try:
            upstream = Upstream.parse(self.upstream)
        except UpstreamError as err:
            self.fail(str(err))
        if self.keep_prefix and upstream.base_path:
            self.fail("--keep-prefix passes the path unchanged; drop the path from --upstream")
        hub_auth = HubOAuth(parent=self, cache_max_age=60)
        paths = PathMap(prefix=hub_auth.base_url, keep_prefix=self.keep_prefix, base_path=upstream.base_path)
        activity = ActivityReporter(
            url=os.environ.get("JUPYTERHUB_ACTIVITY_URL", ""),
            api_token=hub_auth.api_token,
            server_name=os.environ.get("JUPYTERHUB_SERVER_NAME", ""),
            interval=self.activity_interval,
        )
        return Gate(
            hub_auth=hub_auth,
            upstream=upstream,
            pool=UpstreamPool(upstream, max_idle=self.pool_size, connect_timeout=self.connect_timeout),
            paths=paths,
            activity=activity,
            websocket_max_message_size=self.websocket_max_message_size,
            prefix_header=self.prefix_header,
        )

    def make_application(self, gate: Gate) -> Application:
        prefix = gate.paths.prefix
        callback = urlsplit(gate.hub_auth.oauth_redirect_uri).path or prefix + "oauth_callback"
        under_prefix = re.escape(prefix.rstrip("/")) + r"(/.*)?$"
        settings = dict(
            tycho_gate=gate,
            cookie_secret=secrets.token_bytes(32),
            websocket_max_message_size=gate.websocket_max_message_size,
            log_function=_log_request,
        )
        return Application(
            [
                Rule(PathMatches(re.escape(callback) + "$"), OAuthCallbackHandler),
                Rule(WebSocketUpgrade(under_prefix), WebSocketProxyHandler),
                Rule(PathMatches(under_prefix), HTTPProxyHandler),
                Rule(PathMatches(".*"), NotFoundHandler),
            ],
            **settings,
        )

    async def wait_for_upstream(self, gate: Gate) -> None:
        """Return once the app answers any HTTP request on its root path."""
        started = time.monotonic()
        delay = 0.02
        logged = 0.0
        target = gate.paths.to_upstream(gate.paths.prefix)
        while True:
            if await _answers(gate.pool, target, gate.upstream.netloc):
                self.log.info("the app answers at %s (after %.2f s)", gate.upstream, time.monotonic() - started)
                return
            waited = time.monotonic() - started
            if self.ready_timeout and waited > self.ready_timeout:
                self.log.critical("the app at %s did not answer within %.0f s", gate.upstream, self.ready_timeout)
                sys.exit(1)
            if waited - logged >= 10:
                logged = waited
                self.log.info("waiting for the app at %s (%.0f s)", gate.upstream, waited)
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    async def run(self) -> None:
        gate = self.make_gate()
        self.log.info(
            "tycho-gate: %s -> %s (prefix %s)",
            gate.paths.prefix,
            gate.upstream,
            "kept" if gate.paths.keep_prefix else "stripped",
        )
        await self.wait_for_upstream(gate)
        app = self.make_application(gate)
        # No body size limit of the gate's own: bodies stream through and the app decides.
        server = HTTPServer(app, xheaders=False, max_body_size=1 << 50)
        server.listen(self.port, self.ip)
        self.log.info("listening on %s:%d", self.ip, self.port)
        reporter = PeriodicCallback(gate.activity.report, gate.activity.interval * 1000, jitter=0.1)
        reporter.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        self.log.info("stopping")
        reporter.stop()
        server.stop()
        # A last report, so activity of the final minutes is not lost.
        await gate.activity.report()
        gate.pool.close()

    def start(self) -> None:
        asyncio.run(self.run())


async def _answers(pool: UpstreamPool, target: str, host: str) -> bool:
    """True if the app returns any HTTP response (a 404 or a login page counts)."""
    try:
        exchange = await Exchange.open(pool, fresh=True)
    except UpstreamUnavailable:
        return False
    headers = httputil.HTTPHeaders({"Host": host, "User-Agent": "tycho-gate readiness"})
    answered = _Answered()
    try:
        await exchange.start("GET", target, headers)
        await exchange.respond(answered)
    except (StreamClosedError, OSError):
        exchange.abort()
    return answered.code is not None


class _Answered(httputil.HTTPMessageDelegate):
    code: Optional[int] = None

    def headers_received(self, start_line, headers):  # type: ignore[override]
        if isinstance(start_line, httputil.ResponseStartLine) and start_line.code >= 200:
            self.code = start_line.code


def _log_request(handler) -> None:
    """Access log without query strings (OAuth codes, tokens) and without cookies."""
    status = handler.get_status()
    if status < 400:
        level = logging.DEBUG
    elif status < 500:
        level = logging.INFO
    else:
        level = logging.WARNING
    logging.getLogger("tycho_gate.access").log(
        level,
        "%d %s %s (%s) %.1f ms",
        status,
        handler.request.method,
        handler.request.path,
        (handler.__dict__.get("_current_user") or {}).get("name", "-"),
        1000.0 * handler.request.request_time(),
    )


#: The gate refuses cross-site requests with tornado 6.6's own algorithm (see handlers); its
#: image pins a tornado that has it (the `gate` extra). A hub image may hold an older tornado.
MIN_TORNADO = (6, 6)


def main(argv=None):
    import tornado

    if tuple(tornado.version_info[:2]) < MIN_TORNADO:
        print(
            f"tycho-gate: needs tornado >= {'.'.join(map(str, MIN_TORNADO))} for its cross-site checks, "
            f"this environment has {tornado.version}; install tycho-spawner[gate] (the gate's image does)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return GateApp.launch_instance(argv)


if __name__ == "__main__":
    main()
