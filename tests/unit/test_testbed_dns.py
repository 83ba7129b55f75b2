"""The test bed node's kubelet rules for finding Services (tycho_testbed.service_env and
tycho_testbed.dns), without a cluster or root: the cases a pod on the test bed rarely meets
(limits, merges, a Service named like the API's) checked against the rules of a 1.20 kubelet."""
from __future__ import annotations

from tycho_testbed.dns import ResolverConfig, hosts_file, pod_hostname, pod_resolver, zone_records
from tycho_testbed.service_env import service_environment
from tycho_testbed.service_watch import EndpointAddress, Endpoints, Service, ServicePort

API = Service("default", "kubernetes", "10.96.0.1", (ServicePort("https", 443, "TCP"),))
NODE = ResolverConfig(("192.0.2.53",), ("corp.example",), ("timeout:2",))


def _pod(namespace="ns", name="p", **spec):
    return {"metadata": {"namespace": namespace, "name": name}, "spec": spec}


def test_a_namespaces_own_service_named_kubernetes_replaces_the_apis_variables():
    own = Service("ns", "kubernetes", "10.96.7.7", (ServicePort("", 8443, "TCP"),))
    for order in ([API, own], [own, API]):
        assert service_environment(order, "ns")["KUBERNETES_SERVICE_HOST"] == "10.96.7.7"
        assert service_environment(order, "ns", enable_links=False)["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert service_environment([API, own], "other")["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"


def test_services_of_other_namespaces_give_no_variables():
    other = Service("elsewhere", "db", "10.96.3.3", (ServicePort("", 5432, "TCP"),))
    assert not [k for k in service_environment([API, other], "ns") if k.startswith("DB_")]


def test_cluster_first_puts_the_cluster_search_path_before_the_nodes():
    formed = pod_resolver(_pod(), NODE, ("10.213.0.1",), "cluster.local")
    assert formed.config.render() == ("search ns.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
                                      "nameserver 10.213.0.1\noptions ndots:5\n")
    assert formed.warnings == ()


def test_default_is_the_nodes_file_and_dns_config_is_appended_and_merged():
    formed = pod_resolver(_pod(dnsPolicy="Default", dnsConfig={
        "nameservers": ["192.0.2.53", "198.51.100.1"], "searches": ["x.example"],
        "options": [{"name": "timeout", "value": "5"}, {"name": "rotate"}]}), NODE, ("10.213.0.1",), "cluster.local")
    assert formed.config == ResolverConfig(("192.0.2.53", "198.51.100.1"), ("corp.example", "x.example"),
                                           ("timeout:5", "rotate"))


def test_search_paths_and_nameservers_are_cut_to_the_kubelets_limits_with_a_warning():
    long = [f"{'d' * 60}{i}.example" for i in range(5)]
    formed = pod_resolver(_pod(dnsConfig={"nameservers": ["198.51.100.1", "198.51.100.2", "198.51.100.3"],
                                          "searches": long}), NODE, ("10.213.0.1",), "cluster.local")
    assert formed.config.nameservers == ("10.213.0.1", "198.51.100.1", "198.51.100.2")
    assert len(" ".join(formed.config.searches)) <= 256 and len(formed.config.searches) <= 6
    assert formed.config.searches[:3] == ("ns.svc.cluster.local", "svc.cluster.local", "cluster.local")
    assert [w.split(",")[0] for w in formed.warnings] == ["Nameserver limits were exceeded",
                                                         "Search Line limits were exceeded"]


def test_hosts_file_names_the_pod_with_its_subdomain():
    pod = _pod(name="web-0", hostname="web-0", subdomain="web")
    assert hosts_file(pod, "10.213.1.5", "cluster.local").endswith(
        "10.213.1.5\tweb-0.web.ns.svc.cluster.local\tweb-0\n")
    assert pod_hostname(_pod(name="x" * 62 + "-y")) == "x" * 62


def test_zone_records_of_cluster_ip_headless_and_external_name_services():
    services = [Service("ns", "web", "10.96.0.20", (ServicePort("", 80, "TCP"),)),
                Service("ns", "db", "None", (ServicePort("", 5432, "TCP"),)),
                Service("ns", "far", "", ())]
    endpoints = [Endpoints("ns", "db", (EndpointAddress("10.213.1.7", "db-0"), EndpointAddress("10.213.1.8")))]
    assert zone_records(services, endpoints, "cluster.local") == [
        ("10.213.1.7", "db-0.db.ns.svc.cluster.local"),
        ("10.213.1.7", "db.ns.svc.cluster.local"), ("10.213.1.8", "db.ns.svc.cluster.local"),
        ("10.96.0.20", "web.ns.svc.cluster.local")]
