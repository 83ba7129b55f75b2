"""Which of a site's KubeSpawner settings a catalog entry replaces, said once at hub start.

A site switching from KubeSpawner (zero-to-jupyterhub's ``singleuser.*``) keeps most of its
settings: TychoSpawner builds on KubeSpawner's pod. Some describe the one app KubeSpawner runs
(its image, command, size, user id), and there each catalog entry decides. A setting that is
quietly not applied is worse than a missing feature, so :func:`replaced_settings` lists every
one that is set and what takes its place, and the spawner logs them when the hub starts.

Pure: reads a traitlets ``Config`` (or any mapping of section -> settings) and nothing else.
"""
from __future__ import annotations

from typing import Any, Mapping

#: Config sections whose settings reach TychoSpawner (its parents' names included).
SECTIONS = ("Spawner", "KubeSpawner", "TychoSpawner")

#: setting -> what replaces it. Only settings with a default that matters are listed here;
#: every other KubeSpawner setting applies to every entry unchanged.
REPLACED = {
    "image": "each catalog entry's images (system.containers.*.image)",
    "cmd": "each catalog entry's command (system.containers.*.command)",
    "args": "each catalog entry's arguments (system.containers.*.args)",
    "port": "each catalog entry's served port (system.serve.port; tycho-gate's port for gated apps)",
    "uid": "each catalog entry's system.security.run_as_user",
    "gid": "each catalog entry's system.security.run_as_group",
    "fs_gid": "each catalog entry's system.security.fs_group",
    "profile_list": "the catalog (`tycho import-profiles VALUES.yaml` converts a profileList)",
    "privileged": "nothing: catalog apps never run privileged",
}

#: setting -> how it combines with an entry (applied unless the entry sets its own).
COMBINED = {
    "cpu_limit": "the app container's limits.cpu, for entries that set none",
    "cpu_guarantee": "the app container's requests.cpu, for entries that set none",
    "mem_limit": "the app container's limits.memory, for entries that set none",
    "mem_guarantee": "the app container's requests.memory, for entries that set none",
    "default_url": "JUPYTERHUB_DEFAULT_URL, except for entries whose choice sets it (the built-in `ui` choice)",
    "working_dir": "the app container's working directory, for entries that set none",
}

#: container_security_context keys the catalog always sets on its containers.
_ENFORCED_SECURITY = ("runAsUser", "runAsGroup", "runAsNonRoot", "allowPrivilegeEscalation", "capabilities", "privileged")


def _set_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a config sets for TychoSpawner, most specific section last (it wins)."""
    found: dict[str, Any] = {}
    for section in SECTIONS:
        values = config.get(section) or {}
        for key in values:
            found[key] = values[key]
    return found


def replaced_settings(config: Mapping[str, Any]) -> list[str]:
    """One sentence per site setting that a catalog entry replaces or combines with."""
    settings = _set_settings(config)
    notes = []
    for name, replacement in REPLACED.items():
        if name in settings and settings[name] not in (None, "", [], {}, False):
            notes.append(f"{name} = {_short(settings[name])} is not used: replaced by {replacement}")
    for name, combination in COMBINED.items():
        if name in settings and settings[name] not in (None, ""):
            notes.append(f"{name} = {_short(settings[name])} applies as {combination}")
    escalation = settings.get("allow_privilege_escalation", False)
    if "allow_privilege_escalation" in settings and escalation is not False:
        notes.append(
            f"allow_privilege_escalation = {escalation!r} is not used: catalog apps run with "
            "allowPrivilegeEscalation false"
        )
    context = settings.get("container_security_context")
    if isinstance(context, Mapping):
        enforced = sorted(k for k in context if k in _ENFORCED_SECURITY)
        if enforced:
            notes.append(
                f"container_security_context keys {', '.join(enforced)} are not used on catalog "
                "containers: each entry's system.security decides (non-root, no privilege escalation, "
                "no capabilities); its other keys apply to the app container"
            )
    notes.extend(_home_notes(settings))
    if settings.get("internal_ssl") or (config.get("JupyterHub") or {}).get("internal_ssl"):
        notes.append("internal_ssl applies to Jupyter entries; apps behind tycho-gate cannot start with it yet")
    return [f"TychoSpawner: site setting {note}" for note in notes]


def _values(setting: Any) -> list:
    """KubeSpawner's volumes and volume_mounts may be a list or a dict keyed for merging."""
    if isinstance(setting, Mapping):
        return [v for v in setting.values() if isinstance(v, Mapping)]
    return [v for v in setting or [] if isinstance(v, Mapping)]


def _home_notes(settings: Mapping[str, Any]) -> list[str]:
    """A claim mounted somewhere else than `home_mount_path` would silently stay at that path
    in every app instead of following the user (z2jh's `singleuser.storage.homeMountPath`)."""
    home = str(settings.get("home_mount_path") or "/home/jovyan").rstrip("/")
    claims = {v.get("name") for v in _values(settings.get("volumes")) if "persistentVolumeClaim" in v}
    elsewhere = sorted(
        m.get("mountPath", "") for m in _values(settings.get("volume_mounts"))
        if m.get("name") in claims
        and not (m.get("mountPath", "").rstrip("/") == home or m.get("mountPath", "").startswith(home + "/"))
    )
    at_home = [m for m in _values(settings.get("volume_mounts"))
               if m.get("mountPath", "").rstrip("/") == home]
    if elsewhere and not at_home:
        return [f"volume_mounts put a claim at {', '.join(elsewhere)}, not at home_mount_path {home!r}: apps "
                "get it at that path as it is; if it is the users' home, set TychoSpawner.home_mount_path to "
                "its mountPath so each app gets it where it keeps files"]
    return []


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
