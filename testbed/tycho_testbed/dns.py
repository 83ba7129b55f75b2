"""Cluster DNS, the pure part: what a kubelet writes into a pod, and the records of the zone.

A pod's ``/etc/resolv.conf`` follows its ``dnsPolicy`` as a 1.20 kubelet forms it
(``pkg/kubelet/network/dns``): ``ClusterFirst`` sends every query to the cluster's resolver with
the search path ``<ns>.svc.<domain> svc.<domain> <domain>`` (then the node's own search
domains) and ``ndots:5``, so that a Service's short name resolves; ``Default`` takes the node's
file; ``None`` only the pod's ``dnsConfig``, which the other policies get appended. Its
``/etc/hosts`` is the kubelet's managed file (the pod's hostname at its address, hostAliases).

The zone's records are a hosts file the resolver (:mod:`tycho_testbed.resolver`) serves: a
Service with a cluster IP at ``<svc>.<ns>.svc.<domain>``, a headless one at each ready
endpoint's address (and ``<hostname>.<svc>.<ns>.svc.<domain>`` for endpoints with a hostname).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from .service_watch import Endpoints, Service

#: A 1.20 kubelet's limits (MaxDNSNameservers, MaxDNSSearchPaths, MaxDNSSearchListChars).
MAX_NAMESERVERS, MAX_SEARCHES, MAX_SEARCH_CHARS = 3, 6, 256
CLUSTER_OPTIONS = ("ndots:5",)
HOSTS_HEADER = "# Kubernetes-managed hosts file.\n"


@dataclass(frozen=True)
class ResolverConfig:
    nameservers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> "ResolverConfig":
        """A resolv.conf as the kubelet reads the node's: nameservers add up, the last search
        and options lines win."""
        servers: list[str] = []
        searches: list[str] = []
        options: list[str] = []
        for line in text.splitlines():
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if fields[0] == "nameserver" and len(fields) > 1:
                servers.append(fields[1])
            elif fields[0] == "search":
                searches = [s.rstrip(".") for s in fields[1:]]
            elif fields[0] == "options":
                options = fields[1:]
        return cls(tuple(servers), tuple(searches), tuple(options))

    def render(self) -> str:
        """The file as container runtimes write it: search, nameservers, options."""
        lines = []
        if self.searches:
            lines.append("search " + " ".join(self.searches))
        lines += [f"nameserver {s}" for s in self.nameservers]
        if self.options:
            lines.append("options " + " ".join(self.options))
        return "".join(line + "\n" for line in lines)


@dataclass(frozen=True)
class PodResolver:
    """A pod's resolver configuration, and the kubelet's warnings (DNSConfigForming events)
    when it had to cut it to the limits."""

    config: ResolverConfig
    warnings: tuple[str, ...] = ()


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def pod_resolver(pod: dict, node: ResolverConfig, cluster_dns: tuple[str, ...], domain: str) -> PodResolver:
    """The resolv.conf a kubelet forms for ``pod`` (``GetPodDNS``). This agent runs no
    hostNetwork pods, so ClusterFirst always means the cluster's resolver."""
    spec, namespace = pod["spec"], pod["metadata"]["namespace"]
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "None":
        servers, searches, options = [], [], []
    elif policy in ("ClusterFirst", "ClusterFirstWithHostNet"):
        servers = list(cluster_dns)
        searches = _unique([f"{namespace}.svc.{domain}", f"svc.{domain}", domain, *node.searches])
        options = list(CLUSTER_OPTIONS)
    else:  # Default: the node's own
        servers, searches, options = list(node.nameservers), list(node.searches), list(node.options)
    extra = spec.get("dnsConfig") or {}
    servers = _unique(servers + list(extra.get("nameservers") or []))
    searches = _unique(searches + list(extra.get("searches") or []))
    merged = {o.split(":", 1)[0]: o for o in options}
    for o in extra.get("options") or []:
        value = o.get("value")
        merged[o["name"]] = o["name"] if value is None or value == "" else f"{o['name']}:{value}"
    warnings = []
    if len(servers) > MAX_NAMESERVERS:
        servers = servers[:MAX_NAMESERVERS]
        warnings.append("Nameserver limits were exceeded, some nameservers have been omitted, the applied "
                        f"nameserver line is: {' '.join(servers)}")
    cut = len(searches) > MAX_SEARCHES
    searches = searches[:MAX_SEARCHES]
    while len(" ".join(searches)) > MAX_SEARCH_CHARS:
        searches.pop()
        cut = True
    if cut:
        warnings.append("Search Line limits were exceeded, some search paths have been omitted, the applied "
                        f"search line is: {' '.join(searches)}")
    return PodResolver(ResolverConfig(tuple(servers), tuple(searches), tuple(merged.values())), tuple(warnings))


def pod_hostname(pod: dict) -> str:
    """``spec.hostname``, or the pod's name cut to 63 characters as the kubelet cuts it."""
    hostname = pod["spec"].get("hostname") or pod["metadata"]["name"]
    return hostname[:63].rstrip("-.") if len(hostname) > 63 else hostname


def hosts_file(pod: dict, ip: str, domain: str) -> str:
    """The pod's /etc/hosts as a kubelet writes it (``managedHostsFileContent``)."""
    spec = pod["spec"]
    hostname = pod_hostname(pod)
    lines = [HOSTS_HEADER, "127.0.0.1\tlocalhost\n", "::1\tlocalhost ip6-localhost ip6-loopback\n",
             "fe00::0\tip6-localnet\n", "fe00::0\tip6-mcastprefix\n", "fe00::1\tip6-allnodes\n",
             "fe00::2\tip6-allrouters\n"]
    if spec.get("subdomain"):
        fqdn = f"{hostname}.{spec['subdomain']}.{pod['metadata']['namespace']}.svc.{domain}"
        lines.append(f"{ip}\t{fqdn}\t{hostname}\n")
    else:
        lines.append(f"{ip}\t{hostname}\n")
    aliases = spec.get("hostAliases") or []
    if aliases:
        lines.append("\n# Entries added by HostAliases.\n")
        for alias in aliases:
            lines.append(f"{alias['ip']}\t" + "\t".join(alias.get("hostnames") or []) + "\n")
    return "".join(lines)


def zone_records(services: Iterable[Service], endpoints: Iterable[Endpoints], domain: str) -> list[tuple[str, str]]:
    """(address, name) pairs of the cluster zone, sorted: Services by cluster IP, headless
    Services by their ready endpoints. ExternalName Services have none (they would need a
    CNAME out of the cluster, and nothing here resolves names outside it)."""
    ready = {(e.namespace, e.name): e.addresses for e in endpoints}
    records = set()
    for s in services:
        name = f"{s.name}.{s.namespace}.svc.{domain}"
        if s.has_cluster_ip:
            records.add((s.cluster_ip, name))
        elif s.headless:
            for a in ready.get((s.namespace, s.name), ()):
                records.add((a.ip, name))
                if a.hostname:
                    records.add((a.ip, f"{a.hostname}.{name}"))
    return sorted(records, key=lambda r: (r[1], r[0]))


def hosts_text(records: Iterable[tuple[str, str]], header: str) -> str:
    return header + "".join(f"{ip} {name}\n" for ip, name in records)
