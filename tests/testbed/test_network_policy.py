"""NetworkPolicies are enforced on the test bed's node, as a cluster's network plugin does.

Pods run by the node agent, policies stored by the real API server. The probe runs in the
client pod's own network namespace (``ip netns exec``, as the agent runs its containers), so
its connections leave from that pod's address through that pod's filters: "open" (connected),
"refused" (reached, nothing listening) or "dropped" (no answer: a policy dropped it).

The egress test needs destinations outside the cluster without sending anything off this
machine: a "world" pod whose network namespace also holds the cloud metadata address
(169.254.169.254), the Kubernetes API's Service address and an address standing for the
internet (203.0.113.10, a documentation range), and routes in the client pod that reach them
on the pods' bridge, so that nothing goes through the host (which forwards only between pods,
for kube-proxy, and would translate the Service address).
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time

import pytest
from kubernetes import client

from tycho_testbed.node import netns_name

pytestmark = pytest.mark.cluster

INTERNET = "203.0.113.10"
METADATA = "169.254.169.254"

PROBE = r"""
import concurrent.futures, json, socket, sys
def one(target):
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=float(sys.argv[1])).close()
        return "open"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "dropped"
    except OSError as err:
        return f"error: {err}"
with concurrent.futures.ThreadPoolExecutor(len(sys.argv) - 2) as pool:
    print(json.dumps(dict(zip(sys.argv[2:], pool.map(one, sys.argv[2:])))))
"""


def _web_pod(name, ports, labels=None):
    """A pod answering HTTP on each port (a container per port), ready once each answers."""
    containers = [{"name": f"p{port}", "image": "python:3.11", "command": ["python3", "-m", "http.server", str(port)],
                   "ports": [{"containerPort": port, "name": f"web-{port}"}],
                   "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1}} for port in ports]
    return _pod(name, containers, labels)


def _idle_pod(name, labels=None):
    return _pod(name, [{"name": "main", "image": "busybox:1.36", "command": ["sleep", "3600"]}], labels)


def _pod(name, containers, labels):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"containers": containers, "restartPolicy": "Never", "terminationGracePeriodSeconds": 1}}


def _policy(name, spec):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name}, "spec": spec}


def _running(core, namespace, *names, timeout=60):
    pods = {}
    deadline = time.monotonic() + timeout
    for name in names:
        while True:
            pod = core.read_namespaced_pod(name, namespace)
            if pod.status.phase == "Running" and all(c.ready for c in pod.status.container_statuses or []):
                pods[name] = pod
                break
            assert time.monotonic() < deadline, f"pod {name} never ran: {pod.status}"
            time.sleep(0.1)
    return pods


def probe(pod, *targets, timeout=2.0) -> dict:
    """Connect from ``pod``'s network namespace to each ``host:port``; their outcomes."""
    done = subprocess.run(["ip", "netns", "exec", netns_name(pod.metadata.uid), sys.executable, "-c", PROBE,
                           str(timeout), *targets], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def from_host(*targets, timeout=2.0) -> dict:
    """The node's own connections (the hub and proxy of the tests run on the host)."""
    found = {}
    for target in targets:
        host, port = target.rsplit(":", 1)
        try:
            socket.create_connection((host, int(port)), timeout=timeout).close()
            found[target] = "open"
        except ConnectionRefusedError:
            found[target] = "refused"
        except TimeoutError:
            found[target] = "dropped"
    return found


def eventually(check, expected, what, timeout=20):
    """Policy changes reach running pods through watches: wait for the outcome (a deadline
    for a failure message, not a timing goal)."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got == expected:
            return
        assert time.monotonic() < deadline, f"{what}: still {got}, expected {expected}"
        time.sleep(0.2)


def at(pod, port):
    return f"{pod.status.pod_ip}:{port}"


@pytest.fixture
def core(control_plane, node_agent):
    return client.CoreV1Api(control_plane.api_client())


@pytest.fixture
def net(control_plane):
    return client.NetworkingV1Api(control_plane.api_client())


def test_without_a_policy_pods_reach_each_other(core, kube_namespace):
    core.create_namespaced_pod(kube_namespace, _web_pod("a", [8080]))
    core.create_namespaced_pod(kube_namespace, _idle_pod("b"))
    pods = _running(core, kube_namespace, "a", "b")
    a, b = pods["a"], pods["b"]
    assert probe(b, at(a, 8080), at(a, 9999)) == {at(a, 8080): "open", at(a, 9999): "refused"}


def test_an_ingress_policy_made_before_the_pod_admits_only_its_peers_on_its_port(core, net, kube_namespace):
    # As the spawner does: the policy first, so the pod is never reachable without it.
    net.create_namespaced_network_policy(kube_namespace, _policy("only-x", {
        "podSelector": {"matchLabels": {"app": "a"}}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "x"}}}], "ports": [{"port": 8080}]}]}))
    core.create_namespaced_pod(kube_namespace, _web_pod("a", [8080, 9090], {"app": "a"}))
    core.create_namespaced_pod(kube_namespace, _idle_pod("b"))
    core.create_namespaced_pod(kube_namespace, _idle_pod("c", {"role": "x"}))
    pods = _running(core, kube_namespace, "a", "b", "c")
    a, b, c = pods["a"], pods["b"], pods["c"]
    assert probe(b, at(a, 8080), at(a, 9090)) == {at(a, 8080): "dropped", at(a, 9090): "dropped"}
    assert probe(c, at(a, 8080), at(a, 9090)) == {at(a, 8080): "open", at(a, 9090): "dropped"}
    # The node itself (kubelet probes; the tests' hub and proxy) still reaches every port...
    assert from_host(at(a, 8080), at(a, 9090)) == {at(a, 8080): "open", at(a, 9090): "open"}
    # ... and the isolated pod's own connections out, and their replies, are untouched.
    assert probe(a, at(c, 7), at(b, 7)) == {at(c, 7): "refused", at(b, 7): "refused"}


def test_policy_changes_reach_running_pods_and_deleting_it_restores_access(core, net, kube_namespace):
    core.create_namespaced_pod(kube_namespace, _web_pod("a", [8080, 9090], {"app": "a"}))
    core.create_namespaced_pod(kube_namespace, _idle_pod("b"))
    core.create_namespaced_pod(kube_namespace, _idle_pod("c", {"role": "x"}))
    pods = _running(core, kube_namespace, "a", "b", "c")
    a, b, c = pods["a"], pods["b"], pods["c"]
    both = (at(a, 8080), at(a, 9090))
    assert probe(b, *both) == {both[0]: "open", both[1]: "open"}

    net.create_namespaced_network_policy(kube_namespace, _policy("only-x", {
        "podSelector": {"matchLabels": {"app": "a"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "x"}}}], "ports": [{"port": 8080}]}]}))
    eventually(lambda: probe(b, *both), {both[0]: "dropped", both[1]: "dropped"}, "b after the policy")
    assert probe(c, *both) == {both[0]: "open", both[1]: "dropped"}

    # The rule moves to the other port, by its name in the pod.
    net.patch_namespaced_network_policy("only-x", kube_namespace, {"spec": {"ingress": [
        {"from": [{"podSelector": {"matchLabels": {"role": "x"}}}], "ports": [{"port": "web-9090"}]}]}})
    eventually(lambda: probe(c, *both), {both[0]: "dropped", both[1]: "open"}, "c after the port change")

    # A peer is a label: b gets it, and gets in.
    core.patch_namespaced_pod("b", kube_namespace, {"metadata": {"labels": {"role": "x"}}})
    eventually(lambda: probe(b, *both), {both[0]: "dropped", both[1]: "open"}, "b once labelled")

    net.delete_namespaced_network_policy("only-x", kube_namespace)
    eventually(lambda: probe(b, *both), {both[0]: "open", both[1]: "open"}, "b after the deletion")


def test_peers_from_another_namespace_by_its_labels(core, net, control_plane, kube_namespace):
    other = control_plane.create_namespace(f"{kube_namespace}-peer")
    try:
        core.patch_namespace(other, {"metadata": {"labels": {"team": "data"}}})
        net.create_namespaced_network_policy(kube_namespace, _policy("from-data", {
            "podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "data"}},
                                                      "podSelector": {"matchLabels": {"role": "x"}}}]}]}))
        core.create_namespaced_pod(kube_namespace, _web_pod("a", [8080]))
        core.create_namespaced_pod(kube_namespace, _idle_pod("c", {"role": "x"}))
        core.create_namespaced_pod(other, _idle_pod("d", {"role": "x"}))
        core.create_namespaced_pod(other, _idle_pod("e"))
        a, c = _running(core, kube_namespace, "a", "c").values()
        d, e = _running(core, other, "d", "e").values()
        assert probe(d, at(a, 8080)) == {at(a, 8080): "open"}
        assert probe(e, at(a, 8080)) == {at(a, 8080): "dropped"}  # right namespace, wrong pod
        assert probe(c, at(a, 8080)) == {at(a, 8080): "dropped"}  # right pod, wrong namespace
        # The namespace loses its label: its pods are peers no more.
        core.patch_namespace(other, {"metadata": {"labels": {"team": None}}})
        eventually(lambda: probe(d, at(a, 8080)), {at(a, 8080): "dropped"}, "d once its namespace is unlabelled")
    finally:
        core.delete_collection_namespaced_pod(other)
        core.delete_namespace(other)


@pytest.fixture
def world(core, kube_namespace):
    """A pod standing for everything outside the cluster: it also holds the metadata address,
    the API Service's address and an internet address, and answers HTTP on 8080 at each."""
    api_address = core.read_namespaced_service("kubernetes", "default").spec.cluster_ip
    core.create_namespaced_pod(kube_namespace, _web_pod("world", [8080]))
    pod = _running(core, kube_namespace, "world")["world"]
    addresses = {"metadata": METADATA, "api": api_address, "internet": INTERNET, "pod": pod.status.pod_ip}
    for name in ("metadata", "api", "internet"):
        subprocess.run(["ip", "-n", netns_name(pod.metadata.uid), "addr", "add", f"{addresses[name]}/32",
                        "dev", "eth0"], check=True)
    return addresses


def _route_to_world(pod, world):
    """Send the outside addresses straight over the bridge, to the world pod."""
    for name in ("metadata", "api", "internet"):
        subprocess.run(["ip", "-n", netns_name(pod.metadata.uid), "route", "add", f"{world[name]}/32", "dev", "eth0"],
                       check=True)


@pytest.fixture
def hub_on_host():
    """A listener on the node's bridge address: where the tests' hub API is."""
    server = socket.create_server(("10.213.0.1", 0))
    port = server.getsockname()[1]

    def accept():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    yield f"10.213.0.1:{port}"
    server.close()


def test_an_egress_policy_keeps_metadata_and_the_api_server_out_of_reach(core, net, kube_namespace, world,
                                                                         hub_on_host):
    core.create_namespaced_pod(kube_namespace, _idle_pod("server", {"app": "server"}))
    server = _running(core, kube_namespace, "server")["server"]
    _route_to_world(server, world)
    targets = {name: f"{address}:8080" for name, address in world.items()}
    targets["hub"] = hub_on_host
    everything = {target: "open" for target in targets.values()}
    assert probe(server, *targets.values()) == everything  # the routes work: every address answers

    net.create_namespaced_network_policy(kube_namespace, _policy("egress", {
        "podSelector": {"matchLabels": {"app": "server"}}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0",
                                        "except": [f"{METADATA}/32", f"{world['api']}/32"]}}]}]}))
    expected = {**everything, targets["metadata"]: "dropped", targets["api"]: "dropped"}
    eventually(lambda: probe(server, *targets.values()), expected, "the server's egress")

    # Egress only: what comes in is untouched (the world pod reaches the server's closed port).
    world_pod = core.read_namespaced_pod("world", kube_namespace)
    assert probe(world_pod, at(server, 7)) == {at(server, 7): "refused"}


def test_a_pods_filters_are_in_place_before_its_first_container_starts(core, net, kube_namespace, world):
    """The policy exists before the pod: the very first connection its first container makes
    is already filtered (exit 0: dropped; exit 3: it got through)."""
    net.create_namespaced_network_policy(kube_namespace, _policy("no-egress", {
        "podSelector": {"matchLabels": {"app": "early"}}, "policyTypes": ["Egress"]}))
    attempt = ("import socket, sys\ntry:\n    socket.create_connection((sys.argv[1], 8080), timeout=2).close()\n"
               "except TimeoutError:\n    sys.exit(0)\nsys.exit(3)\n")
    first = {"name": "first", "image": "python:3.11", "command": ["python3", "-c", attempt, world["pod"]]}
    pod = _pod("early", [{"name": "main", "image": "busybox:1.36", "command": ["true"]}], {"app": "early"})
    pod["spec"]["initContainers"] = [first]
    core.create_namespaced_pod(kube_namespace, pod)
    deadline = time.monotonic() + 60
    while (phase := core.read_namespaced_pod("early", kube_namespace).status.phase) not in ("Succeeded", "Failed"):
        assert time.monotonic() < deadline, f"the pod never finished ({phase})"
        time.sleep(0.2)
    assert phase == "Succeeded", "its first connection got through before its filters were in place"


def test_the_spawners_own_policy_keeps_other_pods_out(core, net, kube_namespace):
    from tycho_spawner.catalog_files import catalog_data
    from tycho_spawner.profiles import parse_catalog
    from tycho_spawner.render import Server, render_network_policy, template_environment

    system = parse_catalog(catalog_data(True, [], {})).select({"profile": "base", "choices": {}}).system()
    policy = render_network_policy(system, Server(name="jupyter-alice", namespace=kube_namespace),
                                   template_environment())
    net.create_namespaced_network_policy(kube_namespace, policy)
    port = policy["spec"]["ingress"][0]["ports"][0]["port"]
    # A pod the policy selects (the server's selector labels), serving its port, and two others.
    core.create_namespaced_pod(kube_namespace, _web_pod("server", [port], policy["spec"]["podSelector"]["matchLabels"]))
    core.create_namespaced_pod(kube_namespace, _idle_pod("intruder"))
    core.create_namespaced_pod(kube_namespace, _idle_pod("hub", {"component": "hub"}))
    pods = _running(core, kube_namespace, "server", "intruder", "hub")
    target = at(pods["server"], port)
    assert probe(pods["intruder"], target) == {target: "dropped"}
    assert probe(pods["hub"], target) == {target: "open"}
    # The tests' hub and proxy run on the host, where the node is: they get in.
    assert from_host(target) == {target: "open"}
