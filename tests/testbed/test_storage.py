"""Storage and init containers on the test bed, as a spawner sees them through the real API.

The PersistentVolume binder, PVC/PV protection, the scheduler's volume binding and the
DefaultStorageClass admission are Kubernetes' own; the provisioner (an external provisioner, as
on minikube) and the node agent's mounts are the test bed's.
"""
from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tycho_testbed.provisioner import ANN_DEFAULT_CLASS, DEFAULT_CLASS, PROVISIONER, SIZED_CLASS, mounts_under

pytestmark = pytest.mark.cluster

BUSYBOX = "busybox:1.36"


# ------------------------------------------------------------------------------------ helpers


def _claim(name, size="1Gi", storage_class=None, modes=("ReadWriteOnce",)):
    spec = {"accessModes": list(modes), "resources": {"requests": {"storage": size}}}
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": spec}


def _sh(name, script, mounts=(), **extra):
    return {"name": name, "image": BUSYBOX, "command": ["/bin/sh", "-c", script],
            "volumeMounts": list(mounts), **extra}


def _pod(name, containers, volumes=(), restart="Never", security=None, init=(), **spec):
    spec = {"containers": containers, "volumes": list(volumes), "restartPolicy": restart,
            "terminationGracePeriodSeconds": 2, **spec}
    if init:
        spec["initContainers"] = list(init)
    if security:
        spec["securityContext"] = security
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def _claim_volume(name, claim, read_only=False):
    return {"name": name, "persistentVolumeClaim": {"claimName": claim, "readOnly": read_only}}


def _eventually(check, timeout=30, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached after {timeout}s (last: {value!r})")
        time.sleep(0.1)


def _pod_where(core, namespace, name, predicate, timeout=30):
    last = {}

    def check():
        last["pod"] = core.read_namespaced_pod(name, namespace)
        return last["pod"] if predicate(last["pod"]) else None

    try:
        return _eventually(check, timeout)
    except AssertionError:
        raise AssertionError(f"pod {name}: {last['pod'].status}") from None


def _phase(*phases):
    return lambda pod: pod.status.phase in phases


def _events(core, namespace, name):
    return [(e.reason, e.message) for e in core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}").items]


def _bound(core, namespace, name, timeout=30):
    """Wait for the claim to be Bound; return it and its PersistentVolume."""
    claim = _eventually(lambda: (lambda c: c if c.status.phase == "Bound" else None)(
        core.read_namespaced_persistent_volume_claim(name, namespace)), timeout, f"claim {name} Bound")
    return claim, core.read_persistent_volume(claim.spec.volume_name)


def _gone(read):
    try:
        read()
        return False
    except ApiException as err:
        if err.status == 404:
            return True
        raise


def _log(node_agent, namespace, pod, container):
    return node_agent.container_log(namespace, pod, container)


@pytest.fixture
def core(control_plane, node_agent):
    return client.CoreV1Api(control_plane.api_client())


# ------------------------------------------------------------------------------------ claims and volumes


def test_a_claim_without_a_class_gets_the_default_class_and_binds(core, control_plane, kube_namespace):
    sc = client.StorageV1Api(control_plane.api_client()).read_storage_class(DEFAULT_CLASS)
    assert sc.metadata.annotations[ANN_DEFAULT_CLASS] == "true"
    assert (sc.provisioner, sc.reclaim_policy, sc.volume_binding_mode) == (PROVISIONER, "Delete", "Immediate")

    core.create_namespaced_persistent_volume_claim(kube_namespace, _claim("home", "2Gi"))
    claim, pv = _bound(core, kube_namespace, "home")
    # The DefaultStorageClass admission plugin named the class; the PV controller bound it.
    assert claim.spec.storage_class_name == DEFAULT_CLASS
    assert claim.status.capacity["storage"] == "2Gi"
    assert claim.metadata.annotations["volume.beta.kubernetes.io/storage-provisioner"] == PROVISIONER
    assert pv.spec.capacity["storage"] == "2Gi"
    assert pv.spec.access_modes == ["ReadWriteOnce"]
    assert pv.spec.persistent_volume_reclaim_policy == "Delete"
    assert pv.spec.claim_ref.uid == claim.metadata.uid
    assert pv.metadata.annotations["pv.kubernetes.io/provisioned-by"] == PROVISIONER
    assert Path(pv.spec.host_path.path) == control_plane.volumes_dir / f"pvc-{claim.metadata.uid}"
    assert Path(pv.spec.host_path.path).is_dir()
    events = _events(core, kube_namespace, "home")
    assert ("ExternalProvisioning", 'waiting for a volume to be created, either by external provisioner '
            f'"{PROVISIONER}" or manually created by system administrator') in events
    assert ("ProvisioningSucceeded", f"Successfully provisioned volume {pv.metadata.name}") in events


def test_files_on_a_claim_outlive_the_pod_and_are_shared_by_pods(core, kube_namespace, node_agent):
    core.create_namespaced_persistent_volume_claim(kube_namespace, _claim("shared"))
    _, pv = _bound(core, kube_namespace, "shared")
    mount = [{"name": "data", "mountPath": "/data"}]
    volume = [_claim_volume("data", "shared")]
    core.create_namespaced_pod(kube_namespace, _pod("writer", [_sh("main", "echo first > /data/note", mount)], volume))
    _pod_where(core, kube_namespace, "writer", _phase("Succeeded"))
    core.delete_namespaced_pod("writer", kube_namespace)
    assert (Path(pv.spec.host_path.path) / "note").read_text() == "first\n"

    # Two pods at once on the same claim: one reads what the gone pod wrote, and each sees
    # what the other writes while both run.
    left = _sh("main", "cat /data/note; echo from-left > /data/left; until [ -e /data/right ]; do sleep 0.1; done; "
                       "cat /data/right; sleep 600", mount)
    right = _sh("main", "echo from-right > /data/right; until [ -e /data/left ]; do sleep 0.1; done; "
                        "cat /data/left; sleep 600", mount)
    core.create_namespaced_pod(kube_namespace, _pod("left", [left], volume))
    core.create_namespaced_pod(kube_namespace, _pod("right", [right], volume))
    for name in ("left", "right"):
        _pod_where(core, kube_namespace, name, _phase("Running"))
    _eventually(lambda: "from-right" in _log(node_agent, kube_namespace, "left", "main"), what="left sees right")
    _eventually(lambda: "from-left" in _log(node_agent, kube_namespace, "right", "main"), what="right sees left")
    assert _log(node_agent, kube_namespace, "left", "main").startswith("first\n")


def test_a_pod_created_with_its_claim_starts_once_the_claim_is_bound(core, kube_namespace, node_agent):
    # What KubeSpawner does for a persistent home: the claim, then at once the pod.
    core.create_namespaced_persistent_volume_claim(kube_namespace, _claim("claim-alice"))
    core.create_namespaced_pod(kube_namespace, _pod("jupyter-alice", [_sh("main", "touch /home/jovyan/ok; sleep 600", [
        {"name": "home", "mountPath": "/home/jovyan"}])], [_claim_volume("home", "claim-alice")],
        security={"runAsUser": 1000, "fsGroup": 100}))
    started = time.monotonic()
    pod = _pod_where(core, kube_namespace, "jupyter-alice", _phase("Running"), timeout=20)
    assert time.monotonic() - started < 10
    _, pv = _bound(core, kube_namespace, "claim-alice")
    assert pod.spec.node_name == node_agent
    _eventually(lambda: (Path(pv.spec.host_path.path) / "ok").exists(), what="the pod wrote to its claim")


def test_a_claim_in_use_is_kept_until_its_pods_are_gone_then_its_volume_is_deleted(core, kube_namespace):
    core.create_namespaced_persistent_volume_claim(kube_namespace, _claim("scratch"))
    claim, pv = _bound(core, kube_namespace, "scratch")
    assert "kubernetes.io/pvc-protection" in claim.metadata.finalizers
    assert "kubernetes.io/pv-protection" in pv.metadata.finalizers
    directory = Path(pv.spec.host_path.path)
    core.create_namespaced_pod(kube_namespace, _pod("user", [_sh("main", "touch /data/x; sleep 600", [
        {"name": "data", "mountPath": "/data"}])], [_claim_volume("data", "scratch")]))
    _pod_where(core, kube_namespace, "user", _phase("Running"))

    core.delete_namespaced_persistent_volume_claim("scratch", kube_namespace)
    time.sleep(1)  # the PVC protection controller had time to act: the claim in use stays
    kept = core.read_namespaced_persistent_volume_claim("scratch", kube_namespace)
    assert kept.metadata.deletion_timestamp and kept.status.phase == "Bound"
    assert directory.is_dir()

    core.delete_namespaced_pod("user", kube_namespace)
    _eventually(lambda: _gone(lambda: core.read_namespaced_persistent_volume_claim("scratch", kube_namespace)),
                what="claim deleted once unused")
    _eventually(lambda: _gone(lambda: core.read_persistent_volume(pv.metadata.name)), what="PV deleted")
    assert not directory.exists()


def test_read_only_mounts_refuse_writes(core, kube_namespace, node_agent):
    core.create_namespaced_persistent_volume_claim(kube_namespace, _claim("ro"))
    _bound(core, kube_namespace, "ro")
    script = ("echo ok > /rw/file && echo wrote-rw; "
              "echo no > /ro-mount/file 2>&1 || echo refused-mount; "
              "echo no > /ro-claim/file 2>&1 || echo refused-claim")
    mounts = [{"name": "rw", "mountPath": "/rw"}, {"name": "rw", "mountPath": "/ro-mount", "readOnly": True},
              {"name": "ro", "mountPath": "/ro-claim"}]
    core.create_namespaced_pod(kube_namespace, _pod("ro", [_sh("main", script, mounts)], [
        _claim_volume("rw", "ro"), _claim_volume("ro", "ro", read_only=True)]))
    _pod_where(core, kube_namespace, "ro", _phase("Succeeded"))
    out = _log(node_agent, kube_namespace, "ro", "main")
    assert "wrote-rw" in out and "refused-mount" in out and "refused-claim" in out
    assert out.count("Read-only file system") == 2


def test_fs_group_makes_a_claim_writable_for_a_non_root_user(core, kube_namespace, node_agent):
    core.create_namespaced_persistent_volume_claim(kube_namespace, _claim("home"))
    _, pv = _bound(core, kube_namespace, "home")
    mount = [{"name": "home", "mountPath": "/home/jovyan"}]
    volume = [_claim_volume("home", "home")]
    # The working directory: the claim mounted there replaces the pod's own home directory.
    script = "touch x && echo wrote; stat -c '%a %g' /home/jovyan; mkdir d; stat -c '%g' d"
    main = _sh("main", script, mount, workingDir="/home/jovyan")
    # A fresh volume is root's (0755), like a new block volume: uid 1000 alone cannot write.
    core.create_namespaced_pod(kube_namespace, _pod("nogroup", [main], volume,
                                                    security={"runAsUser": 1000, "runAsGroup": 1000}))
    _pod_where(core, kube_namespace, "nogroup", _phase("Succeeded", "Failed"))
    assert "Permission denied" in _log(node_agent, kube_namespace, "nogroup", "main")
    # With fsGroup the kubelet gives the volume to the group (and setgid, so new files keep it).
    core.create_namespaced_pod(kube_namespace, _pod("fsgroup", [main], volume,
                                                    security={"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 100}))
    _pod_where(core, kube_namespace, "fsgroup", _phase("Succeeded"))
    out = _log(node_agent, kube_namespace, "fsgroup", "main").split()
    assert out == ["wrote", "2775", "100", "100"]
    made = Path(pv.spec.host_path.path) / "x"
    assert (made.stat().st_uid, made.stat().st_gid) == (1000, 100)


def test_sub_paths_of_directories_and_files(core, kube_namespace, node_agent):
    core.create_namespaced_persistent_volume_claim(kube_namespace, _claim("homes"))
    _, pv = _bound(core, kube_namespace, "homes")
    # zero-to-jupyterhub's singleuser.extraFiles: one Secret, each key mounted as a file by subPath.
    core.create_namespaced_secret(kube_namespace, {"metadata": {"name": "files"}, "stringData": {
        "config.py": "c.Answer = 42\n", "other": "not mounted\n"}})
    volumes = [_claim_volume("home", "homes"), {"name": "public", "emptyDir": {}},
               {"name": "files", "secret": {"secretName": "files", "items": [
                   {"key": "config.py", "path": "config.py", "mode": 0o640}]}}]
    mounts = [{"name": "home", "mountPath": "/home/jovyan/public_html", "subPath": "alice/public"},
              {"name": "home", "mountPath": "/home/jovyan", "subPath": "alice"},
              {"name": "files", "mountPath": "/tmp/etc/jupyter/config.py", "subPath": "config.py"}]
    script = ("echo hi > /home/jovyan/public_html/index.html; ls /home/jovyan; cat /tmp/etc/jupyter/config.py; "
              "stat -c '%a' /tmp/etc/jupyter/config.py; ls /tmp/etc/jupyter")
    core.create_namespaced_pod(kube_namespace, _pod("sub", [_sh("main", script, mounts)], volumes,
                                                    security={"runAsUser": 1000, "fsGroup": 100}))
    _pod_where(core, kube_namespace, "sub", _phase("Succeeded"))
    out = _log(node_agent, kube_namespace, "sub", "main").split("\n")
    # The child mount landed inside the parent one (applied parents first, its mount point made
    # in the parent volume as a runtime makes it), on the claim.
    assert out == ["public", "public_html", "c.Answer = 42", "640", "config.py", ""]
    root = Path(pv.spec.host_path.path)
    assert (root / "alice" / "public" / "index.html").read_text() == "hi\n"
    # The missing subPath directories were made like the volume root: its mode, its group.
    made = (root / "alice").stat()
    assert (oct(made.st_mode & 0o7777), made.st_gid) == (oct(0o2775), 100)


def test_config_map_and_secret_keys_are_files_and_a_missing_one_holds_the_pod(core, kube_namespace, node_agent):
    volumes = [{"name": "cfg", "configMap": {"name": "settings", "defaultMode": 0o600,
                                             "items": [{"key": "a", "path": "conf/a.txt"},
                                                       {"key": "b", "path": "b.sh", "mode": 0o755}]}},
               {"name": "sec", "secret": {"secretName": "creds"}}]
    mounts = [{"name": "cfg", "mountPath": "/tmp/cfg"}, {"name": "sec", "mountPath": "/tmp/sec"}]
    script = ("cat /tmp/cfg/conf/a.txt /tmp/cfg/b.sh /tmp/sec/user; "
              "stat -L -c '%a' /tmp/cfg/conf/a.txt /tmp/cfg/b.sh /tmp/sec/user; ls /tmp/cfg")
    core.create_namespaced_secret(kube_namespace, {"metadata": {"name": "creds"}, "stringData": {"user": "alice\n"}})
    core.create_namespaced_pod(kube_namespace, _pod("keyed", [_sh("main", script, mounts)], volumes))
    # The ConfigMap does not exist yet: the kubelet reports FailedMount and keeps the pod waiting.
    _eventually(lambda: any(r == "FailedMount" and m == 'MountVolume.SetUp failed for volume "cfg" : '
                            'configmap "settings" not found' for r, m in _events(core, kube_namespace, "keyed")),
                what="FailedMount event")
    waiting = core.read_namespaced_pod("keyed", kube_namespace)
    assert waiting.status.phase == "Pending"
    assert waiting.status.container_statuses[0].state.waiting.reason == "ContainerCreating"

    core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": "settings"}, "data": {
        "a": "alpha\n", "b": "echo beta\n", "c": "not listed\n"}})
    _pod_where(core, kube_namespace, "keyed", _phase("Succeeded"))
    out = _log(node_agent, kube_namespace, "keyed", "main").split()
    assert out == ["alpha", "echo", "beta", "alice", "600", "755", "644", "b.sh", "conf"]


def test_host_path_volumes(core, kube_namespace, node_agent, tmp_path):
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "from-host").write_text("host data\n")
    volumes = [{"name": "dir", "hostPath": {"path": str(tmp_path / "shared"), "type": "Directory"}},
               {"name": "made", "hostPath": {"path": str(tmp_path / "made"), "type": "DirectoryOrCreate"}}]
    # Mounted under the pod's own /tmp while the sources are under the host's /tmp.
    mounts = [{"name": "dir", "mountPath": "/tmp/shared"}, {"name": "made", "mountPath": "/tmp/made"}]
    core.create_namespaced_pod(kube_namespace, _pod("host", [_sh(
        "main", "cat /tmp/shared/from-host; echo from-pod > /tmp/made/out", mounts)], volumes))
    _pod_where(core, kube_namespace, "host", _phase("Succeeded"))
    assert _log(node_agent, kube_namespace, "host", "main") == "host data\n"
    assert (tmp_path / "made" / "out").read_text() == "from-pod\n"

    missing = str(tmp_path / "absent")
    core.create_namespaced_pod(kube_namespace, _pod("nohost", [_sh("main", "true", [
        {"name": "dir", "mountPath": "/tmp/x"}])], [
        {"name": "dir", "hostPath": {"path": missing, "type": "Directory"}}]))
    _eventually(lambda: ("FailedMount", f'MountVolume.SetUp failed for volume "dir" : hostPath type check failed: '
                         f"{missing} is not a directory") in _events(core, kube_namespace, "nohost"),
                what="hostPath type check")
    assert core.read_namespaced_pod("nohost", kube_namespace).status.phase == "Pending"


def test_a_claim_of_a_missing_storage_class_stays_pending_and_its_pod_unschedulable(core, kube_namespace,
                                                                                    node_agent):
    core.create_namespaced_persistent_volume_claim(kube_namespace, _claim("lost", storage_class="no-such-class"))
    # The real PV controller reports it; no provisioner touches it.
    _eventually(lambda: ("ProvisioningFailed", 'storageclass.storage.k8s.io "no-such-class" not found')
                in _events(core, kube_namespace, "lost"), what="ProvisioningFailed")
    assert core.read_namespaced_persistent_volume_claim("lost", kube_namespace).status.phase == "Pending"

    mount = [{"name": "data", "mountPath": "/data"}]
    core.create_namespaced_pod(kube_namespace, _pod("stuck", [_sh("main", "true", mount)],
                                                    [_claim_volume("data", "lost")]))
    pod = _pod_where(core, kube_namespace, "stuck", lambda p: any(
        c.type == "PodScheduled" and c.reason == "Unschedulable" for c in p.status.conditions or []))
    scheduled = next(c for c in pod.status.conditions if c.type == "PodScheduled")
    assert re.fullmatch(r"0/\d+ nodes are available: \d+ pod has unbound immediate PersistentVolumeClaims\.",
                        scheduled.message), scheduled.message

    # Bound to the node by hand (no scheduler), the kubelet waits for the claim instead.
    core.create_namespaced_pod(kube_namespace, _pod("pinned", [_sh("main", "true", mount)],
                                                    [_claim_volume("data", "lost")], nodeName=str(node_agent)))
    _eventually(lambda: any(r == "FailedMount" and "unmounted volumes=[data]" in m and
                            f'PVC {kube_namespace}/lost has non-bound phase ("Pending")' in m
                            for r, m in _events(core, kube_namespace, "pinned")), what="FailedMount for the claim")
    pinned = core.read_namespaced_pod("pinned", kube_namespace)
    assert pinned.status.phase == "Pending"
    assert pinned.status.container_statuses[0].state.waiting.reason == "ContainerCreating"


def test_the_sized_class_is_full_at_its_capacity(core, control_plane, kube_namespace, node_agent):
    core.create_namespaced_persistent_volume_claim(kube_namespace, _claim("small", "1Mi", storage_class=SIZED_CLASS))
    _, pv = _bound(core, kube_namespace, "small")
    directory = Path(pv.spec.host_path.path)
    assert directory in mounts_under(directory)
    script = ("dd if=/dev/zero of=/data/half bs=512k count=1 2>/dev/null && echo half-fits; "
              "dd if=/dev/zero of=/data/more bs=1M count=1 || echo refused")
    core.create_namespaced_pod(kube_namespace, _pod("fill", [_sh("main", script, [
        {"name": "data", "mountPath": "/data"}])], [_claim_volume("data", "small")], security={"fsGroup": 100}))
    _pod_where(core, kube_namespace, "fill", _phase("Succeeded"))
    out = _log(node_agent, kube_namespace, "fill", "main")
    assert "half-fits" in out and "No space left on device" in out and "refused" in out

    core.delete_namespaced_pod("fill", kube_namespace)
    core.delete_namespaced_persistent_volume_claim("small", kube_namespace)
    _eventually(lambda: _gone(lambda: core.read_persistent_volume(pv.metadata.name)), what="PV deleted")
    assert directory not in mounts_under(control_plane.volumes_dir) and not directory.exists()


# ------------------------------------------------------------------------------------ init containers


def _init_statuses(pod):
    return {s.name: s for s in pod.status.init_container_statuses or []}


def _condition(pod, kind):
    return next(c for c in pod.status.conditions if c.type == kind)


def test_init_containers_run_in_order_before_the_app(core, kube_namespace, node_agent):
    mount = [{"name": "work", "mountPath": "/work"}]
    init = [_sh("first", "echo one > /work/log", mount), _sh("second", "sleep 0.3; echo two >> /work/log", mount)]
    app = _sh("main", "cat /work/log; sleep 600", mount)
    core.create_namespaced_pod(kube_namespace, _pod("init", [app], [{"name": "work", "emptyDir": {}}], init=init))
    pod = _pod_where(core, kube_namespace, "init", _phase("Running"))
    _eventually(lambda: _log(node_agent, kube_namespace, "init", "main") == "one\ntwo\n", what="app read the file")
    for status in _init_statuses(pod).values():
        assert status.ready and status.state.terminated.reason == "Completed"
        assert status.state.terminated.exit_code == 0
    assert _condition(pod, "Initialized").status == "True"
    # Ready was False (ContainersNotReady) while initializing; now True with no stale reason.
    ready = _condition(_pod_where(core, kube_namespace, "init", lambda p: _condition(p, "Ready").status == "True"),
                       "Ready")
    assert (ready.reason, ready.message) == (None, None)
    fields = {e.involved_object.field_path for e in core.list_namespaced_event(
        kube_namespace, field_selector="involvedObject.name=init").items if e.reason == "Started"}
    assert fields == {"spec.initContainers{first}", "spec.initContainers{second}", "spec.containers{main}"}


def test_a_failing_init_container_fails_a_pod_that_never_restarts(core, kube_namespace):
    core.create_namespaced_pod(kube_namespace, _pod("initfail", [_sh("main", "echo never")],
                                                    init=[_sh("setup", "exit 3")]))
    pod = _pod_where(core, kube_namespace, "initfail", _phase("Failed"))
    setup = _init_statuses(pod)["setup"]
    assert (setup.state.terminated.reason, setup.state.terminated.exit_code, setup.ready) == ("Error", 3, False)
    assert pod.status.container_statuses[0].state.waiting.reason == "PodInitializing"
    initialized = _condition(pod, "Initialized")
    assert (initialized.status, initialized.reason, initialized.message) == (
        "False", "ContainersNotInitialized", "containers with incomplete status: [setup]")
    ready = _condition(pod, "Ready")
    assert (ready.status, ready.reason, ready.message) == (
        "False", "ContainersNotReady", "containers with unready status: [main]")


def test_a_failing_init_container_is_retried_with_back_off(core, kube_namespace, node_agent):
    # Fails on its first run only (the emptyDir outlives the container), as a flaky setup step.
    mount = [{"name": "work", "mountPath": "/work"}]
    setup = _sh("setup", "[ -e /work/tried ] && exit 0; touch /work/tried; exit 1", mount)
    core.create_namespaced_pod(kube_namespace, _pod("retry", [_sh("main", "echo started; sleep 600")],
                                                    [{"name": "work", "emptyDir": {}}], restart="Always", init=[setup]))
    pod = _pod_where(core, kube_namespace, "retry", lambda p: (lambda s: s and s.state.waiting and s.restart_count)(
        _init_statuses(p).get("setup")), timeout=10)
    status = _init_statuses(pod)["setup"]
    # What `kubectl get pod` shows as Init:CrashLoopBackOff.
    assert status.state.waiting.reason == "CrashLoopBackOff"
    assert status.last_state.terminated.exit_code == 1 and status.restart_count == 1
    assert pod.status.phase == "Pending"
    assert pod.status.container_statuses[0].state.waiting.reason == "PodInitializing"
    pod = _pod_where(core, kube_namespace, "retry", _phase("Running"))
    assert _init_statuses(pod)["setup"].state.terminated.exit_code == 0
    _eventually(lambda: "started" in _log(node_agent, kube_namespace, "retry", "main"), what="app started")


def test_zero_to_jupyterhubs_metadata_blocking_init_container(core, kube_namespace):
    # z2jh's singleuser.cloudMetadata.blockWithIptables init container, as its hub config makes it.
    block = {"name": "block-cloud-metadata", "image": "quay.io/jupyterhub/k8s-network-tools:4.2.0",
             "command": ["iptables", "--append", "OUTPUT", "--protocol", "tcp", "--destination", "169.254.169.254",
                         "--destination-port", "80", "--jump", "DROP"],
             "securityContext": {"privileged": True, "runAsUser": 0, "capabilities": {"add": ["NET_ADMIN"]}}}
    core.create_namespaced_pod(kube_namespace, _pod("blocked", [_sh("main", "sleep 600")], init=[block],
                                                    security={"runAsUser": 1000, "fsGroup": 100}))
    pod = _pod_where(core, kube_namespace, "blocked", _phase("Running"))
    assert _init_statuses(pod)["block-cloud-metadata"].state.terminated.exit_code == 0
    rules = subprocess.run(["ip", "netns", "exec", f"tycho-{pod.metadata.uid[:13]}", "iptables", "-S", "OUTPUT"],
                           capture_output=True, text=True, check=True).stdout
    assert "-A OUTPUT -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j DROP" in rules
    host = subprocess.run(["iptables", "-S", "OUTPUT"], capture_output=True, text=True, check=True).stdout
    assert "169.254.169.254" not in host, "the pod's rule leaked into the host's tables"
