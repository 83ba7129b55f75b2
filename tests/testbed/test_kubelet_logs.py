"""The node agent serves the kubelet's containerLogs endpoint, where the Node's status says
(InternalIP, daemonEndpoints.kubeletEndpoint.Port), as the API server calls it for pods/log:
tailLines, limitBytes and follow work; what the agent's log files cannot give (timestamps, the
previous run) is refused in a sentence, never made up."""
from __future__ import annotations

import time

import pytest
import requests
import urllib3
from kubernetes import client

pytestmark = pytest.mark.cluster


def _pod(name, script, restart="Never"):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": restart, "terminationGracePeriodSeconds": 2,
                     "containers": [{"name": "main", "image": "busybox:1.36", "command": ["/bin/sh", "-c", script]}]}}


def _wait(core, namespace, name, predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pod = core.read_namespaced_pod(name, namespace)
        if predicate(pod):
            return pod
        time.sleep(0.1)
    raise AssertionError(f"pod {name} never got there: {pod.status}")


@pytest.fixture
def core(control_plane, node_agent):
    return client.CoreV1Api(control_plane.api_client())


@pytest.fixture
def kubelet(core):
    """GET on the node's kubelet endpoint, found as the API server finds it (the Node's status);
    its certificate is self-signed, as the API server accepts kubelets' by default."""
    node = core.read_node("tycho-node-1")
    address = {a.type: a.address for a in node.status.addresses}["InternalIP"]
    port = node.status.daemon_endpoints.kubelet_endpoint.port
    assert port > 0
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

    def get(path, **kwargs):
        return requests.get(f"https://{address}:{port}{path}", verify=False, timeout=30, **kwargs)
    return get


def test_a_containers_logs_whole_tailed_and_cut(core, kube_namespace, kubelet):
    core.create_namespaced_pod(kube_namespace, _pod("printer", "for i in $(seq 1 20); do echo line $i; done; echo err >&2"))
    _wait(core, kube_namespace, "printer", lambda p: p.status.phase == "Succeeded")
    path = f"/containerLogs/{kube_namespace}/printer/main"
    r = kubelet(path)
    assert r.status_code == 200
    assert r.text.splitlines() == [f"line {i}" for i in range(1, 21)] + ["err"]
    assert kubelet(path, params={"tailLines": 3}).text.splitlines() == ["line 19", "line 20", "err"]
    assert kubelet(path, params={"tailLines": 100}).text == r.text
    assert kubelet(path, params={"limitBytes": 10}).text == "line 1\nlin"
    # What the agent's files cannot say is refused in a sentence, not answered wrongly.
    for query in ({"timestamps": "true"}, {"previous": "true"}, {"sinceSeconds": "10"}):
        refused = kubelet(path, params=query)
        assert refused.status_code == 400 and f"{next(iter(query))} is not supported" in refused.text
    assert kubelet(f"/containerLogs/{kube_namespace}/printer/nope").status_code == 404
    assert kubelet(f"/containerLogs/{kube_namespace}/missing/main").status_code == 404
    assert kubelet("/exec/x/y/z").status_code == 404


def test_follow_streams_new_lines_until_the_container_stops(core, kube_namespace, kubelet):
    core.create_namespaced_pod(kube_namespace, _pod("ticker", "for i in 1 2 3 4 5; do echo tick $i; sleep 1; done"))
    _wait(core, kube_namespace, "ticker", lambda p: p.status.phase == "Running")
    started = time.monotonic()
    with kubelet(f"/containerLogs/{kube_namespace}/ticker/main", params={"follow": "true"}, stream=True) as r:
        lines = list(r.iter_lines(decode_unicode=True))
    assert lines == [f"tick {i}" for i in range(1, 6)]
    assert time.monotonic() - started > 2  # it waited for the lines written after the request
