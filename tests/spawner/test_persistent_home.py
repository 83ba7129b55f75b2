"""One persistent home follows a user from app to app, as a user would try it.

Through the real hub and proxy on the test bed, with the site storage this project's chart and
`bin/stage hub up` use (a claim per user on the cluster's default StorageClass, mounted where
each catalog entry's app keeps the user's files): a notebook written in JupyterLab is there in
RStudio after a stop, a page written to ~/public_html is what nginx serves, a named server sees
the same files, another user sees none of them, and the claim outlives every stop.
"""
from __future__ import annotations

import asyncio
import html
import json
import re
import time

import pytest
import requests
from jupyterhub.tests.utils import api_request, auth_header, public_host
from kubernetes import client
from kubernetes.client.rest import ApiException

from .conftest import wait_for_spawn
from .test_lifecycle import _start, _stop, _user

pytestmark = pytest.mark.cluster

NOTEBOOK = {
    "cells": [{"cell_type": "markdown", "metadata": {}, "source": "Written in JupyterLab"}],
    "metadata": {},
    "nbformat": 4,
    "nbformat_minor": 5,
}
PAGE = "<!doctype html><title>alice</title><h1>alice was here</h1>"


async def _call(method, url, user_token, **kwargs):
    headers = {"Authorization": f"token {user_token}"}
    return await asyncio.to_thread(
        requests.request, method, url, headers=headers, timeout=60, allow_redirects=False, **kwargs
    )


def _token(hub, name):
    return auth_header(hub.db, name)["Authorization"].split(" ", 1)[1]


def _url(hub, spawner, path=""):
    return public_host(hub) + spawner.server.base_url + path


async def _run(hub, user, server, profile):
    r = await _start(hub, user.name, server, {"profile": profile})
    assert r.status_code in (201, 202), r.text
    return await wait_for_spawn(hub, user, server)


async def _halt(hub, user, server):
    spawner = user.spawners[server]
    r = await _stop(hub, user.name, server)
    assert r.status_code in (202, 204), r.text
    while spawner.pending or spawner.active:
        await asyncio.sleep(0.1)


def _claim(control_plane, namespace, name):
    try:
        return client.CoreV1Api(control_plane.api_client()).read_namespaced_persistent_volume_claim(name, namespace)
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def _rstudio_info(text):
    return json.loads(html.unescape(re.search(r"<pre id='rserver'>(.*)</pre>", text, re.S).group(1)))


async def test_one_home_across_jupyter_nginx_rstudio_and_named_servers(hub, control_plane):
    alice = _user(hub, "alice-home")
    bob = _user(hub, "bob-home")
    token, bob_token = _token(hub, alice.name), _token(hub, bob.name)

    # JupyterLab: a notebook and a web page, through the contents API.
    lab = await _run(hub, alice, "", "base")
    pod = client.CoreV1Api(control_plane.api_client()).read_namespaced_pod(lab.pod_name, lab.namespace)
    claim_name = next(v.persistent_volume_claim.claim_name for v in pod.spec.volumes if v.persistent_volume_claim)
    contents = _url(hub, lab, "api/contents/")
    r = await _call("PUT", contents + "notes.ipynb", token, json={"type": "notebook", "content": NOTEBOOK})
    assert r.status_code in (200, 201), r.text
    r = await _call("PUT", contents + "public_html", token, json={"type": "directory"})
    assert r.status_code in (200, 201), r.text
    r = await _call("PUT", contents + "public_html/index.html", token,
                    json={"type": "file", "format": "text", "content": PAGE})
    assert r.status_code in (200, 201), r.text
    await _halt(hub, alice, "")
    assert _claim(control_plane, lab.namespace, claim_name).status.phase == "Bound", "a stop keeps the claim"

    # nginx serves the page from ~/public_html.
    web = await _run(hub, alice, "", "nginx")
    page = await _call("GET", _url(hub, web), token)
    assert page.status_code == 200 and "alice was here" in page.text, page.text[:300]
    refused = await _call("GET", _url(hub, web), bob_token)
    assert refused.status_code == 403 and "alice was here" not in refused.text, "alice's server is not bob's"
    await _halt(hub, alice, "")

    # RStudio finds the notebook in its home (/home/rstudio)...
    rstudio = await _run(hub, alice, "", "rstudio")
    info = _rstudio_info((await _call("GET", _url(hub, rstudio), token)).text)
    assert "notes.ipynb" in info["home"] and "public_html" in info["home"], info
    # ... while a named server with another Jupyter stack, at the same time, sees the same home.
    named = await _run(hub, alice, "second", "minimal")
    listing = (await _call("GET", _url(hub, named, "api/contents/"), token)).json()
    assert {"notes.ipynb", "public_html"} <= {item["name"] for item in listing["content"]}
    saved = (await _call("GET", _url(hub, named, "api/contents/notes.ipynb"), token)).json()
    assert saved["content"]["cells"][0]["source"] == "Written in JupyterLab"
    await _halt(hub, alice, "second")
    await _halt(hub, alice, "")

    # Bob sees none of it, through any app: his Jupyter home is empty, his nginx has no page.
    bobs_lab = await _run(hub, bob, "", "scipy")
    listing = (await _call("GET", _url(hub, bobs_lab, "api/contents/"), bob_token)).json()
    assert not {"notes.ipynb", "public_html"} & {item["name"] for item in listing["content"]}
    await _halt(hub, bob, "")
    bobs_web = await _run(hub, bob, "", "nginx")
    page = await _call("GET", _url(hub, bobs_web), bob_token)
    assert page.status_code == 200 and "Nothing published yet" in page.text and "alice" not in page.text
    await _halt(hub, bob, "")

    # Every stop kept the claims; deleting the user deletes alice's (delete_pvc, the default).
    assert _claim(control_plane, lab.namespace, claim_name) is not None
    r = await api_request(hub, "users", alice.name, method="delete")
    assert r.status_code == 204, r.text
    deadline = time.monotonic() + 30
    while _claim(control_plane, lab.namespace, claim_name) is not None and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert _claim(control_plane, lab.namespace, claim_name) is None


async def test_deleting_a_user_keeps_the_claim_when_delete_pvc_is_off(hub, control_plane):
    carol = _user(hub, "carol-home")
    spawner = await _run(hub, carol, "", "base")
    namespace, pod_name = spawner.namespace, spawner.pod_name
    pod = client.CoreV1Api(control_plane.api_client()).read_namespaced_pod(pod_name, namespace)
    claim_name = next(v.persistent_volume_claim.claim_name for v in pod.spec.volumes if v.persistent_volume_claim)
    await _halt(hub, carol, "")
    carol.spawners[""].delete_pvc = False  # the spawner JupyterHub deletes the user with
    r = await api_request(hub, "users", carol.name, method="delete")
    assert r.status_code == 204, r.text
    await asyncio.sleep(2)
    assert _claim(control_plane, namespace, claim_name) is not None, "delete_pvc=False keeps the user's files"
    client.CoreV1Api(control_plane.api_client()).delete_namespaced_persistent_volume_claim(claim_name, namespace)


async def test_a_claim_nothing_can_bind_fails_the_start_in_seconds_saying_why(hub, control_plane):
    dora = _user(hub, "dora-home")
    spawner = dora.spawners[""]
    spawner.storage_class = "no-such-class"  # a site typo: the StorageClass does not exist
    began = time.monotonic()
    r = await _start(hub, dora.name, "", {"profile": "base"})
    if r.status_code == 500:  # it failed before the hub's slow-spawn wait was over
        message = r.json()["message"]
    else:
        assert r.status_code in (201, 202), r.text
        with pytest.raises(Exception) as failure:
            await wait_for_spawn(hub, dora, "")
        message = str(failure.value)
    elapsed = time.monotonic() - began
    assert "cannot be provisioned" in message and 'storageclass.storage.k8s.io "no-such-class" not found' in message
    assert elapsed < 30, f"{elapsed:.1f}s: start_timeout is {spawner.start_timeout}s, the reason came from Kubernetes"
    core = client.CoreV1Api(control_plane.api_client())
    assert core.list_namespaced_pod(spawner.namespace, label_selector=f"hub.jupyter.org/username={dora.name}").items == []
    core.delete_namespaced_persistent_volume_claim(spawner.pvc_name, spawner.namespace)


async def test_a_full_home_is_the_apps_own_error_not_a_hung_start(hub, control_plane):
    erin = _user(hub, "erin-home")
    spawner = erin.spawners[""]
    spawner.storage_class = "tycho-testbed-sized"  # the test bed's class whose volumes really fill up
    spawner.storage_capacity = "2Mi"
    lab = await _run(hub, erin, "", "base")
    token = _token(hub, erin.name)
    big = {"type": "file", "format": "text", "content": "x" * (3 * 1024 * 1024)}
    r = await _call("PUT", _url(hub, lab, "api/contents/big.txt"), token, json=big)
    # JupyterLab's own error (jupyter-server reports the failed save; the ENOSPC underneath may be
    # masked by its atomic-write clean-up), within the request, not a hang.
    assert r.status_code == 500 and "Unexpected error while saving file: big.txt" in r.json()["message"], r.text
    small = await _call("PUT", _url(hub, lab, "api/contents/small.txt"), token,
                        json={"type": "file", "format": "text", "content": "y" * 4096})
    assert small.status_code == 500, "the volume is full: even a small file does not fit"
    # The server still answers, and a restart on the full volume comes back (or says why) quickly.
    assert (await _call("GET", _url(hub, lab, "api/status"), token)).status_code == 200
    await _halt(hub, erin, "")
    began = time.monotonic()
    try:
        await _run(hub, erin, "", "base")
        restarted = True
    except Exception as err:  # the app's own failure, reported by Kubernetes, is fine too
        restarted = False
        assert "start_timeout" not in str(err) and "did not start within" not in str(err), err
    assert time.monotonic() - began < 60
    if restarted:
        await _halt(hub, erin, "")
    client.CoreV1Api(control_plane.api_client()).delete_namespaced_persistent_volume_claim(
        spawner.pvc_name, spawner.namespace)
