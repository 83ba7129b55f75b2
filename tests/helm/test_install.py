"""helm install into the test bed's real API server (RBAC on), upgrade, and the hub's rights."""
from __future__ import annotations

import base64
import os
import time
from urllib.parse import urlsplit

import pytest
from kubernetes import client

from tycho_spawner.rbac import spawner_role_rules

from .conftest import CHART, load_hub_config

pytestmark = pytest.mark.cluster

#: Storage values of each type that installs (static needs its claim; the chart does not read it).
STORAGE = {
    "none": {"type": "none"},
    "static": {"type": "static", "static": {"pvcName": "homes"}},
    "dynamic": {"type": "dynamic"},
}


@pytest.fixture(scope="module")
def install(control_plane):
    """install(name, values, suffix) -> (helm, namespace): a release in a namespace of its own."""
    from helm_python import Config

    made = []

    def install(name, values, suffix):
        namespace = control_plane.create_namespace(f"chart-{os.getpid()}-{suffix}")
        helm = Config(kubeconfig_path=str(control_plane.kubeconfig_path), namespace=namespace)
        made.append((helm, name, namespace))
        helm.install(str(CHART), name, values, namespace=namespace)
        return helm, namespace

    yield install
    core = client.CoreV1Api(control_plane.api_client())
    for helm, name, namespace in made:
        helm.uninstall(name, ignore_not_found=True)
        core.delete_namespace(namespace)


@pytest.fixture(scope="module")
def release(install):
    """The default values (storage: dynamic)."""
    return install("demo", {}, "dynamic")


@pytest.fixture(scope="module")
def releases(install, release):
    """A release per storage type: (helm, namespace)."""
    made = {"dynamic": release}
    for storage in ("none", "static"):
        made[storage] = install("demo", {"singleuser": {"storage": STORAGE[storage]}}, storage)
    return made


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
    # The hub's database claim, bound by the cluster's default class (the test bed's provisioner).
    claim = core.read_namespaced_persistent_volume_claim("demo-hub-db", ns)
    assert claim.spec.storage_class_name == "standard" and claim.spec.resources.requests["storage"] == "1Gi"


def test_an_upgrade_keeps_the_generated_secrets(control_plane, release):
    helm, ns = release
    core = client.CoreV1Api(control_plane.api_client())
    before = core.read_namespaced_secret("demo-secret", ns).data
    assert len(base64.b64decode(before["hub.cookie-secret"])) == 64  # 32 bytes, hex
    helm.upgrade(str(CHART), "demo", {"hub": {"cullIdleTimeout": 3600}}, namespace=ns)
    assert core.read_namespaced_secret("demo-secret", ns).data == before
    config = core.read_namespaced_config_map("demo-config", ns).data["values.json"]
    assert '"cullIdleTimeout":3600' in config


def test_a_long_release_name_points_the_hub_at_services_that_exist(control_plane, install, tmp_path):
    """A 50-character release (Helm allows 53): the hub's config names the chart's own Services."""
    name = "a-release-with-a-name-of-fifty-characters-01234567"
    assert len(name) == 50
    _, ns = install(name, {}, "long")
    core = client.CoreV1Api(control_plane.api_client())
    maps = core.list_namespaced_config_map(ns, label_selector=f"app.kubernetes.io/instance={name}").items
    config = load_hub_config(tmp_path, {("ConfigMap", m.metadata.name): {"data": m.data} for m in maps})
    urls = [config.JupyterHub.hub_connect_url, config.ConfigurableHTTPProxy.api_url]
    # ... and so does the proxy's default target.
    (proxy,) = client.AppsV1Api(control_plane.api_client()).list_namespaced_deployment(
        ns, label_selector=f"app.kubernetes.io/instance={name},component=proxy").items
    urls += [a.split("=", 1)[1] for a in proxy.spec.template.spec.containers[0].command if a.startswith("--default-target=")]
    assert len(urls) == 3
    for url in urls:
        parts = urlsplit(url)
        service = core.read_namespaced_service(parts.hostname, ns)  # 404 if the hub points nowhere
        assert parts.port in [p.port for p in service.spec.ports], url


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


#: What the hub might be given and must not be unless rbac.py says so.
RESOURCES = [
    ("", "pods"), ("", "services"), ("", "persistentvolumeclaims"), ("", "events"), ("", "secrets"),
    ("", "configmaps"), ("", "serviceaccounts"), ("", "persistentvolumes"), ("networking.k8s.io", "networkpolicies"),
    ("apps", "deployments"), ("rbac.authorization.k8s.io", "roles"), ("rbac.authorization.k8s.io", "rolebindings"),
]
VERBS = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]


@pytest.mark.parametrize("storage", sorted(STORAGE))
def test_the_hub_can_do_what_the_spawner_does_and_nothing_more(control_plane, releases, storage):
    _, ns = releases[storage]
    rules = spawner_role_rules(storage)
    granted = {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    # Every verb of rbac.py, once the API server's authorizer has seen the new Role and binding.
    deadline = time.monotonic() + 15
    for group, resource, verb in sorted(granted):
        while not _allowed(control_plane, ns, verb, resource, group):
            assert time.monotonic() < deadline, (verb, resource, storage)
            time.sleep(0.2)
    # ... and nothing else: every other verb on what a hub could be given by mistake.
    extra = [
        (verb, resource) for group, resource in RESOURCES for verb in VERBS
        if (group, resource, verb) not in granted and _allowed(control_plane, ns, verb, resource, group)
    ]
    assert extra == []
    # No per-server Service any more (rbac.py): the hub neither creates nor deletes Services.
    assert not _allowed(control_plane, ns, "create", "services") and not _allowed(control_plane, ns, "delete", "services")
    assert not _allowed(control_plane, ns, "create", "pods", subresource="exec")
    # ... and only in its own namespace.
    assert not _allowed(control_plane, ns, "create", "pods", namespace="default")
    assert not _allowed(control_plane, ns, "list", "pods", namespace="kube-system")
    assert not _allowed(control_plane, ns, "get", "persistentvolumeclaims", namespace="default")
