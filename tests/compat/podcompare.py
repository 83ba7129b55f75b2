"""KubeSpawner's pod against TychoSpawner's, field by field, except what a catalog entry owns.

Both pods are read back from the API server while running (so both got the same defaulting and
admission), normalized (:func:`normalize`), flattened to ``path -> value`` (:func:`flatten`),
and compared. Every path where they differ must match an entry of :data:`OWNED`, the one list
of what a catalog entry decides instead of the site; anything else is a difference the tests
report. Lists of named things are keyed by name so that paths are stable:
``spec.containers[notebook].env[MEM_LIMIT].value``.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable

APP = "spec.containers[notebook]"


@dataclass(frozen=True)
class Owned:
    """A part of the pod a catalog entry owns: ``field`` (as the README shows it), ``paths``
    (patterns on flattened paths, ``*`` any text), the z2jh value (and KubeSpawner setting) it
    comes from, the catalog field that decides, and how the two combine."""

    field: str
    paths: tuple
    z2jh: str
    catalog: str
    how: str

    def matches(self, path: str) -> bool:
        return any(_pattern(p).fullmatch(path) for p in self.paths)


@lru_cache(maxsize=None)
def _pattern(glob: str) -> "re.Pattern":
    """``*`` matches anything; every other character (brackets included) is itself."""
    return re.compile(".*".join(re.escape(part) for part in glob.split("*")))


def _below(*paths: str) -> tuple:
    """Each path and everything below it (``a`` covers ``a``, ``a.b``, ``a[0]``)."""
    return tuple(q for p in paths for q in (p, f"{p}.*", f"{p}[*"))


def _env(*names: str) -> tuple:
    return tuple(q for n in names for q in (f"{APP}.env[{n}].*",))


#: What a catalog entry owns in the pod, and only that (this table is the README's).
OWNED = (
    Owned("app container `image`", _below(f"{APP}.image"),
          "`singleuser.image.name`/`tag` (`KubeSpawner.image`)",
          "`system.containers.<app>.image`", "replaced"),
    Owned("app container `command`, `args`", _below(f"{APP}.command", f"{APP}.args"),
          "`singleuser.cmd` (`Spawner.cmd`, `Spawner.args`; KubeSpawner puts them in `args`, "
          "under the image's ENTRYPOINT)",
          "`system.containers.<app>.command` / `args`", "replaced (the entry's command, not the image's entrypoint)"),
    Owned("app container `ports`", _below(f"{APP}.ports"),
          "`KubeSpawner.port` (8888; z2jh sets none), named `notebook-port`",
          "`system.serve.port`, `system.containers.<app>.ports`",
          "replaced; the served port keeps the name `notebook-port` (z2jh's singleuser NetworkPolicy admits it)"),
    Owned("app container `readinessProbe`", _below(f"{APP}.readinessProbe"), "none (KubeSpawner sets no probe)",
          "`system.containers.<app>.readiness`", "added by the entry"),
    Owned("app container `workingDir`", _below(f"{APP}.workingDir"),
          "`KubeSpawner.working_dir` (z2jh sets none: the image's WORKDIR)",
          "`system.containers.<app>.working_dir`", "the entry's when it sets one, else the site's"),
    Owned("env `JUPYTER_IMAGE`, `JUPYTER_IMAGE_SPEC`", _env("JUPYTER_IMAGE", "JUPYTER_IMAGE_SPEC"),
          "`singleuser.image` (KubeSpawner sets both to its image)",
          "`system.containers.<app>.image`", "replaced: the image that runs"),
    Owned("env `MEM_LIMIT`, `MEM_GUARANTEE`, `CPU_LIMIT`, `CPU_GUARANTEE`",
          _env("MEM_LIMIT", "MEM_GUARANTEE", "CPU_LIMIT", "CPU_GUARANTEE"),
          "`singleuser.memory.limit`/`guarantee`, `singleuser.cpu.limit`/`guarantee`",
          "`system.containers.<app>.limits` / `requests` (`memory`, `cpu`)",
          "each: the entry's when it sets one (the built-in `size` choice sets all four), else the site's"),
    Owned("app container `resources` `cpu`, `memory`",
          _below(*(f"{APP}.resources.{k}.{r}" for k in ("limits", "requests") for r in ("cpu", "memory")))
          + (f"{APP}.resources.limits", f"{APP}.resources.requests"),
          "`singleuser.cpu.*`, `singleuser.memory.*`",
          "`system.containers.<app>.limits` / `requests`",
          "key by key: the entry's `cpu`/`memory` when set, else the site's; other keys "
          "(`singleuser.extraResource`: ephemeral-storage, GPUs...) are always the site's"),
    Owned("env `JUPYTERHUB_DEFAULT_URL`", _env("JUPYTERHUB_DEFAULT_URL"),
          "`singleuser.defaultUrl` (`Spawner.default_url`)",
          "the entry's env `JUPYTERHUB_DEFAULT_URL` (the built-in `ui` choice: `/lab` or `/tree`)",
          "the entry's when it sets one, else the site's"),
    Owned("app container `securityContext` `runAsUser`, `runAsGroup`, `runAsNonRoot`, "
          "`allowPrivilegeEscalation`, `capabilities`, `privileged`",
          _below(*(f"{APP}.securityContext.{k}" for k in ("runAsUser", "runAsGroup", "runAsNonRoot",
                                                          "allowPrivilegeEscalation", "capabilities", "privileged")))
          + (f"{APP}.securityContext",),
          "`singleuser.uid`, `singleuser.allowPrivilegeEscalation` (`KubeSpawner.uid`, `gid`, `privileged`, "
          "`container_security_context` keys of these names)",
          "`system.security.run_as_user` / `run_as_group`",
          "replaced: always `runAsNonRoot`, no privilege escalation, capabilities drop ALL; "
          "the site's other container `securityContext` keys stay"),
    Owned("pod `securityContext.fsGroup`", _below("spec.securityContext.fsGroup") + ("spec.securityContext",),
          "`singleuser.fsGid` (`KubeSpawner.fs_gid`)",
          "`system.security.fs_group`", "replaced; the site's other pod `securityContext` keys stay"),
    # (API servers before 1.25 mirror the field into the legacy annotation.)
    Owned("pod `securityContext.seccompProfile`", _below("spec.securityContext.seccompProfile")
          + ("metadata.annotations[seccomp.security.alpha.kubernetes.io/pod]",),
          "none (`KubeSpawner.pod_security_context` when a site sets it)", "none: the spawner's",
          "added: `RuntimeDefault` unless the site sets a profile"),
    Owned("env `JUPYTERHUB_API_TOKEN`, `JPY_API_TOKEN`", _env("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN"),
          "none (KubeSpawner writes the token in the pod as a plain value)", "none: the spawner's",
          "from a Secret the pod owns (`valueFrom.secretKeyRef`, `TychoSpawner.hub_token_secret`), "
          "never in the pod"),
    Owned("labels `tycho-spawner/server`, `tycho-spawner/profile`",
          ("metadata.labels[tycho-spawner/server]", "metadata.labels[tycho-spawner/profile]"),
          "none", "the entry's key (`tycho-spawner/profile`); the pod's name (`tycho-spawner/server`)",
          "added (the server's NetworkPolicy selects on `tycho-spawner/server`)"),
)

#: Values that differ between any two starts, not between the spawners: the server's API token.
PER_START_ENV = ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN")
_DROP_METADATA = ("uid", "resourceVersion", "managedFields", "creationTimestamp", "selfLink",
                  "generation", "deletionTimestamp", "deletionGracePeriodSeconds")
_KEYED_LISTS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name", "volumes": "name",
    "env": "name", "ports": "name", "volumeMounts": "mountPath", "imagePullSecrets": "name",
    "tolerations": None, "hostAliases": "ip",
}


def normalize(pod: dict) -> dict:
    """What the spawner asked for: no status, no server-set metadata, no node, no token."""
    pod = copy.deepcopy(pod)
    pod.pop("status", None)
    metadata = pod.get("metadata") or {}
    for key in _DROP_METADATA:
        metadata.pop(key, None)
    spec = pod.get("spec") or {}
    spec.pop("nodeName", None)
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        for var in container.get("env") or []:
            if var.get("name") in PER_START_ENV:
                var["value"] = "<the server's token>"
    return pod


def _key(item: Any, field: str | None, index: int) -> str:
    if isinstance(item, dict) and field and field in item:
        return str(item[field])
    return str(index)


def flatten(value: Any, path: str = "") -> dict:
    """``path -> leaf`` for a JSON value; named lists keyed by name, empty containers kept."""
    out = {}
    if isinstance(value, dict):
        if not value:
            out[path] = {}
        for k, v in value.items():
            sub = f"{path}[{k}]" if path.endswith(("labels", "annotations", "nodeSelector")) else (
                f"{path}.{k}" if path else k)
            out.update(flatten(v, sub))
    elif isinstance(value, list):
        if not value:
            out[path] = []
        field = _KEYED_LISTS.get(path.rsplit(".", 1)[-1].split("[")[0], None)
        for i, v in enumerate(value):
            out.update(flatten(v, f"{path}[{_key(v, field, i)}]"))
    else:
        out[path] = value
    return out


@dataclass(frozen=True)
class Difference:
    path: str
    kube: Any
    tycho: Any

    def __str__(self) -> str:
        return f"{self.path}: KubeSpawner {self.kube!r}, TychoSpawner {self.tycho!r}"


_MISSING = "<absent>"


def differences(kube_pod: dict, tycho_pod: dict) -> list:
    """Every leaf where the normalized pods differ (order of named lists ignored)."""
    a, b = flatten(normalize(kube_pod)), flatten(normalize(tycho_pod))
    return [Difference(p, a.get(p, _MISSING), b.get(p, _MISSING))
            for p in sorted(set(a) | set(b)) if a.get(p, _MISSING) != b.get(p, _MISSING)]


def owner_of(path: str):
    return next((o for o in OWNED if o.matches(path)), None)


def not_owned(diffs: Iterable[Difference]) -> list:
    return [d for d in diffs if owner_of(d.path) is None]


def owned(diffs: Iterable[Difference]) -> list:
    return [d for d in diffs if owner_of(d.path) is not None]


_REFERENCE = re.compile(r"\$\(([^)]+)\)")


def unresolved_references(pod: dict) -> dict:
    """container -> env variables whose ``$(VAR)`` references a variable not defined earlier in
    that container's list (Kubernetes then leaves the text as it is)."""
    out = {}
    for container in (pod.get("spec") or {}).get("containers") or []:
        seen, bad = set(), []
        names = {v["name"] for v in container.get("env") or []}
        for var in container.get("env") or []:
            for ref in _REFERENCE.findall(var.get("value") or ""):
                if ref in names and ref not in seen:
                    bad.append(f"{var['name']} -> $({ref})")
            seen.add(var["name"])
        if bad:
            out[container["name"]] = bad
    return out


def owned_table() -> str:
    """OWNED as the README's markdown table."""
    rows = ["| pod field | z2jh value (KubeSpawner setting) | decided by (catalog field) | how |",
            "|---|---|---|---|"]
    rows += [f"| {o.field} | {o.z2jh} | {o.catalog} | {o.how} |" for o in OWNED]
    return "\n".join(rows) + "\n"
