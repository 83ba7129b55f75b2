"""The Tycho model: what an application *is*, independent of Kubernetes' own object shapes.

A :class:`System` is one launchable application: a few containers sharing a network namespace,
one of which serves HTTP on one port, plus the volumes and the (non-root) identity they run as.
The model is deliberately smaller than a Pod spec: what it cannot express, a site sets through
KubeSpawner's own settings or an overridden template, so the catalog stays readable.

Everything here is pure and immutable: parsing is ``System.from_dict(data, path)`` and every
error names the exact dotted path of the bad value.
"""
from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from .checks import (
    _ENV_KEY_RE,
    _ENV_NAME_RE,
    _EXTENDED_RESOURCE_RE,
    _HEADER_NAME_RE,
    object_name,
    parse_quantity,
)
from .checks import a_list as _list
from .checks import absolute_path as _absolute
from .checks import boolean as _bool
from .checks import dns_label as _dns_label
from .checks import integer as _int
from .checks import label_key as _label_key
from .checks import label_value as _label_value
from .checks import mapping as _check_mapping
from .checks import port as _port
from .checks import string as _str
from .checks import string_list as _str_list
from . import schema
from .errors import SpecError

AUTH_MODES = ("jupyter", "gate")

#: GPUs are counted in this extended resource unless an entry names another (``amd.com/gpu``,
#: ``gpu.intel.com/i915``, a MIG slice such as ``nvidia.com/mig-1g.5gb``).
DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"
def _gpus(value: Any, path: str) -> tuple[int, str]:
    """``gpus: 1`` (NVIDIA's resource) or ``gpus: {count: 1, resource: amd.com/gpu}``."""
    if isinstance(value, Mapping):
        _check_keys(value, path, ("count", "resource"), required=("count",))
        resource = value.get("resource", DEFAULT_GPU_RESOURCE)
        if (not isinstance(resource, str) or len(resource) > 253 or not _EXTENDED_RESOURCE_RE.match(resource)
                or resource.split("/")[0].endswith("kubernetes.io")):
            raise SpecError(f"{path}.resource", f"{resource!r} is not an extended resource name (such as nvidia.com/gpu)")
        return _int(value["count"], f"{path}.count", 0, 64), resource
    return _int(value, path, 0, 64), DEFAULT_GPU_RESOURCE


def _check_keys(data: Any, path: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> Mapping:
    if not isinstance(data, Mapping):
        raise SpecError(path, f"expected a mapping, got {type(data).__name__}")
    for key in data:
        if not isinstance(key, str) or key not in allowed:
            raise SpecError(f"{path}.{key}", f"unknown key (expected one of: {', '.join(allowed)})")
    for key in required:
        if key not in data or data[key] is None:
            raise SpecError(f"{path}.{key}", "is required")
    return data


@dataclass(frozen=True)
class Limits:
    """Compute resources, as Kubernetes quantities (strings kept as the admin wrote them)."""

    cpu: Optional[str] = None
    memory: Optional[str] = None
    gpus: int = 0
    ephemeral_storage: Optional[str] = None
    #: The extended resource the GPUs are counted in (NVIDIA's, AMD's, a MIG slice...).
    gpu_resource: str = DEFAULT_GPU_RESOURCE

    FIELDS = tuple(schema.Limits.model_fields)  # the keys, from the one definition

    @classmethod
    def from_dict(cls, data: Any, path: str) -> "Limits":
        if data is None:
            return cls()
        _check_keys(data, path, cls.FIELDS)
        values: dict[str, Any] = {}
        for key in ("cpu", "memory", "ephemeral_storage"):
            if data.get(key) is not None:
                parse_quantity(data[key], f"{path}.{key}")
                values[key] = str(data[key])
        if data.get("gpus") is not None:
            values["gpus"], values["gpu_resource"] = _gpus(data["gpus"], f"{path}.gpus")
        return cls(**values)

    def as_resources(self) -> dict[str, str]:
        """The Kubernetes ``resources.limits`` / ``requests`` mapping for these values."""
        out: dict[str, str] = {}
        if self.cpu is not None:
            out["cpu"] = self.cpu
        if self.memory is not None:
            out["memory"] = self.memory
        if self.ephemeral_storage is not None:
            out["ephemeral-storage"] = self.ephemeral_storage
        if self.gpus:
            out[self.gpu_resource] = str(self.gpus)
        return out


@dataclass(frozen=True)
class Probe:
    """How Kubernetes decides the app is ready: an HTTP GET (``http`` path) or a TCP connect."""

    port: int
    http_path: Optional[str] = None
    initial_delay_seconds: int = 0
    period_seconds: int = 1
    failure_threshold: int = 3

    FIELDS = tuple(schema.Probe.model_fields)  # the keys, from the one definition

    @classmethod
    def from_dict(cls, data: Any, path: str, default_port: Optional[int]) -> Optional["Probe"]:
        if data is None:
            return None
        _check_keys(data, path, cls.FIELDS)
        http = data.get("http")
        tcp = data.get("tcp")
        if (http is None) == (tcp is None):
            raise SpecError(path, "give exactly one of 'http' (a path) or 'tcp: true'")
        if http is not None:
            http = _str(http, f"{path}.http")
            if not http.startswith("/"):
                raise SpecError(f"{path}.http", f"{http!r} must start with '/'")
        elif tcp is not True:
            raise SpecError(f"{path}.tcp", "must be true")
        port = data.get("port", default_port)
        if port is None:
            raise SpecError(f"{path}.port", "is required (the container has no single port)")
        return cls(
            port=_port(port, f"{path}.port"),
            http_path=http,
            initial_delay_seconds=_int(data.get("initial_delay_seconds", 0), f"{path}.initial_delay_seconds", 0, 3600),
            period_seconds=_int(data.get("period_seconds", 1), f"{path}.period_seconds", 1, 3600),
            failure_threshold=_int(data.get("failure_threshold", 3), f"{path}.failure_threshold", 1, 1000),
        )


@dataclass(frozen=True)
class EnvRef:
    """A variable Kubernetes fills in from a key of a Secret or ConfigMap in the server's
    namespace: the value never passes the hub (whose Role cannot read Secrets)."""

    kind: str  # "secret" or "config_map"
    name: str
    key: str
    optional: bool = False

    FIELDS = tuple(schema.EnvRef.model_fields)  # the keys, from the one definition

    @classmethod
    def from_dict(cls, data: Any, path: str) -> "EnvRef":
        _check_keys(data, path, cls.FIELDS, required=("key",))
        kind = _one_source(data, path, ("secret", "config_map"))
        key = _str(data["key"], f"{path}.key")
        if len(key) > 253 or not _ENV_KEY_RE.match(key):
            raise SpecError(f"{path}.key", f"{key!r} is not a key of a Secret or ConfigMap")
        return cls(kind=kind, name=object_name(data[kind], f"{path}.{kind}", kind.replace("_", " ") + " name"),
                   key=key, optional=_bool(data.get("optional", False), f"{path}.optional"))


@dataclass(frozen=True)
class EnvFrom:
    """Every key of a Secret or ConfigMap as variables (``envFrom``), with an optional prefix."""

    kind: str
    name: str
    prefix: str = ""
    optional: bool = False

    FIELDS = tuple(schema.EnvFrom.model_fields)  # the keys, from the one definition

    @classmethod
    def from_dict(cls, data: Any, path: str) -> "EnvFrom":
        _check_keys(data, path, cls.FIELDS)
        kind = _one_source(data, path, ("secret", "config_map"))
        prefix = data.get("prefix", "")
        if not isinstance(prefix, str) or (prefix and not _ENV_NAME_RE.match(prefix)):
            raise SpecError(f"{path}.prefix", f"{prefix!r} is not a valid start of a variable name")
        return cls(kind=kind, name=object_name(data[kind], f"{path}.{kind}", kind.replace("_", " ") + " name"),
                   prefix=prefix, optional=_bool(data.get("optional", False), f"{path}.optional"))


def _one_source(data: Mapping, path: str, kinds: tuple[str, ...]) -> str:
    given = [kind for kind in kinds if data.get(kind) is not None]
    if len(given) != 1:
        raise SpecError(path, f"give exactly one of: {', '.join(kinds)}")
    return given[0]


@dataclass(frozen=True)
class Container:
    """One process image of the application. ``env`` and ``ports`` are ordered name/value pairs;
    an ``env`` value is a string or an :class:`EnvRef` (a key of a Secret or ConfigMap)."""

    name: str
    image: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, Any], ...] = ()
    ports: tuple[tuple[str, int], ...] = ()
    limits: Limits = field(default_factory=Limits)
    requests: Limits = field(default_factory=Limits)
    readiness: Optional[Probe] = None
    working_dir: Optional[str] = None
    mounts: tuple[tuple[str, str], ...] = ()
    env_from: tuple[EnvFrom, ...] = ()

    FIELDS = tuple(schema.Container.model_fields)  # the keys, from the one definition

    @classmethod
    def from_dict(cls, name: str, data: Any, path: str) -> "Container":
        _dns_label(name, path)
        _check_keys(data, path, cls.FIELDS, required=("image",))
        image = _str(data["image"], f"{path}.image")
        if any(c.isspace() for c in image):
            raise SpecError(f"{path}.image", f"{image!r} is not an image reference")

        env_data = data.get("env") or {}
        _check_mapping(env_data, f"{path}.env")
        env = []
        for key, value in env_data.items():
            if not isinstance(key, str) or not _ENV_NAME_RE.match(key):
                raise SpecError(f"{path}.env.{key}", "is not a valid environment variable name")
            if isinstance(value, Mapping):
                env.append((key, EnvRef.from_dict(value, f"{path}.env.{key}")))
                continue
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise SpecError(f"{path}.env.{key}", f"expected a string, got {value!r}")
            env.append((key, str(value)))

        ports_data = data.get("ports") or {}
        _check_mapping(ports_data, f"{path}.ports")
        ports = []
        for port_name, number in ports_data.items():
            _dns_label(port_name, f"{path}.ports.{port_name}")
            if len(port_name) > 15:
                raise SpecError(f"{path}.ports.{port_name}", "port names are at most 15 characters")
            ports.append((port_name, _port(number, f"{path}.ports.{port_name}")))

        mounts_data = data.get("mounts") or {}
        _check_mapping(mounts_data, f"{path}.mounts")
        mounts = []
        for volume, mount_path in mounts_data.items():
            _dns_label(volume, f"{path}.mounts.{volume}")
            mount_path = _str(mount_path, f"{path}.mounts.{volume}")
            if not mount_path.startswith("/"):
                raise SpecError(f"{path}.mounts.{volume}", f"{mount_path!r} must be an absolute path")
            mounts.append((volume, mount_path))

        limits = Limits.from_dict(data.get("limits"), f"{path}.limits")
        requests = Limits.from_dict(data.get("requests"), f"{path}.requests")
        if requests.gpus and (requests.gpus, requests.gpu_resource) != (limits.gpus, limits.gpu_resource):
            # Kubernetes refuses extended resources whose request differs from the limit.
            raise SpecError(f"{path}.requests.gpus", "GPUs are not shared: give them in limits only")
        for key in ("cpu", "memory", "ephemeral_storage"):
            low, high = getattr(requests, key), getattr(limits, key)
            if low is not None and high is not None and parse_quantity(low, "") > parse_quantity(high, ""):
                raise SpecError(f"{path}.requests.{key}", f"{low} is more than the limit {high}")

        working_dir = data.get("working_dir")
        if working_dir is not None:
            working_dir = _str(working_dir, f"{path}.working_dir")
            if not working_dir.startswith("/"):
                raise SpecError(f"{path}.working_dir", f"{working_dir!r} must be an absolute path")

        return cls(
            name=name,
            image=image,
            command=_str_list(data.get("command"), f"{path}.command"),
            args=_str_list(data.get("args"), f"{path}.args"),
            env=tuple(env),
            ports=tuple(ports),
            limits=limits,
            requests=requests,
            readiness=Probe.from_dict(
                data.get("readiness"), f"{path}.readiness", ports[0][1] if len(ports) == 1 else None
            ),
            working_dir=working_dir,
            mounts=tuple(mounts),
            env_from=tuple(EnvFrom.from_dict(item, f"{path}.env_from[{i}]")
                           for i, item in enumerate(_list(data.get("env_from") or [], f"{path}.env_from"))),
        )


@dataclass(frozen=True)
class Volume:
    """A volume of the System's containers: scratch space (an ``emptyDir``, gone with the pod),
    or data that outlives it: an existing claim (a shared dataset, a group's space), a
    ConfigMap or a Secret of the server's namespace, which the hub never reads.

    ``sub_path`` mounts a folder of the volume; ``{username}`` in it becomes the user's name as
    KubeSpawner escapes it (a per-user folder of one shared claim). ``read_only`` mounts refuse
    writes (ConfigMaps and Secrets always are).
    """

    name: str
    size_limit: Optional[str] = None
    memory: bool = False
    claim: Optional[str] = None
    config_map: Optional[str] = None
    secret: Optional[str] = None
    sub_path: Optional[str] = None
    read_only: bool = False
    optional: bool = False

    FIELDS = tuple(schema.Volume.model_fields)  # the keys, from the one definition
    SOURCES = ("claim", "config_map", "secret")

    @classmethod
    def from_dict(cls, name: str, data: Any, path: str) -> "Volume":
        _dns_label(name, path)
        data = {} if data is None else data
        _check_keys(data, path, cls.FIELDS)
        sources = [key for key in cls.SOURCES if data.get(key) is not None]
        if len(sources) > 1:
            raise SpecError(path, f"give at most one of: {', '.join(cls.SOURCES)} (none: scratch space)")
        values: dict[str, Any] = {}
        if sources:
            kind = sources[0]
            for key in ("size_limit", "memory"):
                if data.get(key) is not None:
                    raise SpecError(f"{path}.{key}", "only for scratch space (a volume without claim, config_map or secret)")
            values[kind] = object_name(data[kind], f"{path}.{kind}", kind.replace("_", " ") + " name")
        else:
            size = data.get("size_limit")
            if size is not None:
                parse_quantity(size, f"{path}.size_limit")
                values["size_limit"] = str(size)
            values["memory"] = _bool(data.get("memory", False), f"{path}.memory")
            if data.get("optional") is not None:
                raise SpecError(f"{path}.optional", "only for a config_map or secret volume")
        sub_path = data.get("sub_path")
        if sub_path is not None:
            sub_path = _str(sub_path, f"{path}.sub_path")
            parts = sub_path.replace("{username}", "user").split("/")
            if sub_path.startswith("/") or any(part in ("", ".", "..") for part in parts):
                raise SpecError(f"{path}.sub_path", f"{sub_path!r} must be a relative path inside the volume (no '..')")
            if "{" in sub_path.replace("{username}", "") or "}" in sub_path.replace("{username}", ""):
                raise SpecError(f"{path}.sub_path", f"{sub_path!r}: only {{username}} is replaced")
            values["sub_path"] = sub_path
        if data.get("optional") is not None and "claim" in values:
            raise SpecError(f"{path}.optional", "only for a config_map or secret volume")
        values["optional"] = _bool(data.get("optional", False), f"{path}.optional")
        values["read_only"] = _bool(data.get("read_only", False), f"{path}.read_only")
        return cls(name=name, **values)

    def sub_path_for(self, username: str) -> Optional[str]:
        return None if self.sub_path is None else self.sub_path.replace("{username}", username)


@dataclass(frozen=True)
class Security:
    """The identity the app runs as. Root is refused: a catalog app never needs it."""

    run_as_user: int = 1000
    run_as_group: int = 100
    fs_group: Optional[int] = 100

    FIELDS = tuple(schema.Security.model_fields)  # the keys, from the one definition

    @classmethod
    def from_dict(cls, data: Any, path: str) -> "Security":
        if data is None:
            return cls()
        _check_keys(data, path, cls.FIELDS)
        user = _int(data.get("run_as_user", 1000), f"{path}.run_as_user", 0, 2**31 - 1)
        if user == 0:
            raise SpecError(f"{path}.run_as_user", "apps run as non-root: 0 is not allowed")
        fs_group = data.get("fs_group", 100)
        return cls(
            run_as_user=user,
            run_as_group=_int(data.get("run_as_group", 100), f"{path}.run_as_group", 0, 2**31 - 1),
            fs_group=None if fs_group is None else _int(fs_group, f"{path}.fs_group", 0, 2**31 - 1),
        )


@dataclass(frozen=True)
class Home:
    """Where the app keeps the user's files, so the site's home volume is mounted there.

    Apps disagree on where a user's files live (Jupyter in ``/home/jovyan``, RStudio in
    ``/home/rstudio``, nginx serves a web root): the site's one persistent home (KubeSpawner's
    ``volumes``/``volume_mounts`` at ``TychoSpawner.home_mount_path``, z2jh's
    ``singleuser.storage``) is mounted at ``path`` in ``container`` instead of at the site's
    path. ``sub_path`` mounts a folder of the home (created if missing), ``read_only`` refuses
    writes. ``enabled=False`` (``home: false``) gives the app no home at all. When an entry says
    nothing, ``container``/``path`` are None: the served container gets the home at the site's
    own path, as with KubeSpawner.
    """

    container: Optional[str] = None
    path: Optional[str] = None
    sub_path: Optional[str] = None
    read_only: bool = False
    enabled: bool = True

    FIELDS = tuple(schema.Home.model_fields)  # the keys, from the one definition

    @classmethod
    def from_dict(cls, data: Any, path: str, serve_container: str) -> "Home":
        if data is None:
            return cls()
        if data is False:
            return cls(enabled=False)
        if data is True:
            raise SpecError(path, "give the app's home as {container: NAME, path: /absolute/path}, or false for none")
        _check_keys(data, path, cls.FIELDS, required=("path",))
        container = _str(data.get("container", serve_container), f"{path}.container")
        mount = _absolute(data["path"], f"{path}.path")
        sub_path = data.get("sub_path")
        if sub_path is not None:
            sub_path = _str(sub_path, f"{path}.sub_path")
            parts = sub_path.split("/")
            if sub_path.startswith("/") or any(part in ("", ".", "..") for part in parts):
                raise SpecError(f"{path}.sub_path", f"{sub_path!r} must be a relative path inside the home (no '..')")
        read_only = data.get("read_only", False)
        if not isinstance(read_only, bool):
            raise SpecError(f"{path}.read_only", "must be true or false")
        return cls(container=container, path=mount, sub_path=sub_path, read_only=read_only)


@dataclass(frozen=True)
class Serve:
    """Which container answers HTTP for the user, and on which port (inside the pod)."""

    container: str
    port: int




@dataclass(frozen=True)
class GateOptions:
    """How tycho-gate presents the prefix to one gated app.

    ``keep_prefix`` (None: the site's ``TychoSpawner.gate_keep_prefix``) passes
    ``/user/<name>/...`` through unchanged; ``prefix_header`` names a request header that
    carries the public prefix to the app (RStudio reads ``X-RStudio-Root-Path``).
    """

    keep_prefix: Optional[bool] = None
    prefix_header: Optional[str] = None

    FIELDS = tuple(schema.GateOptions.model_fields)  # the keys, from the one definition

    @classmethod
    def from_dict(cls, data: Any, path: str) -> "GateOptions":
        if data is None:
            return cls()
        _check_keys(data, path, cls.FIELDS)
        keep = data.get("keep_prefix")
        if keep is not None and not isinstance(keep, bool):
            raise SpecError(f"{path}.keep_prefix", "must be true or false")
        header = data.get("prefix_header")
        if header is not None and (not isinstance(header, str) or not _HEADER_NAME_RE.match(header)):
            raise SpecError(f"{path}.prefix_header", f"{header!r} is not an HTTP header name")
        return cls(keep_prefix=keep, prefix_header=header)


#: The keys of zero-to-jupyterhub's ``singleuser.networkPolicy.egressAllowRules``, with the same
#: meanings, so a site's values carry over as they are: each allows a server's outgoing
#: connections to one kind of destination.
EGRESS_ALLOW_RULES = (
    "cloudMetadataServer",
    "dnsPortsCloudMetadataServer",
    "dnsPortsKubeSystemNamespace",
    "dnsPortsPrivateIPs",
    "nonPrivateIPs",
    "privateIPs",
)
_PEER_FIELDS = ("ipBlock", "namespaceSelector", "podSelector")
_PROTOCOLS = ("TCP", "UDP", "SCTP")
_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
# A named port (IANA service name): what a container's port may be called.
_PORT_NAME_RE = re.compile(r"^(?!.*--)[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def parse_egress_allow(data: Any, path: str) -> tuple[tuple[str, bool], ...]:
    """The allowances a mapping sets (``{nonPrivateIPs: true, ...}``), in its order; a key set to
    null is left to the level below (the site's setting, or the default)."""
    if data is None:
        return ()
    _check_keys(data, path, EGRESS_ALLOW_RULES)
    allowed = []
    for key, value in data.items():
        if value is None:
            continue
        if not isinstance(value, bool):
            raise SpecError(f"{path}.{key}", f"must be true or false, got {value!r}")
        allowed.append((key, value))
    return tuple(allowed)


def parse_egress_rules(data: Any, path: str) -> tuple[str, ...]:
    """NetworkPolicy egress rules as Kubernetes writes them (``{to: [...], ports: [...]}``),
    checked as the API server would, each kept as JSON (immutable, and passed on verbatim)."""
    if data is None:
        return ()
    if not isinstance(data, (list, tuple)):
        raise SpecError(path, f"expected a list of NetworkPolicy egress rules ({{to: [...], ports: [...]}}), "
                              f"got {type(data).__name__}")
    return tuple(json.dumps(_egress_rule(rule, f"{path}[{i}]"), sort_keys=True) for i, rule in enumerate(data))


def _egress_rule(data: Any, path: str) -> dict:
    _check_keys(data, path, ("to", "ports"))
    rule: dict[str, Any] = {}
    if data.get("to") is not None:
        rule["to"] = [_peer(peer, f"{path}.to[{i}]") for i, peer in enumerate(_list(data["to"], f"{path}.to"))]
    if data.get("ports") is not None:
        rule["ports"] = [_policy_port(port, f"{path}.ports[{i}]")
                         for i, port in enumerate(_list(data["ports"], f"{path}.ports"))]
    return rule


def _peer(data: Any, path: str) -> dict:
    _check_keys(data, path, _PEER_FIELDS)
    present = [key for key in _PEER_FIELDS if data.get(key) is not None]
    if not present:
        raise SpecError(path, "give an ipBlock, a podSelector or a namespaceSelector")
    if "ipBlock" in present and len(present) > 1:
        raise SpecError(path, "an ipBlock cannot be combined with a selector (give them as two peers)")
    if "ipBlock" in present:
        return {"ipBlock": _ip_block(data["ipBlock"], f"{path}.ipBlock")}
    return {key: _label_selector(data[key], f"{path}.{key}") for key in present}


def _cidr(value: Any, path: str):
    if not isinstance(value, str) or "/" not in value:
        raise SpecError(path, f"{value!r} is not a CIDR (address/prefix length, such as 10.0.0.0/8)")
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise SpecError(path, f"{value!r} is not a CIDR (address/prefix length, such as 10.0.0.0/8)") from None


def _ip_block(data: Any, path: str) -> dict:
    _check_keys(data, path, ("cidr", "except"), required=("cidr",))
    network = _cidr(data["cidr"], f"{path}.cidr")
    block: dict[str, Any] = {"cidr": data["cidr"]}
    if data.get("except") is not None:
        excepted = []
        for i, text in enumerate(_list(data["except"], f"{path}.except")):
            part = _cidr(text, f"{path}.except[{i}]")
            if part.version != network.version or not part.subnet_of(network) or part == network:
                raise SpecError(f"{path}.except[{i}]", f"{text!r} is not a strict part of {data['cidr']!r}")
            excepted.append(text)
        block["except"] = excepted
    return block


def _label_selector(data: Any, path: str) -> dict:
    """A label selector (``matchLabels``, ``matchExpressions``); ``{}`` selects everything."""
    _check_keys(data, path, ("matchLabels", "matchExpressions"))
    selector: dict[str, Any] = {}
    if data.get("matchLabels") is not None:
        labels = data["matchLabels"]
        _check_mapping(labels, f"{path}.matchLabels")
        selector["matchLabels"] = {
            _label_key(key, f"{path}.matchLabels.{key}"): _label_value(value, f"{path}.matchLabels.{key}")
            for key, value in labels.items()
        }
    if data.get("matchExpressions") is not None:
        expressions = []
        for i, expression in enumerate(_list(data["matchExpressions"], f"{path}.matchExpressions")):
            where = f"{path}.matchExpressions[{i}]"
            _check_keys(expression, where, ("key", "operator", "values"), required=("key", "operator"))
            operator = expression["operator"]
            if operator not in _SELECTOR_OPERATORS:
                raise SpecError(f"{where}.operator", f"{operator!r} is not one of: {', '.join(_SELECTOR_OPERATORS)}")
            values = [_label_value(v, f"{where}.values[{j}]")
                      for j, v in enumerate(_list(expression.get("values") or [], f"{where}.values"))]
            if operator in ("In", "NotIn") and not values:
                raise SpecError(f"{where}.values", f"{operator} needs at least one value")
            if operator in ("Exists", "DoesNotExist") and values:
                raise SpecError(f"{where}.values", f"{operator} takes no values")
            entry = {"key": _label_key(expression["key"], f"{where}.key"), "operator": operator}
            if values:
                entry["values"] = values
            expressions.append(entry)
        selector["matchExpressions"] = expressions
    return selector


def _policy_port(data: Any, path: str) -> dict:
    _check_keys(data, path, ("port", "protocol", "endPort"))
    port: dict[str, Any] = {}
    number = data.get("port")
    if isinstance(number, str):
        if len(number) > 15 or not _PORT_NAME_RE.match(number) or number.isdigit():
            raise SpecError(f"{path}.port", f"{number!r} is neither a port number nor a port name")
        port["port"] = number
    elif number is not None:
        port["port"] = _port(number, f"{path}.port")
    protocol = data.get("protocol")
    if protocol is not None:
        if protocol not in _PROTOCOLS:
            raise SpecError(f"{path}.protocol", f"{protocol!r} is not one of: {', '.join(_PROTOCOLS)}")
        port["protocol"] = protocol
    if data.get("endPort") is not None:
        if not isinstance(port.get("port"), int):
            raise SpecError(f"{path}.endPort", "needs a numbered port to start the range")
        end = _port(data["endPort"], f"{path}.endPort")
        if end < port["port"]:
            raise SpecError(f"{path}.endPort", f"{end} is below the port {port['port']}")
        port["endPort"] = end
    return port


@dataclass(frozen=True)
class Network:
    """Where the app's server may connect to, over the site's own settings.

    The site decides what every server may reach (``TychoSpawner.network_policy_egress_allow``
    and ``network_policy_egress``); an entry whose app needs more (a database on the cluster's
    network) or less (no internet) says so here, as the admin who writes both sees fit:
    ``egress_allow`` keys replace the site's one by one, ``egress`` rules are added to the site's.
    The rules are kept as JSON: they go into the NetworkPolicy as the admin wrote them.
    """

    egress_allow: tuple[tuple[str, bool], ...] = ()
    egress: tuple[str, ...] = ()

    FIELDS = tuple(schema.Network.model_fields)  # the keys, from the one definition

    @classmethod
    def from_dict(cls, data: Any, path: str) -> "Network":
        if data is None:
            return cls()
        _check_keys(data, path, cls.FIELDS)
        return cls(
            egress_allow=parse_egress_allow(data.get("egress_allow"), f"{path}.egress_allow"),
            egress=parse_egress_rules(data.get("egress"), f"{path}.egress"),
        )

    @property
    def egress_rules(self) -> list[dict]:
        return [json.loads(rule) for rule in self.egress]


_TOLERATION_OPERATORS = ("Exists", "Equal")
_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_NODE_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")


@dataclass(frozen=True)
class Scheduling:
    """Where the server's pod may run, over the site's own settings (KubeSpawner's
    ``node_selector``, ``tolerations``, ``node_affinity_*``, ``priority_class_name``):
    ``node_selector`` keys replace the site's one by one, ``tolerations`` are added, the
    ``node_affinity`` terms must hold as well as the site's, ``priority_class`` replaces it.
    Tolerations and node affinity are written as Kubernetes writes them and kept as JSON.
    A container's GPUs add the toleration GPU nodes' taints need (see :meth:`System.tolerations`).
    """

    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[str, ...] = ()
    node_affinity: Optional[str] = None
    priority_class: Optional[str] = None

    FIELDS = tuple(schema.Scheduling.model_fields)  # the keys, from the one definition

    @classmethod
    def from_dict(cls, data: Any, path: str) -> "Scheduling":
        if data is None:
            return cls()
        _check_keys(data, path, cls.FIELDS)
        selector = data.get("node_selector") or {}
        _check_mapping(selector, f"{path}.node_selector")
        node_selector = tuple(
            (_label_key(key, f"{path}.node_selector.{key}"),
             _label_value(value if not isinstance(value, (int, float)) or isinstance(value, bool) else str(value),
                          f"{path}.node_selector.{key}"))
            for key, value in selector.items()
        )
        tolerations = tuple(
            json.dumps(_toleration(item, f"{path}.tolerations[{i}]"), sort_keys=True)
            for i, item in enumerate(_list(data.get("tolerations") or [], f"{path}.tolerations"))
        )
        affinity = data.get("node_affinity")
        priority = data.get("priority_class")
        return cls(
            node_selector=node_selector,
            tolerations=tolerations,
            node_affinity=None if affinity is None else json.dumps(_node_affinity(affinity, f"{path}.node_affinity"),
                                                                   sort_keys=True),
            priority_class=None if priority is None else object_name(priority, f"{path}.priority_class",
                                                                     "priority class name"),
        )


def _toleration(data: Any, path: str) -> dict:
    """One toleration as Kubernetes writes it (``key``, ``operator``, ``value``, ``effect``,
    ``tolerationSeconds``), checked as the API server would."""
    _check_keys(data, path, ("key", "operator", "value", "effect", "tolerationSeconds"))
    out: dict[str, Any] = {}
    if data.get("key") is not None:
        out["key"] = _label_key(data["key"], f"{path}.key")
    operator = data.get("operator", "Equal")
    if operator not in _TOLERATION_OPERATORS:
        raise SpecError(f"{path}.operator", f"{operator!r} is not one of: {', '.join(_TOLERATION_OPERATORS)}")
    out["operator"] = operator
    if data.get("value") is not None:
        if operator == "Exists":
            raise SpecError(f"{path}.value", "an Exists toleration takes no value")
        out["value"] = _label_value(data["value"], f"{path}.value")
    if "key" not in out and operator != "Exists":
        raise SpecError(f"{path}.operator", "a toleration without a key must be operator: Exists")
    if data.get("effect") is not None:
        if data["effect"] not in _TAINT_EFFECTS:
            raise SpecError(f"{path}.effect", f"{data['effect']!r} is not one of: {', '.join(_TAINT_EFFECTS)}")
        out["effect"] = data["effect"]
    if data.get("tolerationSeconds") is not None:
        if out.get("effect") != "NoExecute":
            raise SpecError(f"{path}.tolerationSeconds", "only for effect: NoExecute")
        out["tolerationSeconds"] = _int(data["tolerationSeconds"], f"{path}.tolerationSeconds", 0, 2**31 - 1)
    return out


def _node_selector_term(data: Any, path: str) -> dict:
    _check_keys(data, path, ("matchExpressions", "matchFields"))
    term: dict[str, Any] = {}
    for kind in ("matchExpressions", "matchFields"):
        if data.get(kind) is None:
            continue
        requirements = []
        for i, item in enumerate(_list(data[kind], f"{path}.{kind}")):
            where = f"{path}.{kind}[{i}]"
            _check_keys(item, where, ("key", "operator", "values"), required=("key", "operator"))
            operator = item["operator"]
            if operator not in _NODE_OPERATORS:
                raise SpecError(f"{where}.operator", f"{operator!r} is not one of: {', '.join(_NODE_OPERATORS)}")
            values = [_label_value(str(v) if isinstance(v, int) and not isinstance(v, bool) else v,
                                   f"{where}.values[{j}]")
                      for j, v in enumerate(_list(item.get("values") or [], f"{where}.values"))]
            if operator in ("In", "NotIn") and not values:
                raise SpecError(f"{where}.values", f"{operator} needs at least one value")
            if operator in ("Exists", "DoesNotExist") and values:
                raise SpecError(f"{where}.values", f"{operator} takes no values")
            if operator in ("Gt", "Lt") and (len(values) != 1 or not values[0].lstrip("-").isdigit()):
                raise SpecError(f"{where}.values", f"{operator} needs exactly one integer")
            requirement = {"key": _label_key(item["key"], f"{where}.key"), "operator": operator}
            if values:
                requirement["values"] = values
            requirements.append(requirement)
        term[kind] = requirements
    if not term:
        raise SpecError(path, "give matchExpressions or matchFields")
    return term


def _node_affinity(data: Any, path: str) -> dict:
    """A node affinity as Kubernetes writes it (``requiredDuringSchedulingIgnoredDuringExecution``
    with ``nodeSelectorTerms``, ``preferredDuringSchedulingIgnoredDuringExecution``)."""
    required_key = "requiredDuringSchedulingIgnoredDuringExecution"
    preferred_key = "preferredDuringSchedulingIgnoredDuringExecution"
    _check_keys(data, path, (required_key, preferred_key))
    out: dict[str, Any] = {}
    if data.get(required_key) is not None:
        where = f"{path}.{required_key}"
        required = _check_keys(data[required_key], where, ("nodeSelectorTerms",), required=("nodeSelectorTerms",))
        terms = _list(required["nodeSelectorTerms"], f"{where}.nodeSelectorTerms")
        if not terms:
            raise SpecError(f"{where}.nodeSelectorTerms", "needs at least one term")
        out[required_key] = {"nodeSelectorTerms": [
            _node_selector_term(term, f"{where}.nodeSelectorTerms[{i}]") for i, term in enumerate(terms)]}
    if data.get(preferred_key) is not None:
        preferred = []
        for i, item in enumerate(_list(data[preferred_key], f"{path}.{preferred_key}")):
            where = f"{path}.{preferred_key}[{i}]"
            _check_keys(item, where, ("weight", "preference"), required=("weight", "preference"))
            preferred.append({"weight": _int(item["weight"], f"{where}.weight", 1, 100),
                              "preference": _node_selector_term(item["preference"], f"{where}.preference")})
        out[preferred_key] = preferred
    return out


@dataclass(frozen=True)
class System:
    """One launchable application.

    ``auth`` says who checks that a request comes from the server's owner: ``jupyter`` (the app
    does the hub's OAuth itself) or ``gate`` (tycho-gate sits in front; the app sees no token).
    ``network`` is where its servers may connect beyond what the site allows every server.
    """

    name: str
    containers: tuple[Container, ...]
    serve: Serve
    auth: str = "jupyter"
    volumes: tuple[Volume, ...] = ()
    security: Security = field(default_factory=Security)
    gate: GateOptions = field(default_factory=GateOptions)
    home: Home = field(default_factory=Home)
    network: Network = field(default_factory=Network)
    scheduling: Scheduling = field(default_factory=Scheduling)

    FIELDS = tuple(schema.System.model_fields)  # the keys, from the one definition

    @classmethod
    def from_dict(cls, name: str, data: Any, path: str) -> "System":
        # The structure (keys, types, single values) first, from the one definition; what
        # follows checks what spans several keys and builds the immutable System.
        schema.validate(schema.System, data, path)
        _check_keys(data, path, cls.FIELDS, required=("containers", "serve"))
        containers_data = data["containers"]
        _check_mapping(containers_data, f"{path}.containers")
        if not containers_data:
            raise SpecError(f"{path}.containers", "needs at least one container")
        containers = tuple(
            Container.from_dict(cname, cdata, f"{path}.containers.{cname}")
            for cname, cdata in containers_data.items()
        )
        by_name = {c.name: c for c in containers}

        serve_data = _check_keys(data["serve"], f"{path}.serve", ("container", "port"), required=("container", "port"))
        serve = Serve(
            container=_str(serve_data["container"], f"{path}.serve.container"),
            port=_port(serve_data["port"], f"{path}.serve.port"),
        )
        if serve.container not in by_name:
            raise SpecError(
                f"{path}.serve.container",
                f"{serve.container!r} is not one of the containers ({', '.join(by_name)})",
            )
        if serve.port not in dict(by_name[serve.container].ports).values():
            raise SpecError(
                f"{path}.serve.port",
                f"{serve.port} is not a port of container {serve.container!r}",
            )

        auth = data.get("auth", "jupyter")
        if auth not in AUTH_MODES:
            raise SpecError(f"{path}.auth", f"{auth!r} is not one of: {', '.join(AUTH_MODES)}")
        served = by_name[serve.container]
        if auth == "gate" and served.readiness is not None:
            # The kubelet probes the pod IP; a gated app listens on the pod's loopback only.
            raise SpecError(
                f"{path}.containers.{serve.container}.readiness",
                "a gated app listens on the pod's loopback, where the kubelet's probe cannot reach; "
                "remove it (the gate is ready only once the app answers)",
            )

        volumes_data = data.get("volumes") or {}
        _check_mapping(volumes_data, f"{path}.volumes")
        volumes = tuple(
            Volume.from_dict(vname, vdata, f"{path}.volumes.{vname}") for vname, vdata in volumes_data.items()
        )
        volume_names = {v.name for v in volumes}
        for container in containers:
            for volume, _ in container.mounts:
                if volume not in volume_names:
                    raise SpecError(
                        f"{path}.containers.{container.name}.mounts.{volume}", "no such volume in this system"
                    )

        seen_ports: dict[int, str] = {}
        for container in containers:
            for port_name, number in container.ports:
                if number in seen_ports:
                    raise SpecError(
                        f"{path}.containers.{container.name}.ports.{port_name}",
                        f"port {number} is already used by container {seen_ports[number]!r} (containers share the pod's network)",
                    )
                seen_ports[number] = container.name

        return cls(
            name=name,
            containers=containers,
            serve=serve,
            auth=auth,
            volumes=volumes,
            security=Security.from_dict(data.get("security"), f"{path}.security"),
            gate=_gate_options(data, auth, path),
            home=_home(data.get("home"), f"{path}.home", serve.container, by_name),
            network=Network.from_dict(data.get("network"), f"{path}.network"),
            scheduling=Scheduling.from_dict(data.get("scheduling"), f"{path}.scheduling"),
        )

    def container(self, name: str) -> Container:
        for container in self.containers:
            if container.name == name:
                return container
        raise KeyError(name)

    @property
    def served(self) -> Container:
        return self.container(self.serve.container)

    def tolerations(self) -> list[dict]:
        """The entry's tolerations, then one per GPU resource its containers ask for: clouds
        taint GPU nodes with the resource's name (GKE, AKS: ``nvidia.com/gpu``), so a pod that
        asks for GPUs must tolerate that taint to land where they are."""
        out = [json.loads(t) for t in self.scheduling.tolerations]
        for resource in dict.fromkeys(
                limits.gpu_resource for c in self.containers for limits in (c.limits, c.requests) if limits.gpus):
            toleration = {"key": resource, "operator": "Exists", "effect": "NoSchedule"}
            if toleration not in out:
                out.append(toleration)
        return out


def _home(data: Any, path: str, serve_container: str, by_name: Mapping[str, Container]) -> Home:
    home = Home.from_dict(data, path, serve_container)
    if home.container is None:
        return home
    if home.container not in by_name:
        raise SpecError(
            f"{path}.container", f"{home.container!r} is not one of the containers ({', '.join(by_name)})"
        )
    for volume, mount_path in by_name[home.container].mounts:
        if mount_path.rstrip("/") == home.path:
            raise SpecError(
                f"{path}.path",
                f"{home.path!r} is already the mount point of volume {volume!r} in container {home.container!r}",
            )
    return home


def _gate_options(data: Mapping, auth: str, path: str) -> GateOptions:
    if "gate" in data and auth != "gate":
        raise SpecError(f"{path}.gate", "only for apps with auth: gate")
    return GateOptions.from_dict(data.get("gate"), f"{path}.gate")


