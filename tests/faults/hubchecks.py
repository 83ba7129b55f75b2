"""What the fault suite checks of a real hub after a fault: the user was answered in words,
the log has no traceback, the hub and Kubernetes agree, and the next start works.

Shared by the fault tests that break the cluster's API (stopped, busy); each test module keeps
only how it breaks it.
"""
from __future__ import annotations

import json
import re
import threading
import time

import jupyterhub
import requests
from kubernetes import client

from .examplehub import ExampleHub

#: What a user may be told when a start fails on the cluster's API, stopped or busy (after
#: JupyterHub's "Spawn failed: ").
SENTENCES = re.compile(
    r"The cluster's API is not reachable; try again in a minute\."
    r"|Your server could not be created in time: Could not create (pod|PVC) \S+"
    r"|The cluster's API did not answer in time; try again in a minute\."  # its own 504, once thawed
)


class Background(threading.Thread):
    """A call in a thread; ``value()`` joins it and returns its result or raises its error."""

    def __init__(self, call):
        super().__init__(daemon=True)
        self.call, self.result, self.error = call, None, None
        self.start()

    def run(self):
        try:
            self.result = self.call()
        except BaseException as err:  # raised again by value()
            self.error = err

    def value(self, timeout: float = 120):
        self.join(timeout)
        assert not self.is_alive(), f"{self.call} still running after {timeout} s"
        if self.error is not None:
            raise self.error
        return self.result


def progress(hub: ExampleHub, user: str) -> dict:
    """The last event the user's spawn page gets: ready, or failed with a message."""
    with requests.get(f"{hub.url}/hub/api/users/{user}/server/progress", stream=True, timeout=(10, 60),
                      headers={"Authorization": f"token {hub.token}"}) as r:
        assert r.status_code == 200, r.text
        for line in r.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                event = json.loads(line[5:])
                if event.get("ready") or event.get("failed"):
                    return event
    raise AssertionError("the progress stream ended without an outcome")


def told(hub: ExampleHub, user: str, answer: requests.Response) -> str:
    """What the user was told of a start: 'ready', or the message it failed with, in the answer
    to the start or, once it took longer than JupyterHub waits (202), at the end of the spawn
    page's progress."""
    if answer.status_code in (201, 202):
        event = progress(hub, user)
        return "ready" if event.get("ready") else event["message"]
    return answer.json()["message"]


def objects(plane, namespace: str) -> tuple[list, list, list]:
    """Server pods not being deleted, NetworkPolicies, and servers' Secrets in the namespace."""
    api = plane.api_client()
    core = client.CoreV1Api(api)
    pods = [p.metadata.name for p in core.list_namespaced_pod(
        namespace, label_selector="component=singleuser-server").items if not p.metadata.deletion_timestamp]
    policies = [p.metadata.name for p in client.NetworkingV1Api(api).list_namespaced_network_policy(namespace).items]
    secrets = [s.metadata.name for s in core.list_namespaced_secret(
        namespace, label_selector="component=singleuser-server").items]
    return pods, policies, secrets


def settled(hub: ExampleHub, user: str, timeout: float = 120) -> dict | None:
    """The server's model once nothing is pending (None: no server)."""
    deadline = time.monotonic() + timeout
    while True:
        server = hub.api("GET", f"users/{user}").json()["servers"].get("")
        if server is None or (server["ready"] and not server["pending"]):
            return server
        assert time.monotonic() < deadline, f"still pending: {server}\n{hub.log_tail()}"
        time.sleep(0.3)


def agreed(hub: ExampleHub, plane, namespace: str, user: str) -> dict | None:
    """Waits until Kubernetes agrees with the hub about the server; returns the hub's model."""
    deadline = time.monotonic() + 60
    while True:
        server = settled(hub, user)
        pods, policies, secrets = objects(plane, namespace)
        if server and pods == policies == [f"jupyter-{user}"]:
            return server
        if not server and pods == policies == secrets == []:
            return None
        assert time.monotonic() < deadline, \
            f"hub says {server}, Kubernetes has pods {pods}, policies {policies}, secrets {secrets}"
        time.sleep(0.3)


#: JupyterHub before 6 (tornado's gen.with_timeout) logs a spawn that fails after
#: `slow_spawn_timeout` (10 s) as "Exception in Future ... after timeout" with the traceback of the
#: spawner's exception, for any spawner; JupyterHub 6 does not. Only that report is allowed, and
#: only when it ends in one of the sentences a user may be told.
JUPYTERHUB_LATE_FAILURE = re.compile(
    r"\[E [^\]]* JupyterHub gen:\d+\] Exception in Future <Task finished name='[^']*' "
    r"coro=<BaseHandler\.spawn_single_user\.<locals>\.finish_user_spawn\(\).*after timeout\n"
    r"(?P<traceback>(?:    .*\n|\n)+)"
)


def no_traceback(hub: ExampleHub) -> None:
    log = hub.log_path.read_text(errors="replace")
    if jupyterhub.version_info < (6,):
        for report in JUPYTERHUB_LATE_FAILURE.finditer(log):
            last = report["traceback"].rstrip().splitlines()[-1].strip()
            assert last.startswith("tycho_spawner.compat.SpawnException: ") and SENTENCES.search(last), last
        log = JUPYTERHUB_LATE_FAILURE.sub("", log)
    assert "Traceback" not in log, log[log.index("Traceback") - 2000:][:6000]


def start(hub: ExampleHub, user: str) -> requests.Response:
    return hub.api("POST", f"users/{user}/server", json={"profile": "base"})


def works(hub: ExampleHub, plane, namespace: str, user: str) -> None:
    """The server starts (or runs), answers through the proxy, and stops leaving nothing."""
    if settled(hub, user) is None:
        assert start(hub, user).status_code in (201, 202)
    assert agreed(hub, plane, namespace, user), hub.log_tail()
    assert hub.get(f"/user/{user}/api/status").status_code == 200
    assert hub.api("DELETE", f"users/{user}/server").status_code in (202, 204)
    assert agreed(hub, plane, namespace, user) is None
