"""The spawner needs exactly the chart's Role: it works with it, and says so clearly without."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes import client

from tycho_spawner.rbac import spawner_role_rules

pytestmark = pytest.mark.cluster
PROBE = Path(__file__).with_name("rbac_probe.py")


def _run_probe(kubeconfig: Path, namespace: str, storage: str = "none") -> dict:
    env = dict(os.environ, KUBECONFIG=str(kubeconfig))
    done = subprocess.run(
        [sys.executable, str(PROBE), namespace, storage], env=env, capture_output=True, text=True, timeout=180
    )
    assert done.stdout.strip(), done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _service_account(control_plane, namespace, name, tmp_path, rules):
    api = control_plane.api_client()
    client.CoreV1Api(api).create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
    )
    if rules is not None:
        rbac = client.RbacAuthorizationV1Api(api)
        rbac.create_namespaced_role(
            namespace,
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
             "metadata": {"name": name}, "rules": [dict(r) for r in rules]},
        )
        rbac.create_namespaced_role_binding(
            namespace,
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": {"name": name},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
             "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]},
        )
    path = tmp_path / f"{name}.kubeconfig"
    control_plane.service_account_kubeconfig(namespace, name, path)
    return path


@pytest.mark.parametrize("storage", ["none", "dynamic"])
def test_spawner_runs_with_only_the_role_rules(control_plane, node_agent, kube_namespace, tmp_path, storage):
    kubeconfig = _service_account(control_plane, kube_namespace, "hub", tmp_path, spawner_role_rules(storage))
    result = _run_probe(kubeconfig, kube_namespace, storage)
    assert "error" not in result, result
    assert result["url"].startswith("http://") and result["url"].endswith(":8888")
    assert result["poll"] is None
    assert result["stopped"] is True
    core = client.CoreV1Api(control_plane.api_client())
    assert core.list_namespaced_pod(kube_namespace).items == []
    assert core.list_namespaced_service(kube_namespace).items == []
    claims = [c.metadata.name for c in core.list_namespaced_persistent_volume_claim(kube_namespace).items]
    assert claims == ([result["claim"]] if storage == "dynamic" else []), "the user's claim outlives the stop"


def test_spawner_without_permissions_fails_with_a_clear_message(control_plane, kube_namespace, tmp_path):
    kubeconfig = _service_account(control_plane, kube_namespace, "nobody", tmp_path, None)
    result = _run_probe(kubeconfig, kube_namespace)
    assert "not allowed to watch pods" in result["error"], result
    assert "Role" in result["error"]


def test_homes_without_the_claim_rules_fail_naming_them(control_plane, node_agent, kube_namespace, tmp_path):
    kubeconfig = _service_account(control_plane, kube_namespace, "hub", tmp_path, spawner_role_rules("none"))
    result = _run_probe(kubeconfig, kube_namespace, "dynamic")
    assert "not allowed to create persistentvolumeclaims" in result["error"], result
    assert client.CoreV1Api(control_plane.api_client()).list_namespaced_pod(kube_namespace).items == []


def test_the_role_lets_the_tycho_api_read_pods_events_and_logs_and_nothing_more(control_plane, kube_namespace, tmp_path):
    """The Tycho API runs with the hub's account: what it reads (its server pods, their events,
    a container's logs) the API server allows with only the Role; exec and attach it does not."""
    kubeconfig = _service_account(control_plane, kube_namespace, "hub", tmp_path, spawner_role_rules("none"))
    import kubernetes

    api = kubernetes.config.new_client_from_config(str(kubeconfig))
    auth = client.AuthorizationV1Api(api)

    def allowed(verb: str, resource: str, subresource: str = "") -> bool:
        review = auth.create_self_subject_access_review({"spec": {"resourceAttributes": {
            "namespace": kube_namespace, "verb": verb, "resource": resource, "subresource": subresource}}})
        return review.status.allowed

    assert allowed("list", "pods") and allowed("list", "events")
    assert allowed("get", "pods", "log")
    assert not allowed("create", "pods", "exec") and not allowed("create", "pods", "attach")
    assert not allowed("get", "secrets")
