"""NetworkPolicies enforced on the test bed's node: what a cluster's network plugin does.

A NetworkPolicy stored by the API server protects nothing until a network plugin (Calico,
Cilium, kube-router...) turns it into packet filters; none can run here, so the node agent
plays that part too. Each pod already has its own network namespace; its policies become an
nftables table (``inet tycho_netpol``) inside that namespace: the ``input`` hook for ingress,
the ``output`` hook for egress. Working inside the pod's namespace needs nothing from the host
(no ``br_netfilter``, no host rules shared by every test session on the one bridge), and a
table of our own leaves the pod's own ``iptables`` rules alone (zero-to-jupyterhub's
metadata-blocking init container writes to ``ip filter``): a packet passes only if both accept.

Semantics (networking.k8s.io/v1): a pod is isolated for ingress (egress) once a policy of its
namespace selects it with ``Ingress`` (``Egress``) in its ``policyTypes`` (default: Ingress,
plus Egress when the policy has egress rules); what is allowed is then the union of the rules
of all those policies. Peers are pods (``podSelector`` in the policy's namespace,
``namespaceSelector``, or both together) and ``ipBlock`` CIDRs with ``except``; ports are TCP,
UDP or SCTP, numbers or names (ingress: the selected pod's own container ports; egress: the
destination pods'), with ``endPort`` when present (the 1.20 API drops it). Replies of allowed
connections pass (conntrack); the pod's loopback and the pod's node are always allowed, as the
Kubernetes documentation states ("traffic to and from the node where a Pod is running is always
allowed"): the hub and proxy of the tests run on the host, so they stand where the node is.

Services: kube-proxy (on the host) rewrites a connection to a cluster IP into one to an
endpoint after it has left the pod, so the pod's egress filter sees the cluster IP where a real
plugin judges the endpoint. The egress chain therefore judges each Service port (with ready
endpoints) by its Endpoints: its cluster IP and port are allowed when the egress rules allow at
least one ready endpoint address on its target port, and dropped otherwise, before the rules
that would judge the cluster IP as an address. Ingress needs nothing: the destination pod sees
the client's own address, unless kube-proxy masquerades the connection.

The module has two parts. The pure one, ``compute_rules`` and ``nft_script``, turns policies,
pods, namespaces, Services and Endpoints into frozen :class:`PodRules` and those into an
nftables script; it needs no root and no cluster. The I/O one, :class:`Enforcer`, watches
NetworkPolicies, Pods, Namespaces, Services and Endpoints, and re-programs each local pod's
table atomically (one ``nft -f`` transaction replaces the whole table) when what it depends on
changes. A pod's table is in place before any
of its containers starts, from a fresh read of its namespace's policies: the spawner creates a
server's policy before its pod so that the pod is never reachable unprotected.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import shutil
import subprocess
import threading
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Callable, Iterable, Mapping, Optional, Sequence, Union

from .informer import list_and_watch

log = logging.getLogger("tycho_testbed.netpol")

#: The nftables table (family inet) holding a pod's policy chains, in the pod's namespace.
TABLE = "tycho_netpol"
PROTOCOLS = ("TCP", "UDP", "SCTP")
Labels = tuple[tuple[str, str], ...]


def _labels(mapping: Optional[Mapping[str, str]]) -> Labels:
    return tuple(sorted((mapping or {}).items()))


# ------------------------------------------------------------------------- what the API holds


@dataclass(frozen=True)
class Requirement:
    """One ``matchExpressions`` entry of a label selector."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def holds(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return labels.get(self.key) in self.values
        if self.operator == "NotIn":
            return labels.get(self.key) not in self.values
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        return False  # the API server accepts no other operator


@dataclass(frozen=True)
class Selector:
    """A label selector; the empty one selects everything."""

    match_labels: Labels = ()
    requirements: tuple[Requirement, ...] = ()

    @classmethod
    def from_api(cls, obj: Optional[dict]) -> "Selector":
        obj = obj or {}
        return cls(_labels(obj.get("matchLabels")),
                   tuple(Requirement(e["key"], e["operator"], tuple(e.get("values") or ()))
                         for e in obj.get("matchExpressions") or ()))

    def matches(self, labels: Mapping[str, str]) -> bool:
        return (all(labels.get(k) == v for k, v in self.match_labels)
                and all(r.holds(labels) for r in self.requirements))


@dataclass(frozen=True)
class ContainerPort:
    name: str
    port: int
    protocol: str = "TCP"


@dataclass(frozen=True)
class Pod:
    """What policies need of a pod: where it is, its labels, its address, its named ports."""

    namespace: str
    name: str
    uid: str
    labels: Labels = ()
    #: None while it has no address, once it finished, or on the host's network: no peer then.
    ip: Optional[str] = None
    ports: tuple[ContainerPort, ...] = ()

    @classmethod
    def from_api(cls, obj: dict, ip: Optional[str] = None) -> "Pod":
        meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
        if ip is None and not spec.get("hostNetwork") and status.get("phase") not in ("Succeeded", "Failed"):
            ip = status.get("podIP") or None
        ports = tuple(ContainerPort(p["name"], int(p["containerPort"]), p.get("protocol") or "TCP")
                      for c in spec.get("containers") or () for p in c.get("ports") or () if p.get("name"))
        return cls(meta["namespace"], meta["name"], meta["uid"], _labels(meta.get("labels")), ip, ports)

    @cached_property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass(frozen=True)
class IPBlock:
    cidr: str
    excepts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Peer:
    """One ``from`` / ``to`` entry: pods (by pod and/or namespace selector) or an IP block."""

    pods: Optional[Selector] = None
    namespaces: Optional[Selector] = None
    ip_block: Optional[IPBlock] = None

    @classmethod
    def from_api(cls, obj: dict) -> "Peer":
        block = obj.get("ipBlock")
        return cls(Selector.from_api(obj["podSelector"]) if obj.get("podSelector") is not None else None,
                   Selector.from_api(obj["namespaceSelector"]) if obj.get("namespaceSelector") is not None else None,
                   IPBlock(block["cidr"], tuple(block.get("except") or ())) if block else None)


@dataclass(frozen=True)
class PolicyPort:
    """One ``ports`` entry: a protocol, and a port number, a port name, or no port (all)."""

    protocol: str = "TCP"
    port: Union[int, str, None] = None
    end_port: Optional[int] = None


@dataclass(frozen=True)
class PolicyRule:
    """An ingress or egress rule; no peers: every address; no ports: every port."""

    peers: tuple[Peer, ...] = ()
    ports: tuple[PolicyPort, ...] = ()

    @classmethod
    def from_api(cls, obj: dict, peers_key: str) -> "PolicyRule":
        return cls(tuple(Peer.from_api(p) for p in obj.get(peers_key) or ()),
                   tuple(PolicyPort(p.get("protocol") or "TCP", p.get("port"), p.get("endPort"))
                         for p in obj.get("ports") or ()))


@dataclass(frozen=True)
class Policy:
    namespace: str
    name: str
    selector: Selector
    ingress: tuple[PolicyRule, ...] = ()
    egress: tuple[PolicyRule, ...] = ()
    types: frozenset[str] = frozenset({"Ingress"})

    @classmethod
    def from_api(cls, obj: dict) -> "Policy":
        spec = obj.get("spec") or {}
        egress = tuple(PolicyRule.from_api(r, "to") for r in spec.get("egress") or ())
        # The API's defaulting: Ingress always, Egress when there are egress rules.
        types = spec.get("policyTypes") or (["Ingress", "Egress"] if egress else ["Ingress"])
        return cls(obj["metadata"]["namespace"], obj["metadata"]["name"], Selector.from_api(spec.get("podSelector")),
                   tuple(PolicyRule.from_api(r, "from") for r in spec.get("ingress") or ()), egress, frozenset(types))

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class ServicePort:
    name: str  # "" for a Service's single unnamed port, as in its Endpoints
    protocol: str
    port: int


@dataclass(frozen=True)
class Service:
    """What kube-proxy rewrites: connections to a cluster IP on a Service port go to one of
    the Service's endpoints. Headless and ExternalName Services have no cluster IP."""

    namespace: str
    name: str
    cluster_ips: tuple[str, ...] = ()
    ports: tuple[ServicePort, ...] = ()

    @classmethod
    def from_api(cls, obj: dict) -> "Service":
        spec = obj.get("spec") or {}
        ips = spec.get("clusterIPs") or [spec.get("clusterIP")]
        return cls(obj["metadata"]["namespace"], obj["metadata"]["name"],
                   tuple(ip for ip in ips if ip and ip != "None"),
                   tuple(ServicePort(p.get("name") or "", p.get("protocol") or "TCP", int(p["port"]))
                         for p in spec.get("ports") or ()))

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Backend:
    """One ready address of an Endpoints object on one of its ports (the target port)."""

    ip: str
    port_name: str
    protocol: str
    port: int


@dataclass(frozen=True)
class Endpoints:
    """Where a Service's connections land, as the endpoints controller wrote it: only ready
    addresses count (kube-proxy sends nothing to the others)."""

    namespace: str
    name: str
    backends: tuple[Backend, ...] = ()

    @classmethod
    def from_api(cls, obj: dict) -> "Endpoints":
        backends = {Backend(a["ip"], p.get("name") or "", p.get("protocol") or "TCP", int(p["port"]))
                    for subset in obj.get("subsets") or () for a in subset.get("addresses") or ()
                    for p in subset.get("ports") or ()}
        return cls(obj["metadata"]["namespace"], obj["metadata"]["name"],
                   tuple(sorted(backends, key=lambda b: (b.ip, b.port_name, b.protocol, b.port))))

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


# ------------------------------------------------------------------------- what a pod is allowed


@dataclass(frozen=True)
class PortRange:
    protocol: str  # TCP, UDP or SCTP
    first: int
    last: int


@dataclass(frozen=True)
class Allow:
    """Traffic one rule lets in (from ``addresses``) or out (to them), on ``ports``."""

    policy: str
    #: CIDRs (pod addresses as /32); None: any address.
    addresses: Optional[tuple[str, ...]] = None
    excepts: tuple[str, ...] = ()
    #: None: every protocol and port.
    ports: Optional[tuple[PortRange, ...]] = None


@dataclass(frozen=True)
class Destination:
    """A Service's cluster IP and port, as the client addresses it (before kube-proxy's DNAT)."""

    ip: str
    protocol: str
    port: int


@dataclass(frozen=True)
class PodRules:
    """A pod's filters; a direction that no policy isolates is None (everything passes)."""

    ingress: Optional[tuple[Allow, ...]] = None
    egress: Optional[tuple[Allow, ...]] = None
    #: Service ports whose ready endpoints egress may not reach: dropped before the egress
    #: allows, which would otherwise judge the cluster IP itself (a real plugin judges the
    #: endpoint kube-proxy chose).
    refused_services: tuple[Destination, ...] = ()

    @property
    def isolated(self) -> bool:
        return self.ingress is not None or self.egress is not None


#: What a pod gets when its real rules cannot be written: nothing in or out but its node.
DENY_ALL = PodRules(ingress=(), egress=())


class _Index:
    """Pods indexed by label, so that a selector with matchLabels looks at few candidates."""

    def __init__(self, pods: Iterable[Pod]):
        self.all = list(pods)
        self.by_label: dict[tuple[str, str], list[Pod]] = {}
        for pod in self.all:
            for item in pod.labels:
                self.by_label.setdefault(item, []).append(pod)

    def select(self, selector: Selector) -> list[Pod]:
        candidates = self.all
        for item in selector.match_labels:
            bucket = self.by_label.get(item, [])
            if len(bucket) < len(candidates):
                candidates = bucket
        return [p for p in candidates if selector.matches(p.label_map)]


class _View:
    """One consistent state of the cluster, with memoized peer look-ups."""

    def __init__(self, pods: Iterable[Pod], namespaces: Mapping[str, Mapping[str, str]],
                 policies: Iterable[Policy], services: Iterable[Service] = (),
                 endpoints: Iterable[Endpoints] = ()):
        self.pods = [p for p in pods if p.ip]
        self.routes = _routes(services, endpoints)
        self._opened: dict[tuple, frozenset[int]] = {}
        self.namespaces = namespaces
        by_ns: dict[str, list[Pod]] = {}
        for pod in self.pods:
            by_ns.setdefault(pod.namespace, []).append(pod)
        self.index = {ns: _Index(members) for ns, members in by_ns.items()}
        self.policies: dict[str, list[Policy]] = {}
        for policy in sorted(policies, key=lambda p: p.key):
            self.policies.setdefault(policy.namespace, []).append(policy)
        self._peers: dict[tuple[str, Peer], tuple[Pod, ...]] = {}

    def peer_pods(self, namespace: str, peer: Peer) -> tuple[Pod, ...]:
        """Pods a selector peer of a policy in ``namespace`` stands for."""
        key = (namespace, peer)
        if key not in self._peers:
            if peer.namespaces is None:
                spaces = [namespace]
            else:
                spaces = sorted(ns for ns, labels in self.namespaces.items() if peer.namespaces.matches(labels))
            selector = peer.pods or Selector()
            self._peers[key] = tuple(p for ns in spaces if ns in self.index for p in self.index[ns].select(selector))
        return self._peers[key]

    def routes_opened_by(self, allow: Allow) -> frozenset[int]:
        """The routes (indexes in ``self.routes``) with a ready endpoint ``allow`` lets a pod
        reach; memoized by what the allow matches, which many pods' policies share."""
        key = (allow.addresses, allow.excepts, allow.ports)
        if key not in self._opened:
            self._opened[key] = frozenset(i for i, route in enumerate(self.routes) if any(
                _covers(allow, ip, route.port.protocol, port) for ip, port in route.backends))
        return self._opened[key]

    def pods_at(self, peer: Peer) -> list[Pod]:
        """Pods whose address is in an IP block peer (for named ports of egress rules)."""
        block = peer.ip_block
        net = ipaddress.ip_network(block.cidr, strict=False)
        holes = [ipaddress.ip_network(e, strict=False) for e in block.excepts]
        found = []
        for pod in self.pods:
            address = ipaddress.ip_address(pod.ip)
            if address.version == net.version and address in net and not any(
                    address.version == h.version and address in h for h in holes):
                found.append(pod)
        return found


@dataclass(frozen=True)
class _Route:
    """One port of a Service with a cluster IP, and the ready endpoints (address, target
    port) kube-proxy sends its connections to."""

    service: Service
    port: ServicePort
    backends: tuple[tuple[str, int], ...]


def _routes(services: Iterable[Service], endpoints: Iterable[Endpoints]) -> list[_Route]:
    """What kube-proxy does with each Service port: an Endpoints object shares its Service's
    name, and a Service port's endpoints are those of its name and protocol. A port with no
    ready endpoint is left out: kube-proxy does not rewrite it (it rejects it), so the pod's
    egress rules judge its cluster IP as any address."""
    by_key = {e.key: e for e in endpoints}
    routes = []
    for service in sorted(services, key=lambda s: s.key):
        found = by_key.get(service.key)
        if not service.cluster_ips or found is None:
            continue
        for port in service.ports:
            backends = tuple((b.ip, b.port) for b in found.backends
                             if b.port_name == port.name and b.protocol == port.protocol)
            if backends:
                routes.append(_Route(service, port, backends))
    return routes


@lru_cache(maxsize=4096)
def _parsed(cidrs: tuple[str, ...]) -> tuple[Union[ipaddress.IPv4Network, ipaddress.IPv6Network], ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def _covers(allow: Allow, ip: str, protocol: str, port: int) -> bool:
    """Whether ``allow`` lets a packet to ``ip`` on ``protocol``/``port`` through."""
    if allow.ports is not None and not any(r.protocol == protocol and r.first <= port <= r.last
                                           for r in allow.ports):
        return False
    if allow.addresses is None:
        return True
    address = ipaddress.ip_address(ip)
    return (any(address.version == n.version and address in n for n in _parsed(allow.addresses))
            and not any(address.version == n.version and address in n for n in _parsed(allow.excepts)))


def _service_rules(view: _View, egress: Sequence[Allow]) -> tuple[list[Allow], tuple[Destination, ...]]:
    """Egress to Services judged by where their connections land: a Service port's cluster IP
    is allowed when the egress rules allow at least one of its ready endpoints (on its target
    port), and dropped otherwise. kube-proxy picks the endpoint of each connection at random
    after the pod's filters have seen it, so when only some endpoints are allowed this lets
    every connection through, where a real plugin would drop those that land on the others."""
    if not view.routes or any(a.addresses is None and a.ports is None for a in egress):
        return [], ()  # no Service, or everything is allowed anyway
    opened: dict[tuple[str, str], set[ServicePort]] = {}
    services: dict[str, Service] = {}
    allowed: set[int] = set()
    for allow in egress:
        for index in view.routes_opened_by(allow):
            route = view.routes[index]
            allowed.add(index)
            services[route.service.key] = route.service
            opened.setdefault((allow.policy, route.service.key), set()).add(route.port)
    allows = [Allow(f"{policy} via Service {key}", _addresses_of(services[key].cluster_ips), (),
                    tuple(sorted({PortRange(p.protocol, p.port, p.port) for p in ports},
                                 key=lambda r: (r.protocol, r.first))))
              for (policy, key), ports in sorted(opened.items())]
    refused = tuple(sorted({Destination(ip, route.port.protocol, route.port.port)
                            for index, route in enumerate(view.routes) if index not in allowed
                            for ip in route.service.cluster_ips},
                           key=lambda d: (d.ip, d.protocol, d.port)))
    return allows, refused


def _numbered(ports: Sequence[PolicyPort]) -> list[PortRange]:
    """The numeric ports of a rule (a protocol without a port is all of its ports)."""
    found = []
    for p in ports:
        if p.port is None:
            found.append(PortRange(p.protocol, 1, 65535))
        elif isinstance(p.port, int):
            found.append(PortRange(p.protocol, p.port, max(p.port, p.end_port or p.port)))
    return found


def _named(ports: Sequence[PolicyPort], pod: Pod) -> list[PortRange]:
    """A rule's port names as ``pod`` defines them (a name it lacks matches nothing)."""
    wanted = {(p.port, p.protocol) for p in ports if isinstance(p.port, str)}
    return [PortRange(c.protocol, c.port, c.port) for c in pod.ports if (c.name, c.protocol) in wanted]


def _addresses(pods: Iterable[Pod]) -> tuple[str, ...]:
    return _addresses_of(p.ip for p in pods)


def _addresses_of(ips: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({f"{ip}/{32 if ':' not in ip else 128}" for ip in ips}))


def _ingress(view: _View, policy: Policy, rule: PolicyRule, pod: Pod) -> list[Allow]:
    if rule.ports:
        ports: Optional[tuple[PortRange, ...]] = tuple(_numbered(rule.ports) + _named(rule.ports, pod))
        if not ports:
            return []  # only names this pod does not have: nothing is let in
    else:
        ports = None
    return _peer_allows(view, policy, rule, ports)


def _peer_allows(view: _View, policy: Policy, rule: PolicyRule,
                 ports: Optional[tuple[PortRange, ...]]) -> list[Allow]:
    """A rule's peers on ``ports``, either way: any address when it names none, else the
    selected pods' addresses in one allow and each ipBlock in its own."""
    if not rule.peers:
        return [Allow(policy.key, None, (), ports)]
    allows = []
    pods = _addresses(p for peer in rule.peers if peer.ip_block is None
                      for p in view.peer_pods(policy.namespace, peer))
    if pods:
        allows.append(Allow(policy.key, pods, (), ports))
    for peer in rule.peers:
        if peer.ip_block is not None:
            allows.append(Allow(policy.key, (peer.ip_block.cidr,), peer.ip_block.excepts, ports))
    return allows


def _egress(view: _View, policy: Policy, rule: PolicyRule) -> list[Allow]:
    if not rule.ports:
        numbered: Optional[tuple[PortRange, ...]] = None
    else:
        numbered = tuple(_numbered(rule.ports))
    allows = _peer_allows(view, policy, rule, numbered) if numbered is None or numbered else []
    if any(isinstance(p.port, str) for p in rule.ports):
        # A port name means what each destination pod calls it: one allow per pod that has it.
        if not rule.peers:
            destinations = view.pods
        else:
            destinations = [p for peer in rule.peers for p in (
                view.pods_at(peer) if peer.ip_block is not None else view.peer_pods(policy.namespace, peer))]
        by_ports: dict[tuple[PortRange, ...], set[Pod]] = {}
        for dest in destinations:
            named = tuple(_named(rule.ports, dest))
            if named:
                by_ports.setdefault(named, set()).add(dest)
        for named, pods in sorted(by_ports.items(), key=lambda item: _addresses(item[1])):
            allows.append(Allow(policy.key, _addresses(pods), (), named))
    return allows


def compute_rules(local: Iterable[Pod], pods: Iterable[Pod], namespaces: Mapping[str, Mapping[str, str]],
                  policies: Iterable[Policy], services: Iterable[Service] = (),
                  endpoints: Iterable[Endpoints] = ()) -> dict[str, PodRules]:
    """The filters of each ``local`` pod (by uid), given every pod, namespace (name → labels),
    policy, Service and Endpoints object of the cluster."""
    local = list(local)
    view = _View(pods, namespaces, policies, services, endpoints)
    selecting: dict[str, list[Policy]] = {p.uid: [] for p in local}
    by_ns: dict[str, list[Pod]] = {}
    for pod in local:
        by_ns.setdefault(pod.namespace, []).append(pod)
    for ns, members in by_ns.items():
        index = _Index(members)
        for policy in view.policies.get(ns, ()):
            for pod in index.select(policy.selector):
                selecting[pod.uid].append(policy)
    result = {}
    for pod in local:
        ingress: Optional[list[Allow]] = None
        egress: Optional[list[Allow]] = None
        for policy in selecting[pod.uid]:
            if "Ingress" in policy.types:
                ingress = (ingress or []) + [a for r in policy.ingress for a in _ingress(view, policy, r, pod)]
            if "Egress" in policy.types:
                egress = (egress or []) + [a for r in policy.egress for a in _egress(view, policy, r)]
        refused: tuple[Destination, ...] = ()
        if egress is not None:
            through_services, refused = _service_rules(view, egress)
            egress += through_services
        result[pod.uid] = PodRules(None if ingress is None else tuple(ingress),
                                   None if egress is None else tuple(egress), refused)
    return result


# ------------------------------------------------------------------------- nftables


def _networks(cidrs: Iterable[str], version: int) -> list[str]:
    nets = [ipaddress.ip_network(c, strict=False) for c in cidrs]
    return [str(n) for n in ipaddress.collapse_addresses(n for n in nets if n.version == version)]


def _port_set(ranges: Iterable[PortRange]) -> str:
    merged: list[list[int]] = []
    for r in sorted(ranges, key=lambda r: (r.first, r.last)):
        if merged and r.first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], r.last)
        else:
            merged.append([r.first, r.last])
    return "{ " + ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in merged) + " }"


def _allow_lines(allow: Allow, field: str) -> list[str]:
    """nft rules for one Allow (``field``: saddr for ingress, daddr for egress)."""
    if allow.addresses is None:
        matches = [""]
    else:
        matches = []
        for version, family in ((4, "ip"), (6, "ip6")):
            nets = _networks(allow.addresses, version)
            if nets:
                match = f"{family} {field} {{ {', '.join(nets)} }}"
                holes = _networks(allow.excepts, version)
                if holes:
                    match += f" {family} {field} != {{ {', '.join(holes)} }}"
                matches.append(match + " ")
    if allow.ports is None:
        ports = [""]
    else:
        ports = [f"{proto.lower()} dport {_port_set(r for r in allow.ports if r.protocol == proto)} "
                 for proto in PROTOCOLS if any(r.protocol == proto for r in allow.ports)]
    comment = json.dumps(allow.policy[:120])
    return [f"{m}{p}accept comment {comment}" for m in matches for p in ports]


def _refused_lines(refused: Sequence[Destination]) -> list[str]:
    """One drop per family and protocol for the Service ports egress may not use."""
    lines = []
    for version, family in ((4, "ip"), (6, "ip6")):
        for proto in PROTOCOLS:
            pairs = [f"{d.ip} . {d.port}" for d in refused
                     if d.protocol == proto and ipaddress.ip_address(d.ip).version == version]
            if pairs:
                lines.append(f"{family} daddr . {proto.lower()} dport {{ {', '.join(pairs)} }} drop "
                             'comment "Service ports whose endpoints are not allowed"')
    return lines


def _chain(name: str, hook: str, interface: str, field: str, allows: Sequence[Allow],
           node_addresses: Sequence[str], refused: Sequence[Destination] = ()) -> list[str]:
    lines = [f"\tchain {name} {{", f"\t\ttype filter hook {hook} priority filter; policy drop;",
             f'\t\t{interface} "lo" accept', "\t\tct state established,related accept"]
    for version, family in ((4, "ip"), (6, "ip6")):
        nets = _networks(node_addresses, version)
        if nets:
            lines.append(f'\t\t{family} {field} {{ {", ".join(nets)} }} accept comment "the node"')
    lines += [f"\t\t{line}" for line in _refused_lines(refused)]
    lines += [f"\t\t{line}" for allow in allows for line in _allow_lines(allow, field)]
    return lines + ["\t}"]


def nft_script(rules: PodRules, node_addresses: Sequence[str]) -> str:
    """An ``nft -f`` script that replaces the pod's table in one transaction (the table is
    created empty first so that deleting it never fails); no table when nothing is isolated."""
    lines = [f"table inet {TABLE}", f"delete table inet {TABLE}"]
    chains = []
    if rules.ingress is not None:
        chains += _chain("ingress", "input", "iifname", "saddr", rules.ingress, node_addresses)
    if rules.egress is not None:
        chains += _chain("egress", "output", "oifname", "daddr", rules.egress, node_addresses,
                         rules.refused_services)
    if chains:
        lines += [f"table inet {TABLE} {{", *chains, "}"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------- the node's enforcer


class _Store:
    """Objects of one kind as last seen, with their resourceVersion, so that a list and a
    watch can both feed it without an older copy replacing a newer one. resourceVersions are
    etcd revisions: one etcd, so they increase (Kubernetes asks clients not to rely on that;
    the test bed can)."""

    def __init__(self):
        self.items: dict[str, tuple[int, object]] = {}

    def put(self, key: str, rv: int, value) -> bool:
        seen = self.items.get(key)
        if seen is not None and seen[0] > rv:
            return False
        self.items[key] = (rv, value)
        return seen is None or seen[1] != value

    def sync(self, listed: dict[str, tuple[int, object]], list_rv: int, scope: Callable[[str], bool]) -> bool:
        """Take a list's result: what the list lacks (within ``scope``) was deleted before it."""
        changed = False
        for key, (rv, value) in list(self.items.items()):
            if key not in listed and scope(key) and rv <= list_rv and value is not None:
                self.items[key] = (list_rv, None)
                changed = True
        for key, (rv, value) in listed.items():
            changed |= self.put(key, rv, value)
        return changed

    def values(self) -> list:
        return [value for _, value in self.items.values() if value is not None]


def _rv(obj: dict) -> int:
    return int(obj["metadata"]["resourceVersion"])


@dataclass
class _Local:
    """A pod this node runs: its network namespace and the rules last written there."""

    netns: str
    applied: Optional[PodRules] = None


class Enforcer:
    """Keeps every local pod's nftables table equal to what the cluster's policies say."""

    def __init__(self, api_client, call: Callable, node_addresses: Sequence[str]):
        if shutil.which("nft") is None:
            raise SystemExit("tycho_testbed node: needs nft (Debian's nftables package) to enforce "
                             "NetworkPolicies in pods' network namespaces: apt-get install nftables")
        self.api = api_client
        self.call = call
        self.node_addresses = tuple(node_addresses)
        self.policies, self.pods, self.namespaces = _Store(), _Store(), _Store()
        self.services, self.endpoints = _Store(), _Store()
        self.local: dict[str, _Local] = {}
        #: The policy store holds every NetworkPolicy change up to this resourceVersion: the
        #: policies watch's list, then each of its events (a watch delivers them in order).
        self.policies_rv = 0
        #: The same for one namespace, from a fresh list of its policies (see protect).
        self.fresh_rv: dict[str, int] = {}
        self.refreshing: dict[str, threading.Lock] = {}  # one fresh list per namespace at a time
        self.lock = threading.Lock()          # the stores, self.local and the resourceVersions above
        self.apply_lock = threading.Lock()    # one reprogramming at a time, in snapshot order
        self.dirty = threading.Event()
        self.stopping = threading.Event()

    # -- watches

    def start(self, stopping: threading.Event) -> None:
        """Watch policies, pods, namespaces, Services and Endpoints; return once each has
        been listed once."""
        from kubernetes import client

        self.stopping = stopping
        core, net = client.CoreV1Api(self.api), client.NetworkingV1Api(self.api)
        kinds = [("networkpolicies", net.list_network_policy_for_all_namespaces, self.policies,
                  lambda o: f"{o['metadata']['namespace']}/{o['metadata']['name']}", Policy.from_api),
                 ("pods", core.list_pod_for_all_namespaces, self.pods,
                  lambda o: o["metadata"]["uid"], Pod.from_api),
                 ("namespaces", core.list_namespace, self.namespaces,
                  lambda o: o["metadata"]["name"], lambda o: _labels(o["metadata"].get("labels"))),
                 # Parsed to what kube-proxy uses: the endpoints controller's and leader
                 # elections' frequent rewrites of other fields change nothing here.
                 ("services", core.list_service_for_all_namespaces, self.services,
                  lambda o: f"{o['metadata']['namespace']}/{o['metadata']['name']}", Service.from_api),
                 ("endpoints", core.list_endpoints_for_all_namespaces, self.endpoints,
                  lambda o: f"{o['metadata']['namespace']}/{o['metadata']['name']}", Endpoints.from_api)]
        synced = []
        for kind, lister, store, key, parse in kinds:
            done = threading.Event()
            synced.append(done)
            threading.Thread(target=self._watch, args=(kind, lister, store, key, parse, done),
                             daemon=True, name=f"netpol-{kind}").start()
        threading.Thread(target=self._reprogrammer, daemon=True, name="netpol-apply").start()
        for done in synced:
            while not done.wait(0.5):
                if stopping.is_set():
                    return

    def _watch(self, kind: str, lister, store: _Store, key, parse, synced: threading.Event) -> None:
        def listed(items: list, rv: str) -> None:
            with self.lock:
                changed = store.sync({key(o): (_rv(o), parse(o)) for o in items}, int(rv), lambda k: True)
                if store is self.policies:
                    self.policies_rv = max(self.policies_rv, int(rv))
            if changed:
                self.dirty.set()

        def seen(event_type: str, obj: dict) -> None:
            value = None if event_type == "DELETED" else parse(obj)
            with self.lock:
                changed = store.put(key(obj), _rv(obj), value)
                if store is self.policies:
                    self.policies_rv = max(self.policies_rv, _rv(obj))
            if changed:
                self.dirty.set()

        list_and_watch(kind, lister, self.call, self.stopping, listed, seen, synced)

    # -- local pods

    def protect(self, pod: dict, ip: str, netns: str, cancelled: threading.Event) -> None:
        """Write a new pod's table before its containers start, from a fresh read of its
        namespace's policies (the watch may not have delivered a policy made just before the
        pod). Retried every second while the API server cannot be reached; ``cancelled`` (the
        pod's deletion) ends the wait."""
        namespace, pod_rv = pod["metadata"]["namespace"], _rv(pod)
        with self.lock:
            self.local[pod["metadata"]["uid"]] = _Local(netns)
            self.pods.put(pod["metadata"]["uid"], _rv(pod), Pod.from_api(pod, ip))
        while not self.stopping.is_set():
            try:
                self._know_policies_of(namespace, pod_rv)
                break
            except Exception as err:
                log.warning("pod %s/%s: cannot read NetworkPolicies (%s); retrying in 1 s",
                            namespace, pod["metadata"]["name"], err)
                if cancelled.wait(1.0):
                    return
        self.reprogram(only=pod["metadata"]["uid"])
        # Other pods' rules may name this one, or change with the policies just read (their
        # watch events, arriving later, will look like nothing new): the background pass.
        self.dirty.set()

    def _known(self, namespace: str, rv: int) -> bool:
        with self.lock:
            return max(self.policies_rv, self.fresh_rv.get(namespace, 0)) >= rv

    def _know_policies_of(self, namespace: str, pod_rv: int) -> None:
        """Make sure the store holds every policy of ``namespace`` made before the pod (whose
        resourceVersion is ``pod_rv``): a fresh list, unless the watch or a list made since
        already shows everything up to it. In a burst one list covers the pods created before
        it, instead of one list of every policy of the namespace per pod (200 pods in one
        namespace were 200 lists of 200 policies per node, most of a node's CPU)."""
        if self._known(namespace, pod_rv):
            return
        with self.lock:
            refreshing = self.refreshing.setdefault(namespace, threading.Lock())
        with refreshing:
            if not self._known(namespace, pod_rv):
                self._refresh_policies(namespace)

    def _refresh_policies(self, namespace: str) -> None:
        from kubernetes import client

        net = client.NetworkingV1Api(self.api)
        listing = json.loads(self.call(net.list_namespaced_network_policy, namespace, _preload_content=False).data)
        list_rv = int(listing["metadata"]["resourceVersion"])
        with self.lock:
            known = dict(self.policies.items)
        listed = {}
        for obj in listing["items"]:
            key, rv = f"{namespace}/{obj['metadata']['name']}", _rv(obj)
            seen = known.get(key)
            # Parsed once per version: the rest of the list is what the store has already.
            listed[key] = seen if seen is not None and seen[0] == rv and seen[1] is not None else (rv, Policy.from_api(obj))
        with self.lock:
            self.policies.sync(listed, list_rv, lambda k: k.startswith(f"{namespace}/"))
            self.fresh_rv[namespace] = max(self.fresh_rv.get(namespace, 0), list_rv)

    def release(self, uid: str) -> None:
        """The pod's namespace goes (its table with it): forget it, and let no late event bring
        its address back as a peer (the next pod may get that address)."""
        with self.lock:
            self.local.pop(uid, None)
            self.pods.items[uid] = (2 ** 62, None)
        self.dirty.set()

    # -- programming

    def _reprogrammer(self) -> None:
        while not self.stopping.is_set():
            if not self.dirty.wait(0.5):
                continue
            self.dirty.clear()
            try:
                self.reprogram()
            except Exception:
                log.exception("reprogramming NetworkPolicies failed")

    def reprogram(self, only: Optional[str] = None) -> None:
        """Compute every local pod's rules (or pod ``only``'s) from one snapshot; rewrite the
        tables that changed."""
        with self.apply_lock:
            with self.lock:
                local = {uid: entry for uid, entry in self.local.items() if only in (None, uid)}
                pods = {p.uid: p for p in self.pods.values()}
                namespaces = {name: dict(labels) for name, (_, labels) in self.namespaces.items.items()
                              if labels is not None}
                policies = self.policies.values()
                services, endpoints = self.services.values(), self.endpoints.values()
            mine = [pods[uid] for uid in local if uid in pods]
            for uid, rules in compute_rules(mine, pods.values(), namespaces, policies, services,
                                            endpoints).items():
                if local[uid].applied != rules:
                    self._apply(pods[uid], local[uid], rules)

    def _apply(self, pod: Pod, entry: _Local, rules: PodRules) -> None:
        done = self._nft(entry.netns, nft_script(rules, self.node_addresses))
        if done.returncode == 0:
            was_isolated = entry.applied is not None and entry.applied.isolated
            entry.applied = rules
            # One line when filters appear, change or go; none for the many pods no policy selects.
            (log.info if rules.isolated or was_isolated else log.debug)(
                "pod %s/%s: NetworkPolicy filters written (ingress %s, egress %s)", pod.namespace, pod.name,
                "open" if rules.ingress is None else f"{len(rules.ingress)} rule(s)",
                "open" if rules.egress is None else f"{len(rules.egress)} rule(s)")
            return
        with self.lock:
            if pod.uid not in self.local:
                return  # removed meanwhile, its namespace with it
        # Never leave a pod open because its rules could not be written: shut it instead.
        reason = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        log.error("pod %s/%s: nft refused its NetworkPolicy filters (%s); denying all traffic but the node's",
                  pod.namespace, pod.name, reason)
        self._nft(entry.netns, nft_script(DENY_ALL, self.node_addresses))
        entry.applied = None  # tried again at the next change

    @staticmethod
    def _nft(netns: str, script: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input=script,
                              capture_output=True, text=True)
