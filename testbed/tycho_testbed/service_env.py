"""Service environment variables, by the rules of a 1.20 kubelet (``pkg/kubelet/envvars``).

Programs written before cluster DNS (and Kubernetes' own in-cluster client, which reads
``KUBERNETES_SERVICE_HOST``/``_PORT``) find Services through these: for each Service with a
cluster IP, ``<NAME>_SERVICE_HOST``/``_PORT`` (its first port), ``_SERVICE_PORT_<PORTNAME>`` for
named ports, and Docker's link variables (``<NAME>_PORT``, ``<NAME>_PORT_<port>_<PROTO>`` with
``_PROTO``, ``_PORT``, ``_ADDR``). Which Services: those of the pod's namespace unless the pod
says ``enableServiceLinks: false``, and always the ``kubernetes`` Service of ``default`` (a
Service of that name in the pod's own namespace takes its place when links are enabled).
"""
from __future__ import annotations

from typing import Iterable

from .service_watch import Service

#: A kubelet's --master-service-namespace default, and the Services it always links.
MASTER_NAMESPACE = "default"
MASTER_SERVICES = ("kubernetes",)


def env_name(name: str) -> str:
    return name.upper().replace("-", "_")


def linked_services(services: Iterable[Service], namespace: str, enable_links: bool) -> list[Service]:
    """The Services whose variables a container of ``namespace`` gets, by name."""
    chosen: dict[str, Service] = {}
    for s in services:
        if not s.has_cluster_ip or not s.ports:
            continue
        if s.namespace == MASTER_NAMESPACE and s.name in MASTER_SERVICES:
            chosen.setdefault(s.name, s)
        elif s.namespace == namespace and enable_links:
            chosen[s.name] = s  # the pod's own Service of a master Service's name wins
    return sorted(chosen.values(), key=lambda s: s.name)


def service_variables(services: Iterable[Service]) -> dict[str, str]:
    env: dict[str, str] = {}
    for s in services:
        prefix, ip = env_name(s.name), s.cluster_ip
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(s.ports[0].port)
        for p in s.ports:
            if p.name:
                env[f"{prefix}_SERVICE_PORT_{env_name(p.name)}"] = str(p.port)
        for i, p in enumerate(s.ports):
            proto = p.protocol.lower()
            url = f"{proto}://{ip}:{p.port}"
            if i == 0:
                env[f"{prefix}_PORT"] = url
            link = f"{prefix}_PORT_{p.port}_{p.protocol.upper()}"
            env[link] = url
            env[f"{link}_PROTO"] = proto
            env[f"{link}_PORT"] = str(p.port)
            env[f"{link}_ADDR"] = ip
    return env


def service_environment(services: Iterable[Service], namespace: str, enable_links: bool = True) -> dict[str, str]:
    """The variables a kubelet gives a container of ``namespace`` started now."""
    return service_variables(linked_services(services, namespace, enable_links))
