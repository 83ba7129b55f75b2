"""A catalog file edited while a real JupyterHub runs: the next form and start use it, without a
hub restart (the chart's catalog ConfigMap, mounted as a directory, changes this way).

What a user and an admin see: an added entry is on the spawn form and starts through the REST
API; a broken edit leaves the form and the API on the last good catalog and the hub's log names
the bad key, once; an entry removed while its server runs leaves that server running and
stoppable.

The session's hub has no `catalog_files`: this test gives its config one while it runs (the hub
builds each new spawner from that config; it replaces a user's spawner after a failed start or a
stop, so setting it on one spawner would not last) and takes it back at the end.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
import requests
from jupyterhub.tests.utils import add_user, api_request, public_host, public_url
from kubernetes import client

from tycho_spawner.catalog_files import CHECK_INTERVAL

from .conftest import browser_login, wait_for_spawn

pytestmark = pytest.mark.cluster

#: An app added by the edit: a Python web server answering "echo" (no home, no gate).
ECHO = """
echo:
  display_name: Echo service
  description: Added while the hub runs
  system:
    serve: {container: app, port: 8888}
    home: false
    containers:
      app:
        image: python:3.11
        command: [python3, -c]
        args:
          - |
            import http.server
            class Handler(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    self.send_response(200); self.end_headers(); self.wfile.write(b"echo")
            http.server.HTTPServer(("", 8888), Handler).serve_forever()
        ports: {http: 8888}
        readiness: {tcp: true}
"""
RENAMED = "scipy: {display_name: SciPy as edited}\n"
BROKEN = """
later:
  display_name: Not yet
  system:
    serve: {container: app, port: 8888}
    containers:
      app:
        image: python:3.11
        ports: {http: 8888}
        limits: {memory: 2GG}
"""


class _Records(logging.Handler):
    """What the hub's own logger (JupyterHub's handlers' logger) receives."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)

    def catalog_lines(self) -> list[tuple[int, str]]:
        return [(r.levelno, r.getMessage()) for r in self.records if r.getMessage().startswith("catalog ")]


async def _form(session, url) -> str:
    page = await asyncio.to_thread(session.get, url, timeout=30)
    assert page.status_code == 200, page.text[-2000:]
    return page.text


async def _form_once(session, url, predicate, timeout=10.0) -> str:
    """The form once ``predicate(page)`` holds (a change is seen within CHECK_INTERVAL)."""
    deadline = time.monotonic() + timeout
    while True:
        page = await _form(session, url)
        if predicate(page) or time.monotonic() > deadline:
            return page
        await asyncio.sleep(0.2)


async def test_an_edited_catalog_file_reaches_the_form_and_the_api_while_the_hub_runs(hub, control_plane, tmp_path):
    catalog_file = tmp_path / "catalog.yaml"
    catalog_file.write_text(RENAMED.replace("as edited", "before"))
    settings = hub.config.TychoSpawner
    had, before = "catalog_files" in settings, settings.get("catalog_files")
    settings.catalog_files = [str(catalog_file)]
    add_user(hub.db, hub, name="editor")
    user = hub.users["editor"]
    spawner = user.spawners[""]
    records = _Records()
    # The spawner logs to traitlets' application logger, which is the hub's in a hub process;
    # in a test session where another Application was made first it is that one's.
    loggers = list(dict.fromkeys([hub.log, spawner.log]))
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(records)
        logger.setLevel(logging.INFO)
    try:
        session = await asyncio.to_thread(browser_login, hub, user.name)
        url = public_url(hub, path=f"hub/spawn/{user.name}")
        page = await _form(session, url)
        assert "SciPy before" in page and 'value="echo"' not in page

        # Added: on the form within a second, no restart.
        catalog_file.write_text(RENAMED + ECHO)
        page = await _form_once(session, url, lambda p: 'value="echo"' in p)
        assert 'value="echo"' in page and "Echo service" in page and "SciPy as edited" in page
        assert records.catalog_lines() == [
            (logging.INFO, f"catalog reloaded from {catalog_file}: added echo; changed scipy")]

        # Broken: the form keeps the last good catalog, the log names the key, once.
        catalog_file.write_text(RENAMED + ECHO + BROKEN)
        for _ in range(2):
            await asyncio.sleep(CHECK_INTERVAL + 0.2)
            page = await _form(session, url)
            assert 'value="echo"' in page and 'value="later"' not in page
        errors = [text for level_, text in records.catalog_lines() if level_ == logging.ERROR]
        assert len(errors) == 1, records.catalog_lines()
        assert "catalog.later.system.containers.app.limits.memory" in errors[0]
        assert str(catalog_file) in errors[0] and "the last good catalog stays in use" in errors[0]
        # ... and so does the REST API: the broken entry is not offered, the new one starts.
        r = await api_request(hub, "users", user.name, "server", method="post", data=json.dumps({"profile": "later"}))
        assert r.status_code == 400 and "unknown application 'later'" in r.json()["message"]
        r = await api_request(hub, "users", user.name, "server", method="post", data=json.dumps({"profile": "echo"}))
        assert r.status_code in (201, 202), r.text
        spawner = await wait_for_spawn(hub, user, "")
        pod = client.CoreV1Api(control_plane.api_client()).read_namespaced_pod(spawner.pod_name, spawner.namespace)
        assert pod.metadata.labels["tycho-spawner/profile"] == "echo"
        server_url = public_host(hub) + spawner.server.base_url
        answer = await asyncio.to_thread(requests.get, server_url, timeout=30)
        assert (answer.status_code, answer.text) == (200, "echo")

        # Removed while it runs: gone from the form; the running server keeps answering.
        catalog_file.write_text(RENAMED)
        page = await _form_once(session, public_url(hub, path=f"hub/spawn/{user.name}/other"),
                                lambda p: 'value="echo"' not in p)
        assert 'value="echo"' not in page and "SciPy as edited" in page
        assert records.catalog_lines()[-1] == (logging.INFO, f"catalog reloaded from {catalog_file}: removed echo")
        assert await spawner.poll() is None
        answer = await asyncio.to_thread(requests.get, server_url, timeout=30)
        assert (answer.status_code, answer.text) == (200, "echo")
    finally:
        for logger, level in zip(loggers, levels):
            logger.removeHandler(records)
            logger.setLevel(level)
        try:
            if spawner.active:
                r = await api_request(hub, "users", user.name, "server", method="delete")
                assert r.status_code in (202, 204), r.text
                while spawner.pending or spawner.active:
                    await asyncio.sleep(0.1)
        finally:
            if had:
                settings.catalog_files = before
            else:
                del settings["catalog_files"]
