"""Services route on the test bed: the real kube-proxy, the real endpoints controllers.

Pods are run by the node agent, Services and Endpoints are the real API server's and
controller-manager's, and the rules are kube-proxy's own (iptables mode, in the host's network
namespace, where the pods' bridge is). Requests leave from a pod's network namespace
(``ip netns exec``, as the agent runs its containers) or from this machine, and each answer
names the pod that gave it.

No packet leaves this machine: the forwarding guard is checked in place before a pod tries an
address outside the test bed, and its counter shows the packet was dropped on the host.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from kubernetes import client

from tycho_testbed import service_network
from tycho_testbed.node import netns_name

pytestmark = pytest.mark.cluster

#: TEST-NET-3 (RFC 5737): an address outside the test bed, never answered. (192.0.2.1 is this
#: machine's own gateway here: not a candidate.)
OUTSIDE = "203.0.113.1"

#: A web server answering every GET with its pod's name ($ANSWER), on $PORT.
SERVE = """
import http.server, os
class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ["ANSWER"].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("", int(os.environ["PORT"])), Answer).serve_forever()
"""

#: GET each URL from where it runs; its body, or how it failed.
FETCH = r"""
import json, socket, sys, urllib.error, urllib.request
out = {}
for url in sys.argv[2:]:
    try:
        out[url] = urllib.request.urlopen(url, timeout=float(sys.argv[1])).read().decode()
    except urllib.error.URLError as err:
        reason = err.reason
        out[url] = ("refused" if isinstance(reason, ConnectionRefusedError) else
                    "dropped" if isinstance(reason, (TimeoutError, socket.timeout)) else f"error: {reason}")
    except (TimeoutError, socket.timeout):
        out[url] = "dropped"
print(json.dumps(out))
"""


def _web_pod(name, labels, ready=True):
    """A pod answering with its name on 8080 (containerPort ``http``); with ``ready=False`` its
    readiness probe looks at a port nothing listens on, so it never becomes ready."""
    probe_port = 8080 if ready else 9
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1, "containers": [{
                "name": "web", "image": "python:3.11", "command": ["python3", "-c", SERVE],
                "env": [{"name": "ANSWER", "value": name}, {"name": "PORT", "value": "8080"}],
                "ports": [{"containerPort": 8080, "name": "http"}],
                "readinessProbe": {"tcpSocket": {"port": probe_port}, "periodSeconds": 1}}]}}


def _idle_pod(name):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}}


def _service(name, selector, service_type="ClusterIP"):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": service_type, "selector": selector, "ports": [
                {"name": "by-name", "port": 80, "targetPort": "http"},
                {"name": "by-number", "port": 81, "targetPort": 8080}]}}


def _wait_pod(core, namespace, name, ready=True, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        pod = core.read_namespaced_pod(name, namespace)
        statuses = pod.status.container_statuses or []
        if pod.status.phase == "Running" and statuses and all(
                (c.ready if ready else c.state.running is not None) for c in statuses):
            return pod
        assert time.monotonic() < deadline, f"pod {name} never ran{' ready' if ready else ''}: {pod.status}"
        time.sleep(0.1)


def fetch(pod, *urls, timeout=3.0) -> dict:
    """GET each URL from ``pod``'s network namespace."""
    done = subprocess.run(["ip", "netns", "exec", netns_name(pod.metadata.uid), sys.executable, "-c", FETCH,
                           str(timeout), *urls], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def fetch_here(*urls, timeout=3.0) -> dict:
    """GET each URL from this machine (the host: the node)."""
    done = subprocess.run([sys.executable, "-c", FETCH, str(timeout), *urls], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def eventually(check, expected, what, timeout=30):
    """Endpoints and kube-proxy's rules follow pods through watches: wait for the outcome (a
    deadline for a failure message, not a timing goal)."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got == expected:
            return
        assert time.monotonic() < deadline, f"{what}: still {got}, expected {expected}"
        time.sleep(0.3)


@pytest.fixture
def core(control_plane, node_agent):
    """The API, once this test bed is known to own the host's Service network."""
    status = control_plane.status()
    assert status["kube-proxy"]["running"], (
        "this test bed has no kube-proxy: the host's Service network belongs to the test bed in "
        f"{service_network.holder()} (one kube-proxy per host: another test session is running)")
    return client.CoreV1Api(control_plane.api_client())


def test_a_pod_reaches_another_by_its_service_cluster_ip_and_target_port_name_or_number(core, kube_namespace):
    core.create_namespaced_pod(kube_namespace, _web_pod("web", {"app": "web"}))
    core.create_namespaced_pod(kube_namespace, _idle_pod("client"))
    service = core.create_namespaced_service(kube_namespace, _service("web", {"app": "web"}))
    ip = service.spec.cluster_ip
    assert ip.startswith("10.96.")
    _wait_pod(core, kube_namespace, "web")
    client_pod = _wait_pod(core, kube_namespace, "client")
    urls = (f"http://{ip}:80/", f"http://{ip}:81/")
    eventually(lambda: fetch(client_pod, *urls), dict.fromkeys(urls, "web"), "the client through the Service")


def test_a_pod_reaches_itself_through_its_own_service(core, kube_namespace):
    core.create_namespaced_pod(kube_namespace, _web_pod("web", {"app": "web"}))
    ip = core.create_namespaced_service(kube_namespace, _service("web", {"app": "web"})).spec.cluster_ip
    web = _wait_pod(core, kube_namespace, "web")
    url = f"http://{ip}:80/"
    eventually(lambda: fetch(web, url), {url: "web"}, "the pod through its own Service (hairpin)")


def test_endpoints_follow_readiness_a_pod_not_ready_gets_no_traffic(core, kube_namespace):
    core.create_namespaced_pod(kube_namespace, _web_pod("ready", {"app": "web"}))
    core.create_namespaced_pod(kube_namespace, _web_pod("unready", {"app": "web"}, ready=False))
    core.create_namespaced_pod(kube_namespace, _idle_pod("client"))
    ip = core.create_namespaced_service(kube_namespace, _service("web", {"app": "web"})).spec.cluster_ip
    _wait_pod(core, kube_namespace, "ready")
    unready = _wait_pod(core, kube_namespace, "unready", ready=False)
    client_pod = _wait_pod(core, kube_namespace, "client")
    url = f"http://{ip}:80/"
    eventually(lambda: fetch(client_pod, url), {url: "ready"}, "the ready pod through the Service")

    subset = core.read_namespaced_endpoints("web", kube_namespace).subsets[0]
    assert [a.target_ref.name for a in subset.addresses] == ["ready"]
    assert [a.ip for a in subset.not_ready_addresses] == [unready.status.pod_ip]
    # The unready pod answers when asked directly; through the Service, never.
    assert fetch(client_pod, f"http://{unready.status.pod_ip}:8080/") == {
        f"http://{unready.status.pod_ip}:8080/": "unready"}
    answers = [fetch(client_pod, url)[url] for _ in range(12)]
    assert set(answers) == {"ready"}

    # Without a ready pod the Service has no endpoint: kube-proxy rejects its connections.
    core.delete_namespaced_pod("ready", kube_namespace, grace_period_seconds=1)
    eventually(lambda: [a.target_ref.name for s in core.read_namespaced_endpoints("web", kube_namespace).subsets or []
                        for a in s.addresses or []], [], "the Endpoints once the ready pod is gone")
    # Until the pod is gone its own network namespace may still answer: a dying server's
    # kernel refuses too, and once its namespace is removed, kube-proxy's old rule leads nowhere.
    # Only then is a refusal kube-proxy's own.
    eventually(lambda: [p.metadata.name for p in core.list_namespaced_pod(kube_namespace).items
                        if p.metadata.name == "ready"], [], "the ready pod, deleted")
    eventually(lambda: fetch(client_pod, url), {url: "refused"}, "the Service without a ready pod")
    assert [fetch(client_pod, url)[url] for _ in range(3)] == ["refused"] * 3


def test_this_machine_reaches_a_node_port_on_loopback_and_on_the_node_address(core, kube_namespace):
    core.create_namespaced_pod(kube_namespace, _web_pod("web", {"app": "web"}))
    service = core.create_namespaced_service(kube_namespace, _service("web", {"app": "web"}, "NodePort"))
    ports = {p.name: p.node_port for p in service.spec.ports}
    assert all(30000 <= port <= 32767 for port in ports.values())
    _wait_pod(core, kube_namespace, "web")
    node_ip = {a.type: a.address for a in core.read_node("tycho-node-1").status.addresses}["InternalIP"]
    assert node_ip == service_network.NODE_ADDRESS
    urls = [f"http://{host}:{port}/" for host in ("127.0.0.1", node_ip) for port in ports.values()]
    eventually(lambda: fetch_here(*urls), dict.fromkeys(urls, "web"), "the NodePorts from this machine")


IN_CLUSTER = r"""
import json
from kubernetes import client, config
from kubernetes.client.rest import ApiException
config.load_incluster_config()
core = client.CoreV1Api()
namespace = open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read()
out = {"host": client.Configuration.get_default_copy().host,
       "pods": sorted(p.metadata.name for p in core.list_namespaced_pod(namespace).items)}
for what, call in (("secrets", lambda: core.list_namespaced_secret(namespace)),
                   ("pods elsewhere", lambda: core.list_namespaced_pod("kube-system"))):
    try:
        call()
        out[what] = "allowed"
    except ApiException as err:
        out[what] = err.status
print(json.dumps(out))
"""


def test_a_pod_reaches_the_api_server_through_the_kubernetes_service_with_its_token(
        core, control_plane, node_agent, kube_namespace):
    endpoints = core.read_namespaced_endpoints("kubernetes", "default").subsets[0]
    assert [a.ip for a in endpoints.addresses] == [service_network.NODE_ADDRESS]
    kubernetes_ip = core.read_namespaced_service("kubernetes", "default").spec.cluster_ip
    assert kubernetes_ip == "10.96.0.1"
    client.RbacAuthorizationV1Api(control_plane.api_client()).create_namespaced_role_binding(kube_namespace, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "view"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": kube_namespace}]})
    core.create_namespaced_pod(kube_namespace, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "in-cluster"},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "main", "image": "python:3.11", "command": ["python3", "-c", IN_CLUSTER],
            # What the node agent is to give every container (as a kubelet does), set here.
            "env": [{"name": "KUBERNETES_SERVICE_HOST", "value": kubernetes_ip},
                    {"name": "KUBERNETES_SERVICE_PORT", "value": "443"}]}]}})
    deadline = time.monotonic() + 90
    while (phase := core.read_namespaced_pod("in-cluster", kube_namespace).status.phase) not in ("Succeeded",
                                                                                               "Failed"):
        assert time.monotonic() < deadline, f"the in-cluster client never finished ({phase})"
        time.sleep(0.2)
    output = node_agent.container_log(kube_namespace, "in-cluster", "main")
    assert phase == "Succeeded", output
    # TLS verified against the mounted ca.crt (load_incluster_config), the token's permissions.
    assert json.loads(output.strip().splitlines()[-1]) == {
        "host": "https://10.96.0.1:443", "pods": ["in-cluster"], "secrets": 403, "pods elsewhere": 403}


def test_forwarding_is_on_and_nothing_forwarded_leaves_this_machine(core, kube_namespace):
    # The guard first: without it, the probe below is not made.
    before = service_network.guard_dropped()
    assert before is not None, f"the forwarding guard (nft table ip {service_network.GUARD_TABLE}) is missing"
    assert open("/proc/sys/net/ipv4/ip_forward").read().strip() == "1"
    core.create_namespaced_pod(kube_namespace, _idle_pod("client"))
    client_pod = _wait_pod(core, kube_namespace, "client")
    url = f"http://{OUTSIDE}:80/"
    assert fetch(client_pod, url, timeout=2.0) == {url: "dropped"}
    # Dropped by the guard on the host (a SYN and its retries), not routed out.
    assert service_network.guard_dropped() > before


def test_a_second_test_bed_on_this_host_runs_without_services_and_leaves_the_first_ones(control_plane, tmp_path,
                                                                                         core):
    from tycho_testbed.cluster import ControlPlane, ControlPlaneConfig

    rules = subprocess.run(["iptables", "-w", "-t", "nat", "-S"], capture_output=True, text=True).stdout
    second = ControlPlane(ControlPlaneConfig(state_dir=tmp_path / "second"))
    second.start()
    try:
        assert not second.status()["kube-proxy"]["running"]
        assert second.status()["apiserver-relay"]["running"]
    finally:
        second.stop()
    # The first test bed's kube-proxy, guard and forwarding are untouched.
    assert control_plane.status()["kube-proxy"]["running"]
    assert service_network.guard_dropped() is not None
    assert open("/proc/sys/net/ipv4/ip_forward").read().strip() == "1"
    assert "default/kubernetes:https" in rules
    assert subprocess.run(["iptables", "-w", "-t", "nat", "-S"], capture_output=True, text=True).stdout.count(
        "KUBE-SVC-") >= rules.count("KUBE-SVC-")
