"""The test bed's NetworkPolicy translation (tycho_testbed.netpol), without a cluster or root:
which pods a policy isolates, what each one lets in and out, and the nftables script."""
from __future__ import annotations

from tycho_testbed.netpol import (
    DENY_ALL,
    Allow,
    ContainerPort,
    Pod,
    PodRules,
    PortRange,
    compute_rules,
    nft_script,
)

from netpol_builders import NODE, pod, policy



def rules(target, pods, policies, namespaces=None):
    namespaces = namespaces or {p.namespace: {} for p in pods}
    return compute_rules([target], pods, namespaces, policies)[target.uid]


SERVER = pod("server", "10.213.1.2", app="jupyter", ports=[ContainerPort("http", 8888)])
HUB = pod("hub", "10.213.1.3", component="hub")
PROXY = pod("proxy", "10.213.1.4", component="proxy")
OTHER = pod("other", "10.213.1.5")


def test_a_pod_no_policy_selects_is_open_both_ways():
    found = rules(SERVER, [SERVER, HUB], [policy({"podSelector": {"matchLabels": {"app": "other"}}})])
    assert found == PodRules(ingress=None, egress=None)
    assert not found.isolated
    assert "chain" not in nft_script(found, NODE)  # the table is removed, nothing filters


def test_selection_by_labels_and_expressions_within_the_policys_namespace():
    selects = [
        {"matchLabels": {"app": "jupyter"}},
        {"matchExpressions": [{"key": "app", "operator": "In", "values": ["rstudio", "jupyter"]}]},
        {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["nginx"]}]},
        {"matchExpressions": [{"key": "app", "operator": "Exists"}]},
        {"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]},
        {},  # every pod of the namespace
    ]
    for selector in selects:
        assert rules(SERVER, [SERVER], [policy({"podSelector": selector})]).ingress == (), selector
    misses = [
        {"matchLabels": {"app": "jupyter", "tier": "x"}},
        {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["jupyter"]}]},
        {"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]},
    ]
    for selector in misses:
        assert rules(SERVER, [SERVER], [policy({"podSelector": selector})]).ingress is None, selector
    # A policy of another namespace never selects this pod, whatever its selector.
    assert rules(SERVER, [SERVER], [policy({"podSelector": {}}, namespace="elsewhere")]).ingress is None


def test_policy_types_default_to_ingress_plus_egress_when_there_are_egress_rules():
    ingress_only = rules(SERVER, [SERVER], [policy({"podSelector": {}, "ingress": [{}]})])
    assert ingress_only.ingress is not None and ingress_only.egress is None
    with_egress = rules(SERVER, [SERVER], [policy({"podSelector": {}, "egress": [{}]})])
    assert with_egress.ingress == ()  # isolated for ingress with no rule: nothing comes in
    assert with_egress.egress == (Allow("apps/p"),)
    egress_only = rules(SERVER, [SERVER], [policy({"podSelector": {}, "policyTypes": ["Egress"]})])
    assert egress_only == PodRules(ingress=None, egress=())
    # An empty egress list does not make a policy an egress one.
    assert rules(SERVER, [SERVER], [policy({"podSelector": {}, "egress": []})]).egress is None


def test_the_spawners_policy_lets_in_only_hub_and_proxy_pods_on_the_served_port():
    spawner = policy({"podSelector": {"matchLabels": {"app": "jupyter"}}, "policyTypes": ["Ingress"],
                      "ingress": [{"from": [{"podSelector": {"matchLabels": {"component": "hub"}}},
                                            {"podSelector": {"matchLabels": {"component": "proxy"}}}],
                                   "ports": [{"port": 8888, "protocol": "TCP"}]}]})
    found = rules(SERVER, [SERVER, HUB, PROXY, OTHER], [spawner])
    assert found == PodRules(ingress=(Allow("apps/p", ("10.213.1.3/32", "10.213.1.4/32"), (),
                                            (PortRange("TCP", 8888, 8888),)),), egress=None)
    script = nft_script(found, NODE)
    assert "ip saddr { 10.213.1.3/32, 10.213.1.4/32 } tcp dport { 8888 } accept" in script
    assert "10.213.1.5" not in script
    # The node's own traffic, loopback and replies always pass; the rest is dropped.
    assert "policy drop;" in script
    assert 'ip saddr { 10.213.0.1/32 } accept comment "the node"' in script
    assert 'iifname "lo" accept' in script and "ct state established,related accept" in script


def test_allowed_traffic_is_the_union_of_every_selecting_policy():
    by_role = policy({"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "x"}}}],
                                                      "ports": [{"port": 80}]}]}, name="a")
    by_block = policy({"podSelector": {"matchLabels": {"app": "jupyter"}},
                       "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.213.0.0/16"]}}]}]},
                      name="b")
    client = pod("client", "10.213.1.9", role="x")
    found = rules(SERVER, [SERVER, client, OTHER], [by_block, by_role])
    assert found.ingress == (Allow("apps/a", ("10.213.1.9/32",), (), (PortRange("TCP", 80, 80),)),
                             Allow("apps/b", ("10.0.0.0/8",), ("10.213.0.0/16",), None))
    script = nft_script(found, NODE)
    assert "ip saddr { 10.0.0.0/8 } ip saddr != { 10.213.0.0/16 } accept" in script


def test_peers_by_namespace_and_by_namespace_and_pod_together():
    team_a = pod("a", "10.213.2.1", namespace="team", role="x")
    team_b = pod("b", "10.213.2.2", namespace="team")
    lab = pod("c", "10.213.3.1", namespace="lab", role="x")
    everyone = [SERVER, OTHER, team_a, team_b, lab]
    namespaces = {"apps": {}, "team": {"kind": "team"}, "lab": {"kind": "lab"}}

    def sources(peer):
        found = rules(SERVER, everyone, [policy({"podSelector": {}, "ingress": [{"from": [peer]}]})], namespaces)
        return set(found.ingress[0].addresses) if found.ingress else set()

    assert sources({"namespaceSelector": {"matchLabels": {"kind": "team"}}}) == {"10.213.2.1/32", "10.213.2.2/32"}
    assert sources({"namespaceSelector": {"matchLabels": {"kind": "team"}},
                    "podSelector": {"matchLabels": {"role": "x"}}}) == {"10.213.2.1/32"}
    assert sources({"namespaceSelector": {}, "podSelector": {"matchLabels": {"role": "x"}}}) == {
        "10.213.2.1/32", "10.213.3.1/32"}
    # A pod selector alone means the policy's own namespace.
    assert sources({"podSelector": {}}) == {"10.213.1.2/32", "10.213.1.5/32"}
    # Selectors matching no pod open nothing (not everything).
    assert sources({"podSelector": {"matchLabels": {"role": "nobody"}}}) == set()


def test_pods_without_an_address_or_finished_are_no_peers():
    pending = Pod.from_api({"metadata": {"namespace": "apps", "name": "pending", "uid": "u1", "labels": {"role": "x"}},
                            "spec": {"containers": []}, "status": {"phase": "Pending"}})
    finished = Pod.from_api({"metadata": {"namespace": "apps", "name": "done", "uid": "u2", "labels": {"role": "x"}},
                             "spec": {"containers": []}, "status": {"phase": "Succeeded", "podIP": "10.213.1.7"}})
    running = Pod.from_api({"metadata": {"namespace": "apps", "name": "up", "uid": "u3", "labels": {"role": "x"}},
                            "spec": {"containers": [{"name": "c", "ports": [{"name": "web", "containerPort": 80}]}]},
                            "status": {"phase": "Running", "podIP": "10.213.1.8"}})
    assert (pending.ip, finished.ip, running.ip) == (None, None, "10.213.1.8")
    assert running.ports == (ContainerPort("web", 80, "TCP"),)
    from_x = {"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "x"}}}]}]}
    found = rules(SERVER, [SERVER, pending, finished, running], [policy(from_x)])
    assert found.ingress == (Allow("apps/p", ("10.213.1.8/32",)),)


def test_named_ports_resolve_against_the_selected_pod_for_ingress():
    server = pod("server", "10.213.1.2", ports=[ContainerPort("http", 8888), ContainerPort("dns", 53, "UDP")])
    spec = {"podSelector": {}, "ingress": [{"ports": [{"port": "http"}, {"port": "dns", "protocol": "UDP"},
                                                      {"port": "dns"}]}]}  # dns over TCP: no such port
    assert rules(server, [server], [policy(spec)]).ingress == (
        Allow("apps/p", None, (), (PortRange("TCP", 8888, 8888), PortRange("UDP", 53, 53))),)
    # A name the pod does not have lets nothing in: the rule does not fall back to every port.
    only_unknown = {"podSelector": {}, "ingress": [{"ports": [{"port": "metrics"}]}]}
    assert rules(server, [server], [policy(only_unknown)]).ingress == ()


def test_named_ports_resolve_against_each_destination_for_egress():
    web1 = pod("web1", "10.213.1.11", role="web", ports=[ContainerPort("web", 8080)])
    web2 = pod("web2", "10.213.1.12", role="web", ports=[ContainerPort("web", 9090)])
    plain = pod("plain", "10.213.1.13", role="web")
    spec = {"podSelector": {"matchLabels": {"app": "jupyter"}},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": {"matchLabels": {"role": "web"}}}],
                        "ports": [{"port": "web"}, {"port": 53, "protocol": "UDP"}]}]}
    found = rules(SERVER, [SERVER, web1, web2, plain], [policy(spec)])
    assert found.egress == (
        Allow("apps/p", ("10.213.1.11/32", "10.213.1.12/32", "10.213.1.13/32"), (), (PortRange("UDP", 53, 53),)),
        Allow("apps/p", ("10.213.1.11/32",), (), (PortRange("TCP", 8080, 8080),)),
        Allow("apps/p", ("10.213.1.12/32",), (), (PortRange("TCP", 9090, 9090),)),
    )
    # To an IP block, a name means the pods inside the block (outside its exceptions) that have it.
    block = {"podSelector": {}, "policyTypes": ["Egress"],
             "egress": [{"to": [{"ipBlock": {"cidr": "10.213.1.0/24", "except": ["10.213.1.12/32"]}}],
                         "ports": [{"port": "web"}]}]}
    assert rules(SERVER, [SERVER, web1, web2], [policy(block)]).egress == (
        Allow("apps/p", ("10.213.1.11/32",), (), (PortRange("TCP", 8080, 8080),)),)


def test_egress_to_everything_but_metadata_and_the_api_server():
    spec = {"podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32", "10.96.0.1/32"]}}]}]}
    found = rules(SERVER, [SERVER], [policy(spec)])
    assert found.ingress is None
    script = nft_script(found, NODE)
    assert "chain ingress" not in script
    assert "ip daddr { 0.0.0.0/0 } ip daddr != { 10.96.0.1/32, 169.254.169.254/32 } accept" in script
    assert 'ip daddr { 10.213.0.1/32 } accept comment "the node"' in script


def test_protocols_port_ranges_and_end_port():
    spec = {"podSelector": {}, "ingress": [{"ports": [
        {"port": 8000, "endPort": 8010}, {"port": 8005}, {"port": 8011},  # merged into one range
        {"protocol": "UDP"},  # every UDP port
        {"protocol": "SCTP", "port": 9000}]}]}
    found = rules(SERVER, [SERVER], [policy(spec)])
    assert found.ingress[0].ports == (PortRange("TCP", 8000, 8010), PortRange("TCP", 8005, 8005),
                                      PortRange("TCP", 8011, 8011), PortRange("UDP", 1, 65535),
                                      PortRange("SCTP", 9000, 9000))
    script = nft_script(found, NODE)
    assert "tcp dport { 8000-8011 } accept" in script
    assert "udp dport { 1-65535 } accept" in script
    assert "sctp dport { 9000 } accept" in script


def test_deny_all_shuts_both_directions_but_for_the_node_and_loopback():
    script = nft_script(DENY_ALL, NODE)
    assert script.startswith("table inet tycho_netpol\ndelete table inet tycho_netpol\n")
    assert script.count("policy drop;") == 2
    assert script.count("accept") == 6  # per direction: loopback, replies, the node


def test_many_pods_and_policies_compute_per_pod_and_stay_separate():
    """The spawner's pattern at scale: a policy per server, each selecting its own pod."""
    servers = [pod(f"s{i}", f"10.213.{i // 250 + 1}.{i % 250 + 2}", server=f"s{i}", ports=[ContainerPort("http", 8888)])
               for i in range(500)]
    policies = [policy({"podSelector": {"matchLabels": {"server": f"s{i}"}},
                        "ingress": [{"from": [{"podSelector": {"matchLabels": {"component": "hub"}}}],
                                     "ports": [{"port": "http"}]}]}, name=f"s{i}") for i in range(500)]
    found = compute_rules(servers, servers + [HUB], {"apps": {}}, policies)
    assert len(found) == 500
    assert found[servers[7].uid].ingress == (Allow("apps/s7", ("10.213.1.3/32",), (), (PortRange("TCP", 8888, 8888),)),)
