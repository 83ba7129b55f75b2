"""Projecting a System onto Kubernetes objects through Jinja2 templates.

The templates live in ``tycho_spawner/templates`` and an admin may override any of them from a
directory of their own (same file names). Two rules make them safe for values that come from
users (names) or from the hub (tokens, URLs):

* every ``{{ expression }}`` is emitted as a JSON literal by the environment's ``finalize``
  hook, so a value can never add a YAML key, end a string or start a new document, whatever it
  contains; templates write ``{{ value }}`` and never quote by hand;
* undefined names are errors (``StrictUndefined``), and templates are the only template source:
  no value is ever compiled as a template.

Pure: the only files read are the templates of the environment the caller hands in.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Optional
from urllib.parse import urlsplit

import jinja2
import yaml

from .errors import RenderError
from .model import Container, EnvFrom, EnvRef, Limits, Probe, System, Volume

#: The port name KubeSpawner and zero-to-jupyterhub look for on the server's container.
SERVER_PORT_NAME = "notebook-port"
#: Label carried by every object of one server; Service and NetworkPolicy select on it.
SERVER_LABEL = "tycho-spawner/server"
PROFILE_LABEL = "tycho-spawner/profile"
TEMPLATE_NAMES = ("pod.yaml.j2", "networkpolicy.yaml.j2")
#: Fields of KubeSpawner's container that describe the app, so the catalog's container replaces
#: them; the other fields of that container (the site's lifecycle hooks, pull policy,
#: ``extra_container_config``...) stay on the app's container.
APP_OWNED_FIELDS = ("name", "image", "command", "args", "ports", "env", "readinessProbe")
_LABEL_VALUE_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")

#: What a server may connect to when the site says nothing: zero-to-jupyterhub 4.4.0's defaults
#: of ``singleuser.networkPolicy.egressAllowRules``. DNS (port 53) and the internet, not the
#: private ranges (the Kubernetes API, other users' pods, the cluster's services) nor the cloud
#: metadata server; the hub's API is always allowed besides.
DEFAULT_EGRESS_ALLOW = (
    ("cloudMetadataServer", False),
    ("dnsPortsCloudMetadataServer", True),
    ("dnsPortsKubeSystemNamespace", True),
    ("dnsPortsPrivateIPs", True),
    ("nonPrivateIPs", True),
    ("privateIPs", False),
)
#: RFC 1918's private ranges, as zero-to-jupyterhub's ``privateIPs`` and ``nonPrivateIPs`` mean them.
PRIVATE_CIDRS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
#: The cloud metadata server's address (zero-to-jupyterhub's ``singleuser.cloudMetadata.ip``).
CLOUD_METADATA_IP = "169.254.169.254"


@dataclass(frozen=True)
class GateSettings:
    """How tycho-gate is added in front of apps whose System says ``auth: gate``."""

    image: str = "ghcr.io/tycho-spawner/tycho-gate:0.1.0"
    port: int = 8888
    keep_prefix: bool = False


@dataclass(frozen=True)
class EnvSource:
    """An environment variable Kubernetes fills in from elsewhere (``valueFrom``: a Secret or
    ConfigMap key, a field of the pod), kept as its JSON so the value never passes the hub."""

    value_from_json: str

    @property
    def value_from(self) -> dict:
        return json.loads(self.value_from_json)


@dataclass(frozen=True)
class Server:
    """Where and for whom a System is rendered; supplied by the edge (spawner or CLI).

    ``hub_env`` is the hub's ``JUPYTERHUB_*`` environment: it goes to exactly one container,
    the one that authenticates requests (Jupyter itself or the gate). ``app_env`` is the site's
    own environment (``KubeSpawner.environment``, ``MEM_LIMIT``...) for the served app; values
    are strings or :class:`EnvSource`. Precedence, lowest first: ``app_env``, the System's env,
    ``hub_env`` (except ``JUPYTERHUB_DEFAULT_URL``, which a catalog entry may choose).

    A container's variables keep ``env_order``; the entry's own come after the site's and the
    hub's, so they may refer to them.

    ``home_mount_path`` is where the site mounts the user's home (KubeSpawner's
    ``volume_mounts``); ``auth_volumes`` are volumes whose mounts belong to the authenticating
    container (the hub's internal-SSL certificates).
    """

    name: str
    namespace: str
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    hub_env: tuple[tuple[str, Any], ...] = ()
    app_env: tuple[tuple[str, Any], ...] = ()
    ingress_from: tuple[tuple[tuple[str, str], ...], ...] = (
        (("component", "hub"),),
        (("component", "proxy"),),
    )
    gate: GateSettings = field(default_factory=GateSettings)
    home_mount_path: str = "/home/jovyan"
    auth_volumes: tuple[str, ...] = ()
    #: The order KubeSpawner gave the site's and the hub's variables (it sorts them so that
    #: `$(VAR)` references resolve: Kubernetes expands only variables defined earlier).
    env_order: tuple[str, ...] = ()
    #: What every server may connect to: the site's allowances (every key of
    #: ``DEFAULT_EGRESS_ALLOW``) and its extra egress rules (JSON of each); a catalog entry's
    #: ``network`` goes over them.
    egress_allow: tuple[tuple[str, bool], ...] = DEFAULT_EGRESS_ALLOW
    egress: tuple[str, ...] = ()
    #: The hub's pods (their labels) and the port its API listens on there: every server may
    #: connect to it (``JUPYTERHUB_API_URL`` names a Service of those pods, or their address).
    hub_selector: tuple[tuple[str, str], ...] = (("component", "hub"),)
    hub_port: int = 8081
    #: The user's name as KubeSpawner escapes it for object names (``{username}``): what a
    #: volume's ``sub_path`` puts in place of ``{username}``.
    user_slug: str = "user"


@dataclass(frozen=True)
class PodParts:
    """What the rendered System contributes to the pod KubeSpawner builds."""

    containers: list
    volumes: list
    security_context: dict
    labels: dict
    port: int  # the pod port the hub's proxy connects to


def selector_value(name: str) -> str:
    """A label value that identifies one server: its object name, or a hash if too long."""
    if len(name) <= 63 and _LABEL_VALUE_RE.match(name):
        return name
    return "h-" + hashlib.sha256(name.encode("utf8")).hexdigest()[:40]


# Characters JSON leaves unescaped that YAML reads as line breaks (NEL, LS, PS) or refuses
# (DEL, C1 controls, BOM, non-characters); escaped, every value arrives byte-identical.
_YAML_HOSTILE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")


def _json_literal(value: Any) -> str:
    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()
    text = json.dumps(value, ensure_ascii=False)
    return _YAML_HOSTILE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


@lru_cache(maxsize=8)
def template_environment(override_dir: Optional[str] = None) -> jinja2.Environment:
    """The Jinja2 environment: packaged templates, optionally overridden from a directory.

    Cached: the spawner asks for it on every start, and compiled templates are kept in it.
    """
    loaders: list[jinja2.BaseLoader] = []
    if override_dir:
        loaders.append(jinja2.FileSystemLoader(override_dir))
    loaders.append(jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        finalize=_json_literal,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


# libyaml's loader when PyYAML has it: the pure-Python one was most of a start's CPU.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load(env: jinja2.Environment, name: str, context: Mapping[str, Any]) -> Any:
    try:
        text = env.get_template(name).render(**context)
    except jinja2.TemplateError as err:
        raise RenderError(f"template {name}: {err}") from err
    try:
        return yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as err:
        raise RenderError(f"template {name} did not produce YAML: {err}") from err


def _gate_container(system: System, gate: GateSettings) -> Container:
    args = ["--upstream", f"http://127.0.0.1:{system.serve.port}"]
    keep = gate.keep_prefix if system.gate.keep_prefix is None else system.gate.keep_prefix
    if keep:
        args.append("--keep-prefix")
    if system.gate.prefix_header:
        args += ["--prefix-header", system.gate.prefix_header]
    return Container(
        name="gate",
        image=gate.image,
        command=("tycho-gate",),
        args=tuple(args),
        ports=(("http", gate.port),),
        limits=Limits(memory="256Mi"),
        requests=Limits(cpu="10m", memory="32Mi"),
        readiness=Probe(port=gate.port, http_path=None),
    )


def public_port(system: System, gate: GateSettings) -> int:
    """The pod port the hub's proxy connects to: the gate's for gated apps, else the app's."""
    if system.auth != "gate":
        return system.serve.port
    if gate.port in {port for c in system.containers for _, port in c.ports}:
        raise RenderError(
            f"{system.name}: the gate's port {gate.port} is also used by the app; "
            "change the app's port or TychoSpawner.gate_port"
        )
    return gate.port


def served_port(pod: Optional[Mapping]) -> Optional[int]:
    """The pod's port the hub connects to (named as KubeSpawner names it), if it has one."""
    for container in ((pod or {}).get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == SERVER_PORT_NAME:
                return int(port["containerPort"])
    return None


def env_var(name: str, value: Any) -> dict:
    """One entry of a container's ``env`` list."""
    if isinstance(value, EnvSource):
        return {"name": name, "valueFrom": value.value_from}
    if isinstance(value, EnvRef):
        ref = {"name": value.name, "key": value.key}
        if value.optional:
            ref["optional"] = True
        return {"name": name, "valueFrom": {_REF_KINDS[value.kind][0]: ref}}
    return {"name": name, "value": value}


#: How a catalog names where a value comes from, and how Kubernetes does (a key ref, a whole object).
_REF_KINDS = {"secret": ("secretKeyRef", "secretRef"), "config_map": ("configMapKeyRef", "configMapRef")}


def env_from(source: EnvFrom) -> dict:
    """One entry of a container's ``envFrom`` list."""
    ref: dict[str, Any] = {"name": source.name}
    if source.optional:
        ref["optional"] = True
    entry: dict[str, Any] = {_REF_KINDS[source.kind][1]: ref}
    if source.prefix:
        entry["prefix"] = source.prefix
    return entry


def volume_mounts(system: System, container: Container, server: "Server") -> list[dict]:
    """A container's mounts of the System's volumes (read-only and sub-paths as the volume says)."""
    volumes = {v.name: v for v in system.volumes}
    mounts = []
    for name, path in container.mounts:
        volume = volumes[name]
        mount: dict[str, Any] = {"name": name, "mountPath": path}
        sub_path = volume.sub_path_for(server.user_slug)
        if sub_path:
            mount["subPath"] = sub_path
        if volume.read_only:
            mount["readOnly"] = True
        mounts.append(mount)
    return mounts


def volume_source(volume: Volume) -> dict:
    """A System volume as a pod's volume: an existing claim, a ConfigMap, a Secret or scratch space."""
    if volume.claim:
        claim: dict[str, Any] = {"claimName": volume.claim}
        if volume.read_only:
            claim["readOnly"] = True
        return {"name": volume.name, "persistentVolumeClaim": claim}
    if volume.config_map or volume.secret:
        source: dict[str, Any] = ({"name": volume.config_map} if volume.config_map else {"secretName": volume.secret})
        if volume.optional:
            source["optional"] = True
        return {"name": volume.name, ("configMap" if volume.config_map else "secret"): source}
    empty: dict[str, Any] = {}
    if volume.size_limit:
        empty["sizeLimit"] = volume.size_limit
    if volume.memory:
        empty["medium"] = "Memory"
    return {"name": volume.name, "emptyDir": empty}


def _plan(system: System, server: Server) -> tuple[list[dict], int]:
    """Decide each container's role: which one authenticates and which port the hub uses."""
    containers = list(system.containers)
    port = public_port(system, server.gate)
    if system.auth == "gate":
        if server.auth_volumes:
            raise RenderError(
                f"{system.name}: the hub's internal SSL (JupyterHub.internal_ssl) is not supported for "
                "apps behind tycho-gate yet"
            )
        gate = _gate_container(system, server.gate)
        containers.insert(0, gate)
        auth_name = gate.name
    else:
        auth_name = system.serve.container
        # The serving container comes first: `kubectl logs POD` and `exec` default to it.
        containers.sort(key=lambda c: c.name != auth_name)
    planned = []
    for container in containers:
        ports = [
            (SERVER_PORT_NAME if (container.name == auth_name and number == port) else name, number)
            for name, number in container.ports
        ]
        env = _container_env(server, container, container.name == system.serve.container, container.name == auth_name)
        planned.append({
            "spec": container,
            "ports": ports,
            "env": [env_var(name, value) for name, value in env.items()],
            "env_from": [env_from(source) for source in container.env_from],
            "mounts": volume_mounts(system, container, server),
        })
    return planned, port


def _container_env(server: Server, container: Container, served: bool, authenticates: bool) -> dict:
    """One container's variables: the site's (served app), the hub's (authenticating container),
    in KubeSpawner's order, then the entry's own. The entry's value wins over the site's; the
    hub's wins over the entry's, but for ``JUPYTERHUB_DEFAULT_URL`` (the entry's interface choice
    beats the site's default_url)."""
    inherited: dict[str, Any] = {}
    if served:
        inherited.update(server.app_env)
    if authenticates:
        inherited.update(server.hub_env)
    position = {name: i for i, name in enumerate(server.env_order)}
    env = {name: inherited[name] for name in sorted(inherited, key=lambda n: position.get(n, len(position)))}
    hub_names = {name for name, _ in server.hub_env} if authenticates else set()
    for name, value in container.env:
        if name in hub_names and name != "JUPYTERHUB_DEFAULT_URL":
            continue
        env[name] = value
    return env


def _labels(system: System, server: Server) -> dict:
    labels = dict(server.labels)
    labels[SERVER_LABEL] = selector_value(server.name)
    labels[PROFILE_LABEL] = system.name
    return labels


def render_pod_parts(system: System, server: Server, env: jinja2.Environment) -> PodParts:
    """Render the containers, volumes and security context the System puts in the pod."""
    planned, port = _plan(system, server)
    parts = _load(
        env,
        "pod.yaml.j2",
        {"system": system, "server": server, "containers": planned,
         "volumes": [volume_source(v) for v in system.volumes]},
    )
    if not isinstance(parts, dict) or not isinstance(parts.get("containers"), list):
        raise RenderError("template pod.yaml.j2 must produce a mapping with a 'containers' list")
    return PodParts(
        containers=parts["containers"],
        volumes=parts.get("volumes") or [],
        security_context=parts.get("securityContext") or {},
        labels=_labels(system, server),
        port=port,
    )


def hub_address(server: Server) -> Optional[tuple[str, int]]:
    """The hub's API as a CIDR of one address and a port, when the URL the server is given
    (``JUPYTERHUB_API_URL``) names an address rather than a Service: a hub outside the cluster
    (on a laptop beside minikube, on the test bed's host), which no pod selector matches."""
    url = dict(server.hub_env).get("JUPYTERHUB_API_URL")
    if not isinstance(url, str):
        return None
    parts = urlsplit(url)
    try:
        address = ipaddress.ip_address(parts.hostname or "")
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    if address.is_loopback or address.is_unspecified:
        return None
    return f"{address}/{address.max_prefixlen}", port


def egress_allowances(system: System, server: Server) -> dict[str, bool]:
    """The site's allowances with the entry's on top, key by key."""
    return {**dict(DEFAULT_EGRESS_ALLOW), **dict(server.egress_allow), **dict(system.network.egress_allow)}


def render_network_policy(system: System, server: Server, env: jinja2.Environment) -> dict:
    """The server's NetworkPolicy: only the hub and proxy pods reach the one served port, and
    the server reaches only its hub's API and what the site and the entry allow."""
    address = hub_address(server)
    manifest = _load(
        env,
        "networkpolicy.yaml.j2",
        {
            "system": system,
            "server": server,
            "labels": _labels(system, server),
            "selector": {SERVER_LABEL: selector_value(server.name)},
            "port": public_port(system, server.gate),
            "port_name": SERVER_PORT_NAME,
            "hub": {
                "selector": dict(server.hub_selector),
                "port": server.hub_port,
                "address": address[0] if address else None,
                "address_port": address[1] if address else None,
            },
            "egress_allow": egress_allowances(system, server),
            "egress_rules": [json.loads(rule) for rule in server.egress] + system.network.egress_rules,
            "private_cidrs": list(PRIVATE_CIDRS),
            "cloud_metadata_cidr": f"{CLOUD_METADATA_IP}/32",
        },
    )
    if not isinstance(manifest, dict) or manifest.get("kind") != "NetworkPolicy":
        raise RenderError("template networkpolicy.yaml.j2 must produce one NetworkPolicy object")
    return manifest


def _under(path: str, root: str) -> Optional[str]:
    """``path`` relative to ``root`` ("" for root itself, "/x" below it), or None if outside."""
    path, root = path.rstrip("/") or "/", root.rstrip("/") or "/"
    if path == root:
        return ""
    if path.startswith(root + "/"):
        return path[len(root):]
    return None


def _home_mounts(mounts: list, system: System, home_mount_path: str) -> list:
    """The site's home mounts moved to where this app keeps the user's files.

    ``mounts`` are the site's mounts at or below ``home_mount_path``. With a sub-path home
    (a web root that is one folder of the home), mounts nested in the home are not carried:
    they would otherwise appear inside that folder.
    """
    home = system.home
    if not home.enabled:
        return []
    if home.path is None:
        return [dict(m) for m in mounts]
    moved = []
    for mount in mounts:
        rest = _under(mount["mountPath"], home_mount_path)
        new = dict(mount)
        if rest == "":
            new["mountPath"] = home.path
            if home.sub_path:
                new["subPath"] = "/".join(p for p in (mount.get("subPath"), home.sub_path) if p)
            if home.read_only:
                new["readOnly"] = True
        elif home.sub_path:
            continue
        else:
            new["mountPath"] = home.path + rest
        moved.append(new)
    return moved


def _merge_resources(site: Mapping, app: Mapping) -> dict:
    """The site's resources (KubeSpawner's cpu/mem/extra_resource) with the entry's on top, key by key."""
    out = {}
    for kind in ("limits", "requests"):
        merged = {**(site.get(kind) or {}), **(app.get(kind) or {})}
        if merged:
            out[kind] = merged
    return out


def _referenced_volumes(spec: Mapping) -> set:
    names = set()
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            names.update(m["name"] for m in container.get("volumeMounts") or [])
    return names


def render_pod(
    system: System, server: Server, env: jinja2.Environment, base_pod: Optional[Mapping] = None
) -> dict:
    """A whole Pod manifest: ``base_pod`` (KubeSpawner's pod, or a bare one) with the System in it.

    The base pod carries the site's settings. Pod-level ones (scheduling, init and extra
    containers, pull secrets, service account, volumes...) are kept as they are. The base's one
    container is KubeSpawner's server container: the entry's app container takes its place and
    keeps its site-wide fields (lifecycle hooks, pull policy, extra container config, resources
    the entry does not set, mounts); the site's home mounts go where the entry keeps the user's
    files (``System.home``), the hub's certificate mounts to the authenticating container.
    """
    parts = render_pod_parts(system, server, env)
    pod = json.loads(json.dumps(base_pod)) if base_pod else {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": server.name, "namespace": server.namespace},
        "spec": {"restartPolicy": "OnFailure", "containers": []},
    }
    metadata = pod.setdefault("metadata", {})
    metadata["labels"] = {**(metadata.get("labels") or {}), **parts.labels}
    if server.annotations:
        metadata["annotations"] = {**(metadata.get("annotations") or {}), **dict(server.annotations)}
    spec = pod.setdefault("spec", {})
    base_containers = spec.get("containers") or []
    base = base_containers[0] if base_containers else {}

    site_mounts, home_mounts, auth_mounts = [], [], []
    for mount in base.get("volumeMounts") or []:
        if mount.get("name") in server.auth_volumes:
            auth_mounts.append(mount)
        elif _under(mount.get("mountPath", ""), server.home_mount_path) is not None:
            home_mounts.append(mount)
        else:
            site_mounts.append(mount)
    home_mounts.sort(key=lambda m: m["mountPath"])
    home_container = system.home.container or system.serve.container
    extra_mounts: dict[str, list] = {}
    extra_mounts.setdefault(home_container, []).extend(_home_mounts(home_mounts, system, server.home_mount_path))
    extra_mounts.setdefault(system.serve.container, []).extend(site_mounts)
    extra_mounts.setdefault(parts.containers[0]["name"], []).extend(auth_mounts)

    containers = []
    for rendered in parts.containers:
        name = rendered["name"]
        if name == system.serve.container:
            merged = dict(rendered)
            for key, value in base.items():
                if key not in APP_OWNED_FIELDS and key not in merged and key != "volumeMounts":
                    merged[key] = value
            merged["resources"] = _merge_resources(base.get("resources") or {}, rendered.get("resources") or {})
            site_security = {k: v for k, v in (base.get("securityContext") or {}).items() if k != "privileged"}
            merged["securityContext"] = {**site_security, **rendered["securityContext"]}
        else:
            merged = dict(rendered)
            if base.get("imagePullPolicy") and "imagePullPolicy" not in merged:
                merged["imagePullPolicy"] = base["imagePullPolicy"]
        mounts = extra_mounts.get(name, []) + list(rendered.get("volumeMounts") or [])
        if mounts:
            merged["volumeMounts"] = mounts
        else:
            merged.pop("volumeMounts", None)
        containers.append(merged)
    spec["containers"] = containers + list(base_containers[1:])
    volumes = list(spec.get("volumes") or []) + parts.volumes
    used = _referenced_volumes(spec)
    spec["volumes"] = [v for v in volumes if v["name"] in used]
    if not spec["volumes"]:
        del spec["volumes"]
    _schedule(spec, system)
    spec["securityContext"] = {**(spec.get("securityContext") or {}), **parts.security_context}
    # A user's app is untrusted code: the container runtime's default syscall filter unless the
    # site chose a profile (KubeSpawner's pod_security_context, extra_pod_config).
    spec["securityContext"].setdefault("seccompProfile", dict(RUNTIME_DEFAULT_SECCOMP))
    return pod


_REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
_PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"


def _schedule(spec: dict, system: System) -> None:
    """The entry's scheduling over the site's (the base pod's): node selector keys replace the
    site's, tolerations add to them, node affinity must hold as well as the site's (each of the
    site's required terms joined with each of the entry's: Kubernetes ORs terms, so AND is
    their product), preferences add up, the priority class replaces the site's."""
    scheduling = system.scheduling
    if scheduling.node_selector:
        spec["nodeSelector"] = {**(spec.get("nodeSelector") or {}), **dict(scheduling.node_selector)}
    tolerations = list(spec.get("tolerations") or [])
    tolerations += [t for t in system.tolerations() if t not in tolerations]
    if tolerations:
        spec["tolerations"] = tolerations
    if scheduling.priority_class:
        spec["priorityClassName"] = scheduling.priority_class
        spec.pop("priority", None)  # the admission controller sets it from the class
    if scheduling.node_affinity:
        entry = json.loads(scheduling.node_affinity)
        affinity = spec.setdefault("affinity", {})
        node = affinity.setdefault("nodeAffinity", {})
        if _REQUIRED in entry:
            theirs = entry[_REQUIRED]["nodeSelectorTerms"]
            ours = (node.get(_REQUIRED) or {}).get("nodeSelectorTerms") or [{}]
            node[_REQUIRED] = {"nodeSelectorTerms": [
                {kind: (site.get(kind) or []) + (term.get(kind) or [])
                 for kind in ("matchExpressions", "matchFields") if site.get(kind) or term.get(kind)}
                for site in ours for term in theirs]}
        if _PREFERRED in entry:
            node[_PREFERRED] = list(node.get(_PREFERRED) or []) + entry[_PREFERRED]


#: The pod-level seccomp profile every server's pod gets when the site sets none.
RUNTIME_DEFAULT_SECCOMP = {"type": "RuntimeDefault"}


def render_all(system: System, server: Server, env: jinja2.Environment) -> list[dict]:
    """Every object of a server: the pod and its NetworkPolicy (for ``tycho render`` and golden
    files; the spawner creates the policy first)."""
    return [
        render_pod(system, server, env),
        render_network_policy(system, server, env),
    ]
