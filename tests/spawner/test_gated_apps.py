"""The built-in gated profiles (nginx, RStudio) on the test bed, through the hub's proxy.

nginx is Debian's real nginx behind the real tycho-gate; RStudio is the test bed's labelled
rserver stand-in (RStudio Server is not packaged for Debian), which proves the pod around it:
the gate holds the hub's environment, the app has none of it, listens on the pod's loopback
only, and nobody but the owner gets through.
"""
from __future__ import annotations

import asyncio
import html
import json
import re

import pytest
import requests
from jupyterhub.tests.utils import api_request, auth_header, public_host
from kubernetes import client

from .conftest import wait_for_spawn
from .test_lifecycle import _start, _user, _wait_gone

pytestmark = pytest.mark.cluster


async def _get(url, **kwargs):
    return await asyncio.to_thread(requests.get, url, timeout=30, allow_redirects=False, **kwargs)


def _rserver_info(page) -> dict:
    """The JSON report of the test bed's rserver stand-in."""
    assert page.status_code == 200, page.text[:500]
    return json.loads(html.unescape(re.search(r"<pre id='rserver'>(.*)</pre>", page.text).group(1)))


@pytest.mark.parametrize("profile, app_container, marker", [
    ("nginx", "nginx", "Nothing published yet"),
    ("rstudio", "rstudio", "RStudio Server stand-in"),
])
async def test_gated_app_serves_its_owner_only_and_stops_clean(hub, control_plane, profile, app_container, marker):
    user = _user(hub, f"gated-{profile}")
    other = _user(hub, f"other-{profile}")
    r = await _start(hub, user.name, "", {"profile": profile})
    assert r.status_code in (201, 202), r.text
    spawner = await wait_for_spawn(hub, user)

    pod = client.CoreV1Api(control_plane.api_client()).read_namespaced_pod(spawner.pod_name, spawner.namespace)
    containers = {c.name: c for c in pod.spec.containers}
    assert list(containers) == ["gate", app_container]
    gate_env = {e.name for e in containers["gate"].env}
    app_env = {e.name for e in containers[app_container].env or []}
    assert {"JUPYTERHUB_API_TOKEN", "JUPYTERHUB_CLIENT_ID", "JUPYTERHUB_SERVICE_URL"} <= gate_env
    assert not [name for name in app_env if name.startswith("JUPYTERHUB_")]
    assert all(c.security_context.run_as_non_root for c in pod.spec.containers)

    url = public_host(hub) + spawner.server.base_url
    # The owner gets the app's page, authenticated by the hub (here with an API token).
    page = await _get(url, headers=auth_header(hub.db, user.name))
    assert page.status_code == 200, page.text[:500]
    assert marker in page.text
    if profile == "rstudio":
        info = _rserver_info(page)
        assert info["path"] == "/" and info["jupyterhub_env"] == [] and info["uid"] == 1000
        assert info["root_path_header"] == spawner.server.base_url.rstrip("/")
        # R sessions start in the home, not in rserver's own working directory
        assert info["home_dir"] == "/home/rstudio" and info["home"] is not None
        # RStudio's sign-in (rstudio/rstudio#8888): the redirect comes back under the server's
        # prefix, the cookies keep RStudio's root path, and the next request is signed in.
        sign_in = await _get(url + "auth-sign-in?appUri=%2F", headers=auth_header(hub.db, user.name))
        assert sign_in.status_code == 302 and sign_in.headers["Location"] == spawner.server.base_url
        assert {c.name: c.path for c in sign_in.cookies} == {
            "user-id": spawner.server.base_url.rstrip("/"), "csrf-token": spawner.server.base_url.rstrip("/")}
        signed_in = await _get(url, headers={**auth_header(hub.db, user.name),
                                             "Cookie": f"user-id={sign_in.cookies['user-id']}"})
        assert _rserver_info(signed_in)["signed_in"] is True
    # Anonymous visitors are sent to the hub's login; another user is refused.
    anonymous = await _get(url)
    assert anonymous.status_code == 302
    assert anonymous.headers["Location"].startswith(hub.base_url + "hub/api/oauth2/authorize")
    refused = await _get(url, headers=auth_header(hub.db, other.name))
    assert refused.status_code == 403

    # The app listens on the pod's loopback only: the pod IP reaches the gate and nothing else.
    app_port = containers[app_container].ports[0].container_port
    with pytest.raises(requests.ConnectionError):
        await asyncio.to_thread(requests.get, f"http://{pod.status.pod_ip}:{app_port}/", timeout=5)

    r = await api_request(hub, "users", user.name, "server", method="delete")
    assert r.status_code in (202, 204), r.text
    while spawner.pending or spawner.active:
        await asyncio.sleep(0.1)
    assert await _wait_gone(control_plane, hub, spawner) == []
