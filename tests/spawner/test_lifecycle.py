"""TychoSpawner's lifecycle through a real JupyterHub, against the real API server and node agent.

Each test is what a user or admin would see: the server starts and answers through the hub's
proxy, stops and leaves nothing behind, refuses bad options with 400 before creating anything,
and fails within seconds, saying why, when Kubernetes says the pod can never run.
"""
from __future__ import annotations

import asyncio
import json
import re
import time

import pytest
import requests
from jupyterhub.tests.utils import add_user, api_request, auth_header, public_host, public_url
from kubernetes import client

from tycho_spawner.render import SERVER_LABEL, selector_value

from .conftest import browser_login, labelled_objects, wait_for_spawn

pytestmark = pytest.mark.cluster

JUPYTER_PROFILES = ["base", "minimal", "scipy", "datascience", "r", "pyspark"]


def _server_url(app, spawner, path):
    """The server's public URL through the hub's proxy."""
    return public_host(app) + spawner.server.base_url + path


def _user(app, name):
    add_user(app.db, app, name=name)
    return app.users[name]


async def _start(app, username, server, options):
    path = ("users", username, "servers", server) if server else ("users", username, "server")
    return await api_request(app, *path, method="post", data=json.dumps(options))


async def _stop(app, username, server):
    path = ("users", username, "servers", server) if server else ("users", username, "server")
    return await api_request(app, *path, method="delete")


def _objects(control_plane, app, spawner):
    return labelled_objects(
        control_plane.api_client(), spawner.namespace, f"{SERVER_LABEL}={selector_value(spawner.pod_name)}"
    )


async def _wait_gone(control_plane, app, spawner, timeout=30):
    deadline = time.monotonic() + timeout
    left = _objects(control_plane, app, spawner)
    while left and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        left = _objects(control_plane, app, spawner)
    return left


@pytest.mark.parametrize("profile", JUPYTER_PROFILES)
async def test_jupyter_profile_starts_answers_and_stops_clean(hub, control_plane, profile):
    user = _user(hub, f"jo-{profile}")
    r = await _start(hub, user.name, profile, {"profile": profile})
    assert r.status_code in (201, 202), r.text
    spawner = await wait_for_spawn(hub, user, profile)

    core = client.CoreV1Api(control_plane.api_client())
    pod = core.read_namespaced_pod(spawner.pod_name, spawner.namespace)
    assert pod.status.phase == "Running"
    assert pod.metadata.labels["component"] == "singleuser-server"
    assert pod.metadata.labels["tycho-spawner/profile"] == profile
    assert [c.name for c in pod.spec.containers] == ["notebook"]
    assert pod.spec.containers[0].image.startswith(f"quay.io/jupyter/")
    # Its NetworkPolicy selects it (created before the pod); no per-server Service is made
    # (KubeSpawner's services_enabled makes one when a site needs it).
    netpol = client.NetworkingV1Api(control_plane.api_client()).read_namespaced_network_policy(
        spawner.pod_name, spawner.namespace
    )
    assert netpol.spec.pod_selector.match_labels.items() <= pod.metadata.labels.items()
    assert netpol.metadata.creation_timestamp <= pod.metadata.creation_timestamp
    # The hub's token for the server is nowhere in the pod (anyone who may read pods could read
    # it there): the pod reads it from a Secret it owns, which goes with it.
    assert spawner.api_token not in json.dumps(client.ApiClient().sanitize_for_serialization(pod))
    env = {e.name: e for e in pod.spec.containers[0].env}
    for name in ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN"):
        ref = env[name].value_from.secret_key_ref
        assert (ref.name, ref.key) == (f"{spawner.pod_name}-hub-token", "token")
    secret = core.read_namespaced_secret(f"{spawner.pod_name}-hub-token", spawner.namespace)
    assert [(o.kind, o.name, o.uid) for o in secret.metadata.owner_references] == [
        ("Pod", pod.metadata.name, pod.metadata.uid)]
    assert core.list_namespaced_service(spawner.namespace, label_selector=f"{SERVER_LABEL}={selector_value(spawner.pod_name)}").items == []

    # The server answers through the hub's proxy, to its owner's token.
    url = _server_url(hub, spawner, "api/status")
    answer = await asyncio.to_thread(requests.get, url, headers=auth_header(hub.db, user.name), timeout=30)
    assert answer.status_code == 200, answer.text
    assert "started" in answer.json()
    # ... and the admin panel / REST API shows which application it runs.
    model = (await api_request(hub, "users", user.name)).json()
    assert model["servers"][profile]["user_options"] == {
        "profile": profile,
        "choices": {"ui": "lab", "size": "small"},
    }

    r = await api_request(hub, "users", user.name, "servers", profile, method="delete")
    assert r.status_code in (202, 204), r.text
    while spawner.pending or spawner.active:
        await asyncio.sleep(0.1)
    assert await _wait_gone(control_plane, hub, spawner) == []


async def test_named_servers_run_side_by_side(hub, control_plane):
    user = _user(hub, "both")
    for server, profile in (("lab", "scipy"), ("plain", "base")):
        r = await _start(hub, user.name, server, {"profile": profile, "choices": {"size": "medium"}})
        assert r.status_code in (201, 202), r.text
    first = await wait_for_spawn(hub, user, "lab")
    second = await wait_for_spawn(hub, user, "plain")
    assert first.pod_name != second.pod_name
    for spawner in (first, second):
        url = _server_url(hub, spawner, "api/status")
        answer = await asyncio.to_thread(requests.get, url, headers=auth_header(hub.db, user.name), timeout=30)
        assert answer.status_code == 200
        pod = client.CoreV1Api(control_plane.api_client()).read_namespaced_pod(spawner.pod_name, spawner.namespace)
        assert pod.spec.containers[0].resources.limits == {"cpu": "2", "memory": "4Gi"}
    for server in ("lab", "plain"):
        await api_request(hub, "users", user.name, "servers", server, method="delete")
    for spawner in (first, second):
        while spawner.pending or spawner.active:
            await asyncio.sleep(0.1)
        assert await _wait_gone(control_plane, hub, spawner) == []


@pytest.mark.parametrize(
    "options, message",
    [
        ({"profile": "no-such-app"}, "unknown application 'no-such-app'"),
        ({"profile": "scipy", "choices": {"size": "galactic"}}, "'galactic' is not offered"),
        ({"profile": "scipy", "choices": {"image": "evil/image"}}, "has no choice 'image'"),
        ({"profile": "scipy", "image": "evil/image"}, "unknown option 'image'"),
    ],
)
async def test_bad_options_get_400_and_create_nothing(hub, control_plane, options, message):
    user = _user(hub, "tamper")
    spawner = user.spawners[""]
    r = await _start(hub, user.name, "", options)
    assert r.status_code == 400, r.text
    assert message in r.json()["message"]
    assert not spawner.active
    assert _objects(control_plane, hub, spawner) == []


async def test_tampered_form_gets_400_and_creates_nothing(hub, control_plane):
    user = _user(hub, "formuser")
    spawner = user.spawners[""]
    session = await asyncio.to_thread(browser_login, hub, user.name)
    url = public_url(hub, path="hub/spawn/formuser")
    page = await asyncio.to_thread(session.get, url, timeout=30)
    assert page.status_code == 200
    assert 'name="profile"' in page.text and 'value="rstudio"' in page.text
    xsrf = re.search(r'xsrf_token: "([^"]+)"', page.text).group(1)
    form = {"profile": "scipy", "scipy.size": "small", "scipy.image": "evil/image", "_xsrf": xsrf}
    r = await asyncio.to_thread(session.post, url, data=form, timeout=30, allow_redirects=False)
    assert r.status_code == 400
    assert "unexpected form field &#39;scipy.image&#39;" in r.text
    assert not spawner.active
    assert _objects(control_plane, hub, spawner) == []


async def test_unpullable_image_fails_within_seconds_and_leaves_nothing(hub, control_plane):
    user = _user(hub, "unlucky")
    spawner = user.spawners[""]
    began = time.monotonic()
    await _start(hub, user.name, "", {"profile": "broken-image"})
    with pytest.raises(Exception) as failure:
        await wait_for_spawn(hub, user, "")
    elapsed = time.monotonic() - began
    assert "cannot be pulled" in str(failure.value)
    assert "registry.invalid/nobody/nothing:1" in str(failure.value)
    # start_timeout is 120 s here: the failure came from Kubernetes' reason, not a timeout.
    assert elapsed < 60, elapsed
    assert await _wait_gone(control_plane, hub, spawner) == []


async def test_poll_reports_the_exit_code_of_a_crashed_app(hub, control_plane):
    user = _user(hub, "crasher")
    await _start(hub, user.name, "", {"profile": "crashes"})
    spawner = await wait_for_spawn(hub, user, "")
    assert await spawner.poll() is None
    # the app exits with code 3 when asked (through the hub's proxy)
    await asyncio.to_thread(requests.get, _server_url(hub, spawner, "exit"), timeout=30)
    deadline = time.monotonic() + 60
    status = await spawner.poll()
    while status is None and time.monotonic() < deadline:
        await spawner.pod_reflector.changed(spawner._pod_key, 1.0)
        status = await spawner.poll()
    assert status == 3
    await _stop(hub, user.name, "")


async def test_a_restarted_hub_finds_the_running_pod(hub, control_plane):
    user = _user(hub, "restart")
    await _start(hub, user.name, "", {"profile": "base"})
    spawner = await wait_for_spawn(hub, user, "")
    state = spawner.get_state()
    assert state["pod_name"] == spawner.pod_name
    assert state["tycho"]["profile"] == "base"

    # A fresh spawner, as after a hub restart, loads the saved state and finds the pod.
    fresh = user._new_spawner("")
    assert fresh is not spawner
    fresh.load_state(state)
    assert fresh.pod_name == spawner.pod_name
    assert await fresh.poll() is None
    assert fresh._selection.profile.key == "base"
    await fresh.stop(now=True)
    assert await fresh.poll() == 1
    assert await _wait_gone(control_plane, hub, spawner) == []
    await _stop(hub, user.name, "")


async def test_progress_tells_the_user_what_is_happening(hub, control_plane):
    user = _user(hub, "watcher")
    request = asyncio.ensure_future(_start(hub, user.name, "", {"profile": "scipy"}))
    spawner = user.spawners[""]
    while not spawner.pending:
        await asyncio.sleep(0.01)
    messages = []
    async for event in spawner._generate_progress():
        messages.append(event["message"])
    assert (await request).status_code in (201, 202)
    await wait_for_spawn(hub, user, "")
    text = "\n".join(messages)
    assert "Scheduled on node" in text
    assert "ulling image" in text  # the node's own "Pulling image ..." event
    assert "Started container notebook" in text
    await _stop(hub, user.name, "")


async def test_the_spawn_form_launches_the_choice_and_preselects_it_next_time(hub, control_plane):
    user = _user(hub, "formfan")
    session = await asyncio.to_thread(browser_login, hub, user.name)
    url = public_url(hub, path="hub/spawn/formfan/web")
    page = await asyncio.to_thread(session.get, url, timeout=30)
    xsrf = re.search(r'xsrf_token: "([^"]+)"', page.text).group(1)
    form = {"profile": "minimal", "minimal.ui": "classic", "minimal.size": "medium", "scipy.size": "large",
            "_xsrf": xsrf}
    r = await asyncio.to_thread(session.post, url, data=form, timeout=60)
    assert r.status_code == 200, r.text[-2000:]
    spawner = await wait_for_spawn(hub, user, "web")
    assert spawner.user_options == {"profile": "minimal", "choices": {"ui": "classic", "size": "medium"}}
    # The classic interface is the server's default URL, and the server answers the browser session.
    pod = client.CoreV1Api(control_plane.api_client()).read_namespaced_pod(spawner.pod_name, spawner.namespace)
    env = {e.name: e.value for e in pod.spec.containers[0].env}
    assert env["JUPYTERHUB_DEFAULT_URL"] == "/tree"
    tree = await asyncio.to_thread(session.get, _server_url(hub, spawner, "tree"), timeout=60)
    assert tree.status_code == 200 and "token=" not in tree.url
    await _stop(hub, user.name, "web")
    while spawner.pending or spawner.active:
        await asyncio.sleep(0.1)
    # Next time, the form pre-selects what the user chose.
    page = await asyncio.to_thread(session.get, url, timeout=30)
    assert re.search(r'value="minimal"[^>]*checked', page.text)
    assert re.search(r'<option value="classic" selected>', page.text)
    assert await _wait_gone(control_plane, hub, spawner) == []


async def test_a_leftover_pod_of_the_same_name_is_replaced(hub, control_plane):
    """A pod (and policy) left by a hub that died mid-start: the next start removes them first."""
    user = _user(hub, "leftover")
    spawner = user.spawners[""]
    core = client.CoreV1Api(control_plane.api_client())
    core.create_namespaced_pod(spawner.namespace, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": spawner.pod_name, "labels": {"component": "singleuser-server"}},
        "spec": {"containers": [{"name": "old", "image": "busybox:1.36", "command": ["sleep", "600"]}],
                 "terminationGracePeriodSeconds": 1},
    })
    client.NetworkingV1Api(control_plane.api_client()).create_namespaced_network_policy(spawner.namespace, {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": spawner.pod_name},
        "spec": {"podSelector": {"matchLabels": {"nothing": "here"}}, "policyTypes": ["Ingress"]},
    })
    r = await _start(hub, user.name, "", {"profile": "base"})
    assert r.status_code in (201, 202), r.text
    await wait_for_spawn(hub, user, "")
    pod = core.read_namespaced_pod(spawner.pod_name, spawner.namespace)
    assert [c.name for c in pod.spec.containers] == ["notebook"]
    policy = client.NetworkingV1Api(control_plane.api_client()).read_namespaced_network_policy(
        spawner.pod_name, spawner.namespace)
    assert policy.spec.pod_selector.match_labels == {SERVER_LABEL: selector_value(spawner.pod_name)}
    await _stop(hub, user.name, "")
    while spawner.pending or spawner.active:
        await asyncio.sleep(0.1)
    assert await _wait_gone(control_plane, hub, spawner) == []


async def test_a_stop_during_the_first_pod_list_does_not_hang(hub, control_plane):
    # A start cancelled (a stop clicked) while it was filling the hub's pod cache must not leave
    # the cache half-made: the stop after it, and every other server's start, wait for that
    # cache. (It did: the server stayed "pending spawn" for good; tests/faults/test_double_clicks.)
    user = _user(hub, "early-stop")
    spawner = user.spawners[""]
    cls = type(spawner)
    key = spawner._get_reflector_key("pods")
    previous = cls.reflectors.pop(key, None)
    if previous is not None:
        await previous.stop()
    first = asyncio.ensure_future(spawner._start_watching_pods())
    await asyncio.sleep(0)  # it is listing
    assert not first.done()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    # A guard against hanging, not a timing goal: the list takes milliseconds.
    await asyncio.wait_for(spawner.stop(now=True), 30)
    assert not cls.reflectors[key].failed
    assert (await _start(hub, user.name, "", {"profile": "base"})).status_code in (201, 202)
    spawner = await wait_for_spawn(hub, user, "")
    answer = await asyncio.to_thread(requests.get, _server_url(hub, spawner, "api/status"),
                                     headers=auth_header(hub.db, user.name), timeout=30)
    assert answer.status_code == 200
    await _stop(hub, user.name, "")
    assert await _wait_gone(control_plane, hub, spawner) == []
