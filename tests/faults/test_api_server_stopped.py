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

import threading
import time

import pytest
import requests
from kubernetes import client, watch

from .examplehub import ExampleHub
from .hubchecks import SENTENCES, Background, agreed, no_traceback, start, told, works

pytestmark = pytest.mark.cluster

#: Longer than KubeSpawner's retries of a request (k8s_api_request_retry_timeout, 30 s).
FROZEN_SECONDS = 35
#: Enough for a stop to be held by it; a stop's requests have no timeout of their own.
FROZEN_STOP_SECONDS = 20
#: From SIGTERM to SIGKILL; the start again then takes the API server about 5 s.
DOWN_SECONDS = 3
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


def _outcome_in_words(hub: ExampleHub, user: str, answer: requests.Response) -> str:
    """What the user was told: 'ready', or the sentence the start failed with (in the answer
    to the start, or at the end of the spawn page's progress once it took longer)."""
    message = told(hub, user, answer)
    if message == "ready":
        return "ready"
    found = SENTENCES.search(message)
    assert found, message
    return found.group(0)


def test_a_start_while_the_api_server_is_frozen_ends_in_words_and_the_next_one_works(
        example_hub, api_server, control_plane, kube_namespace):
    hub, user = example_hub, "ann"
    assert hub.api("POST", f"users/{user}").status_code == 201
    frozen = _when(control_plane, kube_namespace, "networkpolicy", f"jupyter-{user}",
                   lambda e: e["type"] == "ADDED", api_server.freeze)
    answer = Background(lambda: start(hub, user))
    frozen.value(60)
    time.sleep(FROZEN_SECONDS)
    api_server.thaw()

    told = _outcome_in_words(hub, user, answer.value())
    print(f"the user was told: {told}")
    # Once the API server answers again, the failed start removed what it had made (its
    # cleanup waited for it), or the server runs with its pod.
    server = agreed(hub, control_plane, kube_namespace, user)
    assert bool(server) == (told == "ready"), (server, told)
    no_traceback(hub)
    works(hub, control_plane, kube_namespace, user)


def test_a_start_while_the_api_server_restarts_ends_in_words_and_the_next_one_works(
        example_hub, api_server, control_plane, kube_namespace):
    hub, user = example_hub, "bob"
    assert hub.api("POST", f"users/{user}").status_code == 201
    stopped = _when(control_plane, kube_namespace, "networkpolicy", f"jupyter-{user}",
                    lambda e: e["type"] == "ADDED", api_server.stop)
    answer = Background(lambda: start(hub, user))
    stopped.value(60)
    api_server.start()

    told = _outcome_in_words(hub, user, answer.value())
    print(f"the user was told: {told}")
    # Answered at once, a failed start removes what it had made once the API server is back
    # (a pod too, when its create landed just before the API server went).
    server = agreed(hub, control_plane, kube_namespace, user)
    assert bool(server) == (told == "ready"), (server, told)
    # The next start waits for its pod on the pod cache, which followed the restart.
    works(hub, control_plane, kube_namespace, user)
    no_traceback(hub)


def test_a_stop_while_the_api_server_is_frozen_ends_with_the_pod_gone(
        example_hub, api_server, control_plane, kube_namespace):
    hub, user = example_hub, "cy"
    assert hub.api("POST", f"users/{user}").status_code == 201
    assert start(hub, user).status_code in (201, 202)
    assert agreed(hub, control_plane, kube_namespace, user)
    frozen = _when(control_plane, kube_namespace, "pod", f"jupyter-{user}",
                   lambda e: e["object"].metadata.deletion_timestamp is not None, api_server.freeze)
    answer = Background(lambda: hub.api("DELETE", f"users/{user}/server"))
    frozen.value(60)
    time.sleep(FROZEN_STOP_SECONDS)
    server = hub.api("GET", f"users/{user}").json()["servers"].get("")
    assert server and server["pending"] == "stop", server  # not forgotten while its pod may run
    api_server.thaw()

    assert answer.value().status_code in (202, 204)
    assert agreed(hub, control_plane, kube_namespace, user) is None
    no_traceback(hub)
    works(hub, control_plane, kube_namespace, user)


def test_a_stop_meeting_a_restarting_api_server_waits_for_it_and_removes_the_pod(
        example_hub, api_server, control_plane, kube_namespace):
    """The API server terminated just before the stop, so that the stop's first requests are
    refused whatever the timing (terminated at the pod's deletion, only the NetworkPolicy's
    deletion would be, some of the time)."""
    hub, user = example_hub, "dee"
    assert hub.api("POST", f"users/{user}").status_code == 201
    assert start(hub, user).status_code in (201, 202)
    assert agreed(hub, control_plane, kube_namespace, user)
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
    assert agreed(hub, control_plane, kube_namespace, user) is None
    logged = hub.log_path.read_text(errors="replace")[before:]
    assert logged.count("not deleted yet: the cluster's API is not reachable") == 1, logged
    assert "deleted once the cluster's API answered" in logged, logged
    no_traceback(hub)
    works(hub, control_plane, kube_namespace, user)
