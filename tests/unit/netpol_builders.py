"""Pods and policies as the test bed's NetworkPolicy translation sees them, for its unit tests."""
from __future__ import annotations

from tycho_testbed.netpol import Pod, Policy

#: The node's address (always allowed).
NODE = ["10.213.0.1"]


def pod(name, ip, namespace="apps", ports=(), **labels):
    return Pod(namespace, name, f"uid-{namespace}-{name}", tuple(sorted(labels.items())), ip, tuple(ports))


def policy(spec, name="p", namespace="apps"):
    return Policy.from_api({"metadata": {"namespace": namespace, "name": name}, "spec": spec})
