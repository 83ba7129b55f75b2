"""The test bed's storage provisioner: what an external provisioner is in a real cluster.

Kubernetes' own PersistentVolume controller (in the real kube-controller-manager) binds claims
to volumes, but it creates volumes only for in-tree plugins. For any other StorageClass it
annotates the claim with ``volume.beta.kubernetes.io/storage-provisioner`` and waits for the
provisioner of that name to create a PersistentVolume, exactly as with minikube's hostpath
provisioner or a CSI driver's external-provisioner. This module is such a provisioner:

* it watches PersistentVolumeClaims; for each unbound claim whose StorageClass names this
  provisioner (and that the PV controller handed to it), it makes the storage and creates one
  PersistentVolume (hostPath, ``claimRef`` to the claim); the PV controller binds the two;
* it watches PersistentVolumes; when one it provisioned is ``Released`` (its claim deleted)
  with reclaim policy Delete, it removes the storage and deletes the PV, which the PV
  controller leaves to external provisioners;
* claims of other classes, or of classes that do not exist, are left alone, so that the real
  PV controller reports them (``ProvisioningFailed`` events).

Storage lives in ``<control plane state>/volumes/pvc-<claim uid>``. Two classes:

* ``standard`` (the default class, like minikube's): a plain directory, no capacity limit;
* ``tycho-testbed-sized``: a tmpfs mounted with ``size=`` the claim's request, so a volume
  really is full at its capacity (ENOSPC). Unmounted when its PV is deleted and when the
  control plane stops.

Run as ``python -m tycho_testbed provisioner --kubeconfig K --state-dir D``; the
``ControlPlane`` starts and stops it with the other components.
"""
from __future__ import annotations

import argparse
import datetime
import logging
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
from pathlib import Path
from typing import Callable, Optional

log = logging.getLogger("tycho_testbed.provisioner")

PROVISIONER = "tycho-testbed.io/hostpath"
DEFAULT_CLASS = "standard"
SIZED_CLASS = "tycho-testbed-sized"
#: Set on a claim by the PV controller when it hands the claim to an external provisioner.
ANN_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
#: Set on a PV by whoever provisioned it; the PV controller leaves deleting it to that one.
ANN_PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
ANN_DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
#: The StorageClass parameter that chooses the kind of storage.
VOLUME_TYPE = "volumeType"
DIRECTORY, TMPFS = "directory", "tmpfs"
#: A fresh filesystem's root (mkfs): root-owned, not writable by others. ``fsGroup`` opens it
#: to a pod's group, as on a cloud block volume (minikube's provisioner makes 0777 instead).
VOLUME_MODE = 0o755
#: How often every claim and volume is looked at again even without a watch event.
RESYNC_SECONDS = 30


def storage_classes() -> list[dict]:
    """The test bed's StorageClasses: ``standard`` (default, like minikube's) and a sized one."""
    def make(name: str, volume_type: str, default: bool) -> dict:
        annotations = {ANN_DEFAULT_CLASS: "true"} if default else {}
        return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                "metadata": {"name": name, "annotations": annotations,
                             "labels": {"app.kubernetes.io/managed-by": "tycho-testbed"}},
                "provisioner": PROVISIONER, "parameters": {VOLUME_TYPE: volume_type},
                "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"}

    return [make(DEFAULT_CLASS, DIRECTORY, True), make(SIZED_CLASS, TMPFS, False)]


def ensure_storage_classes(api_client) -> None:
    """Create the test bed's StorageClasses; an existing one keeps its immutable fields and gets
    its annotations back (so it stays the default class)."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    storage = client.StorageV1Api(api_client)
    for body in storage_classes():
        try:
            storage.create_storage_class(body)
        except ApiException as err:
            if err.status != 409:
                raise
            storage.patch_storage_class(body["metadata"]["name"], {"metadata": body["metadata"]})


# ------------------------------------------------------------------------------------ storage


def _unescape_mountinfo(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts_under(directory: Path) -> list[Path]:
    """Mount points at or below ``directory`` in this mount namespace, deepest first."""
    base = Path(os.path.realpath(directory))
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
        for line in f:
            point = Path(_unescape_mountinfo(line.split()[4]))
            if point == base or base in point.parents:
                found.append(point)
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def unmount(path: Path) -> None:
    """Unmount ``path``; lazily if something on the host still uses it (pods hold their own copy)."""
    if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def unmount_all(directory: Path) -> None:
    """Unmount every sized volume under ``directory`` (control plane stop, or leftovers at start)."""
    if Path(directory).exists():
        for point in mounts_under(directory):
            unmount(point)


def reset_volumes(directory: Path) -> None:
    """Start from no volumes: the control plane's etcd starts empty, so no PV refers to them."""
    unmount_all(directory)
    shutil.rmtree(directory, ignore_errors=True)
    Path(directory).mkdir(parents=True, exist_ok=True)


def make_storage(path: Path, volume_type: str, size_bytes: int) -> None:
    """Create a volume's storage: a directory, or a tmpfs holding at most ``size_bytes``."""
    path.mkdir(mode=VOLUME_MODE, exist_ok=True)
    if volume_type == TMPFS:
        if path not in mounts_under(path):
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode={VOLUME_MODE:o}",
                            f"tycho-testbed-{path.name}", str(path)], check=True, capture_output=True, text=True)
    os.chmod(path, VOLUME_MODE)


def remove_storage(path: Path) -> None:
    """Remove a volume's storage and everything the pods wrote into it."""
    for point in mounts_under(path):
        unmount(point)
    shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------------------------ the provisioner


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ProvisioningError(Exception):
    """A claim handed to us cannot be provisioned; reported on the claim as ProvisioningFailed."""


class Provisioner:
    """Provisions and deletes the PersistentVolumes of the classes naming ``name``."""

    def __init__(self, api_client, volumes: Path, name: str = PROVISIONER):
        from kubernetes import client

        self.api = api_client
        self.core = client.CoreV1Api(api_client)
        self.storage = client.StorageV1Api(api_client)
        self.volumes = Path(os.path.realpath(volumes))
        self.name = name
        # external-provisioner identifies itself in events as <name>_<host>_<id>.
        self.identity = f"{name}_{socket.gethostname()}"
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    # -- claims

    def storage_class_of(self, claim: dict) -> Optional[dict]:
        """The claim's StorageClass if it is one of ours, else None (someone else's, or missing)."""
        from kubernetes.client.rest import ApiException

        name = claim["spec"].get("storageClassName")
        if not name:
            return None
        try:
            sc = self.storage.read_storage_class(name)
        except ApiException as err:
            if err.status == 404:
                return None  # the PV controller reports it: ProvisioningFailed, class not found
            raise
        sc = self.api.sanitize_for_serialization(sc)
        return sc if sc.get("provisioner") == self.name else None

    def wants(self, claim: dict) -> bool:
        """Like external-provisioner: unbound, alive, and handed to us by the PV controller."""
        meta, spec = claim["metadata"], claim["spec"]
        return (not spec.get("volumeName") and not meta.get("deletionTimestamp")
                and (meta.get("annotations") or {}).get(ANN_STORAGE_PROVISIONER) == self.name)

    def sync_claim(self, claim: dict) -> None:
        """Provision a volume for the claim if it is ours to provision."""
        if not self.wants(claim):
            return
        sc = self.storage_class_of(claim)
        if sc is None:
            return
        try:
            self.provision(claim, sc)
        except ProvisioningError as err:
            self.claim_event(claim, "ProvisioningFailed",
                             f'failed to provision volume with StorageClass "{sc["metadata"]["name"]}": {err}',
                             "Warning")

    def volume_body(self, claim: dict, sc: dict, path: Path) -> dict:
        """The PersistentVolume for a claim, pre-bound to it (the PV controller completes the binding)."""
        meta, spec = claim["metadata"], claim["spec"]
        body = {
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": path.name, "annotations": {ANN_PROVISIONED_BY: self.name}},
            "spec": {
                "capacity": {"storage": spec["resources"]["requests"]["storage"]},
                "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                "volumeMode": "Filesystem",
                "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy") or "Delete",
                "storageClassName": sc["metadata"]["name"],
                "hostPath": {"path": str(path), "type": "Directory"},
                "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": meta["namespace"],
                             "name": meta["name"], "uid": meta["uid"], "resourceVersion": meta["resourceVersion"]},
            },
        }
        if sc.get("mountOptions"):
            body["spec"]["mountOptions"] = sc["mountOptions"]
        return body

    def provision(self, claim: dict, sc: dict) -> None:
        """Make the storage, then the PV; a PV that exists already means it was done before."""
        from kubernetes.client.rest import ApiException
        from kubernetes.utils import parse_quantity

        meta, spec = claim["metadata"], claim["spec"]
        volume_type = (sc.get("parameters") or {}).get(VOLUME_TYPE, DIRECTORY)
        if volume_type not in (DIRECTORY, TMPFS):
            raise ProvisioningError(f"unknown {VOLUME_TYPE} {volume_type!r} (known: {DIRECTORY}, {TMPFS})")
        if spec.get("selector"):
            raise ProvisioningError("claim Selector is not supported")
        if spec.get("volumeMode", "Filesystem") != "Filesystem":
            raise ProvisioningError(f"volumeMode {spec['volumeMode']} is not supported")
        path = self.volumes / f"pvc-{meta['uid']}"
        try:
            self.core.read_persistent_volume(path.name)
            return
        except ApiException as err:
            if err.status != 404:
                raise
        self.claim_event(claim, "Provisioning",
                         f'External provisioner is provisioning volume for claim "{meta["namespace"]}/{meta["name"]}"')
        size = math.ceil(parse_quantity(spec["resources"]["requests"]["storage"]))
        try:
            make_storage(path, volume_type, size)
        except (OSError, subprocess.CalledProcessError) as err:
            remove_storage(path)
            raise ProvisioningError(f"cannot make {volume_type} storage at {path}: "
                                    f"{getattr(err, 'stderr', '') or err}") from err
        try:
            self.core.create_persistent_volume(self.volume_body(claim, sc, path))
        except ApiException as err:
            if err.status == 409:
                return
            remove_storage(path)
            raise ProvisioningError(f"creating PersistentVolume {path.name}: {err.reason}") from err
        log.info("provisioned %s (%s, %s) for claim %s/%s", path.name, volume_type,
                 spec["resources"]["requests"]["storage"], meta["namespace"], meta["name"])
        self.claim_event(claim, "ProvisioningSucceeded", f"Successfully provisioned volume {path.name}")

    def claim_event(self, claim: dict, reason: str, message: str, kind: str = "Normal") -> None:
        """An Event on the claim from this provisioner (best effort, as for external-provisioner)."""
        meta = claim["metadata"]
        stamp = _now()
        body = {"metadata": {"name": f"{meta['name']}.{os.urandom(8).hex()}", "namespace": meta["namespace"]},
                "involvedObject": {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": meta["namespace"],
                                   "name": meta["name"], "uid": meta["uid"]},
                "reason": reason, "message": message, "type": kind, "source": {"component": self.identity},
                "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1}
        try:
            self.core.create_namespaced_event(meta["namespace"], body)
        except Exception as err:
            log.debug("event %s on %s failed: %s", reason, meta["name"], err)

    # -- volumes

    def should_delete(self, pv: dict) -> bool:
        """Ours, Released (its claim is gone), and its policy says Delete."""
        meta, spec = pv["metadata"], pv["spec"]
        return ((meta.get("annotations") or {}).get(ANN_PROVISIONED_BY) == self.name
                and (pv.get("status") or {}).get("phase") == "Released"
                and spec.get("persistentVolumeReclaimPolicy") == "Delete"
                and not meta.get("deletionTimestamp"))

    def sync_volume(self, pv: dict) -> None:
        """Delete a released volume of ours: its storage first, then the PV object."""
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        if not self.should_delete(pv):
            return
        name = pv["metadata"]["name"]
        path = Path((pv["spec"].get("hostPath") or {}).get("path", ""))
        if path.parent == self.volumes and path.name == name:
            remove_storage(path)
        else:  # never remove files this provisioner did not make
            log.warning("PV %s: path %s is not under %s; deleting the PV only", name, path, self.volumes)
        try:
            self.core.delete_persistent_volume(name, body=client.V1DeleteOptions(
                preconditions=client.V1Preconditions(uid=pv["metadata"]["uid"])))
        except ApiException as err:
            if err.status not in (404, 409):
                raise
        log.info("deleted %s (its claim %s/%s is gone)", name, (pv["spec"].get("claimRef") or {}).get("namespace"),
                 (pv["spec"].get("claimRef") or {}).get("name"))

    # -- the loops

    def _watch(self, list_fn: Callable, sync: Callable[[dict], None]) -> None:
        """List then watch one kind, syncing every object; relist on errors and every resync period."""
        from kubernetes import watch

        while not self.stopping.is_set():
            try:
                listing = list_fn()
                for item in listing.items:
                    self._sync(sync, self.api.sanitize_for_serialization(item))
                w = watch.Watch()
                for event in w.stream(list_fn, resource_version=listing.metadata.resource_version,
                                      timeout_seconds=RESYNC_SECONDS, _request_timeout=RESYNC_SECONDS + 30):
                    if self.stopping.is_set():
                        w.stop()
                        break
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._sync(sync, event["raw_object"])
            except Exception as err:
                if self.stopping.is_set():
                    break
                log.warning("watch %s: %s; relisting", getattr(list_fn, "__name__", list_fn), err)
                self.stopping.wait(1)

    def _sync(self, sync: Callable[[dict], None], obj: dict) -> None:
        with self.lock:
            try:
                sync(obj)
            except Exception:
                log.exception("syncing %s", obj.get("metadata", {}).get("name"))

    def run(self) -> None:
        """Watch claims and volumes until ``stopping`` is set."""
        self.volumes.mkdir(parents=True, exist_ok=True)
        threads = [threading.Thread(target=self._watch, args=(fn, sync), daemon=True, name=name)
                   for name, fn, sync in (("claims", self.core.list_persistent_volume_claim_for_all_namespaces,
                                           self.sync_claim),
                                          ("volumes", self.core.list_persistent_volume, self.sync_volume))]
        for t in threads:
            t.start()
        log.info("provisioner %s: volumes in %s", self.name, self.volumes)
        while not self.stopping.wait(0.5):
            pass


def add_provisioner_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", required=True, help="kubeconfig of a user allowed to manage PVs and claims")
    parser.add_argument("--state-dir", required=True,
                        help="the control plane's state directory; volumes go to STATE_DIR/volumes")
    parser.add_argument("-v", "--verbose", action="store_true")


def run_provisioner(args) -> int:
    from kubernetes import config

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("kubernetes", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if os.geteuid() != 0:  # directories work; the sized class's claims fail with mount's error
        log.warning("not root: volumes of the %s class cannot be mounted", SIZED_CLASS)
    provisioner = Provisioner(config.new_client_from_config(args.kubeconfig), Path(args.state_dir) / "volumes")

    def on_signal(signum, frame):
        log.info("signal %s: stopping (volumes stay until the control plane stops)", signum)
        provisioner.stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    provisioner.run()
    return 0
