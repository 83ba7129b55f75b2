"""A running pod's configMap and secret volumes follow their objects, as a kubelet keeps them.

A kubelet projects a changed ConfigMap or Secret into the volumes of the running pods that
mount it (atomically: a new timestamped directory, then the ``..data`` link swapped), and never
into a file mounted with ``subPath``. The chart's hub relies on it: its catalog is a ConfigMap
it follows without a restart.
"""
from __future__ import annotations

import time

import pytest
from kubernetes import client

pytestmark = pytest.mark.cluster

#: One line a fifth of a second: what the container sees through each kind of mount.
WATCHER = (
    "while true; do "
    'echo "dir=$(cat /etc/cfg/color) sub=$(cat /etc/sub-color) secret=$(cat /etc/sec/password) '
    'keys=$(ls /etc/cfg | tr "\\n" ,) stamps=$(ls -a /etc/cfg | grep -c "^\\.\\.2")"; '
    "sleep 0.2; done"
)


def _last_line(node_agent, namespace: str) -> str:
    lines = node_agent.container_log(namespace, "watcher", "main").strip().splitlines()
    return lines[-1] if lines else ""


def _until(node_agent, namespace: str, predicate, timeout: float) -> tuple[str, float]:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        line = _last_line(node_agent, namespace)
        if predicate(line):
            return line, time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"not seen within {timeout} s; the container's last line: {line!r}")


def test_a_changed_config_map_and_secret_reach_a_running_pod_but_not_its_sub_path_mount(
        control_plane, node_agent, kube_namespace):
    core = client.CoreV1Api(control_plane.api_client())
    core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": "cfg"},
                                                       "data": {"color": "blue", "shape": "round"}})
    core.create_namespaced_secret(kube_namespace, {"metadata": {"name": "sec"}, "stringData": {"password": "one"}})
    container = {
        "name": "main", "image": "busybox:1.36", "command": ["/bin/sh", "-c", WATCHER],
        "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg", "readOnly": True},
                         {"name": "cfg", "mountPath": "/etc/sub-color", "subPath": "color", "readOnly": True},
                         {"name": "sec", "mountPath": "/etc/sec", "readOnly": True}],
    }
    core.create_namespaced_pod(kube_namespace, {
        "metadata": {"name": "watcher"},
        "spec": {"containers": [container], "terminationGracePeriodSeconds": 1,
                 "securityContext": {"runAsUser": 1000, "fsGroup": 1000},
                 "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}},
                             {"name": "sec", "secret": {"secretName": "sec"}}]},
    })
    _until(node_agent, kube_namespace,
           lambda line: line == "dir=blue sub=blue secret=one keys=color,shape, stamps=1", timeout=30)
    uid = core.read_namespaced_pod("watcher", kube_namespace).metadata.uid

    # A key changed, one added, one removed; and the Secret changed.
    core.replace_namespaced_config_map("cfg", kube_namespace, {"metadata": {"name": "cfg"},
                                                               "data": {"color": "green", "size": "big"}})
    core.replace_namespaced_secret("sec", kube_namespace, {"metadata": {"name": "sec"}, "stringData": {"password": "two"}})
    line, took = _until(node_agent, kube_namespace, lambda line: "dir=green" in line and "secret=two" in line,
                        timeout=10)
    print(f"\nConfigMap and Secret changes seen in the pod after {took:.2f} s")
    # The subPath file stays as it was (a kubelet never updates those); the directory shows the
    # new keys only, and one timestamped directory (the old one removed after the swap).
    assert line == "dir=green sub=blue secret=two keys=color,size, stamps=1", line
    pod = core.read_namespaced_pod("watcher", kube_namespace)
    assert pod.metadata.uid == uid and pod.status.container_statuses[0].restart_count == 0

    # Deleting the ConfigMap leaves the files as they were (a kubelet keeps them).
    core.delete_namespaced_config_map("cfg", kube_namespace)
    core.replace_namespaced_secret("sec", kube_namespace, {"metadata": {"name": "sec"}, "stringData": {"password": "three"}})
    line, _ = _until(node_agent, kube_namespace, lambda line: "secret=three" in line, timeout=10)
    assert line == "dir=green sub=blue secret=three keys=color,size, stamps=1", line
