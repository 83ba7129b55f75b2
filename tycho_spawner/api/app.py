"""``tycho-api``: the Tycho API as a JupyterHub service (tornado, authenticated by the hub).

Run by the hub as a managed service (:mod:`.hubconfig` writes its entry): JupyterHub gives it
``JUPYTERHUB_API_TOKEN``, ``JUPYTERHUB_SERVICE_URL`` (where to listen), ``JUPYTERHUB_SERVICE_PREFIX``
(``/services/tycho/``) and the rest of its service environment; ``TYCHO_API_SETTINGS`` (JSON)
carries the spawner's catalog configuration and namespace, so the API offers exactly what the
spawn form offers and reads the same pods.

Callers authenticate with a hub token (``Authorization: token ...``) or, in a browser, by the
hub's OAuth. Everything done at the hub is done with the caller's own token (see :mod:`.hub`).
"""
from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional
from urllib.parse import urlsplit

from tornado import web
from tornado.iostream import StreamClosedError
from tornado.log import app_log

from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated

from ..catalog_files import load_catalog
from ..errors import CatalogError, OptionsError, SpecError
from ..profiles import Catalog, Who
from . import views
from .cluster import Cluster
from .errors import ApiError
from .hub import Hub, server_path
from .openapi import MAX_TAIL, SERVER_NAME_PATTERN, document

#: How often the monitor stream looks at the hub and the cluster.
WATCH_INTERVAL = 1.0
#: How long an update waits for the old server to stop before starting the new one.
STOP_TIMEOUT = 300.0
DEFAULT_PORT = 10101


@dataclass(frozen=True)
class ApiSettings:
    """The spawner's settings the API must share: the catalog's sources and the namespace."""

    namespace: str = "default"
    #: Narrows pods to this hub's in a shared namespace (the hub label, as ``tycho gc`` uses it).
    selector: str = ""
    builtin_catalog: bool = True
    catalog_files: tuple[str, ...] = ()
    catalog: Mapping[str, Any] = field(default_factory=dict)
    admins_launch_everything: bool = True

    @classmethod
    def from_json(cls, text: str) -> "ApiSettings":
        data = json.loads(text or "{}")
        if not isinstance(data, dict):
            raise ValueError("TYCHO_API_SETTINGS must be a JSON object")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"TYCHO_API_SETTINGS has an unknown key {unknown[0]!r}")
        if "catalog_files" in data:
            data["catalog_files"] = tuple(data["catalog_files"])
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps({**self.__dict__, "catalog_files": list(self.catalog_files), "catalog": dict(self.catalog)})

    def load_catalog(self) -> Catalog:
        try:
            return load_catalog(self.builtin_catalog, self.catalog_files, self.catalog, log=app_log)
        except (CatalogError, SpecError) as err:
            raise ApiError(503, f"The catalog cannot be read now: {err}") from None


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _json_body(handler: web.RequestHandler) -> dict:
    if not handler.request.body:
        raise ApiError(400, "The request needs a JSON object as its body.")
    try:
        body = json.loads(handler.request.body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The body must be a JSON object.")
    return body


def _check_body(body: dict, allowed: tuple[str, ...]) -> None:
    for key in body:
        if key not in allowed:
            raise ApiError(400, f"Unknown key {key!r} in the body; accepted: {', '.join(allowed)}.")
    if "profile" in body and (not isinstance(body["profile"], str) or not body["profile"]):
        raise ApiError(400, "'profile' must be a non-empty string: a catalog entry's key.")
    if "choices" in body:
        choices = body["choices"]
        if not isinstance(choices, dict):
            raise ApiError(400, "'choices' must be an object of choice keys to option keys.")
        for key, value in choices.items():
            if not isinstance(value, str):
                raise ApiError(400, f"'choices.{key}' must be a string.")
    if "name" in body:
        name = body["name"]
        if not isinstance(name, str) or (name and not re.fullmatch(SERVER_NAME_PATTERN, name)):
            raise ApiError(400, "'name' must be letters, digits, '.', '_' or '-' (up to 63, starting with a "
                                "letter or digit), or \"\" for the default server.")


class ApiHandler(HubOAuthenticated, web.RequestHandler):
    """JSON in, JSON out; every error as ``{"error": {"status", "message"}}``."""

    def initialize(self, settings: ApiSettings, cluster: Cluster, hub_api_url: str) -> None:
        self.tycho = settings
        self.cluster = cluster
        self.hub_api_url = hub_api_url

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    def write_error(self, status_code: int, **kwargs) -> None:
        message = self._reason
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            message = exc.message
        elif isinstance(exc, web.HTTPError) and exc.log_message and status_code < 500:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        elif status_code >= 500:
            message = "The Tycho API failed on this request; the service's log has the details."
        if status_code == 405:
            self.set_header("Allow", ", ".join(m for m in ("GET", "POST", "PATCH", "DELETE")
                                               if getattr(type(self), m.lower()) is not getattr(web.RequestHandler, m.lower())))
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": {"status": status_code, "message": message}}))

    def log_exception(self, typ, value, tb) -> None:
        if isinstance(value, ApiError):
            app_log.info("%s %s: %s %s", self.request.method, self.request.path, value.status, value.message)
        else:
            super().log_exception(typ, value, tb)

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, ApiError):
            self.log_exception(type(e), e, None)
            if not self._finished:
                self.send_error(e.status, exc_info=(type(e), e, None))
            return
        super()._handle_request_exception(e)

    def answer(self, status: int, body: Any) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    # --------------------------------------------------------------------------- the caller

    @property
    def caller(self) -> dict:
        user = self.current_user
        if not user:
            raise ApiError(401, "Log in to the hub, or send a hub token as 'Authorization: token ...'.")
        return user

    def hub(self) -> Hub:
        token = self.hub_auth.get_token(self)
        if not token:
            raise ApiError(401, "Log in to the hub, or send a hub token as 'Authorization: token ...'.")
        return Hub(self.hub_api_url, token)

    def target_user(self) -> str:
        name = self.get_argument("user", None)
        if name is not None:
            if not name:
                raise ApiError(400, "'user' must not be empty.")
            return name
        if self.caller.get("kind") == "service":
            raise ApiError(400, "A service calling the API must say whose apps: ?user=NAME.")
        return self.caller["name"]

    async def who(self, hub: Hub, user: str) -> Who:
        """The user an app is launched for, as the spawner sees them (groups, admin flag)."""
        if user == self.caller.get("name") and self.caller.get("kind", "user") == "user":
            model = self.caller
        else:
            model = await hub.user(user)
        return Who(name=user, groups=frozenset(model.get("groups") or ()), admin=bool(model.get("admin")))

    def server_segment(self, segment: str) -> str:
        return views.server_name(segment)

    async def app(self, hub: Hub, user: str, name: str) -> dict:
        server = await hub.server(user, name)
        pod = views.pod_of(await self.cluster.server_pods(user), user, name)
        return views.app_view(user, name, server, pod, _now())


class CatalogHandler(ApiHandler):
    async def get(self) -> None:
        caller = self.caller
        who = Who(name=caller["name"], groups=frozenset(caller.get("groups") or ()), admin=bool(caller.get("admin")))
        catalog = self.tycho.load_catalog().visible_to(who, admins_see_all=self.tycho.admins_launch_everything)
        self.answer(200, views.catalog_view(catalog))


class AppsHandler(ApiHandler):
    async def get(self) -> None:
        hub = self.hub()
        every = self.get_argument("all", "false").lower()
        if every not in ("true", "false", "1", "0"):
            raise ApiError(400, "'all' must be true or false.")
        users = await hub.users_with_servers() if every in ("true", "1") else None
        if users is not None:
            pods = await self.cluster.server_pods() if users else []
        else:
            user = self.target_user()
            users = [await hub.user(user)]
            pods = await self.cluster.server_pods(user)
        now = _now()
        apps = [
            views.app_view(u["name"], name, server, views.pod_of(pods, u["name"], name), now)
            for u in users for name, server in sorted((u.get("servers") or {}).items())
        ]
        self.answer(200, {"apps": apps})

    async def post(self) -> None:
        body = _json_body(self)
        _check_body(body, ("name", "profile", "choices"))
        hub, user = self.hub(), self.target_user()
        name = body.get("name", "")
        options = {k: body[k] for k in ("profile", "choices") if k in body}
        await launch(self, hub, user, name, options)
        self.set_header("Location", f"{self.request.path.rstrip('/')}/{views.server_id(name)}")
        self.answer(202, await self.app(hub, user, name))


async def launch(handler: ApiHandler, hub: Hub, user: str, name: str, options: dict) -> None:
    """Check the options as the spawn form would for that user, then start through the hub."""
    who = await handler.who(hub, user)
    catalog = handler.tycho.load_catalog().visible_to(who, admins_see_all=handler.tycho.admins_launch_everything)
    try:
        selection = catalog.select(options)
    except OptionsError as err:
        raise ApiError(400, str(err)) from None
    model = await hub.user(user)
    if name in (model.get("servers") or {}):
        raise ApiError(409, f"{user}'s app {views.server_id(name)!r} is already running: stop or update it.")
    status, data = await hub.call("POST", server_path(user, name), selection.as_user_options())
    if status in (403, 404):
        raise ApiError(404, f"No user {user!r} that you may launch for.")
    if status == 409 or (status == 400 and "already" in str(data)):
        raise ApiError(409, f"The hub says: {data}")
    if status >= 400:
        raise ApiError(400, f"The hub refused the launch: {data}")


class AppHandler(ApiHandler):
    async def get(self, segment: str) -> None:
        hub, user = self.hub(), self.target_user()
        self.answer(200, await self.app(hub, user, self.server_segment(segment)))

    async def delete(self, segment: str) -> None:
        hub, user, name = self.hub(), self.target_user(), self.server_segment(segment)
        await hub.server(user, name)
        status, data = await hub.call("DELETE", server_path(user, name))
        if status in (403, 404):
            raise ApiError(404, f"No app {segment!r} of {user!r} that you may stop.")
        if status >= 400:
            raise ApiError(400, f"The hub refused to stop it: {data}")
        self.answer(202, {"id": views.server_id(name), "user": user, "name": name,
                          "state": "stopping" if status == 202 else "stopped"})

    async def patch(self, segment: str) -> None:
        body = _json_body(self)
        _check_body(body, ("profile", "choices"))
        hub, user, name = self.hub(), self.target_user(), self.server_segment(segment)
        server = await hub.server(user, name)
        current = server.get("user_options") or {}
        profile = body.get("profile", current.get("profile"))
        if profile != current.get("profile"):
            choices = dict(body.get("choices") or {})
        else:
            choices = {**(current.get("choices") or {}), **(body.get("choices") or {})}
        options = {"choices": choices, **({"profile": profile} if profile else {})}
        # Refused before anything stops: the running app stays as it is.
        who = await self.who(hub, user)
        catalog = self.tycho.load_catalog().visible_to(who, admins_see_all=self.tycho.admins_launch_everything)
        try:
            catalog.select(options)
        except OptionsError as err:
            raise ApiError(400, str(err)) from None
        status, data = await hub.call("DELETE", server_path(user, name))
        if status >= 400:
            raise ApiError(404 if status in (403, 404) else 400, f"The hub refused to stop it: {data}")
        deadline = asyncio.get_running_loop().time() + STOP_TIMEOUT
        while name in ((await hub.user(user)).get("servers") or {}):
            if asyncio.get_running_loop().time() > deadline:
                raise ApiError(503, f"The app did not stop within {STOP_TIMEOUT:.0f} s; it was not restarted.")
            await asyncio.sleep(0.5)
        await launch(self, hub, user, name, options)
        self.answer(202, await self.app(hub, user, name))


class LogsHandler(ApiHandler):
    async def get(self, segment: str) -> None:
        hub, user, name = self.hub(), self.target_user(), self.server_segment(segment)
        tail_text = self.get_argument("tail", "100")
        try:
            tail = int(tail_text)
        except ValueError:
            tail = 0
        if not 1 <= tail <= MAX_TAIL:
            raise ApiError(400, f"'tail' must be a whole number from 1 to {MAX_TAIL}.")
        server = await hub.server(user, name)
        pod = views.pod_of(await self.cluster.server_pods(user), user, name)
        if pod is None:
            raise ApiError(404, f"{user}'s app {segment!r} has no pod (yet), so no logs.")
        containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        container = self.get_argument("container", None) or self._served(server, containers)
        if container not in containers:
            raise ApiError(400, f"The app has no container {container!r}; it has: {', '.join(containers)}.")
        text = await self.cluster.logs(pod["metadata"]["name"], container, tail)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(text or "")

    def _served(self, server: Mapping, containers: list) -> str:
        """The container serving the app (not its gate), when the catalog still has the entry."""
        options = server.get("user_options") or {}
        try:
            catalog = self.tycho.load_catalog()
            served = catalog.select(options).system().served.name
        except (ApiError, OptionsError, SpecError):
            served = None
        return served if served in containers else containers[0]


class EventsHandler(ApiHandler):
    """Server-sent events: the app's state as it changes, and its pod's Kubernetes events."""

    closed = False

    def on_connection_close(self) -> None:
        self.closed = True

    async def send(self, event: str, data: Any) -> None:
        self.write(f"event: {event}\ndata: {json.dumps(data)}\n\n")
        await self.flush()

    async def get(self, segment: str) -> None:
        hub, user, name = self.hub(), self.target_user(), self.server_segment(segment)
        try:
            max_seconds = int(self.get_argument("max_seconds", "3600"))
        except ValueError:
            max_seconds = 0
        if not 1 <= max_seconds <= 86400:
            raise ApiError(400, "'max_seconds' must be a whole number from 1 to 86400.")
        app = await self.app(hub, user, name)  # 404 / 503 as JSON, before the stream starts
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("X-Accel-Buffering", "no")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_seconds
        seen_events: set = set()
        last = None
        try:
            while not self.closed:
                key = json.dumps({k: v for k, v in app.items() if k not in ("age_seconds", "last_activity")},
                                 sort_keys=True)
                if key != last:
                    await self.send("state", app)
                    last = key
                pod = app.get("pod")
                if pod:
                    pods = await self.cluster.server_pods(user)
                    current = views.pod_of(pods, user, name)
                    for event in (await self.cluster.pod_events(current) if current else []):
                        ident = ((event.get("metadata") or {}).get("uid"), event.get("count"))
                        if ident not in seen_events:
                            seen_events.add(ident)
                            await self.send("kubernetes", views.event_view(event))
                if loop.time() >= deadline:
                    break
                await asyncio.sleep(WATCH_INTERVAL)
                try:
                    app = await self.app(hub, user, name)
                except ApiError as err:
                    if err.status == 404:
                        await self.send("state", {**app, "state": "stopped", "ready": False, "message": "stopped"})
                        break
                    await self.send("error", {"status": err.status, "message": err.message})
        except StreamClosedError:
            return
        if not self.closed:
            self.finish()


class OpenApiHandler(web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(document()))


def swagger_static_dir() -> Optional[str]:
    """Swagger UI's files, from the pinned ``swagger-ui-py`` package (no CDN)."""
    try:
        import swagger_ui
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(swagger_ui.__file__), "static")
    return path if os.path.isfile(os.path.join(path, "swagger-ui-bundle.js")) else None


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Tycho API</title>
<link rel="stylesheet" href="{prefix}docs/static/swagger-ui.css"></head>
<body><div id="swagger-ui" data-openapi="{prefix}openapi.json" data-xsrf="{xsrf}"></div>
<script src="{prefix}docs/static/swagger-ui-bundle.js"></script>
<script src="{prefix}docs/init.js"></script></body></html>
"""

DOCS_INIT = """// Swagger UI on the Tycho API's document; requests carry the hub login's XSRF token.
(function () {
  var root = document.getElementById("swagger-ui");
  SwaggerUIBundle({
    url: root.dataset.openapi,
    dom_id: "#swagger-ui",
    requestInterceptor: function (request) {
      request.headers["X-XSRFToken"] = root.dataset.xsrf;
      return request;
    },
  });
})();
"""


class DocsHandler(HubOAuthenticated, web.RequestHandler):
    """Swagger UI, for a person logged in to the hub (their requests use that login)."""

    def initialize(self, prefix: str) -> None:
        self.prefix = prefix

    @web.authenticated
    def get(self) -> None:
        if swagger_static_dir() is None:
            self.set_status(503)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"error": {"status": 503, "message": "Swagger UI is not installed with this "
                                              "service (pip install swagger-ui-py==25.7.1)."}}))
            return
        from html import escape

        self.set_header("Content-Security-Policy",
                        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'")
        self.finish(DOCS_PAGE.format(prefix=escape(self.prefix), xsrf=escape(self.xsrf_token.decode())))


class DocsInitHandler(web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/javascript")
        self.finish(DOCS_INIT)


class RootHandler(web.RequestHandler):
    def initialize(self, prefix: str) -> None:
        self.prefix = prefix

    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"name": "Tycho API", "openapi": f"{self.prefix}openapi.json", "docs": f"{self.prefix}docs"}))


def make_app(settings: ApiSettings, prefix: str, hub_api_url: str, cookie_secret: bytes) -> web.Application:
    prefix = "/" + prefix.strip("/") + "/"
    cluster = Cluster(settings.namespace, settings.selector)
    common = {"settings": settings, "cluster": cluster, "hub_api_url": hub_api_url}
    handlers: list = [
        (prefix, RootHandler, {"prefix": prefix}),
        (prefix + "openapi.json", OpenApiHandler),
        (prefix + "oauth_callback", HubOAuthCallbackHandler),
        (prefix + "docs/?", DocsHandler, {"prefix": prefix}),
        (prefix + "docs/init.js", DocsInitHandler),
        (prefix + "catalog", CatalogHandler, common),
        (prefix + "apps/?", AppsHandler, common),
        (prefix + r"apps/([^/]+)", AppHandler, common),
        (prefix + r"apps/([^/]+)/logs", LogsHandler, common),
        (prefix + r"apps/([^/]+)/events", EventsHandler, common),
    ]
    static = swagger_static_dir()
    if static:
        handlers.append((prefix + "docs/static/(.*)", web.StaticFileHandler, {"path": static}))
    return web.Application(
        handlers, cookie_secret=cookie_secret, xsrf_cookies=False,
        default_handler_class=NotFoundHandler, default_handler_args={},
    )


class NotFoundHandler(web.RequestHandler):
    def prepare(self) -> None:
        self.set_status(404)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": {"status": 404, "message": f"No such endpoint: {self.request.path}."}}))


def main(argv: Optional[list] = None) -> None:
    """Run the service with the environment the hub gives a managed service."""
    import secrets

    from tornado.httpserver import HTTPServer
    from tornado.ioloop import IOLoop

    logging.basicConfig(level=logging.INFO, format="[tycho-api %(levelname)s %(asctime)s] %(message)s")
    app_log.setLevel(logging.INFO)
    try:
        settings = ApiSettings.from_json(os.environ.get("TYCHO_API_SETTINGS", ""))
        settings.load_catalog()
    except (ValueError, TypeError, ApiError) as err:
        sys.exit(f"tycho-api: {getattr(err, 'message', err)}")
    # Where to listen: TYCHO_API_BIND_URL when set (in a cluster, the service's url names the
    # hub pod's Service, an address no process can bind: the chart binds all of the pod's
    # addresses), else the service's url itself, as JupyterHub's services do.
    url = urlsplit(os.environ.get("TYCHO_API_BIND_URL") or os.environ.get("JUPYTERHUB_SERVICE_URL")
                   or f"http://127.0.0.1:{DEFAULT_PORT}")
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/tycho/")
    hub_api_url = os.environ.get("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api")
    secret = os.environ.get("JUPYTERHUB_API_TOKEN", "").encode() or secrets.token_bytes(32)
    app = make_app(settings, prefix, hub_api_url, cookie_secret=secret)
    ssl = None
    if os.environ.get("JUPYTERHUB_SSL_KEYFILE"):
        from jupyterhub.utils import make_ssl_context

        ssl = make_ssl_context(os.environ["JUPYTERHUB_SSL_KEYFILE"], os.environ["JUPYTERHUB_SSL_CERTFILE"],
                               cafile=os.environ.get("JUPYTERHUB_SSL_CLIENT_CA"), purpose=__import__("ssl").Purpose.CLIENT_AUTH)
    server = HTTPServer(app, ssl_options=ssl, xheaders=True)
    _listen(server, url.port or DEFAULT_PORT, "" if url.hostname in (None, "0.0.0.0") else url.hostname)
    app_log.info("Tycho API at %s%s (namespace %s)", url.geturl().rstrip("/"), prefix, settings.namespace)
    _exit_with_the_hub(IOLoop.current())
    _stop_on_signals(IOLoop.current())
    IOLoop.current().start()
    app_log.info("Tycho API stopped")


def _stop_on_signals(loop) -> None:
    """A hub stops its managed services with SIGINT (then SIGTERM): stop serving and exit 0,
    without the KeyboardInterrupt traceback that would land in the hub's log."""
    import signal

    def stop(signum: int) -> None:
        app_log.info("stopping (signal %s)", signal.Signals(signum).name)
        loop.stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.asyncio_loop.add_signal_handler(signum, stop, signum)


#: How long to wait for the port while the previous service (a restarted hub's) lets it go.
BIND_SECONDS = 15.0


def _listen(server, port: int, address: str) -> None:
    """Listen, waiting a little while the port is taken: when a hub restarts, the service it
    stopped may still hold it for a moment (a hub starts the new one at once)."""
    import errno
    import time

    deadline = time.monotonic() + BIND_SECONDS
    while True:
        try:
            server.listen(port, address)
            return
        except OSError as err:
            if err.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                sys.exit(f"tycho-api: cannot listen on {address or '*'}:{port}: {err.strerror}")
            time.sleep(0.2)


def _exit_with_the_hub(loop) -> None:
    """Stop when the hub that started this service is gone (killed, not stopped: a stopping hub
    stops its services itself). JupyterHub starts a managed service in a session of its own, so
    nothing else ends it; left running, it would hold its port against the next hub's service."""
    from tornado.ioloop import PeriodicCallback

    parent = os.getppid()

    def check() -> None:
        if os.getppid() != parent:
            app_log.info("the hub that started this service is gone: exiting")
            loop.stop()

    PeriodicCallback(check, 1000).start()


if __name__ == "__main__":
    main()
