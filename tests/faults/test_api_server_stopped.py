"""The Kubernetes API server stopped in the middle of a start and of a stop.

The example `jupyterhub_config.py` in a real `jupyterhub` process with its proxy, on the test
bed, talking to the test bed's own kube-apiserver. That process is stopped for real, at a
moment a watch on the API server picks (the start's NetworkPolicy created: its token Secret and
pod on their way; the pod being deleted):

* frozen (SIGSTOP): connections open, nothing answers, for longer than KubeSpawner's retries
  of a request (`k8s_api_request_retry_timeout`, 30 s), then SIGCONT;
* terminated (SIGTERM; it stops listening at once, and is SIGKILLed after a few seconds as a
  kubelet would, instead of draining watches for a minute), then started again on the same
  port with the same flags and etcd.

Whatever the moment, once the API server is back: the user was answered in words, the hub's
log has no traceback, the hub and Kubernetes agree (a server the hub has has its pod and
NetworkPolicy; one it has not, none), and the next start works, woken by a pod cache that
followed the API server through it. A stop that meets an API server away retries until it is
back: the pod does not keep running once the hub has forgotten the server. A start that fails
while it is away answers at once, and what it had made (NetworkPolicy, token Secret, a pod whose
create landed just before the API server went) is removed once it is back (README, "What
survives what").
"""
from __future__ import annotations

import json
import re
import threading
import time

import jupyterhub
import pytest
import requests
from kubernetes import client, watch

from .examplehub import ExampleHub

pytestmark = pytest.mark.cluster

#: Longer than KubeSpawner's retries of a request (k8s_api_request_retry_timeout, 30 s).
FROZEN_SECONDS = 35
#: Enough for a stop to be held by it; a stop's requests have no timeout of their own.
FROZEN_STOP_SECONDS = 20
#: From SIGTERM to SIGKILL; the start again then takes the API server about 5 s.
DOWN_SECONDS = 3
#: What a user may be told when a start fails this way (after JupyterHub's "Spawn failed: ").
SENTENCES = re.compile(
    r"The cluster's API is not reachable; try again in a minute\."
    r"|Your server could not be created in time: Could not create (pod|PVC) \S+"
    r"|The cluster's API did not answer in time; try again in a minute\."  # its own 504, once thawed
)


class ApiServer:
    """The session's shared kube-apiserver, faulted on purpose and always given back whole
    (thawed, running, ready): other tests of the session use it next."""

    def __init__(self, control_plane):
        self.plane = control_plane
        self.frozen = False
        self.argv: list | None = None
        self.lock = threading.Lock()  # a fault may be set off from a watching thread

    def freeze(self) -> None:
        with self.lock:
            self.plane.freeze_api_server()
            self.frozen = True

    def thaw(self) -> None:
        with self.lock:
            self.plane.thaw_api_server()
            self.frozen = False

    def stop(self) -> None:
        with self.lock:
            self.argv = self.plane.stop_api_server(grace=DOWN_SECONDS)

    def start(self) -> None:
        with self.lock:
            self.plane.start_api_server(self.argv)
            self.argv = None

    def restore(self) -> None:
        if self.frozen:
            self.thaw()
        if self.argv is not None:
            self.start()


@pytest.fixture
def api_server(control_plane):
    faults = ApiServer(control_plane)
    try:
        yield faults
    finally:
        faults.restore()


@pytest.fixture
def example_hub(tmp_path, control_plane, node_agent, kube_namespace, api_server):
    hub = ExampleHub(tmp_path, kube_namespace, control_plane.kubeconfig_path)
    try:
        hub.start()
        yield hub
    finally:
        hub.tear_down()  # before api_server's restore: the hub is killed, not stopped


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


def _when(plane, namespace: str, kind: str, name: str, happened, fault) -> Background:
    """Set off ``fault`` the moment a watch sees the object in the state ``happened`` says."""
    api = client.CoreV1Api(plane.api_client()) if kind == "pod" else client.NetworkingV1Api(plane.api_client())
    list_method = api.list_namespaced_pod if kind == "pod" else api.list_namespaced_network_policy

    def watch_then_act():
        w = watch.Watch()
        for event in w.stream(list_method, namespace, timeout_seconds=60):
            if event["object"].metadata.name == name and happened(event):
                fault()
                w.stop()
                return
        raise AssertionError(f"{kind} {name} never seen")

    return Background(watch_then_act)


def _progress(hub: ExampleHub, user: str) -> dict:
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


def _objects(plane, namespace: str) -> tuple[list, list, list]:
    """Server pods not being deleted, NetworkPolicies, and servers' Secrets in the namespace."""
    api = plane.api_client()
    core = client.CoreV1Api(api)
    pods = [p.metadata.name for p in core.list_namespaced_pod(
        namespace, label_selector="component=singleuser-server").items if not p.metadata.deletion_timestamp]
    policies = [p.metadata.name for p in client.NetworkingV1Api(api).list_namespaced_network_policy(namespace).items]
    secrets = [s.metadata.name for s in core.list_namespaced_secret(
        namespace, label_selector="component=singleuser-server").items]
    return pods, policies, secrets


def _settled(hub: ExampleHub, user: str, timeout: float = 120) -> dict | None:
    """The server's model once nothing is pending (None: no server)."""
    deadline = time.monotonic() + timeout
    while True:
        server = hub.api("GET", f"users/{user}").json()["servers"].get("")
        if server is None or (server["ready"] and not server["pending"]):
            return server
        assert time.monotonic() < deadline, f"still pending: {server}\n{hub.log_tail()}"
        time.sleep(0.3)


def _agreed(hub: ExampleHub, plane, namespace: str, user: str) -> dict | None:
    """Waits until Kubernetes agrees with the hub about the server; returns the hub's model."""
    deadline = time.monotonic() + 60
    while True:
        server = _settled(hub, user)
        pods, policies, secrets = _objects(plane, namespace)
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


def _no_traceback(hub: ExampleHub) -> None:
    log = hub.log_path.read_text(errors="replace")
    if jupyterhub.version_info < (6,):
        for report in JUPYTERHUB_LATE_FAILURE.finditer(log):
            last = report["traceback"].rstrip().splitlines()[-1].strip()
            assert last.startswith("tycho_spawner.compat.SpawnException: ") and SENTENCES.search(last), last
        log = JUPYTERHUB_LATE_FAILURE.sub("", log)
    assert "Traceback" not in log, log[log.index("Traceback") - 2000:][:6000]


def _start(hub: ExampleHub, user: str) -> requests.Response:
    return hub.api("POST", f"users/{user}/server", json={"profile": "base"})


def _works(hub: ExampleHub, plane, namespace: str, user: str) -> None:
    """The server starts (or runs), answers through the proxy, and stops leaving nothing."""
    if _settled(hub, user) is None:
        assert _start(hub, user).status_code in (201, 202)
    assert _agreed(hub, plane, namespace, user), hub.log_tail()
    assert hub.get(f"/user/{user}/api/status").status_code == 200
    assert hub.api("DELETE", f"users/{user}/server").status_code in (202, 204)
    assert _agreed(hub, plane, namespace, user) is None


def _outcome_in_words(hub: ExampleHub, user: str, answer: requests.Response) -> str:
    """What the user was told: 'ready', or the sentence the start failed with (in the answer
    to the start, or at the end of the spawn page's progress once it took longer)."""
    if answer.status_code in (201, 202):
        event = _progress(hub, user)
        if event.get("ready"):
            return "ready"
        message = event["message"]
    else:
        message = answer.json()["message"]
    found = SENTENCES.search(message)
    assert found, message
    return found.group(0)


def test_a_start_while_the_api_server_is_frozen_ends_in_words_and_the_next_one_works(
        example_hub, api_server, control_plane, kube_namespace):
    hub, user = example_hub, "ann"
    assert hub.api("POST", f"users/{user}").status_code == 201
    frozen = _when(control_plane, kube_namespace, "networkpolicy", f"jupyter-{user}",
                   lambda e: e["type"] == "ADDED", api_server.freeze)
    answer = Background(lambda: _start(hub, user))
    frozen.value(60)
    time.sleep(FROZEN_SECONDS)
    api_server.thaw()

    told = _outcome_in_words(hub, user, answer.value())
    print(f"the user was told: {told}")
    # Once the API server answers again, the failed start removed what it had made (its
    # cleanup waited for it), or the server runs with its pod.
    server = _agreed(hub, control_plane, kube_namespace, user)
    assert bool(server) == (told == "ready"), (server, told)
    _no_traceback(hub)
    _works(hub, control_plane, kube_namespace, user)


def test_a_start_while_the_api_server_restarts_ends_in_words_and_the_next_one_works(
        example_hub, api_server, control_plane, kube_namespace):
    hub, user = example_hub, "bob"
    assert hub.api("POST", f"users/{user}").status_code == 201
    stopped = _when(control_plane, kube_namespace, "networkpolicy", f"jupyter-{user}",
                    lambda e: e["type"] == "ADDED", api_server.stop)
    answer = Background(lambda: _start(hub, user))
    stopped.value(60)
    api_server.start()

    told = _outcome_in_words(hub, user, answer.value())
    print(f"the user was told: {told}")
    # Answered at once, a failed start removes what it had made once the API server is back
    # (a pod too, when its create landed just before the API server went).
    server = _agreed(hub, control_plane, kube_namespace, user)
    assert bool(server) == (told == "ready"), (server, told)
    # The next start waits for its pod on the pod cache, which followed the restart.
    _works(hub, control_plane, kube_namespace, user)
    _no_traceback(hub)


def test_a_stop_while_the_api_server_is_frozen_ends_with_the_pod_gone(
        example_hub, api_server, control_plane, kube_namespace):
    hub, user = example_hub, "cy"
    assert hub.api("POST", f"users/{user}").status_code == 201
    assert _start(hub, user).status_code in (201, 202)
    assert _agreed(hub, control_plane, kube_namespace, user)
    frozen = _when(control_plane, kube_namespace, "pod", f"jupyter-{user}",
                   lambda e: e["object"].metadata.deletion_timestamp is not None, api_server.freeze)
    answer = Background(lambda: hub.api("DELETE", f"users/{user}/server"))
    frozen.value(60)
    time.sleep(FROZEN_STOP_SECONDS)
    server = hub.api("GET", f"users/{user}").json()["servers"].get("")
    assert server and server["pending"] == "stop", server  # not forgotten while its pod may run
    api_server.thaw()

    assert answer.value().status_code in (202, 204)
    assert _agreed(hub, control_plane, kube_namespace, user) is None
    _no_traceback(hub)
    _works(hub, control_plane, kube_namespace, user)


def test_a_stop_meeting_a_restarting_api_server_waits_for_it_and_removes_the_pod(
        example_hub, api_server, control_plane, kube_namespace):
    """The API server terminated just before the stop, so that the stop's first requests are
    refused whatever the timing (terminated at the pod's deletion, only the NetworkPolicy's
    deletion would be, some of the time)."""
    hub, user = example_hub, "dee"
    assert hub.api("POST", f"users/{user}").status_code == 201
    assert _start(hub, user).status_code in (201, 202)
    assert _agreed(hub, control_plane, kube_namespace, user)
    before = len(hub.log_path.read_text(errors="replace"))
    api_server.stop()
    answer = Background(lambda: hub.api("DELETE", f"users/{user}/server"))
    # The stop's requests are refused: it tries again, the server pending stop meanwhile.
    deadline = time.monotonic() + 30
    while "not deleted yet: the cluster's API is not reachable" not in hub.log_path.read_text(errors="replace"):
        assert time.monotonic() < deadline, hub.log_tail()
        time.sleep(0.1)
    assert hub.api("GET", f"users/{user}").json()["servers"][""]["pending"] == "stop"
    api_server.start()

    assert answer.value().status_code in (202, 204)
    assert _agreed(hub, control_plane, kube_namespace, user) is None
    logged = hub.log_path.read_text(errors="replace")[before:]
    assert logged.count("not deleted yet: the cluster's API is not reachable") == 1, logged
    assert "deleted once the cluster's API answered" in logged, logged
    _no_traceback(hub)
    _works(hub, control_plane, kube_namespace, user)
