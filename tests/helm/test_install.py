"""helm install into the test bed's real API server (RBAC on), upgrade, and the hub's rights."""
from __future__ import annotations

import base64
import os

import pytest
from kubernetes import client

from .conftest import CHART

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def release(control_plane):
    from helm_python import Config

    namespace = control_plane.create_namespace(f"chart-{os.getpid()}")
    helm = Config(kubeconfig_path=str(control_plane.kubeconfig_path), namespace=namespace)
    helm.install(str(CHART), "demo", {}, namespace=namespace)
    yield helm, namespace
    helm.uninstall("demo")
    client.CoreV1Api(control_plane.api_client()).delete_namespace(namespace)


def test_every_object_is_accepted_by_the_api_server(control_plane, release):
    _, ns = release
    api = control_plane.api_client()
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    rbac, net = client.RbacAuthorizationV1Api(api), client.NetworkingV1Api(api)
    assert core.read_namespaced_service_account("demo-hub", ns)
    assert rbac.read_namespaced_role("demo-hub", ns).rules
    assert rbac.read_namespaced_role_binding("demo-hub", ns).subjects[0].name == "demo-hub"
    assert {d.metadata.name for d in apps.list_namespaced_deployment(ns).items} == {"demo-hub", "demo-proxy"}
    assert {s.metadata.name for s in core.list_namespaced_service(ns).items} == {"demo-hub", "demo-proxy-api", "demo-public"}
    assert core.read_namespaced_service("demo-public", ns).spec.ports[0].node_port
    assert {n.metadata.name for n in net.list_namespaced_network_policy(ns).items} == {"demo-hub", "demo-proxy"}
    assert "jupyterhub_config.py" in core.read_namespaced_config_map("demo-config", ns).data


def test_an_upgrade_keeps_the_generated_secrets(control_plane, release):
    helm, ns = release
    core = client.CoreV1Api(control_plane.api_client())
    before = core.read_namespaced_secret("demo-secret", ns).data
    assert len(base64.b64decode(before["hub.cookie-secret"])) == 64  # 32 bytes, hex
    helm.upgrade(str(CHART), "demo", {"hub": {"cullIdleTimeout": 3600}}, namespace=ns)
    assert core.read_namespaced_secret("demo-secret", ns).data == before
    config = core.read_namespaced_config_map("demo-config", ns).data["values.json"]
    assert '"cullIdleTimeout":3600' in config


def _allowed(control_plane, ns, verb, resource, group="", namespace=None, subresource=None) -> bool:
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=f"system:serviceaccount:{ns}:demo-hub",
            groups=["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"],
            resource_attributes=client.V1ResourceAttributes(
                namespace=namespace or ns, verb=verb, resource=resource, group=group, subresource=subresource
            ),
        )
    )
    answer = client.AuthorizationV1Api(control_plane.api_client()).create_subject_access_review(review)
    return answer.status.allowed


def test_the_hub_can_do_what_the_spawner_does_and_nothing_more(control_plane, release):
    from tycho_spawner.rbac import SPAWNER_ROLE_RULES

    _, ns = release
    for rule in SPAWNER_ROLE_RULES:
        for resource in rule["resources"]:
            for verb in rule["verbs"]:
                assert _allowed(control_plane, ns, verb, resource, rule["apiGroups"][0]), (verb, resource)
    denied = [
        ("get", "secrets", ""), ("list", "secrets", ""), ("patch", "pods", ""), ("update", "pods", ""),
        ("create", "deployments", "apps"), ("delete", "configmaps", ""), ("create", "roles", "rbac.authorization.k8s.io"),
        ("get", "services", ""), ("list", "networkpolicies", "networking.k8s.io"),
    ]
    for verb, resource, group in denied:
        assert not _allowed(control_plane, ns, verb, resource, group), (verb, resource)
    assert not _allowed(control_plane, ns, "create", "pods", subresource="exec")
    # ... and only in its own namespace.
    assert not _allowed(control_plane, ns, "create", "pods", namespace="default")
    assert not _allowed(control_plane, ns, "list", "pods", namespace="kube-system")
