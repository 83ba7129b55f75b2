"""The test bed's NetworkPolicy translation for Service traffic (tycho_testbed.netpol), without
a cluster or root: a pod's egress to a Service's cluster IP is judged by the Service's ready
endpoints, as a real plugin judges it after kube-proxy's DNAT."""
from __future__ import annotations

from tycho_testbed.netpol import (
    Allow,
    ContainerPort,
    Destination,
    Endpoints,
    PortRange,
    Service,
    compute_rules,
    nft_script,
)

from netpol_builders import NODE, pod, policy



def service(name, cluster_ip, ports, namespace="apps"):
    """ports: (port, protocol, name) triples."""
    return Service.from_api({"metadata": {"namespace": namespace, "name": name}, "spec": {
        "clusterIP": cluster_ip,
        "ports": [{"port": port, "protocol": protocol, **({"name": pname} if pname else {})}
                  for port, protocol, pname in ports]}})


def endpoints(name, ready, ports, not_ready=(), namespace="apps", annotations=None):
    """ready, not_ready: addresses; ports: (port, protocol, name) triples (the target ports)."""
    return Endpoints.from_api({"metadata": {"namespace": namespace, "name": name, "annotations": annotations or {}},
                               "subsets": [{"addresses": [{"ip": ip} for ip in ready],
                                            "notReadyAddresses": [{"ip": ip} for ip in not_ready],
                                            "ports": [{"port": port, "protocol": protocol,
                                                       **({"name": pname} if pname else {})}
                                                      for port, protocol, pname in ports]}]})


CLIENT = pod("client", "10.213.1.2", role="client")
B1 = pod("b1", "10.213.1.3", app="b", ports=[ContainerPort("http", 8080)])
B2 = pod("b2", "10.213.1.4", app="b", ports=[ContainerPort("http", 8080)])
C = pod("c", "10.213.1.5", app="c", ports=[ContainerPort("http", 8080)])
PODS = [CLIENT, B1, B2, C]
SERVICE_B = service("b", "10.96.0.20", [(80, "TCP", None)])
SERVICE_C = service("c", "10.96.0.21", [(80, "TCP", None)])
ENDPOINTS_B = endpoints("b", ["10.213.1.3", "10.213.1.4"], [(8080, "TCP", None)])
ENDPOINTS_C = endpoints("c", ["10.213.1.5"], [(8080, "TCP", None)])
TO_B = policy({"podSelector": {"matchLabels": {"role": "client"}}, "policyTypes": ["Egress"],
               "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "b"}}}], "ports": [{"port": 8080}]}]})


def rules(policies, services=(SERVICE_B, SERVICE_C), found=(ENDPOINTS_B, ENDPOINTS_C), pods=PODS, target=CLIENT,
          namespaces=None):
    namespaces = namespaces or {p.namespace: {} for p in pods}
    return compute_rules([target], pods, namespaces, policies, services, found)[target.uid]


def test_a_service_is_allowed_when_its_endpoints_are_and_refused_when_they_are_not():
    found = rules([TO_B])
    # The Service port (80) is allowed because its endpoints' target port (8080) is.
    assert Allow("apps/p via Service apps/b", ("10.96.0.20/32",), (), (PortRange("TCP", 80, 80),)) in found.egress
    assert found.refused_services == (Destination("10.96.0.21", "TCP", 80),)
    script = nft_script(found, NODE)
    assert 'ip daddr { 10.96.0.20/32 } tcp dport { 80 } accept comment "apps/p via Service apps/b"' in script
    drop = 'ip daddr . tcp dport { 10.96.0.21 . 80 } drop'
    assert drop in script
    # The drop comes before any accept that could judge the cluster IP as an address.
    lines = script.splitlines()
    first_accept = next(i for i, line in enumerate(lines) if 'comment "apps/p' in line)
    assert next(i for i, line in enumerate(lines) if drop in line) < first_accept


def test_the_endpoints_decide_not_the_cluster_ip_as_an_address():
    # Every address on the Service's port: kube-proxy sends the connection to 8080, which is
    # not allowed, so it is dropped although the cluster IP itself matches.
    to_port_80 = policy({"podSelector": {}, "policyTypes": ["Egress"],
                         "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"port": 80}]}]})
    found = rules([to_port_80])
    assert set(found.refused_services) == {Destination("10.96.0.20", "TCP", 80), Destination("10.96.0.21", "TCP", 80)}
    # An ipBlock holding the endpoints on the target port lets the Service in; its except does not.
    block = policy({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [{"ipBlock": {
        "cidr": "10.213.1.0/24", "except": ["10.213.1.5/32"]}}], "ports": [{"port": 8080}]}]})
    found = rules([block])
    assert found.refused_services == (Destination("10.96.0.21", "TCP", 80),)
    assert any(a.policy == "apps/p via Service apps/b" for a in found.egress)


def test_port_names_resolve_against_each_endpoint_pod():
    by_name = policy({"podSelector": {}, "policyTypes": ["Egress"],
                      "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "b"}}}],
                                  "ports": [{"port": "http"}]}]})
    assert rules([by_name]).refused_services == (Destination("10.96.0.21", "TCP", 80),)
    # A pod calling its port otherwise is no match.
    renamed = [CLIENT, pod("b1", "10.213.1.3", app="b", ports=[ContainerPort("web", 8080)]),
               pod("b2", "10.213.1.4", app="b", ports=[ContainerPort("web", 8080)]), C]
    assert len(rules([by_name], pods=renamed).refused_services) == 2


def test_pods_of_another_namespace_behind_a_service_of_theirs():
    hub = pod("hub", "10.213.1.9", namespace="jhub", component="hub")
    hub_service = service("hub", "10.96.0.30", [(8081, "TCP", None)], namespace="jhub")
    hub_endpoints = endpoints("hub", ["10.213.1.9"], [(8081, "TCP", None)], namespace="jhub")
    to_hub = policy({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
        "to": [{"namespaceSelector": {"matchLabels": {"team": "hub"}},
                "podSelector": {"matchLabels": {"component": "hub"}}}],
        "ports": [{"port": 8081}]}]})
    found = rules([to_hub], services=(hub_service,), found=(hub_endpoints,), pods=[CLIENT, hub],
                  namespaces={"apps": {}, "jhub": {"team": "hub"}})
    assert found.refused_services == ()
    assert Allow("apps/p via Service jhub/hub", ("10.96.0.30/32",), (), (PortRange("TCP", 8081, 8081),)) in found.egress
    unlabelled = rules([to_hub], services=(hub_service,), found=(hub_endpoints,), pods=[CLIENT, hub],
                       namespaces={"apps": {}, "jhub": {}})
    assert unlabelled.refused_services == (Destination("10.96.0.30", "TCP", 8081),)


def test_each_service_port_by_its_name_and_protocol():
    dns = service("dns", "10.96.0.10", [(53, "UDP", "dns"), (53, "TCP", "dns-tcp"), (9153, "TCP", "metrics")])
    dns_endpoints = endpoints("dns", ["10.213.1.3"], [(1053, "UDP", "dns"), (1053, "TCP", "dns-tcp"),
                                                       (9153, "TCP", "metrics")])
    udp_only = policy({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
        "to": [{"podSelector": {"matchLabels": {"app": "b"}}}], "ports": [{"port": 1053, "protocol": "UDP"}]}]})
    found = rules([udp_only], services=(dns,), found=(dns_endpoints,))
    assert Allow("apps/p via Service apps/dns", ("10.96.0.10/32",), (), (PortRange("UDP", 53, 53),)) in found.egress
    assert found.refused_services == (Destination("10.96.0.10", "TCP", 53), Destination("10.96.0.10", "TCP", 9153))
    script = nft_script(found, NODE)
    assert "ip daddr . tcp dport { 10.96.0.10 . 53, 10.96.0.10 . 9153 } drop" in script
    assert "ip daddr { 10.96.0.10/32 } udp dport { 53 } accept" in script


def test_one_allowed_ready_endpoint_is_enough_and_not_ready_ones_do_not_count():
    only_b1 = policy({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
        "to": [{"ipBlock": {"cidr": "10.213.1.3/32"}}]}]})
    # Documented choice: kube-proxy may send a connection to b2 (not allowed) after the pod's
    # filters saw it; the test bed lets the Service through when any ready endpoint is allowed.
    assert rules([only_b1]).refused_services == (Destination("10.96.0.21", "TCP", 80),)
    only_b1_ready = endpoints("b", ["10.213.1.4"], [(8080, "TCP", None)], not_ready=["10.213.1.3"])
    assert set(rules([only_b1], found=(only_b1_ready, ENDPOINTS_C)).refused_services) == {
        Destination("10.96.0.20", "TCP", 80), Destination("10.96.0.21", "TCP", 80)}


def test_what_kube_proxy_does_not_rewrite_is_left_to_the_address_rules():
    # No ready endpoint, no Endpoints object, a headless Service: no rule of their own.
    headless = service("h", "None", [(80, "TCP", None)])
    none_ready = endpoints("c", [], [(8080, "TCP", None)], not_ready=["10.213.1.5"])
    found = rules([TO_B], services=(SERVICE_B, SERVICE_C, headless),
                  found=(ENDPOINTS_B, none_ready, endpoints("h", ["10.213.1.5"], [(8080, "TCP", None)])))
    assert found.refused_services == ()
    assert [a.policy for a in found.egress].count("apps/p via Service apps/b") == 1
    assert rules([TO_B], found=(ENDPOINTS_B,)).refused_services == ()


def test_pods_open_for_egress_or_allowed_everything_get_no_service_rules():
    ingress_only = policy({"podSelector": {}, "ingress": [{}]})
    assert rules([ingress_only]).egress is None
    assert rules([ingress_only]).refused_services == ()
    everything = policy({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{}]})
    assert rules([everything]).egress == (Allow("apps/p"),)
    assert rules([everything]).refused_services == ()


def test_changes_kube_proxy_ignores_leave_the_rules_equal():
    """The agent rewrites a table only when its rules differ: annotations (leader elections
    write Endpoints every few seconds), not-ready addresses and Services of no consequence
    to the pod's verdicts change nothing."""
    before = rules([TO_B])
    annotated = endpoints("b", ["10.213.1.3", "10.213.1.4"], [(8080, "TCP", None)],
                          annotations={"control-plane.alpha.kubernetes.io/leader": "{}"})
    assert annotated == ENDPOINTS_B
    with_not_ready = endpoints("b", ["10.213.1.4", "10.213.1.3"], [(8080, "TCP", None)], not_ready=["10.213.1.7"])
    assert rules([TO_B], found=(with_not_ready, ENDPOINTS_C)) == before
    # One endpoint of b fewer: b is still allowed, its table the same.
    assert rules([TO_B], found=(endpoints("b", ["10.213.1.3"], [(8080, "TCP", None)]), ENDPOINTS_C)) == before


def test_many_pods_share_the_endpoint_verdicts():
    """1,000 servers with a policy each, as the benchmark runs: each gets the Service of the
    hub, and no other pod's."""
    hub = pod("hub", "10.213.2.1", component="hub")
    servers = [pod(f"s{i}", f"10.213.{3 + i // 250}.{1 + i % 250}", app="server", server=f"s{i}") for i in range(1000)]
    policies = [policy({"podSelector": {"matchLabels": {"server": f"s{i}"}}, "policyTypes": ["Ingress", "Egress"],
                        "egress": [{"to": [{"podSelector": {"matchLabels": {"component": "hub"}}}],
                                    "ports": [{"port": 8081}]}]}, name=f"s{i}") for i in range(1000)]
    hub_service = service("hub", "10.96.0.30", [(8081, "TCP", None)])
    hub_endpoints = endpoints("hub", ["10.213.2.1"], [(8081, "TCP", None)])
    found = compute_rules(servers, [hub, *servers], {"apps": {}}, policies, [hub_service, SERVICE_C],
                          [hub_endpoints, ENDPOINTS_C])
    for i, server in enumerate(servers):
        assert found[server.uid].refused_services == (Destination("10.96.0.21", "TCP", 80),)
        assert Allow(f"apps/s{i} via Service apps/hub", ("10.96.0.30/32",), (),
                     (PortRange("TCP", 8081, 8081),)) in found[server.uid].egress
