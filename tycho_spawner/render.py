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
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Optional

import jinja2
import yaml

from .errors import RenderError
from .model import Container, Limits, Probe, System

#: The port name KubeSpawner and zero-to-jupyterhub look for on the server's container.
SERVER_PORT_NAME = "notebook-port"
#: Label carried by every object of one server; Service and NetworkPolicy select on it.
SERVER_LABEL = "tycho-spawner/server"
PROFILE_LABEL = "tycho-spawner/profile"
TEMPLATE_NAMES = ("pod.yaml.j2", "service.yaml.j2", "networkpolicy.yaml.j2")
_LABEL_VALUE_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


@dataclass(frozen=True)
class GateSettings:
    """How tycho-gate is added in front of apps whose System says ``auth: gate``."""

    image: str = "ghcr.io/tycho-spawner/tycho-gate:0.1.0"
    port: int = 8888
    keep_prefix: bool = False


@dataclass(frozen=True)
class Server:
    """Where and for whom a System is rendered; supplied by the edge (spawner or CLI).

    ``hub_env`` is the hub's ``JUPYTERHUB_*`` environment: it goes to exactly one container,
    the one that authenticates requests (Jupyter itself or the gate). ``app_env`` is the site's
    own environment (``KubeSpawner.environment``, ``MEM_LIMIT``...) for the served app.
    Precedence, lowest first: ``app_env``, the System's env, ``hub_env``.
    """

    name: str
    namespace: str
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    hub_env: tuple[tuple[str, str], ...] = ()
    app_env: tuple[tuple[str, str], ...] = ()
    ingress_from: tuple[tuple[tuple[str, str], ...], ...] = (
        (("component", "hub"),),
        (("component", "proxy"),),
    )
    gate: GateSettings = field(default_factory=GateSettings)


@dataclass(frozen=True)
class Owner:
    """The object (the pod) that Service and NetworkPolicy belong to, for garbage collection."""

    name: str
    uid: str
    kind: str = "Pod"
    api_version: str = "v1"


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


def _load(env: jinja2.Environment, name: str, context: Mapping[str, Any]) -> Any:
    try:
        text = env.get_template(name).render(**context)
    except jinja2.TemplateError as err:
        raise RenderError(f"template {name}: {err}") from err
    try:
        return yaml.safe_load(text)
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


def _plan(system: System, server: Server) -> tuple[list[dict], int]:
    """Decide each container's role: which one authenticates and which port the hub uses."""
    containers = list(system.containers)
    port = public_port(system, server.gate)
    if system.auth == "gate":
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
        env = dict(server.app_env) if container.name == system.serve.container else {}
        env.update(container.env)
        if container.name == auth_name:
            env.update(server.hub_env)
        planned.append({"spec": container, "ports": ports, "env": list(env.items())})
    return planned, port


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
        {"system": system, "server": server, "containers": planned},
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


def render_service(system: System, server: Server, env: jinja2.Environment, owner: Optional[Owner] = None) -> dict:
    return _object(env, "service.yaml.j2", "Service", system, server, owner)


def render_network_policy(
    system: System, server: Server, env: jinja2.Environment, owner: Optional[Owner] = None
) -> dict:
    return _object(env, "networkpolicy.yaml.j2", "NetworkPolicy", system, server, owner)


def _object(env, template, kind, system, server, owner) -> dict:
    manifest = _load(
        env,
        template,
        {
            "system": system,
            "server": server,
            "owner": owner,
            "labels": _labels(system, server),
            "selector": {SERVER_LABEL: selector_value(server.name)},
            "port": public_port(system, server.gate),
            "port_name": SERVER_PORT_NAME,
        },
    )
    if not isinstance(manifest, dict) or manifest.get("kind") != kind:
        raise RenderError(f"template {template} must produce one {kind} object")
    return manifest


def render_pod(
    system: System, server: Server, env: jinja2.Environment, base_pod: Optional[Mapping] = None
) -> dict:
    """A whole Pod manifest: ``base_pod`` (KubeSpawner's pod, or a bare one) with the System in it.

    Site-wide settings on the base pod (node selector, tolerations, volumes, security context
    fields the System does not set) are kept; the System's containers replace the base's one
    container, inheriting its volume mounts when they serve the user (home directories).
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
    app_name = system.serve.container
    containers = []
    for rendered in parts.containers:
        merged = {
            # Site-wide container settings of KubeSpawner's container that do not describe
            # the app (lifecycle hooks, image pull policy) carry over to every container.
            **{k: v for k, v in base.items() if k in ("imagePullPolicy", "lifecycle") and v},
            **rendered,
        }
        if rendered["name"] == app_name and base.get("volumeMounts"):
            merged["volumeMounts"] = list(base["volumeMounts"]) + list(rendered.get("volumeMounts") or [])
        containers.append(merged)
    spec["containers"] = containers + list(base_containers[1:])
    spec["volumes"] = list(spec.get("volumes") or []) + parts.volumes
    spec["securityContext"] = {**(spec.get("securityContext") or {}), **parts.security_context}
    return pod


def render_all(
    system: System, server: Server, env: jinja2.Environment, owner: Optional[Owner] = None
) -> list[dict]:
    """Every object of a server, in creation order (for ``tycho render`` and golden files)."""
    return [
        render_pod(system, server, env),
        render_service(system, server, env, owner),
        render_network_policy(system, server, env, owner),
    ]

