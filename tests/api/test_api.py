"""The Tycho API through the hub's proxy, as users with their hub tokens, on the test bed."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import requests
import yaml

from tycho_testbed.cluster import free_port

pytestmark = pytest.mark.cluster


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"status", "message"}, body
    assert body["error"]["status"] == response.status_code
    assert body["error"]["message"]
    return body["error"]


def wait_ready(caller, server: str, timeout: float = 120, **params) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = caller("GET", f"/apps/{server}", params=params)
        if r.status_code == 200 and r.json()["state"] == "ready":
            return r.json()
        time.sleep(0.5)
    raise AssertionError(f"{server} not ready: {r.status_code} {r.text}")


def read_events(caller, server: str, until_state: str, timeout: float = 120, **params) -> list[tuple[str, dict]]:
    """The stream's events up to the first state event with ``until_state``."""
    seen = []
    with caller("GET", f"/apps/{server}/events", params=params, stream=True) as r:
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"].startswith("text/event-stream")
        event = None
        deadline = time.monotonic() + timeout
        for line in r.iter_lines(decode_unicode=True):
            assert time.monotonic() < deadline, seen
            if line.startswith("event: "):
                event = line[len("event: "):]
            elif line.startswith("data: "):
                data = json.loads(line[len("data: "):])
                seen.append((event, data))
                if event == "state" and data["state"] == until_state:
                    return seen
    raise AssertionError(f"the stream ended before {until_state}: {seen}")


def test_the_document_is_valid_openapi_and_the_docs_are_swagger_ui(api_hub, as_user):
    from openapi_spec_validator import validate

    r = requests.get(f"{api_hub.api_url}/openapi.json", timeout=30)
    assert r.status_code == 200
    validate(r.json())
    assert r.json()["openapi"] == "3.1.0"
    # The docs page wants a hub login: a browser without one is sent to the hub's OAuth.
    r = requests.get(f"{api_hub.api_url}/docs", allow_redirects=False, timeout=30)
    assert r.status_code == 302 and "/hub/api/oauth2/authorize" in r.headers["Location"]
    # With a token, Swagger UI from the installed package: no other host named.
    r = as_user["alice"]("GET", "/docs")
    assert r.status_code == 200 and "swagger-ui-bundle.js" in r.text
    assert "http" not in r.text.replace(api_hub.api_url, "")
    js = requests.get(f"{api_hub.api_url}/docs/static/swagger-ui-bundle.js", timeout=30)
    assert js.status_code == 200 and len(js.content) > 100_000


def test_no_login_is_a_401_in_the_error_shape(api_hub):
    r = requests.get(f"{api_hub.api_url}/apps", timeout=30)
    assert r.status_code == 401
    assert "token" in error_of(r)["message"]


def test_the_catalog_says_what_each_caller_may_launch(as_user):
    alice = {e["key"]: e for e in as_user["alice"]("GET", "/catalog").json()["entries"]}
    carol = {e["key"] for e in as_user["carol"]("GET", "/catalog").json()["entries"]}
    assert "echo" in alice and "staff-only" not in alice
    assert "staff-only" in carol  # carol is in the group the entry names
    size = {c["key"]: c for c in alice["echo"]["choices"]}["size"]
    gives = {o["key"]: o["gives"]["resources"] for o in size["options"]}
    assert gives == {"small": "up to 0.5 CPU · 256 MiB memory", "large": "up to 1 CPU · 512 MiB memory"}
    assert alice["echo"]["default"] is True


def test_a_launch_is_reported_from_starting_to_ready_then_stopped(api_hub, as_user, api_namespace):
    alice = as_user["alice"]
    r = alice("POST", "/apps", json={"name": "stats", "profile": "echo", "choices": {"size": "large"}})
    assert r.status_code == 202, r.text
    assert r.headers["Location"].endswith("/apps/stats")
    events = read_events(alice, "stats", "ready")
    states = [d["state"] for e, d in events if e == "state"]
    assert states[0] == "starting" and states[-1] == "ready", states
    kube = [d["reason"] for e, d in events if e == "kubernetes"]
    assert "Scheduled" in kube, events
    app = alice("GET", "/apps/stats").json()
    assert app["profile"] == "echo" and app["choices"] == {"size": "large"}
    assert app["url"] == "/user/alice/stats/"
    assert app["pod"]["node"] == "tycho-node-1" and app["pod"]["phase"] == "Running"
    (container,) = app["containers"]
    assert container["state"] == "running" and container["ready"] and container["restarts"] == 0
    assert container["limits"] == {"cpu": "1", "memory": "512Mi"}
    assert [a["id"] for a in alice("GET", "/apps").json()["apps"]] == ["stats"]
    # Logs: the served container's last lines, from Kubernetes (the node's kubelet endpoint).
    # The app logs each request it answers: three through the proxy, then the last two asked for.
    for n in range(3):
        page = requests.get(f"{api_hub.url}/user/alice/stats/?n={n}", headers=alice.headers, timeout=30)
        assert page.status_code == 200 and page.text == "echo"
    logs = alice("GET", "/apps/stats/logs", params={"tail": 2})
    assert logs.status_code == 200, logs.text
    assert logs.headers["Content-Type"].startswith("text/plain")
    lines = logs.text.splitlines()
    assert len(lines) == 2 and ["?n=1 HTTP/1.1\" 200" in lines[0], "?n=2 HTTP/1.1\" 200" in lines[1]] == [True, True], lines
    assert error_of(alice("GET", "/apps/stats/logs", params={"container": "nope"}))["status"] == 400
    assert error_of(alice("GET", "/apps/stats/logs", params={"tail": 0}))["status"] == 400
    r = alice("DELETE", "/apps/stats")
    assert r.status_code == 202 and r.json()["state"] in ("stopping", "stopped")
    deadline = time.monotonic() + 60
    while "stats" in api_hub.servers("alice"):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert error_of(alice("GET", "/apps/stats"))["status"] == 404


def test_alice_cannot_see_or_touch_bobs_app_an_admin_can(api_hub, as_user):
    alice, bob, admin = as_user["alice"], as_user["bob"], as_user["admin"]
    assert bob("POST", "/apps", json={}).status_code == 202  # the default server, default entry
    wait_ready(bob, "~")
    for method, path, kwargs in [
        ("GET", "/apps/~", {}), ("DELETE", "/apps/~", {}), ("PATCH", "/apps/~", {"json": {"choices": {"size": "large"}}}),
        ("GET", "/apps/~/logs", {}), ("GET", "/apps/~/events", {}), ("GET", "/apps", {}),
    ]:
        r = alice(method, path, params={"user": "bob"}, **kwargs)
        assert r.status_code == 404, (method, path, r.text)
        error_of(r)
    assert all(a["user"] == "alice" for a in alice("GET", "/apps", params={"all": "true"}).json()["apps"])
    assert "" in api_hub.servers("bob")  # still running, unchanged
    # An admin sees every user's apps, reads bob's logs, resizes and stops it.
    everyone = admin("GET", "/apps", params={"all": "true"}).json()["apps"]
    assert ("bob", "~") in {(a["user"], a["id"]) for a in everyone}
    requests.get(f"{api_hub.url}/user/bob/?from=bob", headers=bob.headers, timeout=30)
    logs = admin("GET", "/apps/~/logs", params={"user": "bob"})
    assert logs.status_code == 200 and "?from=bob HTTP/1.1" in logs.text, logs.text
    r = admin("PATCH", "/apps/~", params={"user": "bob"}, json={"choices": {"size": "large"}})
    assert r.status_code == 202, r.text
    resized = wait_ready(bob, "~")
    assert resized["choices"] == {"size": "large"}
    assert resized["containers"][0]["limits"] == {"cpu": "1", "memory": "512Mi"}
    assert admin("DELETE", "/apps/~", params={"user": "bob"}).status_code == 202


@pytest.mark.parametrize("body, words", [
    ({"profile": "no-such-app"}, "unknown application"),
    ({"profile": "staff-only"}, "unknown application"),  # not alice's to launch: as unknown
    ({"profile": "echo", "choices": {"size": "huge"}}, "not offered"),
    ({"profile": "echo", "choices": {"colour": "red"}}, "no choice"),
    ({"profile": "echo", "extra": 1}, "Unknown key 'extra'"),
    ({"name": "../x", "profile": "echo"}, "'name'"),
    ({"profile": "echo", "choices": {"size": 3}}, "'choices.size'"),
    ("not an object", "JSON object"),
])
def test_bad_input_is_a_400_and_nothing_is_created(api_hub, as_user, control_plane, api_namespace, body, words):
    from kubernetes import client

    r = as_user["alice"]("POST", "/apps", json=body)
    assert r.status_code == 400, r.text
    assert words in error_of(r)["message"]
    assert api_hub.servers("alice") == {}
    pods = client.CoreV1Api(control_plane.api_client()).list_namespaced_pod(
        api_namespace, label_selector="hub.jupyter.org/username=alice")
    assert [p.metadata.name for p in pods.items if not p.metadata.deletion_timestamp] == []


def test_an_unreachable_cluster_is_a_503_in_a_sentence(api_hub, tokens, control_plane, tmp_path):
    """A second tycho-api process, as the hub runs it, whose kube config points where nothing
    answers; the hub is real, the caller's token real."""
    kubeconfig = yaml.safe_load(control_plane.kubeconfig_path.read_text())
    for cluster in kubeconfig["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    dead = tmp_path / "dead.kubeconfig"
    dead.write_text(yaml.safe_dump(kubeconfig))
    port = free_port()
    hub_api = api_hub.api("GET", "").url.rstrip("/")  # the proxy forwards /hub/api to the hub
    env = {**os.environ, "KUBECONFIG": str(dead), "JUPYTERHUB_SERVICE_NAME": "tycho",
           "JUPYTERHUB_API_URL": hub_api, "JUPYTERHUB_API_TOKEN": "unused-for-token-callers",
           "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{port}", "JUPYTERHUB_SERVICE_PREFIX": "/services/tycho/",
           "JUPYTERHUB_CLIENT_ID": "service-tycho",
           "TYCHO_API_SETTINGS": json.dumps({"catalog_files": [str(api_hub.env["TYCHO_CATALOG_FILES"])]})}
    proc = subprocess.Popen([sys.executable, "-m", "tycho_spawner.api"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/services/tycho"
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{url}/openapi.json", timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.2)
        r = requests.get(f"{url}/apps", headers={"Authorization": f"token {tokens['alice']}"}, timeout=60)
        assert r.status_code == 503, r.text
        message = error_of(r)["message"]
        assert "cannot be reached" in message and message.endswith(".")
        # What needs no cluster still answers.
        r = requests.get(f"{url}/catalog", headers={"Authorization": f"token {tokens['alice']}"}, timeout=60)
        assert r.status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)
