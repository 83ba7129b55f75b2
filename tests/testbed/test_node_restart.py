"""The node agent survives its own kill -9, and heartbeats, as a kubelet does.

A node agent of its own (not the session's) is killed with SIGKILL while its pods run. Their
processes keep running, as containers do under a container runtime when the kubelet dies; the
agent started again on the same state directory takes them over: same addresses, same
processes, same restart counts, still ready. What changed while it was away is handled as a
kubelet would: a deleted pod is stopped and removed, a container that died is restarted and
counted. The agent holds a Lease in kube-node-lease; while it is dead the real node-lifecycle
controller marks its Node Unknown and its pods not ready, and all is Ready again once it is back.
"""
from __future__ import annotations

import http.client
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from kubernetes import client

from tycho_testbed.__main__ import start_node, wait_node_ready
from tycho_testbed.cluster import NODE_MONITOR_GRACE_SECONDS
from tycho_testbed.node import POD_ROOT, netns_name

pytestmark = pytest.mark.cluster

NODE = "tycho-node-restart"
INDEX = 251  # the shared agent of a test run uses 200-249, the API outage test 250


class Agent:
    """A node agent process that can be killed with SIGKILL and started again on its state."""

    def __init__(self, control_plane, images, workdir: Path):
        self.control_plane = control_plane
        self.images = images
        self.state = workdir / "state"
        self.log = workdir / "agent.log"
        self.proc = None

    def start(self) -> None:
        self.proc = start_node(self.control_plane.kubeconfig_path, NODE, self.state, self.images, self.log,
                               index=INDEX, detach=False)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture
def core(control_plane):
    return client.CoreV1Api(control_plane.api_client())


@pytest.fixture
def agent(control_plane, testbed_images, tmp_path, core):
    node = Agent(control_plane, testbed_images, tmp_path)
    node.start()
    wait_node_ready(control_plane.api_client(), NODE, timeout=60)
    try:
        yield node
    finally:
        if node.proc.poll() is None:
            node.stop()  # stops its pods
        else:  # the test failed while it was dead: what it left runs on, stopped here
            for record in node.state.glob("pods/*/state.json"):
                netns = netns_name(record.parent.name.rsplit("_", 1)[-1])
                for pid in _netns_pids(netns):
                    os.kill(pid, signal.SIGKILL)
                subprocess.run(["ip", "netns", "del", netns], capture_output=True)
            shutil.rmtree(POD_ROOT / NODE, ignore_errors=True)
        for pod in core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={NODE}").items:
            core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0)
        core.delete_node(NODE)  # its Lease goes with it (owned by the Node)


def _web(name: str) -> dict:
    """A pod serving HTTP on its IP, ready once it answers."""
    web = {"name": "web", "image": "python:3.12", "command": ["python3", "-m", "http.server", "8080"],
           "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 2, "containers": [web]}}


def _sleeper(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 2,
                     "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}}


def _ready(pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def _condition(obj, kind: str):
    return next((c for c in obj.status.conditions or [] if c.type == kind), None)


def _wait(what: str, probe, timeout: float, agent: Agent):
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} after {timeout} s; the agent's log:\n{agent.tail()}"
        time.sleep(0.2)


def _pod_or_none(core, namespace: str, name: str):
    found = core.list_namespaced_pod(namespace, field_selector=f"metadata.name={name}").items
    return found[0] if found else None


def _netns_pids(netns: str) -> set[int]:
    done = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True)
    return {int(pid) for pid in done.stdout.split()}


def _events(core, namespace: str, name: str) -> list[tuple[str, str]]:
    return [(e.reason, e.source.component) for e in core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}").items]


def _runs(pid: int) -> bool:
    """The process runs (an ended one may wait a moment as a zombie for its adoptive parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def _netns_exists(netns: str) -> bool:
    return os.path.exists(f"/run/netns/{netns}")


def _answers(ip: str) -> bool:
    conn = http.client.HTTPConnection(ip, 8080, timeout=5)
    try:
        conn.request("GET", "/")
        return conn.getresponse().status == 200
    finally:
        conn.close()


def _running_ready(core, namespace, names, agent, timeout=60) -> dict:
    def ready(name):
        pod = core.read_namespaced_pod(name, namespace)
        return pod.status.phase == "Running" and _ready(pod) and pod

    return {name: _wait(f"{name} not running and ready", lambda: ready(name), timeout, agent) for name in names}


def _node_ready(core, status: str):
    node = core.read_node(NODE)
    return _condition(node, "Ready").status == status and node


def test_a_restarted_agent_takes_its_running_pods_over(agent, kube_namespace, core):
    webs = ("web-1", "web-2", "web-3")
    for name in webs:
        core.create_namespaced_pod(kube_namespace, _web(name))
    for name in ("deleted", "forced", "killed"):
        core.create_namespaced_pod(kube_namespace, _sleeper(name))
    before = _running_ready(core, kube_namespace, webs + ("deleted", "forced", "killed"), agent)
    netns = {name: netns_name(pod.metadata.uid) for name, pod in before.items()}
    pids = {name: _netns_pids(netns[name]) for name in before}
    assert all(pids.values()), pids
    for name in webs:
        assert _answers(before[name].status.pod_ip), name

    agent.kill()  # kill -9: its pods' processes are not its to take along
    for name in webs:
        assert _answers(before[name].status.pod_ip), f"{name} stopped answering with the agent"
    # While it is dead: a pod deleted as usual (it waits for its node), one deleted with no
    # grace (gone from the API at once), and one whose container's process dies.
    core.delete_namespaced_pod("deleted", kube_namespace)
    core.delete_namespaced_pod("forced", kube_namespace, grace_period_seconds=0)
    [sleep] = [pid for pid in pids["killed"] if Path(f"/proc/{pid}/comm").read_text().strip() == "sleep"]
    os.kill(sleep, signal.SIGKILL)
    assert _pod_or_none(core, kube_namespace, "deleted").metadata.deletion_timestamp is not None

    agent.start()
    _wait("the deleted pod is still there", lambda: _pod_or_none(core, kube_namespace, "deleted") is None, 30, agent)
    for name in ("deleted", "forced"):
        _wait(f"{name}'s network namespace is still there", lambda: not _netns_exists(netns[name]), 30, agent)
        assert not any(_runs(pid) for pid in pids[name]), f"{name}'s processes still run"
    killed = _wait("the killed container was not restarted", lambda: (
        p := core.read_namespaced_pod("killed", kube_namespace)).status.container_statuses[0].restart_count == 1
        and p.status.container_statuses[0].state.running and p, 30, agent)
    assert killed.status.container_statuses[0].last_state.terminated.exit_code == 137
    assert killed.status.pod_ip == before["killed"].status.pod_ip
    restarted = _netns_pids(netns["killed"])
    assert restarted and restarted.isdisjoint(pids["killed"]), "the killed container's processes were not replaced"

    for name in webs:
        now, then = core.read_namespaced_pod(name, kube_namespace), before[name]
        assert now.status.pod_ip == then.status.pod_ip, name
        assert now.status.start_time == then.status.start_time, name
        [c_now], [c_then] = now.status.container_statuses, then.status.container_statuses
        assert (c_now.restart_count, c_now.ready, c_now.state.running.started_at) == \
            (0, True, c_then.state.running.started_at), name
        # Ready all along: its condition never changed, so neither did its transition time.
        ready_now, ready_then = _condition(now, "Ready"), _condition(then, "Ready")
        assert (ready_now.status, ready_now.last_transition_time) == ("True", ready_then.last_transition_time), name
        assert _netns_pids(netns[name]) == pids[name], f"{name}: not the same processes"
        assert _answers(now.status.pod_ip), name
    assert "worker failed" not in agent.log.read_text()


def test_a_dead_agents_node_becomes_unknown_and_its_pods_not_ready(agent, kube_namespace, core, control_plane):
    coordination = client.CoordinationV1Api(control_plane.api_client())
    lease = coordination.read_namespaced_lease(NODE, "kube-node-lease")
    assert lease.spec.holder_identity == NODE
    assert [(o.kind, o.name) for o in lease.metadata.owner_references] == [("Node", NODE)]
    _wait("the Lease was not renewed", lambda: coordination.read_namespaced_lease(
        NODE, "kube-node-lease").spec.renew_time > lease.spec.renew_time, NODE_MONITOR_GRACE_SECONDS, agent)

    core.create_namespaced_pod(kube_namespace, _web("web"))
    before = _running_ready(core, kube_namespace, ["web"], agent)["web"]
    pids = _netns_pids(netns_name(before.metadata.uid))

    agent.kill()
    node = _wait("the Node is not Unknown", lambda: _node_ready(core, "Unknown"), NODE_MONITOR_GRACE_SECONDS + 40, agent)
    assert _condition(node, "Ready").reason == "NodeStatusUnknown"
    lost = _wait("the pod is still Ready", lambda: not _ready(p := core.read_namespaced_pod("web", kube_namespace))
                 and p, 30, agent)
    # Written by the controller, not the (dead) agent: the container's own status is untouched.
    assert lost.status.container_statuses[0].ready
    assert ("NodeNotReady", "node-controller") in _events(core, kube_namespace, "web")
    assert _answers(lost.status.pod_ip), "the pod stopped answering with its node's agent"

    agent.start()
    _wait("the Node is not Ready again", lambda: _node_ready(core, "True"), 30, agent)
    back = _running_ready(core, kube_namespace, ["web"], agent, timeout=30)["web"]
    assert back.status.pod_ip == before.status.pod_ip
    assert back.status.container_statuses[0].restart_count == 0
    assert _netns_pids(netns_name(back.metadata.uid)) == pids
    _wait("the unreachable taints are still on the Node", lambda: not any(
        t.key.startswith("node.kubernetes.io/") for t in core.read_node(NODE).spec.taints or []), 30, agent)


def test_an_agent_stalled_past_the_grace_period_makes_its_pods_ready_again(agent, kube_namespace, core):
    # A hung agent (stopped, not dead): the controller marks its pods not ready meanwhile. Nothing
    # changed for the agent, yet it must write its pods' status again once it runs, as a
    # kubelet's status manager does when the API server's status differs from its own.
    core.create_namespaced_pod(kube_namespace, _web("web"))
    before = _running_ready(core, kube_namespace, ["web"], agent)["web"]
    pids = _netns_pids(netns_name(before.metadata.uid))

    os.kill(agent.proc.pid, signal.SIGSTOP)
    try:
        _wait("the Node is not Unknown", lambda: _node_ready(core, "Unknown"), NODE_MONITOR_GRACE_SECONDS + 40, agent)
        _wait("the pod is still Ready", lambda: not _ready(core.read_namespaced_pod("web", kube_namespace)), 30, agent)
    finally:
        os.kill(agent.proc.pid, signal.SIGCONT)

    _wait("the Node is not Ready again", lambda: _node_ready(core, "True"), 30, agent)
    back = _running_ready(core, kube_namespace, ["web"], agent, timeout=30)["web"]
    assert back.status.container_statuses[0].restart_count == 0
    assert _netns_pids(netns_name(back.metadata.uid)) == pids
