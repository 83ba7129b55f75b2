# The hub's configuration inside the cluster, written by the tycho-spawner chart.
# It reads the values the chart was rendered with and the names of the release's objects
# (values.json next to this file, from the chart's _helpers.tpl), so the hub and the chart
# never disagree; a broken catalog stops the hub at start, naming the key.
# The catalog is not in values.json: it is the file catalog.yaml of the release's catalog
# ConfigMap (TYCHO_CHART_CATALOG), which the hub follows while it runs (no restart for a change).
import json
import os
import sys

from tycho_spawner import TychoSpawner

c = get_config()  # noqa: F821 (defined by JupyterHub)

with open(os.environ.get("TYCHO_CHART_VALUES", "/etc/jupyterhub/values.json")) as f:
    chart = json.load(f)
values = chart["values"]
release = chart["release"]
names = chart["names"]  # the release's object names, as the chart made them
hub_values = values["hub"]
singleuser = values["singleuser"]

# --- Where things listen ---------------------------------------------------------------------
c.JupyterHub.hub_bind_url = "http://:8081"
# Pods reach the hub through its Service.
c.JupyterHub.hub_connect_url = f"http://{names['hub']}:8081"
# The proxy runs in its own Deployment (it keeps routes across hub restarts).
c.ConfigurableHTTPProxy.should_start = False
c.ConfigurableHTTPProxy.api_url = f"http://{names['proxyApi']}:8001"
c.JupyterHub.cleanup_servers = False
# hub.db: on the release's claim (mounted at /srv/jupyterhub), or in memory (lost at restart).
c.JupyterHub.db_url = (
    "sqlite:////srv/jupyterhub/jupyterhub.sqlite" if hub_values["db"]["type"] == "sqlite-pvc" else "sqlite://"
)

# --- The spawner -----------------------------------------------------------------------------
c.JupyterHub.spawner_class = TychoSpawner
c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = hub_values["namedServerLimitPerUser"]
c.TychoSpawner.namespace = os.environ.get("POD_NAMESPACE", chart["namespace"])
# The catalog (the values' `catalog`): its ConfigMap, mounted as a directory, is followed while
# the hub runs: `helm upgrade` with a new catalog reaches the form and the API within the
# kubelet's sync period, without a restart; a broken new version is logged naming the key and
# the last good catalog stays. The chart's hub pod always sets TYCHO_CHART_CATALOG
# (templates/hub.yaml); this file read anywhere else (the chart's render tests) has no catalog
# file, only the built-in catalog and what hub.extraConfig adds.
if os.environ.get("TYCHO_CHART_CATALOG"):
    c.TychoSpawner.catalog_files = [os.environ["TYCHO_CHART_CATALOG"]]
c.TychoSpawner.start_timeout = singleuser["startTimeout"]
c.TychoSpawner.http_timeout = singleuser["httpTimeout"]
network_policy = singleuser["networkPolicy"]
c.TychoSpawner.network_policy_enabled = network_policy["enabled"]
# Only this release's hub and proxy may connect to its users' servers; the servers may connect
# to this release's hub (its API) and where the values allow.
c.TychoSpawner.network_policy_ingress_from = [
    {"component": "hub", "app.kubernetes.io/instance": release},
    {"component": "proxy", "app.kubernetes.io/instance": release},
]
c.TychoSpawner.network_policy_hub_selector = {"component": "hub", "app.kubernetes.io/instance": release}
c.TychoSpawner.network_policy_egress_allow = network_policy["egressAllowRules"]
c.TychoSpawner.network_policy_egress = network_policy["egress"]
c.TychoSpawner.gate_image = singleuser["gate"]["image"]
c.TychoSpawner.gate_port = singleuser["gate"]["port"]

# --- Users' homes (singleuser.storage, zero-to-jupyterhub's shape) ---------------------------
# KubeSpawner's own settings. TychoSpawner moves the mount at home_mount_path to where each
# catalog entry's app keeps the user's files.
storage = singleuser["storage"]
home_mount_path = storage["homeMountPath"]
if storage["type"] == "dynamic":
    dynamic = storage["dynamic"]
    c.KubeSpawner.storage_pvc_ensure = True
    # One home per user: named servers mount the default server's claim (and KubeSpawner
    # deletes it with the user only, never with a named server).
    c.KubeSpawner.pvc_name_template = "claim-{username}"
    c.KubeSpawner.storage_capacity = storage["capacity"]
    if dynamic.get("storageClass") is not None:  # unset: the cluster's default StorageClass
        c.KubeSpawner.storage_class = dynamic["storageClass"]
    c.KubeSpawner.storage_access_modes = dynamic["storageAccessModes"]
    c.KubeSpawner.volumes = {"home": {"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}}
    c.KubeSpawner.volume_mounts = {"home": {"name": "home", "mountPath": home_mount_path}}
elif storage["type"] == "static":
    static = storage["static"]
    if not static.get("pvcName"):  # the schema refuses it too (this guards a skipped schema)
        raise SystemExit("tycho-spawner chart: singleuser.storage.type static needs singleuser.storage.static.pvcName")
    c.KubeSpawner.storage_pvc_ensure = False
    c.KubeSpawner.delete_pvc = False  # the admin's claim, shared by every user
    c.KubeSpawner.volumes = {"home": {"name": "home", "persistentVolumeClaim": {"claimName": static["pvcName"]}}}
    mount = {"name": "home", "mountPath": home_mount_path}
    if static.get("subPath"):  # "" or unset: the whole claim
        mount["subPath"] = static["subPath"]
    c.KubeSpawner.volume_mounts = {"home": mount}
if storage["type"] != "none":
    c.TychoSpawner.home_mount_path = home_mount_path

# --- Users -----------------------------------------------------------------------------------
auth = hub_values["authenticator"]
c.JupyterHub.authenticator_class = auth["class"]
c.Authenticator.admin_users = set(auth["adminUsers"])
c.Authenticator.allow_all = auth["allowAll"]
if auth["config"]:
    # Traitlets config goes under the class's own name: "module.Class", or an entry point name.
    from importlib.metadata import entry_points

    if "." in auth["class"]:
        class_name = auth["class"].rsplit(".", 1)[-1]
    else:
        (point,) = entry_points(group="jupyterhub.authenticators", name=auth["class"])
        class_name = point.value.rsplit(":", 1)[-1]
    c[class_name].update(auth["config"])

# --- Services ----------------------------------------------------------------------------------
services, roles = [], []
if hub_values["cullIdleTimeout"]:
    services.append(
        {
            "name": "idle-culler",
            "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={hub_values['cullIdleTimeout']}"],
        }
    )
    roles.append(
        {
            "name": "idle-culler",
            "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
            "services": ["idle-culler"],
        }
    )
# This release's label on its servers (as zero-to-jupyterhub's): `tycho gc` considers only
# servers carrying it, so another release's in the same namespace are never its orphans.
c.TychoSpawner.extra_labels = {"app.kubernetes.io/instance": release}
if hub_values["orphanGcInterval"]:
    # Servers' pods and NetworkPolicies no record of this hub owns (its database lost, or
    # restored from an old backup): deleted at start and then every orphanGcInterval seconds,
    # with the hub's own Role; users' claims never. Reads the hub's servers, changes none.
    services.append(
        {
            "name": "tycho-gc",
            "command": [
                sys.executable, "-m", "tycho_spawner.cli", "gc", f"--every={hub_values['orphanGcInterval']}",
                f"--namespace={c.TychoSpawner.namespace}", f"--selector=app.kubernetes.io/instance={release}",
            ],
            # Services get a minimal environment: Kubernetes' in-cluster address is passed on.
            "environment": {
                name: os.environ[name] for name in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")
                if name in os.environ
            },
        }
    )
    roles.append({"name": "tycho-gc", "scopes": ["list:users", "read:servers"], "services": ["tycho-gc"]})
c.JupyterHub.services = services
c.JupyterHub.load_roles = roles

exec(compile(hub_values["extraConfig"], "values: hub.extraConfig", "exec"))  # admin-written

# --- The Tycho API ---------------------------------------------------------------------------
# /services/tycho/ (REST, its OpenAPI document, Swagger UI at /services/tycho/docs), in the hub's
# pod, listed in the hub's Services menu. Added after hub.extraConfig, so that it offers the
# catalog the spawner ends up with. The proxy reaches it through the hub's Service (its port
# tycho-api, templates/hub.yaml; the hub's NetworkPolicy admits the proxy there); it listens on
# every address of the pod. It reads pods, events and logs with the hub's Role, this release's
# servers only (their instance label); at the hub it acts with each caller's own token.
from tycho_spawner.api.hubconfig import tycho_api_service, users_role  # noqa: E402

TYCHO_API_PORT = 10101  # the hub pod's port "tycho-api" (templates/hub.yaml)
c.JupyterHub.services.append(tycho_api_service(
    c, url=f"http://{names['hub']}:{TYCHO_API_PORT}", bind_url=f"http://0.0.0.0:{TYCHO_API_PORT}",
    selector=f"app.kubernetes.io/instance={release}",
))
# Users may use it (JupyterHub's default user role gives no service); a site's own "user" role
# (hub.extraConfig) is left as it is.
if not any(role.get("name") == "user" for role in c.JupyterHub.load_roles):
    c.JupyterHub.load_roles.append(users_role())

TychoSpawner.check_config(c)
