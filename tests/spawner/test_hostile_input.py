"""What a hostile or careless client sends a real JupyterHub running TychoSpawner: each gets a
short, clean answer, and nothing is created in Kubernetes.

JupyterHub owns part of the answer (how it reads a body, which verbs exist); where its versions
differ (5.5 in zero-to-jupyterhub 4.4.0's image, 6.x newest), each test says what each does.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re

import jupyterhub
import pytest
from jupyterhub.tests.utils import add_user, api_request, public_url

from tycho_spawner.render import SERVER_LABEL, selector_value

from .conftest import browser_login, labelled_objects, wait_for_spawn

pytestmark = pytest.mark.cluster

MEGABYTE = "A" * 1_048_576
#: JupyterHub 6 added creating a named server without starting it (PUT) and changing a stopped
#: one's options (PATCH); both store user_options the spawner never sees at that moment.
STORES_OPTIONS_WITHOUT_START = jupyterhub.version_info >= (6,)


class _Volume(logging.Handler):
    """Counts what the hub writes to its logs while a request is handled."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.characters = 0

    def emit(self, record):
        self.characters += len(self.format(record))


class _LogVolume:
    """Every logger a hub writes a request's story to: JupyterHub's own and tornado's."""

    NAMES = ("JupyterHub", "tornado.access", "tornado.application", "tornado.general")

    def __init__(self, app):
        self.handler = _Volume()
        self.loggers = {logging.getLogger(name) for name in self.NAMES} | {app.log}

    def __enter__(self):
        for logger in self.loggers:
            logger.addHandler(self.handler)
        return self.handler

    def __exit__(self, *exc):
        for logger in self.loggers:
            logger.removeHandler(self.handler)


def _objects(control_plane, spawner):
    return labelled_objects(
        control_plane.api_client(), spawner.namespace, f"{SERVER_LABEL}={selector_value(spawner.pod_name)}"
    )


def _user(app, name):
    add_user(app.db, app, name=name)
    return app.users[name]


async def test_a_megabyte_option_gets_a_short_400_and_a_short_log(hub, control_plane):
    user = _user(hub, "fz")
    with _LogVolume(hub) as logged:
        r = await api_request(hub, "users", user.name, "server", method="post",
                              data=json.dumps({"profile": MEGABYTE}))
    assert r.status_code == 400
    assert len(r.content) < 1_000, len(r.content)
    assert r.json()["message"].startswith("unknown application 'AAAAAAAA")
    assert "(1048578 characters in all)" in r.json()["message"]
    assert 0 < logged.characters < 5_000, logged.characters
    assert not user.spawners[""].active
    assert _objects(control_plane, user.spawners[""]) == []


async def test_a_megabyte_form_field_gets_a_short_400_page(hub, control_plane):
    user = _user(hub, "formfz")
    session = await asyncio.to_thread(browser_login, hub, user.name)
    url = public_url(hub, path=f"hub/spawn/{user.name}")
    page = await asyncio.to_thread(session.get, url, timeout=30)
    xsrf = re.search(r'xsrf_token: "([^"]+)"', page.text).group(1)
    with _LogVolume(hub) as logged:
        r = await asyncio.to_thread(session.post, url, data={"profile": "scipy", "scipy.size": MEGABYTE,
                                                             "_xsrf": xsrf}, timeout=60, allow_redirects=False)
    assert r.status_code == 400
    assert "is not offered for Size of Jupyter SciPy" in r.text
    assert len(r.content) < 50_000, len(r.content)   # the hub's error page, not the megabyte
    assert 0 < logged.characters < 5_000, logged.characters
    assert _objects(control_plane, user.spawners[""]) == []


async def test_a_list_as_the_body_of_a_start(hub, control_plane):
    """JupyterHub 5.5 hands `[]` to the spawner as the options, which refuses it. JupyterHub 6
    reads any empty JSON body (`[]`, `{}`, `null`) as "no options" before the spawner sees it:
    the server starts with the user's last options, checked again, or the default entry."""
    user = _user(hub, "lee")
    spawner = user.spawners[""]
    r = await api_request(hub, "users", user.name, "server", method="post", data="[]")
    if not STORES_OPTIONS_WITHOUT_START:
        assert r.status_code == 400
        assert r.json()["message"] == "user options must be a JSON object"
        assert _objects(control_plane, spawner) == []
        return
    assert r.status_code in (201, 202), r.text
    spawner = await wait_for_spawn(hub, user, "")
    assert spawner.user_options == {"profile": "base", "choices": {"ui": "lab", "size": "small"}}
    r = await api_request(hub, "users", user.name, "server", method="delete")
    assert r.status_code in (202, 204)
    while spawner.pending or spawner.active:
        await asyncio.sleep(0.1)


async def test_options_stored_without_a_start_are_checked_when_it_starts(hub, control_plane):
    """JupyterHub 6's PUT (create a named server) and PATCH (change a stopped one) store
    user_options without asking the spawner; the start that uses them refuses them with 400
    before any object exists. JupyterHub 5.5 has neither verb."""
    user = _user(hub, "stash")
    tampered = {"user_options": {"profile": "scipy", "image": "evil/image"}}
    r = await api_request(hub, "users", user.name, "servers", "stash", method="put", data=json.dumps(tampered))
    if not STORES_OPTIONS_WITHOUT_START:
        assert r.status_code == 405
        return
    assert r.status_code == 201, r.text
    r = await api_request(hub, "users", user.name, "servers", "stash", method="post")
    assert r.status_code == 400
    assert r.json()["message"] == "unknown option 'image': only 'profile' and 'choices' are accepted"
    assert _objects(control_plane, user.spawners["stash"]) == []

    r = await api_request(hub, "users", user.name, "servers", "stash", method="patch",
                          data=json.dumps({"user_options": {"profile": "scipy", "choices": {"size": "galactic"}}}))
    assert r.status_code == 200, r.text
    r = await api_request(hub, "users", user.name, "servers", "stash", method="post")
    assert r.status_code == 400
    assert r.json()["message"].startswith("'galactic' is not offered for Size of Jupyter SciPy")
    assert _objects(control_plane, user.spawners["stash"]) == []
