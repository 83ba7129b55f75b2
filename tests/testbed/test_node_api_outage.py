"""The node agent rides out an API server outage, as a kubelet does.

A second node agent of its own talks to the real API server through a TCP relay
(`tests/tcprelay.py`); the relay is cut (refused and reset connections) while a pod's
readiness changes, then restored. Before, the pod's worker died on the first failed status
write ("worker failed") and the pod stayed not ready for good.
"""
from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest
import yaml
from kubernetes import client

from tests.tcprelay import TcpRelay
from tycho_testbed.__main__ import start_node, wait_node_ready
from tycho_testbed.cluster import free_port

pytestmark = pytest.mark.cluster

NODE = "tycho-node-outage"
INDEX = 250  # the shared agent of a test run uses 200-249


def _ready(pod) -> bool:
    return bool(pod.status.container_statuses) and all(c.ready for c in pod.status.container_statuses)


@pytest.fixture
def agent_behind_relay(control_plane, testbed_images, tmp_path):
    kubeconfig = yaml.safe_load(control_plane.kubeconfig_path.read_text())
    real = urlsplit(kubeconfig["clusters"][0]["cluster"]["server"])
    relay = TcpRelay(free_port(), (real.hostname, real.port)).start()
    for cluster in kubeconfig["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{relay.port}"
    path = tmp_path / "relay.kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))
    log = tmp_path / "agent.log"
    proc = start_node(path, NODE, tmp_path / "state", testbed_images, log, index=INDEX, detach=False)
    core = client.CoreV1Api(control_plane.api_client())
    try:
        wait_node_ready(control_plane.api_client(), NODE, timeout=60)
        yield relay, log
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except Exception:
            proc.kill()
        relay.stop()
        core.delete_node(NODE)


def test_a_pod_becomes_ready_after_an_outage_and_is_deleted(control_plane, kube_namespace, agent_behind_relay):
    relay, log = agent_behind_relay
    core = client.CoreV1Api(control_plane.api_client())
    # Serves /ready.txt (readiness) only from about 4 s after it starts.
    script = "mkdir -p /tmp/www; cd /tmp/www; (sleep 4; touch ready.txt) & exec python3 -m http.server 9000"
    core.create_namespaced_pod(kube_namespace, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "patient"},
        "spec": {"nodeName": NODE, "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "web", "image": "busybox:1.36", "command": ["/bin/sh", "-c", script],
                                 "readinessProbe": {"httpGet": {"path": "/ready.txt", "port": 9000},
                                                    "periodSeconds": 1}}]},
    })
    deadline = time.monotonic() + 15
    pod = core.read_namespaced_pod("patient", kube_namespace)
    while pod.status.phase != "Running":
        assert time.monotonic() < deadline, pod.status
        time.sleep(0.1)
        pod = core.read_namespaced_pod("patient", kube_namespace)
    assert not _ready(pod)

    relay.stop()  # the API server is away while the app becomes ready
    time.sleep(8)
    assert not _ready(core.read_namespaced_pod("patient", kube_namespace)), "written while the API was cut?"
    relay.start()

    deadline = time.monotonic() + 15
    while not _ready(pod := core.read_namespaced_pod("patient", kube_namespace)):
        assert time.monotonic() < deadline, f"never ready after the outage:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)
    assert pod.status.container_statuses[0].restart_count == 0

    relay.stop()  # deleted during an outage: the agent finishes the deletion once it can
    core.delete_namespaced_pod("patient", kube_namespace)
    time.sleep(3)
    relay.start()
    deadline = time.monotonic() + 20
    while [p for p in core.list_namespaced_pod(kube_namespace).items if p.metadata.name == "patient"]:
        assert time.monotonic() < deadline, f"the deletion never finished:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)
    assert "worker failed" not in log.read_text()
