# A working JupyterHub configuration with TychoSpawner.
#
#   jupyterhub -f jupyterhub_config.py
#
# runs a hub on this machine that launches catalog applications as pods through the current
# kube context (minikube, or the local test bed: `bin/stage hub up` sets the variables below).
# In a cluster, the helm chart in helm/ writes its own config; this file is for a laptop.
#
# Settings that differ between machines come from environment variables, so the same file
# serves minikube, the test bed and a quick try-out:
#
#   TYCHO_NAMESPACE         namespace for user pods                (default: "default")
#   TYCHO_HUB_IP            address the hub's API listens on       (default: 0.0.0.0)
#   TYCHO_HUB_CONNECT_URL   how pods reach the hub's API           (default: http://<hub ip>:8081,
#                                                                    or the hostname with 0.0.0.0)
#   TYCHO_CATALOG_FILES     extra catalog YAML files, ':'-separated (default: none)
#   TYCHO_DATA_DIR          where the hub keeps its database and cookie secret (default: .)
#   TYCHO_STORAGE           users' homes: "dynamic" (a claim per user, the default) or "none"
#   TYCHO_STORAGE_CLASS     StorageClass of users' claims (default: the cluster's default class)
#   TYCHO_HUB_NAME          this hub's label on its servers, for `tycho gc` (default: tycho)
#   TYCHO_HUB_PORT          port of the hub's API                  (default: 8081)
#   TYCHO_API_PORT          port the Tycho API service listens on, on 127.0.0.1 (default: 10101)
import os
import sys

from tycho_spawner import TychoSpawner

c = get_config()  # noqa: F821 (defined by JupyterHub when it loads this file)

env = os.environ.get
data_dir = env("TYCHO_DATA_DIR", ".")

# --- The spawner ---------------------------------------------------------------------------
c.JupyterHub.spawner_class = TychoSpawner
# The namespace user servers run in; the hub's kube credentials need the Role from the chart
# there (pods, events, networkpolicies, and claims for the homes). See README, "Permissions".
c.TychoSpawner.namespace = env("TYCHO_NAMESPACE", "default")
# Extra catalog files merged over the built-in catalog (add, override, or disable entries).
c.TychoSpawner.catalog_files = [p for p in env("TYCHO_CATALOG_FILES", "").split(":") if p]
# Small catalog changes can also live right here; for example, to remove nginx:
# c.TychoSpawner.catalog = {"nginx": {"disabled": True}}
#
# Pods pull images on their first start; give slow first pulls time, but a pod that can
# never start (bad image, quota, unschedulable) fails within seconds anyway.
c.TychoSpawner.start_timeout = 600
# Servers are reached by pod IP; the proxy must be able to route to pod IPs (true inside the
# cluster and on the test bed; for minikube on a laptop see the README's minikube section).
c.TychoSpawner.http_timeout = 120

# --- Users' files ---------------------------------------------------------------------------
# Every user gets one persistent home: a claim per user (claim-<name>) on the cluster's default
# StorageClass (the test bed's own, minikube's "standard"), shared by all of the user's servers,
# kept when a server stops, and mounted where each app keeps its files: /home/jovyan for the
# Jupyter stacks, /home/rstudio for RStudio, ~/public_html as nginx's web root. These are
# KubeSpawner's own settings, as zero-to-jupyterhub's singleuser.storage.type=dynamic sets them.
if env("TYCHO_STORAGE", "dynamic") == "dynamic":
    c.KubeSpawner.storage_pvc_ensure = True
    c.KubeSpawner.pvc_name_template = "claim-{username}"
    c.KubeSpawner.storage_capacity = "10Gi"
    if env("TYCHO_STORAGE_CLASS"):
        c.KubeSpawner.storage_class = env("TYCHO_STORAGE_CLASS")
    c.KubeSpawner.volumes = {"home": {"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}}
    c.KubeSpawner.volume_mounts = {"home": {"name": "home", "mountPath": "/home/jovyan"}}
    c.TychoSpawner.home_mount_path = "/home/jovyan"

# --- Where the hub listens -----------------------------------------------------------------
# Pods live in their own network namespace: the hub's 127.0.0.1 is not theirs. The hub API
# must listen on an address pods can reach, and pods are told that address.
hub_ip = env("TYCHO_HUB_IP", "0.0.0.0")
hub_port = int(env("TYCHO_HUB_PORT", "8081"))
c.JupyterHub.hub_bind_url = f"http://{hub_ip}:{hub_port}"
if env("TYCHO_HUB_CONNECT_URL"):
    c.JupyterHub.hub_connect_url = env("TYCHO_HUB_CONNECT_URL")
elif hub_ip != "0.0.0.0":
    c.JupyterHub.hub_connect_url = f"http://{hub_ip}:{hub_port}"
# (listening on 0.0.0.0 with no connect URL, JupyterHub tells pods this machine's hostname)
# The public URL people open: the proxy, on this machine only.
c.JupyterHub.bind_url = env("TYCHO_BIND_URL", "http://127.0.0.1:8000")
c.JupyterHub.db_url = f"sqlite:///{os.path.join(data_dir, 'jupyterhub.sqlite')}"
# A hub restart (or upgrade) leaves users' servers running; the hub finds them again.
c.JupyterHub.cleanup_servers = False
c.JupyterHub.cookie_secret_file = os.path.join(data_dir, "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = os.path.join(data_dir, "jupyterhub-proxy.pid")

# --- Users -----------------------------------------------------------------------------------
# Named servers: one user may run RStudio and a Jupyter stack side by side.
c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = 5
# Local use: any user name logs in (set a shared password with TYCHO_DUMMY_PASSWORD).
# A real site sets its own authenticator (OAuth, LDAP...) instead.
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
if env("TYCHO_DUMMY_PASSWORD"):
    c.DummyAuthenticator.password = env("TYCHO_DUMMY_PASSWORD")
c.Authenticator.admin_users = {"admin"}

# --- Orphans -----------------------------------------------------------------------------------
# Servers' pods and NetworkPolicies that no record of this hub owns (its database lost, or
# restored from an old backup) are deleted at hub start and every 10 minutes by `tycho gc`, run
# by the hub as a service with only the scopes it needs (it reads the hub's servers, changes
# none of them) and the hub's kube credentials. Users' claims are never touched.
# The label names this hub's servers, so that gc leaves another hub's alone in a shared
# namespace (a second hub there needs its own name, and its own pod_name_template).
hub_label = ("app.kubernetes.io/instance", env("TYCHO_HUB_NAME", "tycho"))
c.TychoSpawner.extra_labels = dict([hub_label])
c.JupyterHub.services = [
    {
        "name": "tycho-gc",
        "command": [
            sys.executable, "-m", "tycho_spawner.cli", "gc", "--every", "600",
            "--namespace", c.TychoSpawner.namespace, "--selector", "=".join(hub_label),
        ],
        # Services get a minimal environment: pass on how the hub itself reaches Kubernetes.
        "environment": {
            name: os.environ[name]
            for name in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")
            if name in os.environ
        },
    }
]
c.JupyterHub.load_roles = [{"name": "tycho-gc", "services": ["tycho-gc"], "scopes": ["list:users", "read:servers"]}]

# --- The Tycho API -------------------------------------------------------------------------------
# /services/tycho/: the catalog, launch, status (what Kubernetes says), events, logs, update and
# stop over REST, with its OpenAPI document and Swagger UI (/services/tycho/docs), and the
# `tycho login/launch/apps/logs/stop` client. It reads the spawner's catalog settings above (so
# set them before this line) and the hub's kube credentials; it holds no hub scopes of its own
# and acts at the hub with each caller's own token, so a user reaches only their own servers and
# an admin everyone's. README, "The Tycho API".
from tycho_spawner.api.hubconfig import tycho_api_service, users_role  # noqa: E402

c.JupyterHub.services.append(tycho_api_service(c, selector="=".join(hub_label)))
# Users reach a service only when a role grants it: every user gets this one.
c.JupyterHub.load_roles.append(users_role())

# --- Stop now, not at a user's first spawn, if the catalog is broken --------------------------
TychoSpawner.check_config(c)
