"""Hooks a site sets in z2jh's ``hub.extraConfig`` (importing them from a module its hub image
ships, as this package plays here): KubeSpawner's ``modify_pod_hook``,
``after_pod_created_hook`` and ``get_pod_url``."""
from __future__ import annotations

HOOK_ANNOTATION = "compat.tycho-spawner.io/modified-by"
HOOK_ENV = "COMPAT_MODIFIED_BY_HOOK"


def modify_pod(spawner, pod):
    """KubeSpawner's modify_pod_hook: sees the V1Pod about to be created and changes it."""
    from kubernetes_asyncio.client import V1EnvVar

    pod.metadata.annotations = dict(pod.metadata.annotations or {}, **{HOOK_ANNOTATION: "modify_pod_hook"})
    container = pod.spec.containers[0]
    container.env = list(container.env or []) + [V1EnvVar(name=HOOK_ENV, value=spawner.user.name)]
    return pod


def hook_config_map_name(pod_name: str) -> str:
    return f"{pod_name}-hook"


async def create_owned_config_map(spawner, pod):
    """KubeSpawner's after_pod_created_hook: a ConfigMap owned by the pod (gone with it)."""
    from kubernetes_asyncio.client.rest import ApiException

    name = hook_config_map_name(pod["metadata"]["name"])
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "labels": {"compat.tycho-spawner.io/hook": "after_pod_created_hook"},
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"],
                "uid": pod["metadata"]["uid"], "blockOwnerDeletion": False,
            }],
        },
        "data": {"pod-uid": pod["metadata"]["uid"], "spawner": type(spawner).__name__},
    }
    try:
        await spawner.api.create_namespaced_config_map(spawner.namespace, body)
    except ApiException as err:
        if err.status != 409:
            raise
        # The previous server's, not yet collected: replace it.
        await spawner.api.delete_namespaced_config_map(name, spawner.namespace)
        await spawner.api.create_namespaced_config_map(spawner.namespace, body)


def pod_ip_url(spawner, pod):
    """KubeSpawner's get_pod_url: the pod's IP instead of its Service's DNS name.

    On a cluster, `services_enabled` makes the hub reach the server at
    ``<pod>.<namespace>.svc.cluster.local``; the test bed has no cluster DNS nor kube-proxy, so
    the hub uses the pod's IP (the Service is still created, and checked)."""
    # KubeSpawner 7.1 reads the port off the pod; 7.0 (z2jh 4.4.0) uses the spawner's port.
    port = spawner._get_pod_port(pod) if hasattr(spawner, "_get_pod_port") else spawner.port
    return f"http://{pod['status']['podIP']}:{port}"
