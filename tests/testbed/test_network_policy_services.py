"""NetworkPolicies judge Service traffic by where kube-proxy sends it, as a real plugin does.

Pods run by the node agent, Services routed by the test bed's real kube-proxy (on the host: it
rewrites a connection to a cluster IP into one to a ready endpoint), policies stored by the real
API server. Probes run in the client pod's network namespace, as in test_network_policy.py:
"open", "refused" or "dropped" (no answer: a policy dropped it).
"""
from __future__ import annotations

import time

import pytest
from kubernetes import client

from tests.testbed.test_network_policy import _idle_pod, _policy, _running, _web_pod, at, eventually, probe

pytestmark = pytest.mark.cluster


@pytest.fixture
def core(control_plane, node_agent):
    """The API, once this test bed is known to route Services (one kube-proxy per host)."""
    from tycho_testbed import service_network

    assert control_plane.status()["kube-proxy"]["running"], (
        "this test bed has no kube-proxy: the host's Service network belongs to the test bed in "
        f"{service_network.holder()} (another test session is running)")
    return client.CoreV1Api(control_plane.api_client())


@pytest.fixture
def net(control_plane):
    return client.NetworkingV1Api(control_plane.api_client())


def _service(name, selector, port=80, target=8080):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": selector, "ports": [{"port": port, "targetPort": target, "protocol": "TCP"}]}}


def _ready_endpoints(core, namespace, name, count, timeout=60):
    """Wait until the endpoints controller lists ``count`` ready addresses for the Service."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = core.read_namespaced_endpoints(name, namespace)
            ready = sum(len(s.addresses or []) for s in found.subsets or [])
        except client.ApiException as err:
            if err.status != 404:
                raise
            ready = 0
        if ready == count:
            return
        assert time.monotonic() < deadline, f"Service {name} never had {count} ready endpoint(s): {ready}"
        time.sleep(0.2)


def _address(core, namespace, name, port=80):
    return f"{core.read_namespaced_service(name, namespace).spec.cluster_ip}:{port}"


def test_egress_to_a_service_is_allowed_exactly_when_its_endpoints_are(core, net, kube_namespace):
    core.create_namespaced_pod(kube_namespace, _web_pod("b", [8080], {"app": "b"}))
    core.create_namespaced_pod(kube_namespace, _web_pod("c", [8080], {"app": "c"}))
    core.create_namespaced_pod(kube_namespace, _idle_pod("client", {"role": "client"}))
    pods = _running(core, kube_namespace, "b", "c", "client")
    for name in ("b", "c"):
        core.create_namespaced_service(kube_namespace, _service(name, {"app": name}))
        _ready_endpoints(core, kube_namespace, name, 1)
    b, c = _address(core, kube_namespace, "b"), _address(core, kube_namespace, "c")
    # Without a policy both Services answer through kube-proxy (port 80 to the pods' 8080).
    eventually(lambda: probe(pods["client"], b, c), {b: "open", c: "open"}, "the Services before the policy")

    net.create_namespaced_network_policy(kube_namespace, _policy("to-b", {
        "podSelector": {"matchLabels": {"role": "client"}}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "b"}}}], "ports": [{"port": 8080}]}]}))
    # The policy names b's pods and their port, never the Service: its cluster IP and port 80
    # pass because that is where kube-proxy sends them; c's pods are not allowed, nor is c.
    eventually(lambda: probe(pods["client"], b, c), {b: "open", c: "dropped"}, "the Services under the policy")
    assert probe(pods["client"], at(pods["b"], 8080), at(pods["c"], 8080)) == {
        at(pods["b"], 8080): "open", at(pods["c"], 8080): "dropped"}

    # A Service made after the policy, in front of b's pods on another port, is followed...
    core.create_namespaced_service(kube_namespace, _service("b-again", {"app": "b"}, port=8000))
    _ready_endpoints(core, kube_namespace, "b-again", 1)
    again = _address(core, kube_namespace, "b-again", 8000)
    eventually(lambda: probe(pods["client"], again), {again: "open"}, "a Service made after the policy")
    # ... and so are its endpoints: c's Service now sends to b's pods, and is allowed.
    core.patch_namespaced_service("c", kube_namespace, {"spec": {"selector": {"app": "b"}}})
    eventually(lambda: probe(pods["client"], c), {c: "open"}, "c once it selects b's pods")


def test_an_ingress_policy_sees_the_client_behind_a_service(core, net, kube_namespace):
    net.create_namespaced_network_policy(kube_namespace, _policy("only-friends", {
        "podSelector": {"matchLabels": {"app": "server"}}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "friend"}}}], "ports": [{"port": 8080}]}]}))
    core.create_namespaced_pod(kube_namespace, _web_pod("server", [8080], {"app": "server"}))
    core.create_namespaced_pod(kube_namespace, _idle_pod("friend", {"role": "friend"}))
    core.create_namespaced_pod(kube_namespace, _idle_pod("stranger"))
    pods = _running(core, kube_namespace, "server", "friend", "stranger")
    core.create_namespaced_service(kube_namespace, _service("server", {"app": "server"}))
    _ready_endpoints(core, kube_namespace, "server", 1)
    address = _address(core, kube_namespace, "server")
    eventually(lambda: probe(pods["friend"], address), {address: "open"}, "the friend through the Service")
    # The stranger's connection reaches the server pod from the stranger's own address (not
    # the node's, which is always let in): the server's policy keeps it out.
    assert probe(pods["stranger"], address) == {address: "dropped"}


def test_the_spawners_policy_lets_a_server_reach_its_hub_by_the_hubs_service_and_nothing_else(
        core, net, kube_namespace):
    from tycho_spawner.catalog_files import catalog_data
    from tycho_spawner.profiles import parse_catalog
    from tycho_spawner.render import Server, render_network_policy, template_environment

    system = parse_catalog(catalog_data(True, [], {})).select({"profile": "base", "choices": {}}).system()
    policy = render_network_policy(system, Server(name="jupyter-alice", namespace=kube_namespace),
                                   template_environment())
    net.create_namespaced_network_policy(kube_namespace, policy)
    core.create_namespaced_pod(kube_namespace, _idle_pod("server", policy["spec"]["podSelector"]["matchLabels"]))
    core.create_namespaced_pod(kube_namespace, _web_pod("hub", [8081], {"component": "hub"}))
    core.create_namespaced_pod(kube_namespace, _web_pod("other", [8081], {"app": "other"}))
    core.create_namespaced_pod(kube_namespace, _idle_pod("bystander"))
    pods = _running(core, kube_namespace, "server", "hub", "other", "bystander")
    for name, selector in (("hub", {"component": "hub"}), ("other", {"app": "other"})):
        core.create_namespaced_service(kube_namespace, _service(name, selector, port=8081, target=8081))
        _ready_endpoints(core, kube_namespace, name, 1)
    hub, other = _address(core, kube_namespace, "hub", 8081), _address(core, kube_namespace, "other", 8081)
    kubernetes = _address(core, "default", "kubernetes", 443)
    # A pod no policy selects reaches all three (the API server through its Service's relay).
    everything = {hub: "open", other: "open", kubernetes: "open"}
    eventually(lambda: probe(pods["bystander"], hub, other, kubernetes), everything, "the Services from a bystander")
    # The server: its hub's API by the hub's Service (what JUPYTERHUB_API_URL names in a
    # cluster), not another pod's Service on the same port, not the Kubernetes API.
    # (Its table follows the Services' Endpoints through the agent's watches: waited for.)
    eventually(lambda: probe(pods["server"], hub, other, kubernetes),
               {hub: "open", other: "dropped", kubernetes: "dropped"}, "the Services from the server")
