"""pytest fixtures for the test bed (registered as the ``tycho_testbed`` pytest11 plugin).

* ``control_plane`` (session): a real control plane in a temporary directory, stopped at the
  end. With ``TYCHO_TESTBED_KUBECONFIG`` set, an already running cluster is used instead
  (``bin/stage cluster up``; then the fixture neither starts nor stops anything).
* ``testbed_images`` (session): the image table the node agent runs with; override it in a
  ``conftest.py`` to map more images to local programs.
* ``node_agent`` (session): one node agent (``tycho-node-1``) as a subprocess, Ready.
* ``gpu_node`` (session): a second node agent, the GPU node ``tycho-node-gpu``, Ready, beside
  ``node_agent``: labels ``nvidia.com/gpu.present=true`` and ``tycho.test/accelerator=nvidia-t4``,
  taint ``nvidia.com/gpu=present:NoSchedule``, ``nvidia.com/gpu: 2`` in its capacity and
  allocatable (numbers only: no device, no /dev/nvidia*), no ``amd.com/gpu``. Once a test of
  the session used it, it stays until the session ends: pods without the toleration still go
  to ``tycho-node-1`` only, but the scheduler's messages then count two nodes.
* ``kube_namespace`` (function): a fresh namespace, deleted afterwards.

Nothing here skips: if the binaries are missing they are built (the build script installs its
own Debian packages); if that fails, the tests error.
"""
from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "cluster: runs against the local Kubernetes test bed")


class _External:
    """A cluster started elsewhere: only its kubeconfig is known."""

    def __init__(self, kubeconfig: str):
        self.kubeconfig_path = Path(kubeconfig)

    def create_namespace(self, name: str) -> str:
        from kubernetes import client

        client.CoreV1Api(self.api_client()).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
        return name

    def api_client(self):
        from kubernetes import config

        return config.new_client_from_config(str(self.kubeconfig_path))


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory):
    from .cluster import ControlPlane, ControlPlaneConfig

    external = os.environ.get("TYCHO_TESTBED_KUBECONFIG")
    if external:
        state = Path(external).parent
        # A test bed of `bin/stage cluster up` keeps its certificates and tokens beside the
        # kubeconfig: the full ControlPlane API (service-account kubeconfigs) works on it.
        yield (ControlPlane(ControlPlaneConfig(state_dir=state, detach=True)) if (state / "cluster.json").exists()
               else _External(external))
        return

    plane = ControlPlane(ControlPlaneConfig(state_dir=tmp_path_factory.mktemp("control-plane")))
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def testbed_images():
    """Path of the image table for the node agent (default: the packaged table)."""
    from .images import DEFAULT_TABLE

    return DEFAULT_TABLE


@pytest.fixture(scope="session")
def node_agent(control_plane, testbed_images, tmp_path_factory):
    from .__main__ import start_node, wait_node_ready

    external = os.environ.get("TYCHO_TESTBED_KUBECONFIG")
    if external:
        yield NodeHandle("tycho-node-1", Path(external).parent.parent / "node-state" / "tycho-node-1", None)
        return
    state = tmp_path_factory.mktemp("node")
    # Pod addresses 10.213.<index>.x: away from `bin/stage cluster up`'s nodes (1, 2...), so a
    # test run and a running demo test bed never hand out the same address.
    index = 200 + os.getpid() % 50
    proc = start_node(control_plane.kubeconfig_path, "tycho-node-1", state, testbed_images, state / "agent.log",
                      index=index, detach=False)
    try:
        try:
            wait_node_ready(control_plane.api_client(), "tycho-node-1", timeout=60)
        except TimeoutError:
            raise RuntimeError(f"node agent not ready; its log:\n{(state / 'agent.log').read_text()[-4000:]}")
        node = NodeHandle("tycho-node-1", state, proc)
        yield node
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except Exception:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def gpu_node(control_plane, node_agent, testbed_images, tmp_path_factory):
    """The GPU node (``tycho-node-gpu``, see the module's docstring), started for the session.

    It asks for ``node_agent`` so that a GPU test also has the plain node to compare with. On a
    `bin/stage cluster up --gpu-node` test bed its node is used as it is; on one without, an
    agent is started for the session and its Node deleted at the end.
    """
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    from .__main__ import GPU_NODE, start_gpu_node, wait_node_ready

    core = client.CoreV1Api(control_plane.api_client())
    external = os.environ.get("TYCHO_TESTBED_KUBECONFIG")
    if external:
        try:
            core.read_node(GPU_NODE)
            yield NodeHandle(GPU_NODE, Path(external).parent.parent / "node-state" / GPU_NODE, None)
            return
        except ApiException as err:
            if err.status != 404:
                raise
    state = tmp_path_factory.mktemp("gpu-node")
    # Pod addresses 10.213.<index>.x: 100-149, apart from node_agent's 200-249 (and by the same
    # process id, so two test runs at once differ here too), `bin/stage cluster up`'s plain
    # nodes (1, 2...) and the benchmark's (151...).
    index = 100 + os.getpid() % 50
    proc = start_gpu_node(control_plane.kubeconfig_path, state, testbed_images, state / "agent.log", index=index,
                          detach=False)
    try:
        try:
            wait_node_ready(control_plane.api_client(), GPU_NODE, timeout=60)
        except TimeoutError:
            raise RuntimeError(f"GPU node agent not ready; its log:\n{(state / 'agent.log').read_text()[-4000:]}")
        yield NodeHandle(GPU_NODE, state, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except Exception:
            proc.kill()
            proc.wait()
        if external:  # a cluster that outlives the session: leave no NotReady node behind
            try:
                core.delete_node(GPU_NODE)
            except ApiException:
                pass


class NodeHandle(str):
    """The node's name (a str), with where its logs are."""

    def __new__(cls, name, state_dir, proc):
        obj = super().__new__(cls, name)
        obj.state_dir = Path(state_dir)
        obj.proc = proc
        return obj

    def container_log(self, namespace: str, pod: str, container: str) -> str:
        for d in (self.state_dir / "pods").glob(f"{namespace}_{pod}_*"):
            path = d / f"{container}.log"
            if path.exists():
                return path.read_text(errors="replace")
        return ""


@pytest.fixture
def kube_namespace(control_plane):
    from kubernetes import client

    api = client.CoreV1Api(control_plane.api_client())
    name = control_plane.create_namespace(f"t-{uuid.uuid4().hex[:10]}")
    try:
        yield name
    finally:
        # Pods first, at once: the namespace controller waits 5 s before it deletes a
        # namespace's content (as on any cluster), and the node agent finishes pod deletions.
        # Claims go with the namespace; the provisioner then deletes their volumes.
        api.delete_collection_namespaced_pod(name)
        api.delete_namespace(name)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not api.list_namespaced_pod(name).items:
                break
            time.sleep(0.2)
