"""Double clicks: many starts and stops of one server at the same moment.

The example `jupyterhub_config.py` in a real `jupyterhub` process with its proxy, on the test
bed: 10 `POST` and 10 `DELETE` for one user's server at once, three rounds. Whatever order they
land in, the hub and Kubernetes must agree at the end (a server the hub calls running has its
one pod; a stopped one has no pod and no NetworkPolicy left), the spawner never fails with a
traceback of its own, and the user can start the server afterwards. (This test found a stop
clicked during a start's first pod list leaving the server "pending spawn" for good, and a pod
whose create request was on its way when the start was cancelled.)

What JupyterHub itself answers is recorded, not hidden. Its API handlers race each other on
one server, and three of its own errors become 500s with a traceback in its log, none raised
in the spawner:

* a `DELETE` that lands while a start is pending cancels it, waits one second and calls
  `stop_single_user`, which raises `RuntimeError: <user> pending spawn|stop` if the server is
  still pending (jupyterhub/handlers/base.py);
* a `DELETE` whose server was removed meanwhile: `KeyError: User %s has no such spawner`;
* the `POST` that was waiting for the start a `DELETE` cancelled: `CancelledError` in
  `finish_user_spawn` (JupyterHub 6), or no answer at all (JupyterHub 5.5 logs
  "Exception in callback chain_future.<locals>.copy" and never finishes that request).

Every 500 here must be one of those; README "What survives what" gives the reproduction.
"""
from __future__ import annotations

import re
import threading
import time
from collections import Counter

import pytest
import requests
from kubernetes import client

from .examplehub import ExampleHub

pytestmark = pytest.mark.cluster

CLICKS = 10
ROUNDS = 3
#: The errors of JupyterHub's own handlers racing on one server (see above).
JUPYTERHUB_RACES = re.compile(
    r"RuntimeError: \S+ pending (spawn|stop)"
    r"|KeyError: \('User %s has no such spawner %r', '\S+', ''\)"
    r"|asyncio\.exceptions\.CancelledError"
)


def _tracebacks(log: str) -> list[tuple[list[str], str]]:
    """Each traceback in the hub's log: the files of its frames, and its last line."""
    found = []
    for block in log.split("Traceback (most recent call last):")[1:]:
        lines = [line.strip() for line in block.splitlines()[1:]]
        files, i = [], 0
        while lines[i].startswith("File "):  # a frame: its file, its code line, maybe carets
            files.append(lines[i].split('"')[1])
            i += 2
            if lines[i] and set(lines[i]) <= set("^~ "):
                i += 1
        found.append((files, lines[i]))
    return found


def _objects(control_plane, namespace: str) -> tuple[list, list]:
    """Server pods not being deleted, and NetworkPolicies, in the namespace."""
    api = control_plane.api_client()
    pods = [p.metadata.name for p in client.CoreV1Api(api).list_namespaced_pod(
        namespace, label_selector="component=singleuser-server").items if not p.metadata.deletion_timestamp]
    policies = [p.metadata.name for p in client.NetworkingV1Api(api).list_namespaced_network_policy(namespace).items]
    return pods, policies


def _settled(hub: ExampleHub, user: str, timeout: float = 120) -> dict | None:
    """The server's model once nothing is pending (None: no server)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = hub.api("GET", f"users/{user}")
        assert r.status_code == 200, r.text
        server = r.json()["servers"].get("")
        if server is None or (server["ready"] and not server["pending"]):
            return server
        time.sleep(0.3)
    raise AssertionError(f"still pending: {server}\n{hub.log_tail()}")


def _agreed(hub: ExampleHub, control_plane, namespace: str, user: str) -> dict | None:
    """Waits until Kubernetes agrees with the hub about the server; returns the hub's model."""
    deadline = time.monotonic() + 60
    while True:
        server = _settled(hub, user)
        pods, policies = _objects(control_plane, namespace)
        expected = [f"jupyter-{user}"] if server else []
        if pods == expected and policies == expected:
            return server
        assert time.monotonic() < deadline, f"hub says {server}, Kubernetes has pods {pods}, policies {policies}"
        time.sleep(0.3)


def test_simultaneous_starts_and_stops_end_in_a_state_the_hub_and_kubernetes_agree_on(
        example_hub, control_plane, kube_namespace):
    hub, user = example_hub, "clicker"
    hub.start()
    assert hub.api("POST", f"users/{user}").status_code == 201
    answers: Counter = Counter()
    for _ in range(ROUNDS):
        barrier = threading.Barrier(2 * CLICKS)
        results: list = []

        def click(method: str) -> None:
            barrier.wait()
            try:
                r = requests.request(method, f"{hub.url}/hub/api/users/{user}/server", timeout=20,
                                     headers={"Authorization": f"token {hub.token}"},
                                     **({"json": {"profile": "base"}} if method == "POST" else {}))
                results.append((method, r.status_code))
            except requests.Timeout:
                results.append((method, None))

        threads = [threading.Thread(target=click, args=(m,)) for m in ("POST", "DELETE") * CLICKS]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert len(results) == 2 * CLICKS
        answers.update(results)
        # Whatever won, the hub and Kubernetes agree (one pod and its policy, or none).
        _agreed(hub, control_plane, kube_namespace, user)

    log = hub.log_path.read_text(errors="replace")
    print(f"answers over {ROUNDS} rounds of {CLICKS} POST + {CLICKS} DELETE: {dict(sorted(answers.items(), key=str))}")
    assert set(answers) <= {("POST", 201), ("POST", 202), ("POST", 400), ("POST", 500), ("POST", None),
                            ("DELETE", 202), ("DELETE", 204), ("DELETE", 500)}, answers
    # Every 500 is one of JupyterHub's own races, raised in JupyterHub; the spawner raised nothing.
    tracebacks = _tracebacks(log)
    assert len(tracebacks) >= answers[("DELETE", 500)] + answers[("POST", 500)]
    for files, error in tracebacks:
        assert JUPYTERHUB_RACES.fullmatch(error), (error, files)
        assert not any("tycho_spawner" in f or "kubespawner" in f for f in files), files
        raised_in = [f for f in files if "/asyncio/" not in f]  # none: the cancellation of a chain
        assert not raised_in or "/jupyterhub/" in raised_in[-1], files

    # And the server still works: stopped, started, reached, stopped.
    if _settled(hub, user):
        assert hub.api("DELETE", f"users/{user}/server").status_code in (202, 204)
        assert _agreed(hub, control_plane, kube_namespace, user) is None
    assert hub.api("POST", f"users/{user}/server", json={"profile": "base"}).status_code in (201, 202)
    assert _agreed(hub, control_plane, kube_namespace, user)
    assert hub.get(f"/user/{user}/api/status").status_code == 200
    assert hub.api("DELETE", f"users/{user}/server").status_code in (202, 204)
    assert _agreed(hub, control_plane, kube_namespace, user) is None
