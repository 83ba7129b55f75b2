"""The hub configuration's side of the Tycho API: the ``c.JupyterHub.services`` entry.

    from tycho_spawner.api.hubconfig import tycho_api_service
    c.JupyterHub.services.append(tycho_api_service(c))

The service runs with the hub's environment for Kubernetes and the spawner's catalog settings
(``TYCHO_API_SETTINGS``), so it offers what the spawn form offers and reads the pods the
spawner makes. It holds no hub scopes of its own: whatever it does at the hub it does with
its caller's token (see :mod:`tycho_spawner.api.hub`). What a browser login grants it is
``oauth_client_allowed_scopes`` below, each cut down by the hub to what the user holds: a user
gets their own servers, an admin everyone's.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Optional

from .app import DEFAULT_PORT, ApiSettings

#: What the API asks of a browser login (OAuth), each granted only as far as the user holds it:
#: read the user list and servers (their own, or all for an admin), start and stop servers,
#: read names and groups (the catalog's access rules).
BROWSER_SCOPES = ("list:users", "read:users:name", "read:users:groups", "read:servers", "servers")
#: The environment the hub passes on to the service: how the hub itself reaches Kubernetes.
KUBE_ENVIRONMENT = ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")


def _setting(config: Any, name: str, default: Any) -> Any:
    section = config.TychoSpawner
    if name in section:
        return section[name]
    kube = config.KubeSpawner
    return kube[name] if name in kube else default


def tycho_api_service(config: Any, name: str = "tycho", url: Optional[str] = None, selector: str = "",
                      command: Optional[list] = None, bind_url: Optional[str] = None) -> dict:
    """The managed-service entry for a hub's ``config`` (its TychoSpawner settings read now).

    ``url``: where the proxy (and the hub) reach the service: the proxy routes
    ``/services/<name>/`` there; by default ``http://127.0.0.1:10101`` (``$TYCHO_API_PORT``
    changes the port), right for a hub and proxy on one machine; in a cluster, an address the
    proxy's pod reaches (the hub pod's Service). ``bind_url``: where the service listens, when
    not the host of ``url`` (which may be a Service's name no process can bind): e.g.
    ``http://0.0.0.0:10101``, every address of the hub's pod.
    """
    settings = ApiSettings(
        namespace=_setting(config, "namespace", "default"),
        selector=selector,
        builtin_catalog=bool(_setting(config, "builtin_catalog", True)),
        catalog_files=tuple(str(f) for f in _setting(config, "catalog_files", [])),
        catalog=dict(_setting(config, "catalog", {})),
        admins_launch_everything=bool(_setting(config, "admins_launch_everything", True)),
    )
    environment = {key: os.environ[key] for key in KUBE_ENVIRONMENT if key in os.environ}
    environment["TYCHO_API_SETTINGS"] = settings.to_json()
    if bind_url:
        environment["TYCHO_API_BIND_URL"] = bind_url
    return {
        "name": name,
        "url": url or f"http://127.0.0.1:{os.environ.get('TYCHO_API_PORT', DEFAULT_PORT)}",
        "command": command or [sys.executable, "-m", "tycho_spawner.api"],
        "environment": environment,
        "oauth_client_allowed_scopes": list(BROWSER_SCOPES),
        "oauth_no_confirm": True,
        "display": True,
        "info": {"description": "Launch, monitor and stop apps over REST (Swagger UI at docs)"},
    }


def users_role(name: str = "tycho") -> dict:
    """JupyterHub's default ``user`` role with access to the service added: without it, the
    hub refuses every user's token and login at the service (users get no service by default).
    Keeps ``self``, the role's own scopes."""
    return {"name": "user", "description": "Standard user privileges, and the Tycho API",
            "scopes": ["self", f"access:services!service={name}"]}
