"""The z2jh configurations the compatibility tests start servers with, and how they are run.

Each :class:`Case` is a z2jh values overlay (on z2jh 4.4.0's defaults, plus
``hub.config.JupyterHub.spawner_class: tycho_spawner.TychoSpawner``). :func:`run_case` loads
z2jh's hub config for it (``z2jh.py``), then starts, through the session's real hub, the same
user's default server twice with that config: once as TychoSpawner (catalog entry ``base``
unless the case says otherwise) and once as KubeSpawner, reading each pod back from the API
server and every object the start made, then stopping it.

TychoSpawner starts first in each namespace. KubeSpawner's shared pod reflectors are keyed by
(kind, namespace), not by class: had KubeSpawner started first, TychoSpawner would be handed
KubeSpawner's plain ``PodReflector`` (no ``changed()``); in the other order KubeSpawner gets
TychoSpawner's ``WakingPodReflector``, a ``PodReflector``. A hub runs one spawner class, so this
only concerns a test that runs both.
"""
from __future__ import annotations

import asyncio
import json
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from .z2jh import Rendered, load_hub_config

#: The test bed's node (``node_agent`` fixture).
NODE = "tycho-node-1"
BASE = {"profile": "base"}
HOOKS_CONFIG = (
    "from tests.compat import hooks\n"
    "c.KubeSpawner.modify_pod_hook = hooks.modify_pod\n"
    "c.KubeSpawner.after_pod_created_hook = hooks.create_owned_config_map\n"
)
POD_URL_CONFIG = "from tests.compat import hooks\nc.KubeSpawner.get_pod_url = hooks.pod_ip_url\n"
#: A site's own catalog entry that sets no size and no default URL (the site's apply).
SITE_SIZED_ENTRY = {
    "display_name": "Jupyter, sized by the site",
    "system": {
        "serve": {"container": "notebook", "port": 8888},
        "security": {"run_as_user": 1000, "run_as_group": 100, "fs_group": 100},
        "home": {"container": "notebook", "path": "/home/jovyan"},
        "containers": {"notebook": {
            "image": "quay.io/jupyter/base-notebook:2026-05-31",
            "command": ["jupyterhub-singleuser"],
            "ports": {"http": 8888},
            "readiness": {"tcp": True},
            "working_dir": "/home/jovyan",
        }},
    },
}
APP = "spec.containers[notebook]"
SIZE_PATHS = tuple(f"{APP}.resources.{kind}.{r}" for kind in ("limits", "requests") for r in ("cpu", "memory")) + tuple(
    f"{APP}.env[{v}].value" for v in ("MEM_LIMIT", "MEM_GUARANTEE", "CPU_LIMIT", "CPU_GUARANTEE"))


# ------------------------------------------------------------------ what a case needs in its namespace


def _wait(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"{what} not there after {timeout}s")


def static_claim(core, namespace: str) -> None:
    """z2jh's static storage: a claim the site made, shared by every user (subPath = user)."""
    core.create_namespaced_persistent_volume_claim(namespace, {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "compat-home"},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}},
                 "storageClassName": "standard"},
    })


def secret(core, namespace: str) -> None:
    core.create_namespaced_secret(namespace, {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "compat-secret"},
        "stringData": {"password": "s3cret"},
    })


def service_account(core, namespace: str) -> None:
    """The user's ServiceAccount, with its token (a 1.20 API server refuses a pod naming an
    account whose token Secret does not exist yet)."""
    core.create_namespaced_service_account(namespace, {
        "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "compat-user"}})
    _wait(lambda: core.read_namespaced_service_account("compat-user", namespace).secrets,
          f"the token of ServiceAccount {namespace}/compat-user")


@dataclass(frozen=True)
class Case:
    name: str
    doc: str
    values: dict = field(default_factory=dict)
    prepare: tuple = ()
    tycho_options: dict = field(default_factory=lambda: dict(BASE))
    kube_options: dict = field(default_factory=dict)
    #: Owned paths that must differ here: the entry replaced this case's site setting.
    replaced: tuple = ()
    #: Owned paths that must be equal here: the entry sets none, the site's value applies.
    kept: tuple = ()
    #: Settings the hub's start-up log must name for this config (check_config).
    settings: tuple = ("image", "cmd", "uid", "fs_gid", "mem_guarantee")


CASES = (
    Case("default", "z2jh's defaults: dynamic storage (claim-{user_server} on the default StorageClass), "
         "cloudMetadata.blockWithIptables (a privileged iptables init container), the user scheduler, "
         "singleuser NetworkPolicy, memory guarantee 1G, uid 1000 / fsGid 100, cmd jupyterhub-singleuser",
         replaced=(f"{APP}.image", f"{APP}.args", f"{APP}.env[MEM_GUARANTEE].value")),
    Case("static", "static storage: one site claim, mounted with subPath = {username}",
         {"singleuser": {"storage": {"type": "static", "static": {"pvcName": "compat-home", "subPath": "{username}"}}}},
         prepare=(static_claim,)),
    Case("env", "extraEnv: a plain value, a valueFrom.secretKeyRef, and one referring to a hub variable",
         {"singleuser": {"extraEnv": {
             "COMPAT_PLAIN": "plain",
             "COMPAT_SECRET": {"valueFrom": {"secretKeyRef": {"name": "compat-secret", "key": "password"}}},
             "COMPAT_REF": "$(JUPYTERHUB_USER)-home",
         }}},
         prepare=(secret,)),
    Case("pullsecrets", "imagePullSecrets and singleuser.image.pullSecrets",
         {"imagePullSecrets": ["compat-registry"], "singleuser": {"image": {"pullSecrets": ["compat-user-registry"]}}}),
    Case("nodeselector", "singleuser.nodeSelector", {"singleuser": {"nodeSelector": {"kubernetes.io/hostname": NODE}}}),
    Case("tolerations", "singleuser.extraTolerations (with scheduling.userPods.tolerations)",
         {"singleuser": {"extraTolerations": [
             {"key": "compat.tycho-spawner.io/dedicated", "operator": "Equal", "value": "users",
              "effect": "NoSchedule"}]}}),
    Case("affinity", "singleuser.extraNodeAffinity required and preferred",
         {"singleuser": {"extraNodeAffinity": {
             "required": [{"matchExpressions": [
                 {"key": "kubernetes.io/hostname", "operator": "In", "values": [NODE]}]}],
             "preferred": [{"weight": 1, "preference": {"matchExpressions": [
                 {"key": "compat.tycho-spawner.io/disk", "operator": "In", "values": ["ssd"]}]}}],
         }}}),
    Case("lifecycle", "singleuser.lifecycleHooks postStart and preStop",
         {"singleuser": {"lifecycleHooks": {
             "postStart": {"exec": {"command": ["sh", "-c", "echo started > /tmp/post-start"]}},
             "preStop": {"exec": {"command": ["sh", "-c", "true"]}},
         }}}),
    Case("init", "singleuser.initContainers (after z2jh's own cloud-metadata blocker)",
         {"singleuser": {"initContainers": [
             {"name": "compat-init", "image": "busybox:1.36", "command": ["sh", "-c", "echo init done"]}]}}),
    Case("sidecar", "singleuser.extraContainers",
         {"singleuser": {"extraContainers": [
             {"name": "compat-sidecar", "image": "busybox:1.36", "command": ["sh", "-c", "exec sleep 3600"]}]}}),
    Case("podconfig", "singleuser.extraPodConfig",
         {"singleuser": {"extraPodConfig": {
             "hostAliases": [{"ip": "127.0.0.1", "hostnames": ["compat.local"]}],
             "terminationGracePeriodSeconds": 7,
             "dnsPolicy": "Default",
         }}}),
    Case("serviceaccount", "singleuser.serviceAccountName (token mounted by the API server's admission)",
         {"singleuser": {"serviceAccountName": "compat-user"}}, prepare=(service_account,)),
    Case("securitycontext", "KubeSpawner's container/pod_security_context (hub.config): keys a catalog entry "
         "does not enforce stay",
         {"hub": {"config": {"KubeSpawner": {
             "container_security_context": {"seccompProfile": {"type": "RuntimeDefault"}},
             "pod_security_context": {"seccompProfile": {"type": "RuntimeDefault"}, "supplementalGroups": [2000]},
         }}}}),
    Case("uid", "singleuser.uid / fsGid: replaced by the entry's security",
         {"singleuser": {"uid": 1234, "fsGid": 567}},
         replaced=(f"{APP}.securityContext.runAsUser", "spec.securityContext.fsGroup")),
    Case("resources", "singleuser.cpu / memory limits and guarantees: the built-in size choice sets its own",
         {"singleuser": {"cpu": {"limit": 2, "guarantee": 0.5}, "memory": {"limit": "4G", "guarantee": "1G"}}},
         replaced=SIZE_PATHS,
         settings=("image", "cmd", "uid", "fs_gid", "cpu_limit", "cpu_guarantee", "mem_limit", "mem_guarantee")),
    Case("unsized", "cpu / memory / defaultUrl with a site entry that sets none of them: the site's apply",
         {"singleuser": {"cpu": {"limit": 2, "guarantee": 0.5}, "memory": {"limit": "4G", "guarantee": "1G"},
                         "defaultUrl": "/tree"},
          "hub": {"config": {"TychoSpawner": {"catalog": {"site-sized": SITE_SIZED_ENTRY}}}}},
         tycho_options={"profile": "site-sized"},
         kept=SIZE_PATHS + (f"{APP}.env[JUPYTERHUB_DEFAULT_URL].value",),
         settings=("image", "cmd", "uid", "fs_gid", "cpu_limit", "cpu_guarantee", "mem_limit", "mem_guarantee",
                   "default_url")),
    Case("extraresource", "singleuser.extraResource limits / guarantees (kept beside the entry's cpu/memory)",
         {"singleuser": {"extraResource": {"limits": {"ephemeral-storage": "2Gi"},
                                           "guarantees": {"ephemeral-storage": "1Gi"}}}}),
    Case("labels", "singleuser.extraLabels / extraAnnotations (templated with {username})",
         {"singleuser": {"extraLabels": {"compat.tycho-spawner.io/team": "blue"},
                         "extraAnnotations": {"compat.tycho-spawner.io/owner": "{username}"}}}),
    Case("nometadata", "cloudMetadata.blockWithIptables false: no init container",
         {"singleuser": {"cloudMetadata": {"blockWithIptables": False}}}),
    Case("cmd", "singleuser.cmd: replaced by the entry's command",
         {"singleuser": {"cmd": ["jupyterhub-singleuser", "--debug"]}},
         replaced=(f"{APP}.args",)),
    Case("defaulturl", "singleuser.defaultUrl: the entry's interface choice sets its own",
         {"singleuser": {"defaultUrl": "/lab/tree/README.md"}},
         replaced=(f"{APP}.env[JUPYTERHUB_DEFAULT_URL].value",),
         settings=("image", "cmd", "uid", "fs_gid", "mem_guarantee", "default_url")),
    Case("profiles", "singleuser.profileList: replaced by the catalog (KubeSpawner starts profile 'large')",
         {"singleuser": {"profileList": [
             {"display_name": "Small", "slug": "small", "default": True,
              "kubespawner_override": {"cpu_limit": 1, "mem_limit": "1G"}},
             {"display_name": "Large", "slug": "large",
              "kubespawner_override": {"cpu_limit": 4, "mem_limit": "8G",
                                       "image": "quay.io/jupyterhub/k8s-singleuser-sample:4.4.0"}},
         ]}},
         kube_options={"profile": "large"},
         replaced=(f"{APP}.resources.limits.cpu", f"{APP}.env[CPU_LIMIT].value"),
         settings=("image", "cmd", "uid", "fs_gid", "mem_guarantee", "profile_list")),
    Case("hooks", "hub.extraConfig: modify_pod_hook and after_pod_created_hook (a ConfigMap owned by the pod)",
         {"hub": {"extraConfig": {"compat-hooks": HOOKS_CONFIG}}}),
    Case("services", "hub.config.KubeSpawner.services_enabled: a Service per server "
         "(get_pod_url: the pod's IP, the test bed has no cluster DNS)",
         {"hub": {"config": {"KubeSpawner": {"services_enabled": True}},
                  "extraConfig": {"compat-pod-url": POD_URL_CONFIG}}}),
)
BY_NAME = {c.name: c for c in CASES}


# ------------------------------------------------------------------ running a case


@dataclass
class Start:
    """One start of the case's server by one spawner class."""

    spawner: str
    pod: Optional[dict] = None
    #: (kind, name) -> object, for what the start made: the pod's claims and every object
    #: owned by the pod (KubeSpawner's Service and internal-SSL Secret, the hook's ConfigMap).
    objects: dict = field(default_factory=dict)
    network_policies: dict = field(default_factory=dict)
    #: claim name -> phase, read after the stop (None: gone).
    claims_after_stop: dict = field(default_factory=dict)
    url: str = ""
    error: str = ""
    seconds: float = 0.0


@dataclass
class CaseRun:
    case: Case
    namespace: str
    user: str
    rendered: Optional[Rendered] = None
    config: Any = None
    config_output: str = ""
    notes: list = field(default_factory=list)
    notes_again: list = field(default_factory=list)
    tycho: Optional[Start] = None
    kube: Optional[Start] = None
    error: str = ""


class _Capture:
    """A logger stand-in that keeps what check_config says."""

    def __init__(self):
        self.lines = []

    def warning(self, msg, *args):
        self.lines.append(msg % args if args else msg)

    info = debug = error = warning


def _ensure_orm_spawner(user, name: str) -> None:
    if name in user.orm_spawners:
        return
    try:
        user._new_orm_spawner(name, "")  # JupyterHub 6: (server_name, display_name)
    except TypeError:
        user._new_orm_spawner(name)  # JupyterHub 5


def _owned_by(obj: dict, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in (obj.get("metadata") or {}).get("ownerReferences") or [])


def _raw(call, *args, **kwargs) -> dict:
    return json.loads(call(*args, _preload_content=False, **kwargs).data)


def read_objects(api_client, namespace: str, pod: dict) -> tuple:
    """What the start made: the pod's claims and the objects owned by the pod; and the
    namespace's NetworkPolicies."""
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    net = client.NetworkingV1Api(api_client)
    uid = pod["metadata"]["uid"]
    found = {}
    for volume in pod["spec"].get("volumes") or []:
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        if claim:
            found[("PersistentVolumeClaim", claim)] = _raw(
                core.read_namespaced_persistent_volume_claim, claim, namespace)
    for kind, lister in (("Service", core.list_namespaced_service), ("Secret", core.list_namespaced_secret),
                         ("ConfigMap", core.list_namespaced_config_map),
                         ("PersistentVolumeClaim", core.list_namespaced_persistent_volume_claim)):
        for item in _raw(lister, namespace)["items"]:
            if _owned_by(item, uid):
                found[(kind, item["metadata"]["name"])] = item
    policies = {p["metadata"]["name"]: p for p in _raw(net.list_namespaced_network_policy, namespace)["items"]}
    return found, policies


async def start_server(hub, user, spawner_class, config, options, api_client, name: str = "") -> Start:
    """Start ``user``'s server ``name`` as the hub does (``User.spawn``: token, server, hub
    API URL, options checked by the spawner), read what it made, stop it."""
    result = Start(spawner=spawner_class.__name__)
    started = time.monotonic()
    _ensure_orm_spawner(user, name)
    previous = user.spawners.pop(name, None)
    assert previous is None or not previous.active, f"{user.name}/{name} is still running"
    spawner = user._new_spawner(name, spawner_class=spawner_class, config=config)
    user.spawners[name] = spawner
    namespace = spawner.namespace
    try:
        try:
            await user.spawn(name, options=options)
            result.url = spawner.server.url if spawner.server else ""
            from kubernetes import client

            core = client.CoreV1Api(api_client)
            result.pod = await asyncio.to_thread(_raw, core.read_namespaced_pod, spawner.pod_name, namespace)
            result.objects, result.network_policies = await asyncio.to_thread(
                read_objects, api_client, namespace, result.pod)
        finally:
            if spawner.active:
                await user.stop(name)
        claims = [n for (kind, n) in result.objects if kind == "PersistentVolumeClaim"]
        if claims:
            from kubernetes import client
            from kubernetes.client.rest import ApiException

            core = client.CoreV1Api(api_client)

            def phases():
                out = {}
                for claim in claims:
                    try:
                        out[claim] = core.read_namespaced_persistent_volume_claim(claim, namespace).status.phase
                    except ApiException as err:
                        if err.status != 404:
                            raise
                        out[claim] = None
                return out

            result.claims_after_stop = await asyncio.to_thread(phases)
    except Exception:
        result.error = traceback.format_exc()
    result.seconds = time.monotonic() - started
    return result


async def run_case(hub, case: Case, control_plane, directory: Path, limit: asyncio.Semaphore) -> CaseRun:
    from jupyterhub.tests.utils import add_user
    from kubernetes import client
    from kubespawner import KubeSpawner

    from tycho_spawner import TychoSpawner

    namespace = f"z2-{case.name}-{uuid.uuid4().hex[:6]}"
    run = CaseRun(case=case, namespace=namespace, user=f"z2-{case.name}")
    async with limit:
        try:
            api_client = control_plane.api_client()
            core = client.CoreV1Api(api_client)
            await asyncio.to_thread(control_plane.create_namespace, namespace)
            # The namespace's default ServiceAccount token (pods name the account, 1.20 admission).
            await asyncio.to_thread(_wait, lambda: core.read_namespaced_service_account("default", namespace).secrets,
                                    f"the default ServiceAccount token of {namespace}")
            for prepare in case.prepare:
                await asyncio.to_thread(prepare, core, namespace)
            run.rendered, run.config, run.config_output = await load_hub_config(
                case.values, namespace, directory / case.name)
            capture = _Capture()
            TychoSpawner.check_config(run.config, log=capture)
            run.notes = list(capture.lines)
            TychoSpawner.check_config(run.config, log=capture)
            run.notes_again = capture.lines[len(run.notes):]
            add_user(hub.db, hub, name=run.user)
            user = hub.users[run.user]
            run.tycho = await start_server(hub, user, TychoSpawner, run.config, case.tycho_options, api_client)
            run.kube = await start_server(hub, user, KubeSpawner, run.config, case.kube_options, api_client)
        except Exception:
            run.error = traceback.format_exc()
    return run


def describe(run: CaseRun) -> str:
    """What went wrong in a case, for an assertion message."""
    parts = [f"case {run.case.name} (namespace {run.namespace}): {run.case.doc}"]
    if run.error:
        parts.append(f"the case could not run:\n{run.error}")
    for start in (run.tycho, run.kube):
        if start and start.error:
            parts.append(f"{start.spawner} failed:\n{start.error}")
    if run.error and run.config_output:
        parts.append(f"z2jh's config printed:\n{run.config_output}")
    return "\n".join(parts)
