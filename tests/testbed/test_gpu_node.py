"""The GPU node of the test bed, as the real kube-scheduler sees it.

Beside the plain node (``tycho-node-1``) the ``gpu_node`` fixture runs ``tycho-node-gpu``:
labelled as a GPU node, tainted ``nvidia.com/gpu=present:NoSchedule`` and with two
``nvidia.com/gpu`` in its capacity. Raw pods (no tycho code) show what the spawner's scheduling
settings will rely on: a pod asking for a GPU and tolerating the taint lands on the GPU node and
runs; a pod that does not tolerate it never lands there; a pod nothing fits stays Pending, and
the scheduler says why within seconds, in the words the spawner turns into a user's message.

The GPUs are numbers for the scheduler: no device is attached, and the test says so too.
"""
from __future__ import annotations

import time

import pytest
from kubernetes import client

pytestmark = pytest.mark.cluster

GPU = "nvidia.com/gpu"
TOLERATION = {"key": GPU, "operator": "Exists", "effect": "NoSchedule"}


@pytest.fixture
def core(control_plane, node_agent, gpu_node):
    return client.CoreV1Api(control_plane.api_client())


def _pod(name, script="sleep 300", gpus=None, tolerate=False, node_selector=None):
    container = {"name": "main", "image": "busybox:1.36", "command": ["/bin/sh", "-c", script]}
    if gpus is not None:
        # An extended resource is asked for in limits (requests default to them), as on any cluster.
        container["resources"] = {"limits": {GPU: str(gpus)}}
    spec = {"containers": [container], "restartPolicy": "Never", "terminationGracePeriodSeconds": 1}
    if tolerate:
        spec["tolerations"] = [TOLERATION]
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def _wait(core, namespace, name, predicate, timeout=30):
    deadline = time.monotonic() + timeout
    pod = None
    while time.monotonic() < deadline:
        pod = core.read_namespaced_pod(name, namespace)
        if predicate(pod):
            return pod
        time.sleep(0.1)
    raise AssertionError(f"pod {name} never got there: {pod.status if pod else None}")


def _unschedulable(pod):
    return next((c for c in pod.status.conditions or []
                 if c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable"), None)


def test_the_gpu_node_is_labelled_tainted_and_counts_two_gpus(core, gpu_node, node_agent):
    node = core.read_node(gpu_node)
    assert gpu_node == "tycho-node-gpu"
    assert node.metadata.labels["nvidia.com/gpu.present"] == "true"
    assert node.metadata.labels["tycho.test/accelerator"] == "nvidia-t4"
    assert [(t.key, t.value, t.effect) for t in node.spec.taints or []] == [(GPU, "present", "NoSchedule")]
    assert node.status.capacity[GPU] == "2" and node.status.allocatable[GPU] == "2"
    assert "amd.com/gpu" not in node.status.capacity
    plain = core.read_node(node_agent)
    assert GPU not in plain.status.capacity and not plain.spec.taints


def test_a_pod_asking_for_a_gpu_and_tolerating_the_taint_runs_on_the_gpu_node(core, kube_namespace, gpu_node):
    # What the pod sees of its GPU: nothing (no device, no runtime variables); it says so.
    script = "ls /dev/nvidia* 2>/dev/null || echo no-device; echo visible=${NVIDIA_VISIBLE_DEVICES:-unset}"
    core.create_namespaced_pod(kube_namespace, _pod("gpu", script, gpus=1, tolerate=True))
    pod = _wait(core, kube_namespace, "gpu", lambda p: p.status.phase in ("Succeeded", "Failed"))
    assert pod.spec.node_name == "tycho-node-gpu"
    assert pod.status.phase == "Succeeded"
    assert gpu_node.container_log(kube_namespace, "gpu", "main").split() == ["no-device", "visible=unset"]


def test_two_gpus_fit_then_a_third_waits_for_one_to_be_freed(core, kube_namespace):
    core.create_namespaced_pod(kube_namespace, _pod("two", gpus=2, tolerate=True))
    _wait(core, kube_namespace, "two", lambda p: p.status.phase == "Running")
    core.create_namespaced_pod(kube_namespace, _pod("one-more", gpus=1, tolerate=True))
    pod = _wait(core, kube_namespace, "one-more", _unschedulable, timeout=15)
    assert _unschedulable(pod).message == "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."
    core.delete_namespaced_pod("two", kube_namespace, grace_period_seconds=0)
    pod = _wait(core, kube_namespace, "one-more", lambda p: p.spec.node_name, timeout=60)
    assert pod.spec.node_name == "tycho-node-gpu"


def test_pods_that_do_not_tolerate_the_taint_never_land_on_the_gpu_node(core, kube_namespace):
    # Without the taint half of them would: the scheduler spreads pods over equal nodes.
    names = [f"plain-{i}" for i in range(4)]
    for name in names:
        core.create_namespaced_pod(kube_namespace, _pod(name))
    for name in names:
        pod = _wait(core, kube_namespace, name, lambda p: p.status.phase == "Running")
        assert pod.spec.node_name == "tycho-node-1"


def test_a_pod_asking_for_more_gpus_than_any_node_has_is_unschedulable_within_seconds(core, kube_namespace):
    started = time.monotonic()
    core.create_namespaced_pod(kube_namespace, _pod("three", gpus=3, tolerate=True))
    pod = _wait(core, kube_namespace, "three", _unschedulable, timeout=10)
    assert time.monotonic() - started < 10
    # kube-scheduler 1.20's words: per reason, how many nodes gave it.
    assert _unschedulable(pod).message == "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."
    assert pod.spec.node_name is None and pod.status.phase == "Pending"


def test_a_gpu_pod_that_does_not_tolerate_the_taint_is_told_both_reasons(core, kube_namespace):
    core.create_namespaced_pod(kube_namespace, _pod("untolerated", gpus=1))
    pod = _wait(core, kube_namespace, "untolerated", _unschedulable, timeout=10)
    assert _unschedulable(pod).message == (
        "0/2 nodes are available: 1 Insufficient nvidia.com/gpu, "
        "1 node(s) had taint {nvidia.com/gpu: present}, that the pod didn't tolerate.")


def test_a_node_selector_for_the_accelerator_without_the_toleration_is_unschedulable(core, kube_namespace):
    core.create_namespaced_pod(kube_namespace, _pod("selector", node_selector={"tycho.test/accelerator": "nvidia-t4"}))
    pod = _wait(core, kube_namespace, "selector", _unschedulable, timeout=10)
    assert _unschedulable(pod).message == (
        "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity, "
        "1 node(s) had taint {nvidia.com/gpu: present}, that the pod didn't tolerate.")
    # With the toleration the same selector lands there.
    core.create_namespaced_pod(kube_namespace, _pod("selected", node_selector={"tycho.test/accelerator": "nvidia-t4"},
                                                    tolerate=True))
    pod = _wait(core, kube_namespace, "selected", lambda p: p.status.phase == "Running")
    assert pod.spec.node_name == "tycho-node-gpu"


def test_an_agent_registering_an_existing_node_gives_it_its_taint_and_keeps_the_others(
        control_plane, testbed_images, tmp_path):
    """A restarted agent (here: one started with a taint on a Node an agent without it made) sets
    its labels, taint and GPUs on the Node; a taint someone else put there stays."""
    import signal

    from tycho_testbed.__main__ import start_node, wait_node_ready

    name = "tycho-node-retaint"
    core = client.CoreV1Api(control_plane.api_client())

    def run(**extra):
        proc = start_node(control_plane.kubeconfig_path, name, tmp_path / "state", testbed_images,
                          tmp_path / "agent.log", index=252, detach=False, **extra)  # 250, 251: other tests
        try:
            wait_node_ready(control_plane.api_client(), name, timeout=60)
            return core.read_node(name)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)

    try:
        node = run()
        assert not [t for t in node.spec.taints or [] if t.key == GPU]
        core.patch_node(name, {"spec": {"taints": [*(core.api_client.sanitize_for_serialization(t)
                                                     for t in node.spec.taints or []),
                                                   {"key": "example.com/maintenance", "value": "soon",
                                                    "effect": "PreferNoSchedule"}]}})
        node = run(labels={"tycho.test/accelerator": "nvidia-t4"}, taints=("nvidia.com/gpu=present:NoSchedule",),
                   extended_resources={GPU: "2"})
        taints = {(t.key, t.value, t.effect) for t in node.spec.taints or []}
        assert {(GPU, "present", "NoSchedule"), ("example.com/maintenance", "soon", "PreferNoSchedule")} <= taints
        assert node.metadata.labels["tycho.test/accelerator"] == "nvidia-t4"
        assert node.status.capacity[GPU] == "2"
    finally:
        core.delete_node(name)
