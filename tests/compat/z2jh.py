"""zero-to-jupyterhub 4.4.0's hub configuration, run as its hub pod runs it.

1. **Render** z2jh's chart (read where it is, ``../shared/compat/z2jh-4.4.0``, never copied) with
   helm-python-sdk (Helm's Go SDK). ``Chart.render`` is Helm's offline template rendering: it
   asks no cluster and does not check ``kubeVersion`` (z2jh declares ``>=1.28.0-0``; the test
   bed's API server is 1.20), and ``.Capabilities.KubeVersion`` is the SDK's default, v1.36.0,
   which z2jh's templates accept. Nothing is installed on the test bed: the hub's files are
   what is used. Values are first checked against z2jh's own schema (``values.schema.yaml``:
   Helm reads only a ``.json`` schema, so ``render`` alone would accept a misspelt key).
2. **The hub pod's files**: the rendered hub Deployment's ``volumeMounts`` under
   ``/usr/local/etc/jupyterhub`` (the ConfigMap as ``config/``, the Secret as ``secret/``,
   ``jupyterhub_config.py`` and ``z2jh.py`` by ``subPath``), written to a temporary directory.
3. **The hub pod's environment**: the hub container's ``env`` (``POD_NAMESPACE`` from the
   namespace, ``CONFIGPROXY_AUTH_TOKEN`` from the rendered Secret, ``hub.extraEnv``...) and the
   variables Kubernetes sets for every Service of the namespace (``HUB_SERVICE_HOST``,
   ``PROXY_API_SERVICE_PORT``..., from the rendered Services; z2jh's config reads them through
   ``get_name_env``).
4. **Load** z2jh's ``jupyterhub_config.py`` in a subprocess (``hubpod.py``) in its own mount
   and network namespaces, which sees exactly those files at ``/usr/local/etc/jupyterhub``;
   the resulting traitlets ``Config`` comes back as JSON and is rebuilt here (see
   :func:`from_json`).
"""
from __future__ import annotations

import asyncio
import base64
import copy
import importlib
import ipaddress
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

import yaml

ROOT = Path(__file__).resolve().parents[2]
#: Where z2jh 4.4.0 is: beside the repository's clone (CI clones it next to shared/).
Z2JH_ENV = "TYCHO_Z2JH_DIR"
DEFAULT_Z2JH = ROOT.parent / "shared" / "compat" / "z2jh-4.4.0"
ETC = "/usr/local/etc/jupyterhub"
HUBPOD = Path(__file__).with_name("hubpod.py")
#: Release and namespace the chart is rendered for (the namespace of a case is set per load).
RELEASE = "z2jh"
#: What every case adds to z2jh's values: the one line a site changes to adopt tycho_spawner.
TYCHO_SPAWNER = {"hub": {"config": {"JupyterHub": {"spawner_class": "tycho_spawner.TychoSpawner"}}}}


class Z2JHMissing(RuntimeError):
    pass


def z2jh_dir() -> Path:
    """z2jh 4.4.0's directory, or an error saying where it was looked for and how to point at it."""
    path = Path(os.environ.get(Z2JH_ENV) or DEFAULT_Z2JH)
    chart = path / "jupyterhub" / "Chart.yaml"
    if not chart.is_file():
        raise Z2JHMissing(
            f"zero-to-jupyterhub 4.4.0 is not at {path} ({chart} missing). The compatibility tests "
            f"read z2jh's chart and hub configuration from where they are: clone this repository "
            f"next to shared/ (shared/compat/z2jh-4.4.0) or set {Z2JH_ENV} to that directory."
        )
    return path


def merge(base: Any, overlay: Any) -> Any:
    """Maps merged key by key (``overlay`` wins); anything else replaced by ``overlay``."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        out = copy.deepcopy(base)
        for key, value in overlay.items():
            out[key] = merge(base.get(key), value)
        return out
    return copy.deepcopy(overlay)


@lru_cache(maxsize=1)
def _chart():
    from helm_python import Chart

    return Chart.load(str(z2jh_dir() / "jupyterhub"))


@lru_cache(maxsize=1)
def _schema_validator():
    import jsonschema

    schema = yaml.safe_load((z2jh_dir() / "jupyterhub" / "values.schema.yaml").read_text())
    return jsonschema.Draft7Validator(schema)


@dataclass
class Rendered:
    """The objects the chart renders for some values."""

    values: dict
    docs: list

    def get(self, kind: str, name: str) -> dict:
        for doc in self.docs:
            if doc["kind"] == kind and doc["metadata"]["name"] == name:
                return doc
        raise KeyError(f"the chart rendered no {kind} {name!r}")

    def of_kind(self, kind: str) -> list:
        return [d for d in self.docs if d["kind"] == kind]

    @property
    def hub_deployment(self) -> dict:
        return self.get("Deployment", self.name("hub"))

    def name(self, short: str) -> str:
        """A resource's full name, as z2jh's hub reads it (``get_name``: the ConfigMap's keys)."""
        return self.get("ConfigMap", self._hub_name())["data"][short]

    def _hub_name(self) -> str:
        names = [d["metadata"]["name"] for d in self.of_kind("ConfigMap")
                 if "jupyterhub_config.py" in d.get("data", {})]
        if len(names) != 1:
            raise KeyError(f"expected one hub ConfigMap, found {names}")
        return names[0]


def render(overlay: Optional[dict] = None, namespace: str = "z2jh") -> Rendered:
    """z2jh's chart rendered for its defaults + ``overlay`` + spawner_class TychoSpawner."""
    values = merge(overlay or {}, TYCHO_SPAWNER)
    chart = _chart()
    errors = sorted(_schema_validator().iter_errors(chart.merge_values(values)), key=lambda e: list(e.path))
    if errors:
        raise ValueError("values refused by z2jh's schema: " + "; ".join(
            f"{'.'.join(map(str, e.path)) or '(top)'}: {e.message}" for e in errors))
    manifests = chart.render(values, name=RELEASE, namespace=namespace)
    docs = []
    for path, text in sorted(manifests.items()):
        if path.endswith((".yaml", ".yml")):
            docs.extend(d for d in yaml.safe_load_all(text) if d)
    return Rendered(values=values, docs=docs)


# ---------------------------------------------------------------------------- the hub pod


def _volume_files(rendered: Rendered, volume: dict) -> dict:
    """key -> bytes of a configMap or secret volume (with ``items`` if it has them)."""
    if "configMap" in volume:
        source = rendered.get("ConfigMap", volume["configMap"]["name"])
        files = {k: v.encode() for k, v in (source.get("data") or {}).items()}
        files.update({k: base64.b64decode(v) for k, v in (source.get("binaryData") or {}).items()})
        items = volume["configMap"].get("items")
    elif "secret" in volume:
        source = rendered.get("Secret", volume["secret"]["secretName"])
        files = {k: base64.b64decode(v) for k, v in (source.get("data") or {}).items()}
        files.update({k: v.encode() for k, v in (source.get("stringData") or {}).items()})
        items = volume["secret"].get("items")
    else:
        raise ValueError(f"hub volume {volume['name']!r} is neither a ConfigMap nor a Secret")
    if items:
        files = {item["path"]: files[item["key"]] for item in items}
    return files


def hub_container(rendered: Rendered) -> dict:
    containers = rendered.hub_deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "hub")


def write_hub_files(rendered: Rendered, directory: Path) -> list:
    """Write what the hub pod mounts under /usr/local/etc/jupyterhub; return the mounts
    (host source, path in the pod, "dir" or "file") in the order of the pod's volumeMounts."""
    pod = rendered.hub_deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    mounts = []
    for index, mount in enumerate(hub_container(rendered).get("volumeMounts") or []):
        target = mount["mountPath"].rstrip("/")
        if not target.startswith(ETC):
            continue  # the database's volume (/srv/jupyterhub): the hub's cwd here
        files = _volume_files(rendered, volumes[mount["name"]])
        source = directory / f"{index}-{mount['name']}"
        source.mkdir(parents=True)
        for key, data in files.items():
            (source / key).write_bytes(data)
            os.chmod(source / key, 0o644)
        if mount.get("subPath"):
            mounts.append((str(source / mount["subPath"]), target, "file"))
        else:
            mounts.append((str(source), target, "dir"))
    return mounts


def service_env(rendered: Rendered) -> dict:
    """The variables Kubernetes sets in every container for the Services of its namespace
    (the kubelet's "service links"), with made-up cluster IPs."""
    env = {}
    network = ipaddress.ip_network("10.96.0.0/16")
    for index, service in enumerate(sorted(rendered.of_kind("Service"), key=lambda s: s["metadata"]["name"])):
        spec = service["spec"]
        if spec.get("clusterIP") == "None":
            continue
        host = str(network[10 + index])
        prefix = re.sub(r"[^A-Z0-9]", "_", service["metadata"]["name"].upper())
        ports = spec.get("ports") or []
        env[f"{prefix}_SERVICE_HOST"] = host
        if ports:
            env[f"{prefix}_SERVICE_PORT"] = str(ports[0]["port"])
            first = ports[0]
            protocol = first.get("protocol", "TCP")
            env[f"{prefix}_PORT"] = f"{protocol.lower()}://{host}:{first['port']}"
        for port in ports:
            protocol = port.get("protocol", "TCP")
            if port.get("name"):
                env[f"{prefix}_SERVICE_PORT_{re.sub(r'[^A-Z0-9]', '_', port['name'].upper())}"] = str(port["port"])
            base = f"{prefix}_PORT_{port['port']}_{protocol}"
            env[base] = f"{protocol.lower()}://{host}:{port['port']}"
            env[f"{base}_PROTO"] = protocol.lower()
            env[f"{base}_PORT"] = str(port["port"])
            env[f"{base}_ADDR"] = host
    return env


def hub_env(rendered: Rendered, namespace: str) -> dict:
    """The hub container's environment as Kubernetes resolves it in ``namespace``."""
    env = service_env(rendered)
    for var in hub_container(rendered).get("env") or []:
        if "value" in var:
            env[var["name"]] = str(var["value"])
            continue
        source = var.get("valueFrom") or {}
        if "fieldRef" in source:
            field_path = source["fieldRef"]["fieldPath"]
            values = {"metadata.namespace": namespace, "metadata.name": "hub-0", "spec.nodeName": "tycho-node-1",
                      "status.podIP": "10.213.0.2"}
            env[var["name"]] = values[field_path]
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            secret = _volume_files(rendered, {"name": "", "secret": {"secretName": ref["name"]}})
            env[var["name"]] = secret[ref["key"]].decode()
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            env[var["name"]] = rendered.get("ConfigMap", ref["name"])["data"][ref["key"]]
        else:
            raise ValueError(f"hub env {var['name']}: cannot resolve {source}")
    return env


@dataclass
class HubPod:
    """A directory holding a hub pod's files, and how to run a process that sees them."""

    rendered: Rendered
    namespace: str
    directory: Path
    mounts: list = field(default_factory=list)

    @classmethod
    def prepare(cls, rendered: Rendered, namespace: str, directory: Path) -> "HubPod":
        directory.mkdir(parents=True, exist_ok=True)
        files = Path(tempfile.mkdtemp(prefix="files-", dir=directory))
        os.chmod(directory, 0o755)
        os.chmod(files, 0o755)
        return cls(rendered, namespace, directory, write_hub_files(rendered, files))

    def environment(self) -> dict:
        """The hub container's environment, plus what the image and this machine provide:
        PATH (this Python's directory first), HOME, LANG, and PYTHONPATH holding this checkout
        (where the tests' hook module lives; a hub image would have it installed)."""
        env = hub_env(self.rendered, self.namespace)
        env.update({
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "/usr/bin:/bin")]),
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(ROOT),
        })
        return env

    def command(self, spec: dict) -> list:
        """The argv that runs ``hubpod.py`` with ``spec`` in its own mount and network namespaces."""
        unshare = shutil.which("unshare")
        if not unshare:
            raise RuntimeError("unshare (util-linux) is needed to give the hub its own /usr/local/etc")
        spec = dict(spec, mounts=self.mounts)
        spec_file = Path(tempfile.mkstemp(prefix="spec-", suffix=".json", dir=self.directory)[1])
        spec_file.write_text(json.dumps(spec))
        return [unshare, "--mount", "--net", "--propagation", "private", "--",
                sys.executable, str(HUBPOD), str(spec_file)]

    def hub_argv(self) -> list:
        """The hub container's command (z2jh: ``jupyterhub --config ... --upgrade-db``), run by
        this Python (the environment under test), not whatever ``jupyterhub`` PATH finds."""
        container = hub_container(self.rendered)
        argv = list(container.get("command") or []) + list(container.get("args") or [])
        if not argv or argv[0] != "jupyterhub":
            raise ValueError(f"unexpected hub command {argv}")
        return [sys.executable, "-m", "jupyterhub"] + argv[1:]

    async def load_config(self):
        """z2jh's jupyterhub_config.py, loaded as the hub pod loads it: a traitlets Config."""
        out_dir = Path(tempfile.mkdtemp(prefix="config-", dir=self.directory))
        output = out_dir / "config.json"
        argv = self.command({"action": "config", "output": str(output), "cwd": str(out_dir)})
        proc = await asyncio.create_subprocess_exec(
            *argv, env=self.environment(), cwd=str(out_dir),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        text = out.decode(errors="replace")
        if proc.returncode != 0 or not output.exists():
            raise RuntimeError(f"z2jh's jupyterhub_config.py failed (exit {proc.returncode}):\n{text}")
        return from_json(json.loads(output.read_text())), text


# ---------------------------------------------------------------------------- config transfer


def _import(ref: str):
    module, _, qualname = ref.partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _decode(value):
    if isinstance(value, dict):
        if set(value) == {"$callable"}:
            return _import(value["$callable"])
        if set(value) == {"$bytes"}:
            return base64.b64decode(value["$bytes"])
        if set(value) == {"$lazy"}:
            from traitlets.config.loader import LazyConfigValue

            lazy = LazyConfigValue()
            data = {k: _decode(v) for k, v in value["$lazy"].items()}
            if "extend" in data:
                lazy.extend(data["extend"])
            if "prepend" in data:
                lazy.prepend(data["prepend"])
            for index, item in data.get("inserts", []):
                lazy.insert(index, item)
            if "update" in data:
                lazy.update(data["update"])
            return lazy
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def from_json(data: dict):
    """The traitlets Config that ``hubpod.py`` wrote as JSON."""
    from traitlets.config import Config

    return Config(_decode(data))


async def load_hub_config(overlay: Optional[dict], namespace: str, directory: Path):
    """Render z2jh for ``overlay`` and load its hub config for a hub in ``namespace``.

    Returns (rendered chart, Config, what the config printed)."""
    rendered = render(overlay, namespace=namespace)
    pod = HubPod.prepare(rendered, namespace, directory)
    config, output = await pod.load_config()
    return rendered, config, output
