"""The node agent's view of the cluster's Services and Endpoints, as a kubelet's informers keep it.

Two things on a node need it: the Service environment variables of each container started
(:mod:`tycho_testbed.service_env`) and the cluster DNS records (:mod:`tycho_testbed.dns`), which
must follow Services and their ready endpoints while pods run. One list-then-watch per kind, for
the whole cluster; every change wakes ``on_change`` (the agent rewrites its DNS records).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

from .informer import list_and_watch


@dataclass(frozen=True)
class ServicePort:
    name: str
    port: int
    protocol: str


@dataclass(frozen=True)
class Service:
    """What a node uses of a Service: where it is and on which ports."""

    namespace: str
    name: str
    #: "" for an ExternalName Service, "None" for a headless one
    cluster_ip: str
    ports: tuple[ServicePort, ...]

    @property
    def has_cluster_ip(self) -> bool:
        """Kubernetes' IsServiceIPSet: neither headless nor ExternalName."""
        return self.cluster_ip not in ("", "None")

    @property
    def headless(self) -> bool:
        return self.cluster_ip == "None"

    @classmethod
    def from_api(cls, obj: dict) -> "Service":
        spec = obj.get("spec") or {}
        ports = tuple(ServicePort(p.get("name") or "", int(p["port"]), p.get("protocol") or "TCP")
                      for p in spec.get("ports") or [])
        return cls(obj["metadata"]["namespace"], obj["metadata"]["name"], spec.get("clusterIP") or "", ports)


@dataclass(frozen=True)
class EndpointAddress:
    ip: str
    #: the pod's spec.hostname when it has one (StatefulSets): <hostname>.<service>... resolves to it
    hostname: str = ""


@dataclass(frozen=True)
class Endpoints:
    """A Service's ready addresses (``subsets[].addresses``; not-ready ones are left out)."""

    namespace: str
    name: str
    addresses: tuple[EndpointAddress, ...]

    @classmethod
    def from_api(cls, obj: dict) -> "Endpoints":
        seen: dict[str, EndpointAddress] = {}
        for subset in obj.get("subsets") or []:
            for a in subset.get("addresses") or []:
                seen.setdefault(a["ip"], EndpointAddress(a["ip"], a.get("hostname") or ""))
        return cls(obj["metadata"]["namespace"], obj["metadata"]["name"], tuple(sorted(seen.values(), key=lambda a: a.ip)))


class ServiceWatch:
    """Services and Endpoints of every namespace, kept current by watches."""

    def __init__(self, api_client, call: Callable, on_change: Callable[[], None]):
        self.api = api_client
        self.call = call
        self.on_change = on_change
        self.lock = threading.Lock()
        self._services: dict[str, Service] = {}
        self._endpoints: dict[str, Endpoints] = {}
        self.stopping = threading.Event()

    def start(self, stopping: threading.Event) -> None:
        """Start both watches; return once each has listed once (a kubelet waits for its
        Service informer before it starts containers), or when ``stopping`` is set."""
        from kubernetes import client

        self.stopping = stopping
        core = client.CoreV1Api(self.api)
        synced = []
        for kind, lister, store, parse in (("services", core.list_service_for_all_namespaces, self._services, Service.from_api),
                                           ("endpoints", core.list_endpoints_for_all_namespaces, self._endpoints,
                                            Endpoints.from_api)):
            done = threading.Event()
            synced.append(done)
            threading.Thread(target=self._watch, args=(kind, lister, store, parse, done), daemon=True,
                             name=f"watch-{kind}").start()
        for done in synced:
            while not done.wait(0.5):
                if stopping.is_set():
                    return

    def services(self) -> list[Service]:
        with self.lock:
            return list(self._services.values())

    def endpoints(self) -> list[Endpoints]:
        with self.lock:
            return list(self._endpoints.values())

    def _watch(self, kind: str, lister, store: dict, parse, synced: threading.Event) -> None:
        def listed(items: list, rv: str) -> None:
            fresh = {_key(o): parse(o) for o in items}
            with self.lock:
                changed = fresh != store
                store.clear()
                store.update(fresh)
            if changed:
                self.on_change()

        def seen(event_type: str, obj: dict) -> None:
            with self.lock:
                before = store.get(_key(obj))
                if event_type == "DELETED":
                    store.pop(_key(obj), None)
                else:
                    store[_key(obj)] = parse(obj)
                changed = store.get(_key(obj)) != before
            if changed:
                self.on_change()

        list_and_watch(kind, lister, self.call, self.stopping, listed, seen, synced)


def _key(obj: dict) -> str:
    return f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
