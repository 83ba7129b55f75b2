"""A hub killed in the middle of a start comes back clean.

The example `jupyterhub_config.py` in a real `jupyterhub` process with its proxy, on the test
bed. The hub is killed (SIGKILL, its proxy outlives it) as soon as the server's pod exists,
before the start it was running could finish: the hub's database then holds a server record
with the address JupyterHub put there before the spawn (a random port on no host), no spawner
state, and a pod it never heard of as ready.

When the hub comes back, that pod is either adopted at its real address (it came up) or
removed at once with its reason in the hub's log (it never can), and the user can start again.
Before, the hub probed the recorded address for `http_timeout` (120 s in the example config),
answered "pending check" to every new start meanwhile, then deleted the running pod.
"""
from __future__ import annotations

import threading
import time

import pytest
import requests
from kubernetes import client

from .examplehub import ExampleHub

pytestmark = pytest.mark.cluster

MISSING_IMAGE_CATALOG = """\
catalog:
  missing:
    display_name: An image no registry has
    system:
      auth: jupyter
      serve: {container: notebook, port: 8888}
      security: {run_as_user: 1000, run_as_group: 100, fs_group: 100}
      containers:
        notebook:
          image: quay.io/nobody/does-not-exist:1
          command: [jupyterhub-singleuser]
          ports: {http: 8888}
"""


@pytest.fixture
def example_hub(example_hub, tmp_path):
    """The example hub, with an entry whose image no registry has."""
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(MISSING_IMAGE_CATALOG)
    example_hub.env["TYCHO_CATALOG_FILES"] = str(catalog)
    return example_hub


def _server_pods(core: client.CoreV1Api, namespace: str) -> dict:
    """Every server pod, whatever its phase: name -> (uid, phase, deleting)."""
    pods = core.list_namespaced_pod(namespace, label_selector="component=singleuser-server").items
    return {p.metadata.name: (p.metadata.uid, p.status.phase, p.metadata.deletion_timestamp is not None)
            for p in pods}


def _kill_once_the_pod_exists(hub: ExampleHub, core: client.CoreV1Api, namespace: str, user: str,
                              profile: str) -> str:
    # The request waits for the start (up to JupyterHub's slow_spawn_timeout): send it aside.
    answers: list = []

    def post() -> None:
        try:
            answers.append(hub.api("POST", f"users/{user}/server", json={"profile": profile}))
        except requests.ConnectionError as err:  # the hub was killed under it
            answers.append(err)

    threading.Thread(target=post, daemon=True).start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pods = _server_pods(core, namespace)
        if pods:
            hub.kill()
            # Killed before it answered (the proxy, left running, says 503 for the dead hub).
            assert not any(getattr(a, "status_code", 503) != 503 for a in answers), answers
            (name, (uid, phase, _)), = pods.items()
            return uid
        time.sleep(0.05)
    raise AssertionError(f"no pod was created:\n{hub.log_tail()}")


def _server(hub: ExampleHub, user: str) -> dict | None:
    r = hub.api("GET", f"users/{user}")
    assert r.status_code == 200, r.text
    return r.json()["servers"].get("")


def test_a_pod_that_came_up_is_adopted_at_its_real_address(example_hub, control_plane, kube_namespace):
    hub, user = example_hub, "dave"
    core = client.CoreV1Api(control_plane.api_client())
    hub.start()
    assert hub.api("POST", f"users/{user}").status_code == 201
    uid = _kill_once_the_pod_exists(hub, core, kube_namespace, user, "base")
    killed_at = hub.log_path.stat().st_size

    hub.start()
    # The interrupted start's pod becomes the user's server: ready, tracked, reached through
    # the proxy at the pod's address, and the same pod (not deleted and started anew).
    deadline = time.monotonic() + 90
    server = None
    while time.monotonic() < deadline:
        server = _server(hub, user)
        if server and server["ready"]:
            break
        time.sleep(0.5)
    assert server and server["ready"], f"not adopted: {server}\n{hub.log_tail()}"
    assert server["user_options"]["profile"] == "base"
    assert hub.get(f"/user/{user}/api/status").status_code == 200
    assert [uid for uid, phase, deleting in _server_pods(core, kube_namespace).values()] == [uid]
    log = hub.log_path.read_text(errors="replace")[killed_at:]
    assert "does not appear to be running" not in log
    assert "Traceback" not in log

    # It is a server like any other: it stops, and starts again.
    assert hub.api("DELETE", f"users/{user}/server").status_code in (202, 204)
    deadline = time.monotonic() + 60
    while _server_pods(core, kube_namespace) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert _server_pods(core, kube_namespace) == {}


def test_a_pod_that_cannot_come_up_is_removed_at_once_with_its_reason(example_hub, control_plane, kube_namespace):
    hub, user = example_hub, "erin"
    core = client.CoreV1Api(control_plane.api_client())
    hub.start()
    assert hub.api("POST", f"users/{user}").status_code == 201
    _kill_once_the_pod_exists(hub, core, kube_namespace, user, "missing")
    killed_at = hub.log_path.stat().st_size

    hub.start()
    # No "pending check" for the length of http_timeout: the server record is gone and its pod
    # deleted while the hub starts, with Kubernetes' reason in the log.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (_server(hub, user) or _server_pods(core, kube_namespace)):
        time.sleep(0.3)
    assert _server(hub, user) is None, hub.log_tail()
    assert _server_pods(core, kube_namespace) == {}
    log = hub.log_path.read_text(errors="replace")[killed_at:]
    assert "quay.io/nobody/does-not-exist:1" in log, log[-3000:]
    assert "Traceback" not in log

    # The user starts again at once, and gets a server.
    r = hub.api("POST", f"users/{user}/server", json={"profile": "base"})
    assert r.status_code in (201, 202), r.text
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (_server(hub, user) or {}).get("ready"):
        time.sleep(0.5)
    assert (_server(hub, user) or {}).get("ready"), hub.log_tail()
