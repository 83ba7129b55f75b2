"""Pods find Services as on a cluster: Service environment variables and cluster DNS.

The node agent gives each container the variables a kubelet gives (``pkg/kubelet/envvars``)
and each pod the kubelet's ``/etc/resolv.conf`` and ``/etc/hosts``; names resolve through the
test bed's resolver (a real DNS server on the node side of the pods' bridge), fed from the
real API server's Services and Endpoints. Everything is observed from inside pods: what their
processes print.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from kubernetes import client

from tycho_testbed.node import GATEWAY

pytestmark = pytest.mark.cluster

#: Resolves each name given as an argument, once, with Python's resolver (getaddrinfo, as
#: tornado, aiohttp and requests use it): {name: address or "error: ..."}.
RESOLVE = r"""
import json, socket, sys
out = {}
for name in sys.argv[1:]:
    try:
        out[name] = socket.gethostbyname(name)
    except OSError as err:
        out[name] = f"error: {err}"
print(json.dumps(out), flush=True)
"""

#: Resolves one name every 0.2 s and prints each change of answer, until killed.
FOLLOW = r"""
import socket, sys, time
last = None
while True:
    try:
        now = sorted({a[4][0] for a in socket.getaddrinfo(sys.argv[1], 80, socket.AF_INET, socket.SOCK_STREAM)})
        now = ",".join(now)
    except OSError:
        now = "none"
    if now != last:
        print(now, flush=True)
        last = now
    time.sleep(0.2)
"""

#: One query straight to the resolver (UDP, then TCP): its response code for each name.
RAW_QUERY = r"""
import json, os, socket, struct, sys
def ask(name, tcp):
    q = os.urandom(2) + struct.pack(">HHHHH", 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
    if tcp:
        s = socket.create_connection((sys.argv[1], 53), timeout=3)
        s.sendall(struct.pack(">H", len(q)) + q)
        data = b""
        while len(data) < 2 or len(data) < 2 + struct.unpack(">H", data[:2])[0]:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        data = data[2:]
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(3)
        s.sendto(q, (sys.argv[1], 53))
        data = s.recv(4096)
    flags, _, answers = struct.unpack(">HHH", data[2:8])
    return {0: "NOERROR", 3: "NXDOMAIN", 5: "REFUSED"}.get(flags & 15, flags & 15), answers
print(json.dumps({f"{name} {proto}": ask(name, proto == "tcp") for name in sys.argv[2:] for proto in ("udp", "tcp")}),
      flush=True)
"""


def _pod(name, containers, restart="Never", **spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": spec.pop("labels", {})},
            "spec": {"containers": containers, "restartPolicy": restart, "terminationGracePeriodSeconds": 1, **spec}}


def _sh(script, name="main", **extra):
    return {"name": name, "image": "busybox:1.36", "command": ["/bin/sh", "-c", script], **extra}


def _py(code, *args, name="main"):
    return {"name": name, "image": "python:3.11", "command": ["python3", "-c", code, *args]}


def _service(name, ports=(("", 80, "TCP"),), cluster_ip=None, selector=None):
    spec = {"ports": [{"port": port, "protocol": proto, **({"name": pname} if pname else {})}
                      for pname, port, proto in ports]}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    if selector:
        spec["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def _wait(core, namespace, name, predicate, what, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        pod = core.read_namespaced_pod(name, namespace)
        if predicate(pod):
            return pod
        assert time.monotonic() < deadline, f"pod {name}: {what}; status {pod.status}"
        time.sleep(0.1)


def _finished(core, namespace, name):
    return _wait(core, namespace, name, lambda p: p.status.phase in ("Succeeded", "Failed"), "never finished")


def _log_lines(node_agent, namespace, pod, until, what, container="main", timeout=30):
    """The container's output lines once ``until(lines)`` holds (a deadline for the failure
    message, not a timing goal)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = node_agent.container_log(namespace, pod, container).splitlines()
        if until(lines):
            return lines
        assert time.monotonic() < deadline, f"{what}; output so far: {lines}"
        time.sleep(0.1)


def _env(node_agent, namespace, pod):
    return dict(line.split("=", 1) for line in node_agent.container_log(namespace, pod, "main").splitlines()
                if "=" in line)


@pytest.fixture
def core(control_plane, node_agent):
    return client.CoreV1Api(control_plane.api_client())


@pytest.fixture
def api_service(core):
    return core.read_namespaced_service("kubernetes", "default")


# ------------------------------------------------------------------------------ environment


def test_services_of_the_namespace_and_the_api_become_variables(core, kube_namespace, node_agent, api_service):
    svc = core.create_namespaced_service(kube_namespace, _service(
        "my-svc", ports=(("http", 80, "TCP"), ("dns-udp", 53, "UDP"))))
    core.create_namespaced_service(kube_namespace, _service("quiet", cluster_ip="None", selector={"app": "x"}))
    core.create_namespaced_service(kube_namespace, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "far"},
                                                    "spec": {"type": "ExternalName", "externalName": "far.invalid"}})
    core.create_namespaced_pod(kube_namespace, _pod("env", [_sh("env")]))
    assert _finished(core, kube_namespace, "env").status.phase == "Succeeded"
    env = _env(node_agent, kube_namespace, "env")
    ip = svc.spec.cluster_ip
    mine = {k: v for k, v in env.items() if k.startswith("MY_SVC_")}
    assert mine == {
        "MY_SVC_SERVICE_HOST": ip, "MY_SVC_SERVICE_PORT": "80",
        "MY_SVC_SERVICE_PORT_HTTP": "80", "MY_SVC_SERVICE_PORT_DNS_UDP": "53",
        "MY_SVC_PORT": f"tcp://{ip}:80",
        "MY_SVC_PORT_80_TCP": f"tcp://{ip}:80", "MY_SVC_PORT_80_TCP_PROTO": "tcp",
        "MY_SVC_PORT_80_TCP_PORT": "80", "MY_SVC_PORT_80_TCP_ADDR": ip,
        "MY_SVC_PORT_53_UDP": f"udp://{ip}:53", "MY_SVC_PORT_53_UDP_PROTO": "udp",
        "MY_SVC_PORT_53_UDP_PORT": "53", "MY_SVC_PORT_53_UDP_ADDR": ip,
    }
    # The API server's Service, for in-cluster clients, in every namespace.
    api_ip, api_port = api_service.spec.cluster_ip, api_service.spec.ports[0].port
    assert env["KUBERNETES_SERVICE_HOST"] == api_ip
    assert env["KUBERNETES_SERVICE_PORT"] == str(api_port)
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == str(api_port)
    assert env["KUBERNETES_PORT"] == f"tcp://{api_ip}:{api_port}"
    # Headless and ExternalName Services have no address to give.
    assert not [k for k in env if k.startswith(("QUIET_", "FAR_"))]


def test_a_containers_own_env_wins_and_can_refer_to_service_variables(core, kube_namespace, node_agent):
    svc = core.create_namespaced_service(kube_namespace, _service("backend", ports=(("", 8080, "TCP"),)))
    container = _sh('env; echo "arg=$1"', env=[
        {"name": "BACKEND_SERVICE_HOST", "value": "mine.example"},
        {"name": "BACKEND_URL", "value": "http://$(BACKEND_SERVICE_HOST):$(BACKEND_SERVICE_PORT)/"},
        {"name": "API_URL", "value": "https://$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)"}])
    container["args"] = ["sh", "$(BACKEND_PORT_8080_TCP_ADDR)"]
    core.create_namespaced_pod(kube_namespace, _pod("own", [container]))
    _finished(core, kube_namespace, "own")
    env = _env(node_agent, kube_namespace, "own")
    api = core.read_namespaced_service("kubernetes", "default").spec
    assert env["BACKEND_SERVICE_HOST"] == "mine.example"
    # $(VAR) sees the container's earlier variables first, then the Services'.
    assert env["BACKEND_URL"] == "http://mine.example:8080/"
    assert env["API_URL"] == f"https://{api.cluster_ip}:{api.ports[0].port}"
    assert env["arg"] == svc.spec.cluster_ip


def test_enable_service_links_false_keeps_only_the_api_service(core, kube_namespace, node_agent, api_service):
    core.create_namespaced_service(kube_namespace, _service("backend"))
    core.create_namespaced_pod(kube_namespace, _pod("nolinks", [_sh("env")], enableServiceLinks=False))
    core.create_namespaced_pod(kube_namespace, _pod("links", [_sh("env")]))
    _finished(core, kube_namespace, "nolinks")
    _finished(core, kube_namespace, "links")
    without, with_links = _env(node_agent, kube_namespace, "nolinks"), _env(node_agent, kube_namespace, "links")
    assert "BACKEND_SERVICE_HOST" in with_links
    assert not [k for k in without if k.startswith("BACKEND_")]
    assert without["KUBERNETES_SERVICE_HOST"] == api_service.spec.cluster_ip


def test_a_restarted_container_gets_the_services_that_exist_then(core, kube_namespace, node_agent):
    # Exits 1 until a Service "late" is in its environment: the kubelet computes the variables
    # at each container start, from the Services existing then.
    script = 'echo "late=${LATE_SERVICE_HOST:-none}"; [ -n "$LATE_SERVICE_HOST" ]'
    core.create_namespaced_pod(kube_namespace, _pod("waits", [_sh(script)], restart="OnFailure"))
    _log_lines(node_agent, kube_namespace, "waits", lambda lines: "late=none" in lines, "first run never printed")
    late = core.create_namespaced_service(kube_namespace, _service("late"))
    pod = _wait(core, kube_namespace, "waits", lambda p: p.status.phase == "Succeeded",
                "never saw the Service created after its first start")
    assert pod.status.container_statuses[0].restart_count >= 1
    lines = node_agent.container_log(kube_namespace, "waits", "main").splitlines()
    assert lines[0] == "late=none" and lines[-1] == f"late={late.spec.cluster_ip}"


# ------------------------------------------------------------------------------ DNS


def test_service_names_resolve_in_pods_with_the_kubelets_search_path(core, kube_namespace, node_agent, api_service):
    ns = kube_namespace
    web = core.create_namespaced_service(ns, _service("web"))
    names = ["web", f"web.{ns}", f"web.{ns}.svc", f"web.{ns}.svc.cluster.local", "kubernetes.default",
             "kubernetes.default.svc.cluster.local", "absent", f"absent.{ns}.svc.cluster.local", "example.com"]
    core.create_namespaced_pod(ns, _pod("resolver", [_py(RESOLVE, *names)]))
    assert _finished(core, ns, "resolver").status.phase == "Succeeded"
    got = json.loads(node_agent.container_log(ns, "resolver", "main"))
    ip = web.spec.cluster_ip
    assert {n: got[n] for n in names[:4]} == {n: ip for n in names[:4]}
    assert got["kubernetes.default"] == got["kubernetes.default.svc.cluster.local"] == api_service.spec.cluster_ip
    # Neither a missing Service nor a name outside the cluster resolves.
    assert all(got[n].startswith("error:") for n in names[6:]), got


def test_a_pods_resolv_conf_hosts_and_hostname_are_the_kubelets(core, kube_namespace, node_agent):
    ns = kube_namespace
    script = "cat /etc/resolv.conf; echo ---; cat /etc/hosts; echo ---; hostname"
    core.create_namespaced_pod(ns, _pod("files", [_sh(script)], hostAliases=[
        {"ip": "10.1.2.3", "hostnames": ["alias.one", "alias.two"]}]))
    pod = _finished(core, ns, "files")
    resolv, hosts, hostname = node_agent.container_log(ns, "files", "main").split("---\n")
    lines = resolv.splitlines()
    assert lines[0].startswith(f"search {ns}.svc.cluster.local svc.cluster.local cluster.local")
    assert lines[1:] == [f"nameserver {GATEWAY}", "options ndots:5"]
    assert hosts.startswith("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n")
    assert f"\n{pod.status.pod_ip}\tfiles\n" in hosts
    assert hosts.endswith("\n# Entries added by HostAliases.\n10.1.2.3\talias.one\talias.two\n")
    assert hostname.strip() == "files"


def test_a_pods_own_hostname_resolves_to_its_address(core, kube_namespace, node_agent):
    code = "import socket; name = socket.gethostname(); print(name, socket.gethostbyname(name))"
    core.create_namespaced_pod(kube_namespace, _pod("me", [_py(code)], hostname="box", subdomain="group"))
    pod = _finished(core, kube_namespace, "me")
    assert node_agent.container_log(kube_namespace, "me", "main").split() == ["box", pod.status.pod_ip]


def test_dns_policy_none_and_dns_config(core, kube_namespace, node_agent):
    ns = kube_namespace
    core.create_namespaced_pod(ns, _pod("none", [_sh("cat /etc/resolv.conf")], dnsPolicy="None", dnsConfig={
        "nameservers": [GATEWAY], "searches": ["corp.example"], "options": [{"name": "ndots", "value": "2"}]}))
    core.create_namespaced_pod(ns, _pod("extra", [_sh("cat /etc/resolv.conf")], dnsConfig={
        "searches": ["corp.example"], "options": [{"name": "ndots", "value": "1"}, {"name": "edns0"}]}))
    core.create_namespaced_pod(ns, _pod("node", [_sh("cat /etc/resolv.conf")], dnsPolicy="Default"))
    for name in ("none", "extra", "node"):
        _finished(core, ns, name)
    assert node_agent.container_log(ns, "none", "main") == \
        f"search corp.example\nnameserver {GATEWAY}\noptions ndots:2\n"
    extra = node_agent.container_log(ns, "extra", "main").splitlines()
    assert extra[0].startswith(f"search {ns}.svc.cluster.local svc.cluster.local cluster.local")
    assert extra[0].endswith(" corp.example")
    assert extra[1:] == [f"nameserver {GATEWAY}", "options ndots:1 edns0"]
    # Default: the node's own resolver configuration, not the cluster's.
    with open("/etc/resolv.conf") as f:
        host_servers = [line.split()[1] for line in f if line.startswith("nameserver")]
    node = node_agent.container_log(ns, "node", "main").splitlines()
    assert [line.split()[1] for line in node if line.startswith("nameserver")] == host_servers
    assert not any("svc.cluster.local" in line for line in node)


def test_names_follow_services_created_and_deleted_while_a_pod_runs(core, kube_namespace, node_agent):
    ns = kube_namespace
    core.create_namespaced_pod(ns, _pod("follower", [_py(FOLLOW, "late")]))
    _log_lines(node_agent, ns, "follower", lambda lines: lines[:1] == ["none"], "never resolved at all")
    late = core.create_namespaced_service(ns, _service("late"))
    _log_lines(node_agent, ns, "follower", lambda lines: lines[-1:] == [late.spec.cluster_ip],
               "a Service created after the pod started never resolved")
    core.delete_namespaced_service("late", ns)
    _log_lines(node_agent, ns, "follower", lambda lines: lines[-1:] == ["none"] and len(lines) >= 3,
               "a deleted Service kept resolving")


def test_a_headless_service_resolves_to_its_ready_pods(core, kube_namespace, node_agent):
    ns = kube_namespace
    core.create_namespaced_service(ns, _service("peers", cluster_ip="None", selector={"app": "peer"}))
    core.create_namespaced_pod(ns, _pod("follower", [_py(FOLLOW, "peers")]))
    _log_lines(node_agent, ns, "follower", lambda lines: lines[:1] == ["none"], "never resolved at all")
    backend = {"name": "main", "image": "python:3.11", "command": ["python3", "-m", "http.server", "8080"],
               "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}
    core.create_namespaced_pod(ns, _pod("peer-a", [backend], labels={"app": "peer"}))
    a = _wait(core, ns, "peer-a", lambda p: p.status.container_statuses and p.status.container_statuses[0].ready,
              "never ready")
    _log_lines(node_agent, ns, "follower", lambda lines: lines[-1:] == [a.status.pod_ip],
               "the headless Service never resolved to its ready pod")


def test_the_resolver_answers_only_the_cluster_and_forwards_nothing(core, kube_namespace, node_agent):
    ns = kube_namespace
    core.create_namespaced_service(ns, _service("web"))
    names = [f"web.{ns}.svc.cluster.local", f"absent.{ns}.svc.cluster.local", "example.com", "localhost"]
    core.create_namespaced_pod(ns, _pod("raw", [_py(RAW_QUERY, GATEWAY, *names)]))
    assert _finished(core, ns, "raw").status.phase == "Succeeded"
    got = {k: tuple(v) for k, v in json.loads(node_agent.container_log(ns, "raw", "main")).items()}
    for proto in ("udp", "tcp"):
        assert got[f"{names[0]} {proto}"] == ("NOERROR", 1)
        # Answered at once by the resolver itself: no such name, nothing asked upstream.
        assert got[f"{names[1]} {proto}"] == ("NXDOMAIN", 0)
        assert got[f"example.com {proto}"] == ("NXDOMAIN", 0)
        assert got[f"localhost {proto}"] == ("NXDOMAIN", 0)


def _ask_here(*names) -> dict:
    """RAW_QUERY from this machine (the node): {"<name> udp"|"<name> tcp": (rcode, answers)}."""
    done = subprocess.run([sys.executable, "-c", RAW_QUERY, GATEWAY, *names], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    return {k: tuple(v) for k, v in json.loads(done.stdout).items()}


def test_a_name_two_agents_publish_stays_while_one_of_them_still_has_it(node_agent, tmp_path):
    """Every node agent writes the whole zone; their watches see changes at different moments.
    A name one agent has dropped and another still has (a Service being deleted, seen by one
    watch first; a departed agent's file removed) must keep resolving from the other: dnsmasq
    keeps one copy of a record two files repeat, and must not lose it with the file it kept it
    from."""
    from tycho_testbed.resolver import Resolver

    name = f"shared-{tmp_path.name[-12:].lower().replace('_', '-')}.probe.svc.cluster.local"
    first, second = (Resolver(GATEWAY, f"dns-probe-{n}", tmp_path / n) for n in ("a", "b"))
    resolves = {f"{name} udp": ("NOERROR", 1), f"{name} tcp": ("NOERROR", 1)}
    gone = {f"{name} udp": ("NXDOMAIN", 0), f"{name} tcp": ("NXDOMAIN", 0)}

    def until(expected):
        deadline = time.monotonic() + 10
        while (got := _ask_here(name)) != expected:
            assert time.monotonic() < deadline, got
            time.sleep(0.1)

    first.join()
    second.join()
    try:
        first.publish([("10.213.254.7", name)])
        second.publish([("10.213.254.7", name)])
        until(resolves)
        first.publish([])  # the agent dnsmasq read the record from first drops it
        for _ in range(10):  # and it stays: the other agent has it
            time.sleep(0.1)
            assert _ask_here(name) == resolves
        second.leave()
        until(gone)
    finally:
        second.leave()
        first.leave()
