"""A real web app for the gate to stand in front of: tornado, on loopback, in a thread.

It records every request it receives, so tests can assert what reached the app (and that
nothing did). Its endpoints each exercise one thing a proxy can get wrong.
"""
from __future__ import annotations

import asyncio
import json
import threading
from typing import List

from tornado import web, websocket
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets, bind_unix_socket


class Seen:
    def __init__(self) -> None:
        self.requests: List[dict] = []
        self.lock = threading.Lock()

    def add(self, handler: web.RequestHandler) -> None:
        with self.lock:
            self.requests.append(
                {
                    "method": handler.request.method,
                    "uri": handler.request.uri,
                    "headers": dict(handler.request.headers.get_all()),
                }
            )

    def count(self) -> int:
        with self.lock:
            return len(self.requests)

    def since(self, n: int) -> List[dict]:
        with self.lock:
            return list(self.requests[n:])


class Base(web.RequestHandler):
    def prepare(self) -> None:
        self.settings["seen"].add(self)


class Page(Base):
    def get(self, path: str = "") -> None:
        self.write("<!doctype html><html><head><title>upstream app</title></head>"
                   "<body><h1 id='app'>Hello from the app</h1></body></html>")


class Echo(Base):
    def get(self) -> None:
        req = self.request
        self.write({
            "method": req.method,
            "path": req.path,
            "uri": req.uri,
            "headers": {k: v for k, v in req.headers.get_all()},
        })

    post = get


class Redirect(Base):
    def get(self, kind: str) -> None:
        if kind == "absolute-path":
            self.redirect("/target?x=1")
        elif kind == "self-url":
            self.redirect(f"http://{self.request.host}/target")
        elif kind == "relative":
            self.redirect("target")
        else:
            self.redirect("https://example.org/elsewhere")


class SetCookie(Base):
    def get(self) -> None:
        self.set_cookie("app-session", "abc", path="/")
        self.write("ok")


class Big(Base):
    async def get(self) -> None:
        size = int(self.get_argument("bytes"))
        self.set_header("Content-Type", "application/octet-stream")
        if self.get_argument("length", "1") == "1":
            self.set_header("Content-Length", str(size))
        chunk = b"x" * 65536
        sent = 0
        while sent < size:
            part = chunk[: min(len(chunk), size - sent)]
            self.write(part)
            await self.flush()
            sent += len(part)


@web.stream_request_body
class Upload(Base):
    def initialize(self) -> None:
        self.received = 0

    def data_received(self, chunk: bytes) -> None:
        self.received += len(chunk)

    def post(self) -> None:
        self.write({"received": self.received})

    put = post


class Slow(Base):
    """A long poll: one chunk now, the next only when the test says so."""

    async def get(self) -> None:
        self.write("first\n")
        await self.flush()
        release = self.settings["release"]
        await asyncio.wrap_future(release())
        self.write("second\n")


class EchoSocket(websocket.WebSocketHandler):
    def prepare(self) -> None:
        self.settings["seen"].add(self)

    def select_subprotocol(self, subprotocols):
        return subprotocols[0] if subprotocols else None

    def on_message(self, message) -> None:
        if message == "close-4001":
            self.close(4001, "app says bye")
            return
        if message == "headers":
            self.write_message(json.dumps(dict(self.request.headers.get_all())))
            return
        self.write_message(message, binary=isinstance(message, bytes))


def make_app(seen: Seen, release) -> web.Application:
    return web.Application(
        [
            (r"/", Page),
            (r"/echo", Echo),
            (r"/user/[^/]+/(?:[^/]+/)?echo", Echo),
            (r"/redirect/(.*)", Redirect),
            (r"/set-cookie", SetCookie),
            (r"/big", Big),
            (r"/upload", Upload),
            (r"/slow", Slow),
            (r"/ws", EchoSocket),
            (r"/user/[^/]+/(?:[^/]+/)?ws", EchoSocket),
            (r"/(.*)", Page),
        ],
        seen=seen,
        release=release,
        websocket_max_message_size=64 * 1024 * 1024,
    )


class UpstreamApp:
    """The app, serving on its own event loop in a daemon thread."""

    def __init__(self, unix_path: str = "") -> None:
        self.seen = Seen()
        self.loop = asyncio.new_event_loop()
        self._releases: List = []
        self._release_lock = threading.Lock()
        self.unix_path = unix_path
        if unix_path:
            self.sockets = [bind_unix_socket(unix_path)]
            self.port = 0
        else:
            self.sockets = bind_sockets(0, "127.0.0.1")
            self.port = self.sockets[0].getsockname()[1]
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    @property
    def url(self) -> str:
        return f"unix:{self.unix_path}" if self.unix_path else f"http://127.0.0.1:{self.port}"

    def _new_release(self):
        import concurrent.futures

        future = concurrent.futures.Future()
        with self._release_lock:
            self._releases.append(future)
        return future

    def release_all(self) -> None:
        with self._release_lock:
            for future in self._releases:
                if not future.done():
                    future.set_result(None)
            self._releases.clear()

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def serve() -> None:
            server = HTTPServer(make_app(self.seen, self._new_release), max_body_size=1 << 40)
            server.add_sockets(self.sockets)
            ready.set()
            await asyncio.Event().wait()

        self.loop.run_until_complete(serve())
