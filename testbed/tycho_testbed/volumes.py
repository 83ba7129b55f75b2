"""Pod volumes on the test bed's node: what a kubelet's volume manager and a container runtime's
mount setup do, with host directories and bind mounts.

A kubelet sets up every volume of a pod before starting any of its containers (failures are
``FailedMount`` events, retried; the containers stay waiting), then, for each container,
resolves each ``volumeMount`` (``subPath``, created if missing) to a host path that the runtime
bind-mounts at ``mountPath``, parents before children. This module does the same:

* ``PodVolumes.set_up()`` makes each volume's host path: emptyDir (a directory of the pod),
  configMap and secret (files per key, in the kubelet's ``..data`` layout, with ``items``,
  ``defaultMode``, ``optional``), hostPath (with its ``type`` checks and creations), and
  persistentVolumeClaim (the claim, its bound PV, and the PV's host directory);
* ``fsGroup`` is applied as the kubelet applies it to volumes whose plugin manages ownership
  (emptyDir, configMap, secret, and here persistentVolumeClaim, as for most block and CSI
  volumes of a real cluster, though not hostPath or NFS): group, group permissions, setgid;
* ``PodVolumes.resync()`` projects configMap and secret volumes again when their objects
  changed, as a kubelet's periodic sync of a running pod does (the node agent calls it when its
  watch says so, :mod:`tycho_testbed.keyed_watch`);
* ``PodVolumes.mounts()`` resolves a container's mounts, ``bind_script()`` is the shell the
  container's wrapper runs in the container's own mount namespace to put them in place.
"""
from __future__ import annotations

import base64
import os
import shlex
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

#: The kubelet's masks for fsGroup ownership (pkg/volume/volume_linux.go).
RW_MASK, RO_MASK, EXEC_MASK = 0o660, 0o440, 0o110
DEFAULT_KEY_MODE = 0o644


class VolumeError(Exception):
    """Volumes cannot be set up (yet): FailedMount events, the pod waits and the kubelet retries."""

    def __init__(self, messages: list[str]):
        super().__init__("; ".join(messages))
        self.messages = messages


class MountError(Exception):
    """A container's mounts cannot be prepared (a bad subPath): CreateContainerConfigError."""


@dataclass(frozen=True)
class Volume:
    """A set-up volume: the host path holding it, and whether every mount of it is read-only."""

    path: Path
    read_only: bool = False


@dataclass(frozen=True)
class Mount:
    """One bind mount of a container: ``source`` (host) at ``target`` (in the pod)."""

    target: str
    source: str
    read_only: bool = False


def go_list(names) -> str:
    """A list of names as Go's ``%v`` prints a ``[]string``, as in the kubelet's messages."""
    return "[" + " ".join(names) + "]"


# ------------------------------------------------------------------------------------ ownership


def _change_file_permission(path: str, fs_group: int, read_only: bool) -> None:
    st = os.lstat(path)
    os.lchown(path, -1, fs_group)
    if stat.S_ISLNK(st.st_mode):
        return  # no modes on symlinks
    mask = RO_MASK if read_only else RW_MASK
    if stat.S_ISDIR(st.st_mode):
        mask |= stat.S_ISGID | EXEC_MASK
    os.chmod(path, stat.S_IMODE(st.st_mode) | mask)


def _requires_permission_change(root: Path, fs_group: int, read_only: bool) -> bool:
    """fsGroupChangePolicy OnRootMismatch: only when the root's group or modes are not right."""
    st = os.stat(root)
    wanted = (RO_MASK if read_only else RW_MASK) | EXEC_MASK
    return (st.st_gid != fs_group or not stat.S_ISDIR(st.st_mode)
            or stat.S_IMODE(st.st_mode) & wanted != wanted or not st.st_mode & stat.S_ISGID)


def set_volume_ownership(root: Path, fs_group: Optional[int], read_only: bool = False,
                         policy: Optional[str] = None) -> None:
    """The kubelet's SetVolumeOwnership: recursively chgrp to fsGroup, add group read (and
    write unless read-only; search on directories), setgid on directories so new files keep
    the group. Symlinks are not followed."""
    if fs_group is None:
        return
    if policy == "OnRootMismatch" and not _requires_permission_change(root, fs_group, read_only):
        return
    for directory, dirs, files in os.walk(root):
        _change_file_permission(directory, fs_group, read_only)
        for name in files + [d for d in dirs if os.path.islink(os.path.join(directory, d))]:
            _change_file_permission(os.path.join(directory, name), fs_group, read_only)


# ------------------------------------------------------------------------------------ configMap, secret


def keyed_payload(kind: str, data: dict[str, bytes], source: dict) -> dict[str, tuple[bytes, int]]:
    """path -> (content, mode) for a configMap or secret volume: every key, or ``items``."""
    default_mode = source.get("defaultMode", DEFAULT_KEY_MODE)
    items = source.get("items")
    if not items:
        return {key: (value, default_mode) for key, value in data.items()}
    payload = {}
    for item in items:
        if item["key"] not in data:
            if source.get("optional"):
                continue
            noun = "config key" if kind == "ConfigMap" else "secret key"
            raise ValueError(f"{kind.lower()} references non-existent {noun}: {item['key']}")
        payload[item["path"]] = (data[item["key"]], item.get("mode", default_mode))
    return payload


def write_atomic_payload(root: Path, payload: dict[str, tuple[bytes, int]]) -> None:
    """Write files the way the kubelet's AtomicWriter lays them out: a timestamped directory,
    ``..data`` pointing at it, and each top-level name a symlink into ``..data``.

    Written again (an update), it does what AtomicWriter.Write does: the new timestamped
    directory first, then ``..data`` swapped to it in one rename (a reader sees the old
    version or the new one, never a mix), then links for new top-level names made and those no
    longer in the payload removed, then the old directory removed. A file bound into a container
    with ``subPath`` keeps the old version (its bind holds the old file), as on a kubelet.
    """
    data = root / "..data"
    old = os.readlink(data) if data.is_symlink() else None
    stamp = root / time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
    stamp = Path(str(stamp) + os.urandom(4).hex())
    stamp.mkdir(mode=0o755)
    os.chmod(stamp, 0o755)
    for rel, (content, mode) in payload.items():
        path = stamp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        os.chmod(path, mode)
    tmp = root / "..data_tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(stamp.name)
    os.replace(tmp, data)
    tops = {Path(rel).parts[0] for rel in payload}
    for top in sorted(tops):
        link = root / top
        if not link.is_symlink():
            link.symlink_to(Path("..data") / top)
    for entry in os.listdir(root):
        link = root / entry
        if not entry.startswith("..") and entry not in tops and link.is_symlink() \
                and os.readlink(link).startswith("..data/"):
            link.unlink()
    if old is not None and old != stamp.name and not os.path.isabs(old) and old.startswith(".."):
        shutil.rmtree(root / old, ignore_errors=True)


# ------------------------------------------------------------------------------------ hostPath


def check_host_path(path: str, kind: str) -> None:
    """The kubelet's hostPath ``type`` checks, creating what ``*OrCreate`` asks for (and, as the
    container runtime does, a missing directory for the empty type)."""
    p = Path(path)
    if kind == "":
        if not p.exists():
            p.mkdir(mode=0o755, parents=True)
        return
    if kind == "DirectoryOrCreate" and not p.exists():
        p.mkdir(mode=0o755, parents=True)
        return
    if kind == "FileOrCreate" and not p.exists():
        with open(p, "a"):  # the parent must exist, as for the kubelet
            pass
        os.chmod(p, 0o644)
        return
    checks = {"DirectoryOrCreate": (p.is_dir, "a directory"), "Directory": (p.is_dir, "a directory"),
              "FileOrCreate": (p.is_file, "a file"), "File": (p.is_file, "a file"),
              "Socket": (p.is_socket, "a socket file"), "CharDevice": (p.is_char_device, "a character device"),
              "BlockDevice": (p.is_block_device, "a block device")}
    if kind not in checks:
        raise ValueError(f"{kind} is an invalid volume type")
    check, noun = checks[kind]
    if not check():
        raise ValueError(f"hostPath type check failed: {path} is not {noun}")


# ------------------------------------------------------------------------------------ subPath


def _within(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip("/") + "/")


def safe_make_dir(base: Path, sub_path: str) -> None:
    """Create a missing subPath directory inside a volume as the kubelet does: each new
    directory gets the mode of the volume root (setgid included, so with fsGroup the group
    is inherited), and nothing is created outside the volume (symlinks resolved)."""
    base_real = os.path.realpath(base)
    mode = stat.S_IMODE(os.stat(base_real).st_mode)
    current = base_real
    for part in Path(sub_path).parts:
        candidate = os.path.join(current, part)
        if os.path.lexists(candidate):
            current = os.path.realpath(candidate)
            if not _within(current, base_real):
                raise OSError(f"path {candidate} is outside of allowed base {base_real}")
            continue
        os.mkdir(candidate, mode)
        os.chmod(candidate, mode)
        current = candidate


def bind_script(mounts: list[Mount], stage: Path) -> list[str]:
    """Shell lines that bind ``mounts`` in the current (the container's own) mount namespace.

    Targets are mounted parents first (by number of path components, as container runtimes
    sort them), so a volume at ``/home/jovyan/public_html`` lands inside the one at
    ``/home/jovyan``. A source that an earlier mount would hide (one under the host's ``/tmp``,
    which the pod replaces) is first bound at a staging point under ``stage`` while the host's
    view is intact. Read-only remounts come last, so mount points can still be made inside
    read-only volumes.
    """
    ordered = sorted(mounts, key=lambda m: len(Path(m.target).parts))
    targets = [m.target for m in ordered]
    staged, binds, finish = [], [], []
    for i, m in enumerate(ordered):
        source, is_dir = m.source, os.path.isdir(m.source)
        if any(_within(os.path.realpath(m.source), t) for t in targets):
            source = str(stage / str(i))
            stage.mkdir(parents=True, exist_ok=True)
            Path(source).mkdir(exist_ok=True) if is_dir else Path(source).touch()
            staged.append(f"mount --bind {shlex.quote(m.source)} {shlex.quote(source)}")
        target = shlex.quote(m.target)
        if is_dir:
            binds.append(f"mkdir -p {target} 2>/dev/null || true")
        else:
            binds.append(f"mkdir -p {shlex.quote(os.path.dirname(m.target))} 2>/dev/null || true")
            binds.append(f"[ -e {target} ] || : > {target}")
        binds.append(f"mount --bind {shlex.quote(source)} {target}")
        if m.read_only:
            finish.append(f"mount -o remount,bind,ro {target}")
    return staged + binds + finish


# ------------------------------------------------------------------------------------ the pod's volumes


class PodVolumes:
    """The volumes of one pod on this node: set up once before its containers start."""

    def __init__(self, agent, pod: dict, pod_dir: Path):
        self.agent = agent
        self.pod = pod
        self.namespace = pod["metadata"]["namespace"]
        self.root = pod_dir / "volumes"
        self.volumes: dict[str, Volume] = {}
        #: what each configMap or secret volume holds now: path -> (content, mode)
        self.projected: dict[str, dict[str, tuple[bytes, int]]] = {}
        psc = pod["spec"].get("securityContext") or {}
        self.fs_group = psc.get("fsGroup")
        self.fs_group_policy = psc.get("fsGroupChangePolicy")

    @property
    def specs(self) -> list[dict]:
        return self.pod["spec"].get("volumes") or []

    def set_up(self) -> None:
        """Set up every volume not set up yet; VolumeError lists what failed, as FailedMount
        events would (the ones set up stay set up, the kubelet retries the others)."""
        self.root.mkdir(parents=True, exist_ok=True)
        mount_errors, claim_errors = [], []
        for spec in self.specs:
            name = spec["name"]
            if name in self.volumes:
                continue
            try:
                self.volumes[name] = self._set_up(spec)
            except _ClaimError as err:
                claim_errors.append(str(err))
            except (ValueError, OSError) as err:
                mount_errors.append(f'MountVolume.SetUp failed for volume "{name}" : {err}')
        if claim_errors:
            waiting = [s["name"] for s in self.specs if s["name"] not in self.volumes]
            mount_errors.append(f"Unable to attach or mount volumes: unmounted volumes={go_list(waiting)}, "
                                f"unattached volumes={go_list(waiting)}: {'; '.join(claim_errors)}")
        if mount_errors:
            raise VolumeError(mount_errors)

    def _set_up(self, spec: dict) -> Volume:
        if "persistentVolumeClaim" in spec:
            return self._claim(spec["persistentVolumeClaim"])
        if "hostPath" in spec:
            check_host_path(spec["hostPath"]["path"], spec["hostPath"].get("type") or "")
            return Volume(Path(spec["hostPath"]["path"]))
        path = self.root / spec["name"]
        path.mkdir(exist_ok=True)
        if "emptyDir" in spec:
            os.chmod(path, 0o777)
            set_volume_ownership(path, self.fs_group)
        elif "configMap" in spec or "secret" in spec:
            self._keyed(spec, path)
        else:  # projected, downwardAPI...: not simulated, an empty directory
            os.chmod(path, 0o755)
        return Volume(path)

    def keyed_objects(self) -> set[tuple[str, str, str]]:
        """(kind, namespace, name) of each ConfigMap and Secret this pod's volumes project."""
        return {(kind, self.namespace, name) for kind, source, name in map(_keyed_source, self.specs) if kind}

    def _keyed(self, spec: dict, path: Path) -> None:
        kind, source, name = _keyed_source(spec)
        data = self.agent.read_raw(kind, self.namespace, name)
        if data is None:
            if not source.get("optional"):
                raise ValueError(f'{kind.lower()} "{name}" not found')
            data = {}
        payload = keyed_payload(kind, data, source)
        os.chmod(path, 0o755)
        write_atomic_payload(path, payload)
        set_volume_ownership(path, self.fs_group, read_only=True)
        self.projected[spec["name"]] = payload

    def resync(self) -> list[str]:
        """Project each set-up configMap and secret volume again from its object as it is now,
        as a kubelet's periodic sync of a running pod does: only the volumes whose files would
        change are written (atomically, see :func:`write_atomic_payload`). Returns the names of
        the volumes written. An object that is gone, or that lacks a key ``items`` names, leaves
        the volume as it was (a kubelet logs the error and keeps the files)."""
        written = []
        for spec in self.specs:
            kind, source, name = _keyed_source(spec)
            if not kind or spec["name"] not in self.projected:
                continue
            data = self.agent.read_raw(kind, self.namespace, name)
            if data is None:
                continue
            try:
                payload = keyed_payload(kind, data, source)
            except ValueError:
                continue
            if payload == self.projected[spec["name"]]:
                continue
            path = self.volumes[spec["name"]].path
            write_atomic_payload(path, payload)
            set_volume_ownership(path, self.fs_group, read_only=True)
            self.projected[spec["name"]] = payload
            written.append(spec["name"])
        return written

    def _claim(self, source: dict) -> Volume:
        """The claim's bound PV's host directory, with fsGroup applied as for a block volume."""
        claim_name = source["claimName"]
        where = f"{self.namespace}/{claim_name}"
        claim = self.agent.read_claim(self.namespace, claim_name)
        if claim is None:
            raise _ClaimError(f"error processing PVC {where}: failed to fetch PVC from API server: "
                              f'persistentvolumeclaims "{claim_name}" not found')
        if claim["metadata"].get("deletionTimestamp"):
            raise _ClaimError(f"error processing PVC {where}: can't start pod because PVC {where} is being deleted")
        phase = (claim.get("status") or {}).get("phase", "")
        volume_name = claim["spec"].get("volumeName", "")
        if phase != "Bound" or not volume_name:
            raise _ClaimError(f'error processing PVC {where}: PVC {where} has non-bound phase ("{phase}") '
                              f'or empty pvc.Spec.VolumeName ("{volume_name}")')
        pv = self.agent.read_volume(volume_name)
        if pv is None:
            raise _ClaimError(f"error processing PVC {where}: failed to fetch PV {volume_name} from API server: "
                              f'persistentvolumes "{volume_name}" not found')
        ref = pv["spec"].get("claimRef") or {}
        if ref.get("uid") != claim["metadata"]["uid"]:
            raise _ClaimError(f"error processing PVC {where}: found PV object {volume_name} but its "
                              f"pv.Spec.ClaimRef.UID ({ref.get('uid')}) does not point to claim.UID "
                              f"({claim['metadata']['uid']})")
        host = pv["spec"].get("hostPath") or pv["spec"].get("local")
        if not host:
            raise ValueError(f"PersistentVolume {volume_name}: the test bed's node mounts hostPath and local "
                             "volumes only")
        if "hostPath" in pv["spec"]:
            check_host_path(host["path"], host.get("type") or "")
        read_only = bool(source.get("readOnly"))
        set_volume_ownership(Path(host["path"]), self.fs_group, read_only, self.fs_group_policy)
        return Volume(Path(host["path"]), read_only)

    def mounts(self, container: dict, expand: Callable[[str], str]) -> list[Mount]:
        """A container's volumeMounts as host paths (subPath resolved, and made if missing)."""
        out = []
        for vm in container.get("volumeMounts") or []:
            volume = self.volumes.get(vm["name"])
            if volume is None:
                raise MountError(f'cannot find volume "{vm["name"]}" to mount into container "{container["name"]}"')
            source = volume.path
            sub_path = expand(vm["subPathExpr"]) if vm.get("subPathExpr") else vm.get("subPath") or ""
            if sub_path:
                source = self._sub_path(volume, sub_path, vm["name"], container["name"])
            out.append(Mount(os.path.normpath(vm["mountPath"]), str(source),
                             bool(vm.get("readOnly")) or volume.read_only))
        return out

    @staticmethod
    def _sub_path(volume: Volume, sub_path: str, mount: str, container: str) -> Path:
        if os.path.isabs(sub_path) or ".." in Path(sub_path).parts:
            raise MountError(f"error SubPath `{sub_path}` must not be an absolute path or contain '..'")
        path = volume.path / sub_path
        if not os.path.lexists(path):
            try:
                safe_make_dir(volume.path, sub_path)
            except OSError:
                raise MountError(f'failed to create subPath directory for volumeMount "{mount}" of container '
                                 f'"{container}"') from None
        resolved = os.path.realpath(path)
        if not _within(resolved, os.path.realpath(volume.path)):
            raise MountError(f'failed to prepare subPath for volumeMount "{mount}" of container "{container}"')
        return Path(resolved)


def _keyed_source(spec: dict) -> tuple[str, dict, str]:
    """A volume's (kind, source, object name) if it is a configMap or secret volume, else ("", {}, "")."""
    if "configMap" in spec:
        return "ConfigMap", spec["configMap"], spec["configMap"].get("name", "")
    if "secret" in spec:
        return "Secret", spec["secret"], spec["secret"].get("secretName", "")
    return "", {}, ""


class _ClaimError(Exception):
    """The kubelet cannot use a pod's claim yet (missing, unbound, being deleted)."""


def decode_keyed(kind: str, obj: dict) -> dict[str, bytes]:
    """The bytes of each key of a Secret (``data``) or ConfigMap (``data`` and ``binaryData``)."""
    if kind == "Secret":
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    out = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
    out.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return out
