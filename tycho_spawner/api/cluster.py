"""What Kubernetes says about a server: its pod, the pod's events and its containers' logs.

Read only, with the hub's own Kubernetes credentials, configured as KubeSpawner configures
them (in-cluster, else the kube context of ``$KUBECONFIG`` or ``~/.kube/config``), in the
namespace the spawner launches servers in. The hub's Role grants what this reads (pods list,
events list, and ``pods/log`` get for the logs: :mod:`tycho_spawner.rbac`). The cluster
unreachable is a 503 with a sentence, never a traceback.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any, Optional

from .errors import ApiError

#: Only TychoSpawner's server pods carry it (render.SERVER_LABEL).
SERVER_LABEL = "tycho-spawner/server"
USER_LABEL = "hub.jupyter.org/username"
#: Seconds one Kubernetes request may take before the cluster counts as unreachable.
REQUEST_TIMEOUT = 10


def _unreachable_errors() -> tuple:
    import aiohttp

    return (aiohttp.ClientError, OSError, asyncio.TimeoutError)


def _reason(err) -> str:
    try:
        return json.loads(err.body).get("message") or str(err.reason)
    except (TypeError, ValueError, AttributeError):
        return str(err.reason)


def label_value(name: str) -> str:
    """The label value KubeSpawner writes for a user name."""
    from kubespawner.slugs import is_valid_label, safe_slug

    return safe_slug(name, is_valid=is_valid_label)


class Cluster:
    """Reads in one namespace; ``selector`` narrows to this hub's servers in a shared one."""

    def __init__(self, namespace: str, selector: str = ""):
        self.namespace = namespace
        self.selector = selector
        self._api_client = None
        self.host = "(not configured)"

    async def _core(self):
        from kubernetes_asyncio import client, config

        if self._api_client is None:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                try:
                    await config.load_kube_config()
                except (config.ConfigException, OSError, TypeError) as err:
                    raise ApiError(503, "Kubernetes cannot be asked: not in a pod, and no usable kube config "
                                        f"(KUBECONFIG or ~/.kube/config): {err}.") from None
            self._api_client = client.ApiClient()
            self.host = self._api_client.configuration.host
        return client.CoreV1Api(self._api_client)

    async def _call(self, action: str, method_name: str, *args, **kwargs) -> Any:
        from kubernetes_asyncio.client.exceptions import ApiException

        core = await self._core()
        try:
            return await getattr(core, method_name)(*args, _request_timeout=REQUEST_TIMEOUT, **kwargs)
        except ApiException as err:
            if err.status in (401, 403):
                raise ApiError(502, f"Kubernetes does not allow the hub's account {action} in namespace "
                                    f"{self.namespace!r} ({err.status}): its Role needs what "
                                    "tycho_spawner/rbac.py lists.") from None
            if err.status == 404:
                raise ApiError(404, f"Kubernetes has nothing to show for {action}: {_reason(err)}.") from None
            raise ApiError(502, f"Kubernetes refused {action}: {err.status} {_reason(err)}.") from None
        except _unreachable_errors() as err:
            raise ApiError(503, f"The cluster's API at {self.host} cannot be reached, so what runs cannot be "
                                f"shown now: {err or type(err).__name__}.") from None

    def _serialise(self, obj) -> dict:
        return self._api_client.sanitize_for_serialization(obj)

    async def server_pods(self, user: Optional[str] = None) -> list[dict]:
        """TychoSpawner's server pods (of one user, when given), as dicts."""
        parts = [SERVER_LABEL] + ([self.selector] if self.selector else [])
        if user is not None:
            parts.append(f"{USER_LABEL}={label_value(user)}")
        pods = await self._call("to list pods", "list_namespaced_pod", self.namespace, label_selector=",".join(parts))
        return [self._serialise(p) for p in pods.items]

    async def pod_events(self, pod: dict) -> list[dict]:
        """The events about one pod (by uid: a new pod of the same name has none of the old's)."""
        uid = (pod.get("metadata") or {}).get("uid")
        events = await self._call("to list events", "list_namespaced_event", self.namespace,
                                  field_selector=f"involvedObject.uid={uid}")
        items = [self._serialise(e) for e in events.items]
        items.sort(key=lambda e: (e.get("lastTimestamp") or e.get("eventTime") or "",
                                  (e.get("metadata") or {}).get("name") or ""))
        return items

    async def logs(self, pod_name: str, container: str, tail: int) -> str:
        return await self._call("to read logs", "read_namespaced_pod_log", pod_name, self.namespace,
                                container=container, tail_lines=tail)
