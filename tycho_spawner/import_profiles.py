"""KubeSpawner profiles (zero-to-jupyterhub's ``singleuser.profileList``) as catalog entries.

A site moving from zero-to-jupyterhub has its choices written as KubeSpawner's ``profile_list``:
profiles whose ``kubespawner_override`` replaces spawner settings, and whose ``profile_options``
are drop-downs whose choices override more of them. Here each profile becomes a Jupyter entry
shaped like the built-in ``base`` entry (passed in by the caller, so the two cannot drift) with
its overrides applied to the entry's ``system``; each option becomes a ``choices`` item whose
options ``set`` the same values; placement (node selector, tolerations, node affinity, priority
class) becomes the entry's ``system.scheduling``, and a typed image (``unlisted_choice`` with a
``validation_regex``) a choice of kind ``image``. What the catalog cannot express (volumes,
hooks, pod affinities, any other typed value...) is not guessed at: it comes back as a
:class:`Notice` naming the profile, the option and the KubeSpawner key, for a person to decide.

The converted entries keep KubeSpawner's meaning, not just its spelling: memory in KubeSpawner
counts K/M/G/T in powers of 1024 (``"2G"`` is 2 GiB), so it becomes ``2Gi``; a KubeSpawner
limit of 0 means "no limit"; GPUs can only be asked for as a limit in Kubernetes.

Pure: no files, no environment, no hub or cluster code (``tycho import-profiles`` reads the
YAML and prints). Every entry is checked with :func:`tycho_spawner.profiles.parse_catalog`
before it is returned; one that does not parse is left out with a notice saying why.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Collection, Iterable, Mapping, Optional

from slugify import slugify  # what KubeSpawner derives missing slugs with

from .errors import CatalogError, SpecError
from .model import parse_quantity
from .profiles import parse_catalog

NOTEBOOK = "containers.notebook"
IMAGE_PATH = f"{NOTEBOOK}.image"
MAX_KEY = 63
_KEY_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
# KubeSpawner formats environment values, working_dir and default_url with the user's names.
_PLACEHOLDER_RE = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")
# jupyterhub.traitlets.ByteSpecification: a number and one of these, in powers of 1024.
_BYTE_UNITS = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_BINARY_SUFFIXES = (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10))
GPU_RESOURCE = "nvidia.com/gpu"
MAX_GPUS = 64

PROFILE_FIELDS = ("display_name", "description", "slug", "default", "kubespawner_override", "profile_options")
OPTION_FIELDS = ("display_name", "choices", "unlisted_choice")
CHOICE_FIELDS = ("display_name", "description", "default", "kubespawner_override")
#: KubeSpawner settings that place the pod, and where an entry says the same
#: (``system.scheduling``); the others (pod affinities, the scheduler) stay site-wide.
SCHEDULING = {
    "node_selector": "scheduling.node_selector",
    "tolerations": "scheduling.tolerations",
    "node_affinity_required": "scheduling.node_affinity.requiredDuringSchedulingIgnoredDuringExecution",
    "node_affinity_preferred": "scheduling.node_affinity.preferredDuringSchedulingIgnoredDuringExecution",
    "priority_class_name": "scheduling.priority_class",
}
SITE_ONLY_SCHEDULING = (
    "pod_affinity_required", "pod_affinity_preferred", "pod_anti_affinity_required",
    "pod_anti_affinity_preferred", "scheduler_name",
)
#: How an entry's scheduling combines with the site's, where KubeSpawner's override replaced it.
_COMBINES = {
    "node_selector": "its keys replace the site's one by one (KubeSpawner replaced the whole selector)",
    "tolerations": "added to the site's (KubeSpawner replaced them)",
    "node_affinity_required": "must hold as well as the site's (KubeSpawner replaced them)",
    "node_affinity_preferred": "added to the site's (KubeSpawner replaced them)",
}
#: Old KubeSpawner names, still accepted by KubeSpawner 7 (``_deprecated_traits``).
ALIASES = {
    "image_spec": "image",
    "singleuser_image_spec": "image",
    "singleuser_uid": "uid",
    "singleuser_fs_gid": "fs_gid",
    "singleuser_working_dir": "working_dir",
}


class ProfileListError(SpecError):
    """The input holds no KubeSpawner profile list to import (wrong shape, empty, unreadable)."""


@dataclass(frozen=True)
class Notice:
    """One thing not carried over (or changed on the way), and what to do about it."""

    where: str  # "profile gpu", "profile demo-1, option image, choice base", "singleuser"
    setting: str  # the KubeSpawner key (or profile field) concerned
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.setting}: {self.reason}"


@dataclass(frozen=True)
class ImportResult:
    """The imported entries (as JSON: immutable), the built-in keys to disable, the notices."""

    entries_json: str
    disabled: tuple[str, ...]
    notices: tuple[Notice, ...]

    @property
    def entries(self) -> dict:
        return json.loads(self.entries_json)

    def document(self) -> dict:
        """The catalog file: the entries, then ``{disabled: true}`` for each built-in entry.

        A site's catalog files are merged over the built-in catalog: without these, the hub would
        offer the built-in apps next to the site's profiles and have two defaults.
        """
        catalog = self.entries
        catalog.update({key: {"disabled": True} for key in self.disabled})
        return {"catalog": catalog}


@dataclass(frozen=True)
class Mapped:
    """Catalog ``set`` patches (dotted path, value; None deletes) and notices for an override."""

    patches: tuple[tuple[str, Any], ...] = ()
    notices: tuple[Notice, ...] = ()

    def __add__(self, other: "Mapped") -> "Mapped":
        return Mapped(self.patches + other.patches, self.notices + other.notices)


def _set(path: str, value: Any) -> Mapped:
    return Mapped(patches=((path, value),))


def _skip(where: str, setting: str, reason: str) -> Mapped:
    return Mapped(notices=(Notice(where, setting, reason),))


#: zero-to-jupyterhub's name for a KubeSpawner setting, where the chart has one.
Z2JH_NAMES = {
    "environment": "singleuser.extraEnv",
    "extra_annotations": "singleuser.extraAnnotations",
    "extra_containers": "singleuser.extraContainers",
    "extra_labels": "singleuser.extraLabels",
    "extra_pod_config": "singleuser.extraPodConfig",
    "extra_resource_guarantees": "singleuser.extraResource.guarantees",
    "extra_resource_limits": "singleuser.extraResource.limits",
    "image_pull_policy": "singleuser.image.pullPolicy",
    "image_pull_secrets": "singleuser.image.pullSecrets",
    "init_containers": "singleuser.initContainers",
    "lifecycle_hooks": "singleuser.lifecycleHooks",
    "node_affinity_preferred": "singleuser.extraNodeAffinity.preferred",
    "node_affinity_required": "singleuser.extraNodeAffinity.required",
    "node_selector": "singleuser.nodeSelector",
    "pod_affinity_preferred": "singleuser.extraPodAffinity.preferred",
    "pod_affinity_required": "singleuser.extraPodAffinity.required",
    "pod_anti_affinity_preferred": "singleuser.extraPodAntiAffinity.preferred",
    "pod_anti_affinity_required": "singleuser.extraPodAntiAffinity.required",
    "service_account": "singleuser.serviceAccountName",
    "tolerations": "singleuser.extraTolerations",
    "volume_mounts": "singleuser.storage.extraVolumeMounts",
    "volumes": "singleuser.storage.extraVolumes",
}


def _site_wide(key: str) -> str:
    """The hint for a setting an entry cannot carry: the site's own value reaches every entry."""
    z2jh = Z2JH_NAMES.get(key, "singleuser.*")
    return f"the site-wide c.KubeSpawner.{key} (z2jh: {z2jh}) still applies to every entry"


# --------------------------------------------------------------------------- keys


def is_catalog_key(value: Any) -> bool:
    """Whether ``value`` is usable as it is (the catalog's rule, checked here to pick a fallback)."""
    return isinstance(value, str) and len(value) <= MAX_KEY and bool(_KEY_RE.match(value))


def kubespawner_slug(profile: Mapping) -> str:
    """The slug KubeSpawner gives a profile: its own, else its display name through python-slugify.

    Same call as ``KubeSpawner._get_initialized_profile_list``, so a derived key is the one the
    site's users (and scripts calling the REST API) already knew.
    """
    if "slug" in profile:
        return str(profile["slug"])
    return slugify(str(profile.get("display_name", "")))


def key_slug(text: str) -> str:
    """A catalog key made from any text: KubeSpawner's slug of it, cut to 63 characters."""
    return slugify(text)[:MAX_KEY].rstrip("-")


def unique_key(candidates: Iterable[str], taken: Collection[str], fallback: str) -> str:
    """The first candidate that is a valid key, with -2, -3... appended while ``taken`` has it."""
    base = next((c for c in candidates if is_catalog_key(c)), fallback)
    key, number = base, 2
    while key in taken:
        suffix = f"-{number}"
        key = base[: MAX_KEY - len(suffix)].rstrip("-") + suffix
        number += 1
    return key


def _why_not_kept(wanted: str, builtin_keys: Collection[str] = ()) -> str:
    """Why a key KubeSpawner used could not be kept: the first line of a rename notice."""
    if not is_catalog_key(wanted):
        return f"{wanted!r} is not a valid catalog key (lowercase letters, digits and '-', at most {MAX_KEY})"
    if wanted in builtin_keys:
        return f"{wanted!r} is a built-in entry's key (merged over it, the two entries would mix)"
    return f"{wanted!r} is already the key of another one"


# --------------------------------------------------------------------------- values


def cpu_quantity(value: Any) -> Optional[str]:
    """A KubeSpawner CPU count (a number, 0.5 = half a CPU) as a Kubernetes quantity.

    Strings are not numbers to KubeSpawner, but one that is a valid Kubernetes quantity
    ("500m") has only one meaning, so it is kept as written.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            return None
        return format(Decimal(str(value)).normalize(), "f")
    return value if _is_quantity(value) else None


def memory_quantity(value: Any) -> Optional[str]:
    """A KubeSpawner memory size as the Kubernetes quantity of the same number of bytes.

    KubeSpawner's ``mem_limit``/``mem_guarantee`` (jupyterhub's ByteSpecification) read "2G"
    as 2 * 1024**3 bytes, which Kubernetes writes "2Gi" ("2G" there is 2 * 10**9: 7% less).
    Plain numbers are bytes in both and stay as written. A string KubeSpawner would refuse but
    that is a valid Kubernetes quantity ("2Gi") is kept: it has only one meaning.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            return None
        return str(int(value))
    if not isinstance(value, str):
        return None
    unit = _BYTE_UNITS.get(value[-1:])
    if unit is not None:
        try:
            number = float(value[:-1])
        except ValueError:
            number = None
        if number is not None and math.isfinite(number) and number >= 0:
            return binary_quantity(int(number * unit))
    return value if _is_quantity(value) else None


def binary_quantity(count: int) -> str:
    """A byte count in the largest binary unit that divides it exactly (1610612736 -> 1536Mi)."""
    for suffix, unit in _BINARY_SUFFIXES:
        if count and count % unit == 0:
            return f"{count // unit}{suffix}"
    return str(count)


def _is_gpu(resource: str) -> bool:
    """NVIDIA's, AMD's and Intel's GPU resources and NVIDIA's MIG slices."""
    return (resource == GPU_RESOURCE or resource.endswith("/gpu") or resource.startswith("gpu.intel.com/")
            or resource.startswith("nvidia.com/mig-"))


def gpu_count(value: Any) -> Optional[int]:
    """A GPU count from ``extra_resource_limits`` (written "1" or 1), within the catalog's range."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and 0 <= value <= MAX_GPUS:
        return value
    return None


def _is_quantity(value: Any) -> bool:
    try:
        parse_quantity(value, "")
    except SpecError:
        return False
    return True


def _placeholders(text: str) -> list[str]:
    return _PLACEHOLDER_RE.findall(text)


def _per_user(where: str, setting: str, found: list[str]) -> Mapped:
    return _skip(
        where, setting,
        f"not carried over: KubeSpawner fills in {', '.join(found)} for each user; a catalog value is "
        f"the same for every user",
    )


# --------------------------------------------------------------------------- override keys


def _image(key: str, value: Any, where: str) -> Mapped:
    """image (and its old name image_spec): the notebook container's image, checked as the model does."""
    if isinstance(value, str) and value and not any(c.isspace() for c in value):
        return _set(IMAGE_PATH, value)
    return _skip(where, key, f"not carried over: {value!r} is not an image reference")


def _resource(field: str, kind: str, convert: Callable[[Any], Optional[str]], meaning: str):
    """A handler for one of cpu_limit, cpu_guarantee, mem_limit, mem_guarantee."""
    path = f"{NOTEBOOK}.{kind}.{field}"

    def handle(key: str, value: Any, where: str) -> Mapped:
        if value is None or value == 0:  # KubeSpawner sets no limit/request for these
            return _set(path, None)
        quantity = convert(value)
        if quantity is None:
            return _skip(where, key, f"not carried over: {value!r} is not {meaning}")
        return _set(path, quantity)

    return handle


def _extra_resources(key: str, value: Any, where: str) -> Mapped:
    """extra_resource_limits / extra_resource_guarantees: a GPU resource becomes limits.gpus
    (a count of nvidia.com/gpu, or ``{count, resource}`` for AMD's, Intel's, a MIG slice).

    Kubernetes takes an extended resource such as a GPU as a limit (a request alone is refused,
    and a request must equal the limit), so a GPU guarantee is carried as that limit too.
    """
    if not isinstance(value, Mapping):
        return _skip(where, key, f"not carried over: expected a mapping of resource: count, got {value!r}")
    out = Mapped()
    for resource, count in value.items():
        setting = f"{key}.{resource}"
        if not _is_gpu(str(resource)):
            out += _skip(
                where, setting,
                f"not carried over: the catalog has GPUs (limits.gpus) and no other "
                f"extended resources; {_site_wide(key)}",
            )
            continue
        gpus = None if count is None else gpu_count(count)
        if count is not None and gpus is None:
            out += _skip(where, setting, f"not carried over: {count!r} is not a GPU count from 0 to {MAX_GPUS}")
            continue
        if gpus is not None and resource != GPU_RESOURCE:
            gpus = {"count": gpus, "resource": str(resource)}
        out += _set(f"{NOTEBOOK}.limits.gpus", gpus)
    return out


def _default_url(key: str, value: Any, where: str) -> Mapped:
    """default_url is JUPYTERHUB_DEFAULT_URL in the server's environment, as the built-in `ui` choice sets it."""
    path = f"{NOTEBOOK}.env.JUPYTERHUB_DEFAULT_URL"
    if value is None:
        return _set(path, None)
    if not isinstance(value, str):
        return _skip(where, key, f"not carried over: {value!r} is not a URL path")
    found = _placeholders(value)
    if found:
        return _per_user(where, key, found)
    return _set(path, value)


def _environment(key: str, value: Any, where: str) -> Mapped:
    """Plain values become the notebook container's env; a valueFrom source stays site-wide."""
    if not isinstance(value, Mapping):
        return _skip(where, key, f"not carried over: expected a mapping of NAME: value, got {value!r}")
    out = Mapped()
    for name, item in value.items():
        setting = f"{key}.{name}"
        if not isinstance(name, str) or not _ENV_NAME_RE.match(name):
            # '.' is a valid variable name character but would split a catalog `set` path
            out += _skip(where, setting, "not carried over: not a variable name a catalog entry can set")
        elif item is None:
            out += _set(f"{NOTEBOOK}.env.{name}", None)
        elif isinstance(item, Mapping):
            out += _skip(
                where, setting,
                "not carried over: a Kubernetes EnvVar (valueFrom: a Secret, ConfigMap or field) is not a "
                f"catalog env value, which is a string; {_site_wide('environment')}: set it there",
            )
        elif isinstance(item, bool) or not isinstance(item, (str, int, float)):
            out += _skip(where, setting, f"not carried over: {item!r} is not a string")
        elif _placeholders(str(item)):
            out += _per_user(where, setting, _placeholders(str(item)))
        else:
            out += _set(f"{NOTEBOOK}.env.{name}", str(item))
    return out


def _command(field: str):
    """cmd (a string or a list, as jupyterhub's Command trait) and args (a list) of the server."""
    path = f"{NOTEBOOK}.{field}"

    def handle(key: str, value: Any, where: str) -> Mapped:
        if value is None:
            return _set(path, None)
        if isinstance(value, str) and field == "command":
            return _set(path, [value])
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return _set(path, list(value))
        return _skip(where, key, f"not carried over: {value!r} is not a list of strings")

    return handle


def _security(field: str):
    """uid, gid, fs_gid: the identity of the app. Root (uid 0) is refused by the catalog."""
    path = f"security.{field}"

    def handle(key: str, value: Any, where: str) -> Mapped:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
            return _skip(
                where, key,
                f"not carried over: {value!r} is not a numeric id; a catalog entry always gives one "
                f"(system.{path})",
            )
        if field == "run_as_user" and value == 0:
            return _skip(
                where, key,
                "not carried over: 0 is root, and catalog apps run as non-root; the entry keeps its "
                "non-root system.security.run_as_user (use an image that works as a non-root user)",
            )
        return _set(path, value)

    return handle


def _working_dir(key: str, value: Any, where: str) -> Mapped:
    path = f"{NOTEBOOK}.working_dir"
    if value is None:
        return _set(path, None)
    if not isinstance(value, str) or not value.startswith("/"):
        return _skip(where, key, f"not carried over: {value!r} is not an absolute path")
    found = _placeholders(value)
    if found:
        return _per_user(where, key, found)
    return _set(path, value)


def _scheduling(key: str, value: Any, where: str) -> Mapped:
    """KubeSpawner's placement settings as the entry's ``system.scheduling`` (checked with the
    rest of the entry); how they combine with the site's is said, as it differs."""
    target = SCHEDULING[key]
    if key == "node_affinity_required":
        value = {"nodeSelectorTerms": value}
    out = _set(target, value)
    if key in _COMBINES:
        out += _skip(where, key, f"carried over as system.{'.'.join(target.split('.')[:2])}: {_COMBINES[key]}")
    return out


def _site_scheduling(key: str, value: Any, where: str) -> Mapped:
    return _skip(where, key, f"not carried over: a catalog entry has no per-entry {key}; {_site_wide(key)}")


def _fixed(reason: str):
    def handle(key: str, value: Any, where: str) -> Mapped:
        return _skip(where, key, f"not carried over: {reason}")

    return handle


def _elsewhere(key: str, value: Any, where: str) -> Mapped:
    return _skip(where, key, f"not carried over: a catalog entry has no per-entry {key}; {_site_wide(key)}")


HANDLERS: dict[str, Callable[[str, Any, str], Mapped]] = {
    "image": _image,
    "cpu_limit": _resource("cpu", "limits", cpu_quantity, "a number of CPUs"),
    "cpu_guarantee": _resource("cpu", "requests", cpu_quantity, "a number of CPUs"),
    "mem_limit": _resource("memory", "limits", memory_quantity, "a memory size (bytes, or a number with K, M, G or T)"),
    "mem_guarantee": _resource("memory", "requests", memory_quantity, "a memory size (bytes, or a number with K, M, G or T)"),
    "extra_resource_limits": _extra_resources,
    "extra_resource_guarantees": _extra_resources,
    "default_url": _default_url,
    "environment": _environment,
    "cmd": _command("command"),
    "args": _command("args"),
    "uid": _security("run_as_user"),
    "gid": _security("run_as_group"),
    "fs_gid": _security("fs_group"),
    "working_dir": _working_dir,
    "port": _fixed("a Jupyter entry serves on port 8888 (system.serve.port); change the entry if its image listens elsewhere"),
    "privileged": _fixed("catalog apps never run privileged"),
    **{key: _scheduling for key in SCHEDULING},
    **{key: _site_scheduling for key in SITE_ONLY_SCHEDULING},
}


def map_override(override: Any, where: str) -> Mapped:
    """A ``kubespawner_override`` as catalog patches on the entry's system, plus notices."""
    if not isinstance(override, Mapping):
        return _skip(where, "kubespawner_override", f"not carried over: expected a mapping, got {override!r}")
    out = Mapped()
    for raw_key, value in override.items():
        key = ALIASES.get(str(raw_key), str(raw_key))
        out += HANDLERS.get(key, _elsewhere)(str(raw_key), value, where)
    return out


def apply_patches(spec: Mapping, patches: Iterable[tuple[str, Any]]) -> dict:
    """``spec`` with each dotted path set (None deletes), as the catalog applies an option's ``set``."""
    out = json.loads(json.dumps(spec))
    for dotted, value in patches:
        *parents, last = dotted.split(".")
        node = out
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        if value is None:
            node.pop(last, None)
        else:
            node[last] = json.loads(json.dumps(value))
    return out


# --------------------------------------------------------------------------- input shapes


@dataclass(frozen=True)
class Source:
    """Where the profiles were found in the input, the profiles, and the site's overrides."""

    path: str
    profiles: tuple[Any, ...]
    site_override: tuple[tuple[str, Any], ...] = ()


EXPECTED = (
    "expected a zero-to-jupyterhub values file (singleuser.profileList), a KubeSpawner profile_list "
    "(a list of profiles), or a mapping with a profile_list key"
)


def find_profiles(data: Any) -> Source:
    """Locate the profile list in a z2jh values file, a bare list, or ``{profile_list: ...}``.

    A values file may also hold the chart under one key (a chart that depends on z2jh, such as
    ``jupyterhub: {singleuser: ...}``). KubeSpawner's dict form (slug: profile) is taken in the
    order KubeSpawner uses, by key.
    """
    if data is None:
        raise ProfileListError("", f"is empty; {EXPECTED}")
    if isinstance(data, list):
        return Source("profile_list", _profile_items(data, "profile_list"))
    if not isinstance(data, Mapping):
        raise ProfileListError("", f"holds a {type(data).__name__}; {EXPECTED}")
    if "profile_list" in data:
        return Source("profile_list", _profile_items(data["profile_list"], "profile_list"))
    found = [("", data)] if isinstance(data.get("singleuser"), Mapping) else []
    found += [
        (f"{key}.", value) for key, value in data.items()
        if isinstance(value, Mapping) and isinstance(value.get("singleuser"), Mapping)
    ]
    found = [(prefix, values) for prefix, values in found if "profileList" in values["singleuser"]]
    if not found:
        keys = ", ".join(str(k) for k in data) or "none"
        raise ProfileListError("", f"has no singleuser.profileList (top-level keys: {keys}); {EXPECTED}")
    if len(found) > 1:
        paths = ", ".join(f"{prefix}singleuser.profileList" for prefix, _ in found)
        raise ProfileListError("", f"has several profile lists ({paths}); import one at a time")
    prefix, values = found[0]
    path = f"{prefix}singleuser.profileList"
    singleuser = values["singleuser"]
    return Source(path, _profile_items(singleuser["profileList"], path), site_override(singleuser))


def _profile_items(value: Any, path: str) -> tuple[Any, ...]:
    if isinstance(value, Mapping):  # KubeSpawner's dict form, ordered as _sorted_dict_values does
        value = [value[key] for key in sorted(value, key=str)]
    if not isinstance(value, list):
        raise ProfileListError(path, f"expected a list of profiles, got {type(value).__name__}")
    if not value:
        raise ProfileListError(path, "is empty: no profiles to import")
    for index, profile in enumerate(value):
        if not isinstance(profile, Mapping):
            raise ProfileListError(f"{path}[{index}]", f"expected a profile (a mapping), got {profile!r}")
    return tuple(value)


def site_override(singleuser: Mapping) -> tuple[tuple[str, Any], ...]:
    """The z2jh settings a catalog entry replaces, as KubeSpawner overrides under every profile.

    The image, command and ids of ``singleuser`` are what a profile without its own ran with;
    a catalog entry always sets these, so they are carried into each entry. The other
    ``singleuser`` settings still apply to every entry from the hub's own configuration.
    """
    out: list[tuple[str, Any]] = []
    image = singleuser.get("image")
    if isinstance(image, Mapping) and image.get("name"):
        tag = image.get("tag")
        out.append(("image", f"{image['name']}:{tag}" if tag not in (None, "") else str(image["name"])))
    for z2jh, key in (("cmd", "cmd"), ("uid", "uid"), ("fsGid", "fs_gid")):
        if singleuser.get(z2jh) is not None:
            out.append((key, singleuser[z2jh]))
    return tuple(out)


# --------------------------------------------------------------------------- profiles


def _unknown_fields(data: Mapping, known: tuple[str, ...], where: str, what: str) -> tuple[Notice, ...]:
    return tuple(
        Notice(where, str(field), f"not carried over: not a {what} field KubeSpawner or the catalog knows")
        for field in data
        if field not in known
    )


def _text(value: Any, default: str) -> str:
    return default if value is None else str(value)


def _matching(unlisted: Mapping) -> str:
    regex = unlisted.get("validation_regex")
    return f" matching validation_regex {regex!r}" if regex else ""


def _image_choice(option_key: str, option: Mapping, unlisted: Mapping) -> tuple[Optional[dict], str]:
    """An ``unlisted_choice`` whose override is the image (``{image: "{value}"}``) and that has a
    ``validation_regex``: a catalog choice of kind ``image`` with that pattern. Anything else
    would let a user's value reach a pod unchecked, so it is not carried over."""
    regex = unlisted.get("validation_regex")
    override = unlisted.get("kubespawner_override") or {}
    targets = {ALIASES.get(str(k), str(k)): v for k, v in override.items()} if isinstance(override, Mapping) else {}
    if targets != {"image": "{value}"}:
        return None, ("users could type their own value for settings other than the image "
                      f"({', '.join(sorted(targets)) or 'none'}); the catalog lets a typed value reach only an image")
    if not isinstance(regex, str) or not regex:
        return None, ("users could type any image (no validation_regex); a catalog choice of kind: image needs "
                      "the pattern an image must match: add one")
    try:
        re.compile(regex)
    except re.error as err:
        return None, f"validation_regex {regex!r} is not a regular expression: {err}"
    return ({"display_name": _text(unlisted.get("display_name") or option.get("display_name"), option_key),
             "kind": "image", "pattern": regex, "default": None},
            f"carried over as a choice of kind: image with pattern {regex!r}: the whole image must match it "
            f"(KubeSpawner matched its start only), and its default is the entry's image")


def convert_choice(option_key: str, option: Any, where: str) -> tuple[Optional[dict], tuple[Notice, ...]]:
    """One ``profile_options`` item as a catalog choice (None when nothing of it can be offered)."""
    if not isinstance(option, Mapping):
        return None, (Notice(where, "profile_options", f"not carried over: expected a mapping, got {option!r}"),)
    notices = list(_unknown_fields(option, OPTION_FIELDS, where, "profile_options"))
    unlisted = option.get("unlisted_choice")
    typed = isinstance(unlisted, Mapping) and bool(unlisted.get("enabled"))
    if typed and not option.get("choices"):
        choice, why = _image_choice(option_key, option, unlisted)
        if choice is not None:
            notices.append(Notice(where, "unlisted_choice", why))
            return choice, tuple(notices)
        notices.append(Notice(where, "unlisted_choice", f"not carried over: {why}"))
    elif typed:
        notices.append(Notice(
            where, "unlisted_choice",
            f"not carried over: users could type their own value{_matching(unlisted)} next to listed choices "
            "(a catalog choice is either a list of options or a typed image): add the values you allow as "
            "options, or make a second entry whose choice is kind: image",
        ))
    choices = option.get("choices")
    if not isinstance(choices, Mapping) or not choices:
        notices.append(Notice(where, "choices", "not carried over: the option has no choices a user can pick"))
        return None, tuple(notices)
    options: dict[str, dict] = {}
    default = None
    for index, (raw_key, choice) in enumerate(choices.items()):
        source_key = str(raw_key)
        cwhere = f"{where}, choice {source_key}"
        if not isinstance(choice, Mapping):
            notices.append(Notice(cwhere, "choices", f"not carried over: expected a mapping, got {choice!r}"))
            continue
        key = unique_key((source_key, key_slug(source_key)), options, f"option-{index + 1}")
        if key != source_key:
            notices.append(Notice(cwhere, "key", f"{_why_not_kept(source_key)}; imported as options.{key}"))
        notices += _unknown_fields(choice, CHOICE_FIELDS, cwhere, "choice")
        mapped = map_override(choice.get("kubespawner_override") or {}, cwhere)
        notices += mapped.notices
        entry = {"display_name": _text(choice.get("display_name"), source_key)}
        if isinstance(choice.get("description"), str):
            entry["description"] = choice["description"]
        entry["set"] = dict(mapped.patches)
        options[key] = entry
        if choice.get("default") and default is None:  # KubeSpawner takes the first default
            default = key
    if not options:
        return None, tuple(notices)
    return {
        "display_name": _text(option.get("display_name"), option_key),
        "default": default or next(iter(options)),
        "options": options,
    }, tuple(notices)


def convert_profile(
    profile: Mapping, key: str, order: int, base_system: Mapping, site: Mapped
) -> tuple[dict, tuple[Notice, ...]]:
    """One KubeSpawner profile as a catalog entry (not yet validated) and its notices."""
    where = f"profile {key}"
    notices = list(_unknown_fields(profile, PROFILE_FIELDS, where, "profile"))
    mapped = map_override(profile.get("kubespawner_override") or {}, where)
    notices += mapped.notices
    patches = site.patches + mapped.patches
    system = apply_patches(base_system, patches)

    choices: dict[str, dict] = {}
    options_data = profile.get("profile_options") or {}
    if not isinstance(options_data, Mapping):
        notices.append(Notice(where, "profile_options", f"not carried over: expected a mapping, got {options_data!r}"))
        options_data = {}
    for index, (raw_key, option) in enumerate(options_data.items()):
        source_key = str(raw_key)
        owhere = f"{where}, option {source_key}"
        choice, choice_notices = convert_choice(source_key, option, owhere)
        if choice is not None:
            choice_key = unique_key((source_key, key_slug(source_key)), choices, f"choice-{index + 1}")
            if choice_key != source_key:
                notices.append(Notice(owhere, "key", f"{_why_not_kept(source_key)}; imported as choices.{choice_key}"))
            choices[choice_key] = choice
        notices += choice_notices

    for choice_key, choice in list(choices.items()):
        if choice.get("kind") == "image":
            image = system["containers"]["notebook"]["image"]
            if re.fullmatch(choice["pattern"], image):
                choice["default"] = image
            else:
                notices.append(Notice(f"{where}, option {choice_key}", "unlisted_choice",
                                      f"not carried over: the entry's image {image!r} does not match its pattern"))
                del choices[choice_key]
    image_from_choices = any(
        all(IMAGE_PATH in option["set"] for option in choice["options"].values())
        for choice in choices.values() if choice.get("kind") != "image"
    )
    if not image_from_choices and not any(path == IMAGE_PATH for path, _ in patches):
        notices.append(Notice(
            where, "image",
            f"not set: the profile ran the site's image (c.KubeSpawner.image, z2jh: singleuser.image), which "
            f"this file does not give; the entry runs {system['containers']['notebook']['image']}: set "
            f"catalog.{key}.system.containers.notebook.image",
        ))

    entry: dict[str, Any] = {"display_name": _text(profile.get("display_name"), key), "order": order}
    if profile.get("description") is not None:
        entry["description"] = str(profile["description"])
    if choices:
        entry["choices"] = choices
    entry["system"] = system
    return entry, tuple(notices)


def _validated(key: str, entry: dict) -> Optional[Notice]:
    """None if the entry parses as a catalog entry, else why not (a profile KubeSpawner could not start either)."""
    try:
        parse_catalog({key: entry})
    except CatalogError as err:
        return Notice(f"profile {key}", "(whole profile)", f"not carried over: the converted entry is invalid: {err}")
    return None


def import_profiles(data: Any, *, base_system: Mapping, builtin_keys: Collection[str] = ()) -> ImportResult:
    """Convert the KubeSpawner profile list in ``data`` (a loaded YAML document).

    ``base_system`` is the built-in ``base`` entry's system, the shape of every imported entry.
    ``builtin_keys`` are the built-in catalog's keys: imported keys avoid them (a file merged
    over an entry of the same key would mix the two) and the result disables them.
    Raises :class:`ProfileListError` if ``data`` holds no profile list.
    """
    source = find_profiles(data)
    site = map_override(dict(source.site_override), "singleuser")
    notices: list[Notice] = list(site.notices)
    entries: dict[str, dict] = {}
    default_key = None
    for index, profile in enumerate(source.profiles):
        wanted = kubespawner_slug(profile)
        candidates = (str(profile["slug"]),) if "slug" in profile else ()
        candidates += (key_slug(str(profile.get("display_name", ""))), key_slug(str(profile.get("slug", ""))))
        key = unique_key(candidates, set(entries) | set(builtin_keys), f"profile-{index + 1}")
        if key != wanted:
            notices.append(Notice(
                f"profile {key}", "slug", f"{_why_not_kept(wanted, builtin_keys)}; imported as catalog.{key}"
            ))
        entry, entry_notices = convert_profile(profile, key, index + 1, base_system, site)
        notices += entry_notices
        if profile.get("default"):
            if default_key is None:
                entry["default"] = True
                default_key = key
            else:
                notices.append(Notice(
                    f"profile {key}", "default",
                    f"not carried over: only one entry can be the default, and KubeSpawner used the first: {default_key}",
                ))
        invalid = _validated(key, _ordered(entry))
        if invalid:
            notices.append(invalid)
            if default_key == key:
                default_key = None
            continue
        entries[key] = _ordered(entry)
    if entries:
        parse_catalog(entries)  # all together: a failure here is a bug of this module
    disabled = tuple(k for k in builtin_keys if k not in entries)
    return ImportResult(entries_json=json.dumps(entries), disabled=disabled, notices=tuple(notices))


def _ordered(entry: Mapping) -> dict:
    """An entry's fields in the order the README shows them (the printed file reads the same)."""
    order = ("display_name", "description", "order", "default", "choices", "system")
    return {field: entry[field] for field in order if field in entry}
