"""The control plane is the real thing: RBAC is enforced, controllers and the scheduler run."""
from __future__ import annotations

import time

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.cluster


def _eventually(check, timeout=30, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def test_rbac_is_enforced_for_service_account_tokens(control_plane, kube_namespace, tmp_path):
    admin = control_plane.api_client()
    core = client.CoreV1Api(admin)
    core.create_namespaced_service_account(kube_namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader")))
    path = control_plane.service_account_kubeconfig(kube_namespace, "reader", tmp_path / "reader.kubeconfig")
    from kubernetes import config

    reader = client.CoreV1Api(config.new_client_from_config(str(path)))
    with pytest.raises(ApiException) as refused:
        reader.list_namespaced_pod(kube_namespace)
    assert refused.value.status == 403

    rbac = client.RbacAuthorizationV1Api(admin)
    rbac.create_namespaced_role(kube_namespace, {
        "metadata": {"name": "reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]})
    rbac.create_namespaced_role_binding(kube_namespace, {
        "metadata": {"name": "reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": kube_namespace}]})
    assert _eventually(lambda: _allowed(reader, kube_namespace))
    # ... and only what the Role grants.
    with pytest.raises(ApiException) as still_refused:
        reader.list_namespaced_secret(kube_namespace)
    assert still_refused.value.status == 403


def _allowed(api, namespace):
    try:
        api.list_namespaced_pod(namespace)
        return True
    except ApiException as err:
        assert err.status == 403
        return False


def test_garbage_collector_removes_objects_whose_owner_is_gone(control_plane, kube_namespace):
    core = client.CoreV1Api(control_plane.api_client())
    owner = core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": "owner"}})
    core.create_namespaced_config_map(kube_namespace, {"metadata": {
        "name": "owned",
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}]}})
    core.delete_namespaced_config_map("owner", kube_namespace)

    def gone():
        try:
            core.read_namespaced_config_map("owned", kube_namespace)
            return False
        except ApiException as err:
            return err.status == 404

    assert _eventually(gone)


def test_a_deployment_gets_a_replicaset_and_a_pod_bound_to_a_node(control_plane, kube_namespace):
    api = control_plane.api_client()
    core = client.CoreV1Api(api)
    node_name = f"static-{kube_namespace}"
    # A Node object without an agent: Ready and untainted, so the scheduler may bind to it.
    core.create_node({"metadata": {"name": node_name, "labels": {"static": kube_namespace}}})
    core.patch_node_status(node_name, {"status": {
        "conditions": [{"type": "Ready", "status": "True", "reason": "Test", "lastHeartbeatTime": None}],
        "capacity": {"cpu": "1", "memory": "1Gi", "pods": "10"},
        "allocatable": {"cpu": "1", "memory": "1Gi", "pods": "10"}}})
    core.patch_node(node_name, {"spec": {"taints": None}})
    try:
        client.AppsV1Api(api).create_namespaced_deployment(kube_namespace, {
            "metadata": {"name": "web"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"nodeSelector": {"static": kube_namespace},
                                           "containers": [{"name": "web", "image": "busybox:1.36"}]}}}})
        replicasets = _eventually(lambda: client.AppsV1Api(api).list_namespaced_replica_set(kube_namespace).items)
        assert replicasets and replicasets[0].metadata.owner_references[0].name == "web"
        bound = _eventually(lambda: [p for p in core.list_namespaced_pod(kube_namespace).items if p.spec.node_name])
        assert bound and bound[0].spec.node_name == node_name
    finally:
        client.AppsV1Api(api).delete_namespaced_deployment("web", kube_namespace)
        for pod in core.list_namespaced_pod(kube_namespace).items:
            try:  # no kubelet finishes these: remove them at once
                core.delete_namespaced_pod(pod.metadata.name, kube_namespace, grace_period_seconds=0)
            except ApiException as err:
                if err.status != 404:
                    raise
        core.delete_node(node_name)
