"""The node agent behaves like a kubelet, as seen through the real API server."""
from __future__ import annotations

import http.client
import socket
import subprocess
import time

import pytest
from kubernetes import client

pytestmark = pytest.mark.cluster


def _pod(name, containers, restart="Never", security=None, volumes=None):
    spec = {"containers": containers, "restartPolicy": restart, "terminationGracePeriodSeconds": 5}
    if security:
        spec["securityContext"] = security
    if volumes:
        spec["volumes"] = volumes
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def _sh(name, script, image="busybox:1.36", **extra):
    return {"name": name, "image": image, "command": ["/bin/sh", "-c", script], **extra}


def _wait(core, namespace, name, predicate, timeout=30):
    deadline = time.monotonic() + timeout
    pod = None
    while time.monotonic() < deadline:
        pod = core.read_namespaced_pod(name, namespace)
        if predicate(pod):
            return pod
        time.sleep(0.1)
    raise AssertionError(f"pod {name} never got there: {pod.status if pod else None}")


def _events(core, namespace, name):
    return [(e.reason, e.message) for e in core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}").items]


@pytest.fixture
def core(control_plane, node_agent):
    return client.CoreV1Api(control_plane.api_client())


def test_exit_codes_become_succeeded_and_failed(core, kube_namespace):
    core.create_namespaced_pod(kube_namespace, _pod("ok", [_sh("main", "echo hello")]))
    core.create_namespaced_pod(kube_namespace, _pod("bad", [_sh("main", "exit 3")]))
    ok = _wait(core, kube_namespace, "ok", lambda p: p.status.phase == "Succeeded")
    bad = _wait(core, kube_namespace, "bad", lambda p: p.status.phase == "Failed")
    assert ok.status.container_statuses[0].state.terminated.exit_code == 0
    assert ok.status.container_statuses[0].state.terminated.reason == "Completed"
    assert bad.status.container_statuses[0].state.terminated.exit_code == 3
    assert bad.status.container_statuses[0].state.terminated.reason == "Error"
    reasons = [r for r, _ in _events(core, kube_namespace, "ok")]
    assert {"Scheduled", "Pulling", "Pulled", "Created", "Started"} <= set(reasons)


def test_an_unknown_image_fails_to_pull_then_backs_off(core, kube_namespace):
    core.create_namespaced_pod(kube_namespace, _pod("nope", [{"name": "main", "image": "registry.invalid/x:1"}]))
    pod = _wait(core, kube_namespace, "nope", lambda p: p.status.container_statuses
                and p.status.container_statuses[0].state.waiting
                and p.status.container_statuses[0].state.waiting.reason == "ErrImagePull", timeout=10)
    assert "registry.invalid/x:1" in pod.status.container_statuses[0].state.waiting.message
    _wait(core, kube_namespace, "nope", lambda p: p.status.container_statuses[0].state.waiting
          and p.status.container_statuses[0].state.waiting.reason == "ImagePullBackOff", timeout=10)
    events = _events(core, kube_namespace, "nope")
    assert any(r == "Failed" and "Failed to pull image" in m for r, m in events)
    assert any(r == "BackOff" for r, _ in events)


def test_containers_share_localhost_and_pods_each_have_their_own(core, kube_namespace, node_agent):
    # Listens on the pod's loopback only: reachable from its sibling container, not from outside.
    server = _sh("server", "exec python3 -m http.server 8080 --bind 127.0.0.1", ports=[{"containerPort": 8080}])
    web = _sh("web", "exec python3 -m http.server 9000", ports=[{"containerPort": 9000}],
              readinessProbe={"httpGet": {"path": "/", "port": 9000}, "periodSeconds": 1})
    client_c = _sh("client", "until python3 -c \"import urllib.request as u; u.urlopen('http://127.0.0.1:8080/')\"; "
                             "do sleep 0.2; done; echo reached-localhost; sleep 600")
    for name in ("one", "two"):  # the same ports twice: no conflict, each pod has its own network
        core.create_namespaced_pod(kube_namespace, _pod(name, [server, web, client_c]))
    pods = [_wait(core, kube_namespace, n, lambda p: p.status.phase == "Running" and all(
        c.ready for c in p.status.container_statuses)) for n in ("one", "two")]
    assert pods[0].status.pod_ip != pods[1].status.pod_ip
    for pod in pods:
        conn = http.client.HTTPConnection(pod.status.pod_ip, 9000, timeout=5)
        conn.request("GET", "/")
        assert conn.getresponse().status == 200
        conn.close()
        deadline = time.monotonic() + 20
        while "reached-localhost" not in node_agent.container_log(kube_namespace, pod.metadata.name, "client"):
            assert time.monotonic() < deadline, "the client container never reached 127.0.0.1:8080"
            time.sleep(0.2)
        with pytest.raises(OSError):  # the loopback-only server is private to its pod
            socket.create_connection((pod.status.pod_ip, 8080), timeout=2).close()
    ready = {c.type: c.status for c in pods[0].status.conditions}
    assert ready["Ready"] == ready["ContainersReady"] == "True"


def test_a_reused_pod_address_reaches_its_new_pod_at_once(core, kube_namespace, node_agent):
    """A deleted pod's address goes to the next pod. The host had just talked to the old one
    (its readiness probe, a request): its neighbour cache must not keep sending the new pod's
    traffic to the old pod's interface (it did, for about 30 s)."""
    web = _sh("web", "exec python3 -m http.server 9000", ports=[{"containerPort": 9000}],
              readinessProbe={"httpGet": {"path": "/", "port": 9000}, "periodSeconds": 1})
    ips = []
    for name in ("first", "second"):
        core.create_namespaced_pod(kube_namespace, _pod(name, [web]))
        pod = _wait(core, kube_namespace, name, lambda p: p.status.phase == "Running" and all(
            c.ready for c in p.status.container_statuses), timeout=10)
        conn = http.client.HTTPConnection(pod.status.pod_ip, 9000, timeout=2)
        conn.request("GET", "/")
        assert conn.getresponse().status == 200, name
        conn.close()
        ips.append(pod.status.pod_ip)
        core.delete_namespaced_pod(name, kube_namespace)
        deadline = time.monotonic() + 30
        while any(p.metadata.name == name for p in core.list_namespaced_pod(kube_namespace).items):
            assert time.monotonic() < deadline, f"pod {name} was not deleted"
            time.sleep(0.1)
    assert ips[0] == ips[1], "the agent hands out the lowest free address: the second pod reuses the first's"


def test_environment_from_fields_secrets_and_config_maps(core, kube_namespace, node_agent):
    core.create_namespaced_secret(kube_namespace, {"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}})
    core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": "c"}, "data": {"color": "blue"}})
    env = [
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "s", "key": "password"}}},
        {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "color"}}},
        {"name": "BOTH", "value": "$(COLOR)-$(POD)"},
    ]
    core.create_namespaced_pod(kube_namespace, _pod("env", [_sh(
        "main", 'echo "pod=$POD ip=$IP password=$PASSWORD both=$BOTH uid=$(id -u) gid=$(id -g) groups=$(id -G)"',
        env=env)], security={"runAsUser": 1000, "runAsGroup": 100, "fsGroup": 2000}))
    pod = _wait(core, kube_namespace, "env", lambda p: p.status.phase == "Succeeded")
    out = node_agent.container_log(kube_namespace, "env", "main")
    assert f"pod=env ip={pod.status.pod_ip} password=hunter2 both=blue-env" in out
    assert "uid=1000 gid=100" in out and "2000" in out.split("groups=")[1]


def test_a_missing_secret_is_a_create_container_config_error(core, kube_namespace):
    env = [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k"}}}]
    core.create_namespaced_pod(kube_namespace, _pod("cfg", [_sh("main", "true", env=env)]))
    pod = _wait(core, kube_namespace, "cfg", lambda p: p.status.container_statuses
                and p.status.container_statuses[0].state.waiting
                and p.status.container_statuses[0].state.waiting.reason == "CreateContainerConfigError")
    assert 'secret "absent" not found' in pod.status.container_statuses[0].state.waiting.message.lower()


def test_restart_policy_always_restarts_with_crash_loop_back_off(core, kube_namespace):
    core.create_namespaced_pod(kube_namespace, _pod("loop", [_sh("main", "exit 7")], restart="Always"))
    pod = _wait(core, kube_namespace, "loop", lambda p: p.status.container_statuses
                and p.status.container_statuses[0].restart_count >= 2)
    status = pod.status.container_statuses[0]
    assert status.last_state.terminated.exit_code == 7
    _wait(core, kube_namespace, "loop", lambda p: p.status.container_statuses[0].state.waiting
          and p.status.container_statuses[0].state.waiting.reason == "CrashLoopBackOff")


def test_emptydir_volumes_are_shared_and_private_to_the_pod(core, kube_namespace, node_agent):
    volumes = [{"name": "shared", "emptyDir": {}}]
    mount = [{"name": "shared", "mountPath": "/tmp/shared"}]
    writer = _sh("writer", "echo from-writer > /tmp/shared/note; sleep 600", volumeMounts=mount)
    reader = _sh("reader", "until cat /tmp/shared/note; do sleep 0.1; done; sleep 600", volumeMounts=mount)
    core.create_namespaced_pod(kube_namespace, _pod("vol", [writer, reader], volumes=volumes,
                                                    security={"runAsUser": 1000, "fsGroup": 100}))
    _wait(core, kube_namespace, "vol", lambda p: p.status.phase == "Running")
    deadline = time.monotonic() + 20
    while "from-writer" not in node_agent.container_log(kube_namespace, "vol", "reader"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    import os

    assert not os.path.exists("/tmp/shared/note"), "the pod's /tmp leaked onto the host"


def test_deletion_sends_sigterm_and_removes_the_pod(core, kube_namespace, node_agent):
    script = "trap 'echo got-term; exit 0' TERM; echo started; while true; do sleep 0.1; done"
    core.create_namespaced_pod(kube_namespace, _pod("term", [_sh("main", script)]))
    pod = _wait(core, kube_namespace, "term", lambda p: p.status.phase == "Running")
    deadline = time.monotonic() + 10  # Running: the process started; its trap is set once it prints
    while "started" not in node_agent.container_log(kube_namespace, "term", "main"):
        assert time.monotonic() < deadline, "the container never printed 'started'"
        time.sleep(0.05)
    netns = f"tycho-{pod.metadata.uid[:13]}"
    assert netns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    core.delete_namespaced_pod("term", kube_namespace)
    deadline = time.monotonic() + 20
    while core.list_namespaced_pod(kube_namespace, field_selector="metadata.name=term").items:
        assert time.monotonic() < deadline, "the pod object was never removed"
        time.sleep(0.1)
    assert "got-term" in node_agent.container_log(kube_namespace, "term", "main")
    assert netns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert any(r == "Killing" for r, _ in _events(core, kube_namespace, "term"))


def test_a_pod_deleted_and_made_again_under_its_name_runs_as_the_new_pod(core, kube_namespace):
    """KubeSpawner's way after a create that timed out but happened (409): delete the pod at
    once and create it again. The first pod's worker may still be starting when the second pod
    arrives; what it writes late must not land on the second (whose status then could never be
    written again: two addresses), and the second must run."""
    from kubernetes.client.rest import ApiException

    def gone():
        deadline = time.monotonic() + 20
        while True:
            try:
                core.read_namespaced_pod("twin", kube_namespace)
            except ApiException as err:
                assert err.status == 404
                return
            assert time.monotonic() < deadline, "the deleted pod was never removed"
            time.sleep(0.02)

    for pause in (0.0, 0.05, 0.2, 0.5):
        core.create_namespaced_pod(kube_namespace, _pod("twin", [_sh("main", "sleep 3600")]))
        time.sleep(pause)
        core.delete_namespaced_pod("twin", kube_namespace, grace_period_seconds=0)
        gone()
        second = core.create_namespaced_pod(kube_namespace, _pod("twin", [_sh("main", "sleep 3600")]))
        pod = _wait(core, kube_namespace, "twin", lambda p: p.status.phase == "Running" and all(
            c.ready for c in p.status.container_statuses or []) and p.status.container_statuses)
        assert pod.metadata.uid == second.metadata.uid
        assert [a.ip for a in pod.status.pod_ips] == [pod.status.pod_ip]
        core.delete_namespaced_pod("twin", kube_namespace, grace_period_seconds=0)
        gone()


def test_a_containers_background_children_end_with_it(core, kube_namespace):
    # As a runtime tears down the container's PID namespace, nothing it started survives it,
    # even while the pod itself lives on (restarting the container).
    marker = f"tycho-orphan-{time.monotonic_ns()}"
    script = f"if [ ! -e /tmp/once ]; then touch /tmp/once; python3 -c 'import time; time.sleep(300)' {marker} & fi; sleep 0.5; exit 3"
    core.create_namespaced_pod(kube_namespace, _pod("orphans", [_sh("main", script)], restart="OnFailure"))
    _wait(core, kube_namespace, "orphans", lambda p: bool(p.status.container_statuses)
          and p.status.container_statuses[0].restart_count >= 1)
    left = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout.split()
    core.delete_namespaced_pod("orphans", kube_namespace)
    assert left == []


def test_the_python_running_the_node_agent_is_selectable(tmp_path, monkeypatch):
    # Pods' programs come from the node agent's Python: CI runs the hub in another environment
    # and points TYCHO_TESTBED_PYTHON at the one holding the "images".
    from tycho_testbed.__main__ import start_node

    record, python = tmp_path / "argv", tmp_path / "python"
    python.write_text(f'#!/bin/sh\necho "$0 $*" > {record}\n')
    python.chmod(0o755)
    monkeypatch.setenv("TYCHO_TESTBED_PYTHON", str(python))
    proc = start_node(tmp_path / "kubeconfig", "tycho-node-9", tmp_path / "state", detach=False)
    assert proc.wait(timeout=10) == 0
    assert record.read_text().split()[:4] == [str(python), "-m", "tycho_testbed", "node"]


def test_a_pod_does_not_hold_other_pods_network_namespaces(core, kube_namespace, node_agent):
    # Every pod's network namespace is bound under /run/netns on the node; a container that kept
    # a copy of those mounts would keep every earlier pod's namespace alive after its deletion.
    core.create_namespaced_pod(kube_namespace, _pod("first", [_sh("main", "sleep 60")]))
    _wait(core, kube_namespace, "first", lambda p: p.status.phase == "Running")
    core.create_namespaced_pod(kube_namespace, _pod("second", [_sh("main", "echo netns: $(grep -c ' nsfs ' /proc/self/mountinfo); sleep 60")]))
    _wait(core, kube_namespace, "second", lambda p: p.status.phase == "Running")
    deadline = time.monotonic() + 10
    while "netns:" not in node_agent.container_log(kube_namespace, "second", "main") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "netns: 0" in node_agent.container_log(kube_namespace, "second", "main")
