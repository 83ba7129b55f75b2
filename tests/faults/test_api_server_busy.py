"""The Kubernetes API server answering "not now" (429, 503, 504) to a start and to a stop.

The example `jupyterhub_config.py` in a real `jupyterhub` process with its proxy, on the test
bed, talking to the test bed's own kube-apiserver. What makes that API server answer "not now"
is a validating admission webhook (tests/admissionwebhook.py) served by the test on loopback,
which refuses the pod's creation or deletion in the test's namespace with the chosen status:
the API server itself sends the hub that status, as it does when it is overloaded (429), when
its own timeout fires (504), or as a gateway in front of it does (503). Nothing answers in its
place.

* A start refused that way is told to the user in one sentence ("The cluster's API did not
  answer in time; try again in a minute.", HTTP 503: it is temporary), leaves nothing behind
  (no pod, NetworkPolicy or token Secret, no server record), and once the API server accepts
  again the next start works.
* A stop refused that way is tried again (0.5 to 5 s apart) while the server shows "pending
  stop" and its pod keeps running; a few seconds after the API server accepts, the pod, its
  NetworkPolicy and Secret are gone and the hub has forgotten the server.

Before commit 306c16c the start was told "Kubernetes refused to create pods: 429 ..." with HTTP
500, and the stop gave up at the first refusal: JupyterHub forgot the server, its pod kept running.
"""
from __future__ import annotations

import time

import pytest
from kubernetes import client

from tests.admissionwebhook import RefusingWebhook

from .hubchecks import Background, agreed, no_traceback, objects, start, told, works

pytestmark = pytest.mark.cluster

#: What the user is told (tycho_spawner.spawner.BUSY_MESSAGE; written out: it is the behaviour).
BUSY = "The cluster's API did not answer in time; try again in a minute."
#: How long a stop is refused: long enough for the stop to try three times (0.5, then 1 s apart).
REFUSED_STOP_SECONDS = 3
#: From the API server accepting again to the stop done: its next try (at most 5 s later)
#: and the pod's deletion (grace 1 s).
STOPPED_WITHIN_SECONDS = 10


def _probe_pod() -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "admission-probe"},
            "spec": {"containers": [{"name": "probe", "image": "probe"}]}}


@pytest.mark.parametrize("code", [429, 504])
def test_a_start_the_api_server_answers_not_now_is_a_503_in_words_leaves_nothing_then_works(
        example_hub, control_plane, kube_namespace, code):
    hub, user = example_hub, "ivy"
    core = client.CoreV1Api(control_plane.api_client())
    probe = lambda: core.create_namespaced_pod(kube_namespace, _probe_pod(), dry_run="All")  # noqa: E731
    hub.start()
    assert hub.api("POST", f"users/{user}").status_code == 201
    webhook = RefusingWebhook(control_plane.api_client(), kube_namespace, ["CREATE"], ["pods"], code,
                              "the API server is busy (the test's admission webhook)")
    try:
        webhook.install(probe)
        before = len(hub.log_path.read_text(errors="replace"))
        answer = start(hub, user)
        status, message = answer.status_code, told(hub, user, answer)
        assert webhook.refused("CREATE", f"jupyter-{user}") >= 1, webhook.reviews
        if status == 202:  # the start took longer than JupyterHub waits: told on the progress page
            assert message.endswith(BUSY), (status, message)
        else:
            assert (status, message) == (503, BUSY)
        print(f"{code}: the user was told, HTTP {status}: {message}")
        # Nothing left: the failed start removed its NetworkPolicy and Secret before answering.
        assert hub.api("GET", f"users/{user}").json()["servers"] == {}, "the failed start left a server record"
        assert objects(control_plane, kube_namespace) == ([], [], []), hub.log_tail()
        logged = hub.log_path.read_text(errors="replace")[before:]
        assert f"the cluster's API did not create pods in time: {code} " in logged, logged
        no_traceback(hub)
    finally:
        webhook.remove(probe)
    works(hub, control_plane, kube_namespace, user)
    no_traceback(hub)


def test_a_stop_the_api_server_answers_not_now_waits_pending_then_removes_the_pod(
        example_hub, control_plane, kube_namespace):
    hub, user = example_hub, "sol"
    pod = f"jupyter-{user}"
    core = client.CoreV1Api(control_plane.api_client())
    probe = lambda: core.delete_namespaced_pod(pod, kube_namespace, dry_run="All")  # noqa: E731
    hub.start()
    assert hub.api("POST", f"users/{user}").status_code == 201
    assert start(hub, user).status_code in (201, 202)
    assert agreed(hub, control_plane, kube_namespace, user)
    webhook = RefusingWebhook(control_plane.api_client(), kube_namespace, ["DELETE"], ["pods"], 503,
                              "the API server is unavailable (the test's admission webhook)")
    try:
        webhook.install(probe)
        before = len(hub.log_path.read_text(errors="replace"))
        answer = Background(lambda: hub.api("DELETE", f"users/{user}/server"))
        deadline = time.monotonic() + 20
        while not webhook.refused("DELETE", pod):
            assert time.monotonic() < deadline, hub.log_tail()
            time.sleep(0.1)
        held_until = time.monotonic() + REFUSED_STOP_SECONDS
        while time.monotonic() < held_until:
            # Not forgotten while its pod runs: the hub shows it pending stop, the pod is there.
            server = hub.api("GET", f"users/{user}").json()["servers"].get("")
            running = core.read_namespaced_pod(pod, kube_namespace).metadata.deletion_timestamp is None
            assert server and server["pending"] == "stop", \
                f"the hub shows {server} while the pod {'runs' if running else 'is being deleted'}"
            assert running
            time.sleep(0.5)
        refusals = webhook.refused("DELETE", pod)
        assert refusals >= 3, webhook.reviews  # it tried again, more than once
    finally:
        webhook.remove(probe)
    accepted = time.monotonic()
    assert agreed(hub, control_plane, kube_namespace, user) is None  # no server, pod, policy, Secret
    took = time.monotonic() - accepted
    assert not core.list_namespaced_pod(kube_namespace, field_selector=f"metadata.name={pod}").items
    print(f"refused {refusals} times; stopped {took:.1f} s after the API server accepted again")
    assert took < STOPPED_WITHIN_SECONDS, took
    assert answer.value().status_code in (202, 204)
    logged = hub.log_path.read_text(errors="replace")[before:]
    assert f"pod {kube_namespace}/{pod} deleted once the cluster's API answered" in logged, logged
    # One warning for the whole wait, not a line per try.
    assert logged.count(f"pod {kube_namespace}/{pod} not deleted yet: the cluster's API did not delete pods "
                        "in time: 503") == 1, logged
    assert "[E " not in logged, logged
    no_traceback(hub)
