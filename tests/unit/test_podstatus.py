"""Reading pod status like a person: fail fast with Kubernetes' own reason, or keep waiting.

The pod dicts below have the shapes the Kubernetes API returns (camelCase, as a watch delivers
them), trimmed to the fields that matter.
"""
from __future__ import annotations

import copy

import pytest

from tycho_spawner.podstatus import (
    CONTAINERS_NOT_STARTED,
    DEFAULT_FATAL_REASONS,
    FAILED,
    MISSING,
    PENDING,
    READY,
    UNBOUND_CLAIM,
    Verdict,
    age_seconds,
    assess,
    claim_verdict,
    exit_status,
    mount_verdict,
    mounts_objects,
    scheduler_words,
)

IMAGE = "quay.io/jupyter/scipy-notebook:2026-05-31"


def pod(phase="Pending", conditions=(), statuses=(), init_statuses=None, uid="7b1e6f3c-0c4e-4f52-9a4c-1f6d3e0a9b21",
        node="node-1", pod_ip=None, deletion=None, reason=None, message=None) -> dict:
    metadata = {
        "name": "jupyter-alice",
        "namespace": "jhub",
        "resourceVersion": "1234",
        "creationTimestamp": "2026-06-01T10:00:00Z",
        "labels": {"component": "singleuser-server"},
    }
    if uid:
        metadata["uid"] = uid
    if deletion:
        metadata["deletionTimestamp"] = deletion
        metadata["deletionGracePeriodSeconds"] = 30
    status = {"phase": phase, "qosClass": "Burstable"}
    if conditions:
        status["conditions"] = list(conditions)
    if statuses:
        status["containerStatuses"] = list(statuses)
    if init_statuses:
        status["initContainerStatuses"] = list(init_statuses)
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
        status["hostIP"] = "10.0.0.5"
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    spec = {"containers": [{"name": "notebook", "image": IMAGE}], "restartPolicy": "OnFailure"}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": status}


def condition(type_, status="True", reason=None, message=None) -> dict:
    out = {"type": type_, "status": status, "lastProbeTime": None, "lastTransitionTime": "2026-06-01T10:00:01Z"}
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    return out


SCHEDULED = condition("PodScheduled")


def cstatus(name="notebook", state=None, last=None, ready=False, restarts=0, image=IMAGE, started=None) -> dict:
    out = {
        "name": name,
        "image": image,
        "imageID": "" if not (state or {}).get("running") else f"{image}@sha256:abc",
        "ready": ready,
        "restartCount": restarts,
        "state": state or {"waiting": {"reason": "ContainerCreating"}},
        "lastState": last or {},
    }
    if started is not None:
        out["started"] = started
    return out


def waiting(reason, message=None) -> dict:
    w = {"reason": reason}
    if message:
        w["message"] = message
    return {"waiting": w}


def terminated(code, reason="Error", message=None) -> dict:
    t = {
        "exitCode": code,
        "reason": reason,
        "startedAt": "2026-06-01T10:00:05Z",
        "finishedAt": "2026-06-01T10:00:06Z",
        "containerID": "containerd://0123",
    }
    if message:
        t["message"] = message
    return {"terminated": t}


RUNNING = {"running": {"startedAt": "2026-06-01T10:00:05Z"}}


# --------------------------------------------------------------------------- fatal reasons


def test_err_image_pull_fails_with_the_image_and_kubernetes_message():
    p = pod(
        conditions=[SCHEDULED, condition("Ready", "False", "ContainersNotReady")],
        statuses=[cstatus(state=waiting("ErrImagePull", f'failed to pull and unpack image "{IMAGE}": not found'))],
    )
    verdict = assess(p)
    assert verdict.state == FAILED
    assert verdict.reason == "ErrImagePull"
    assert verdict.message == (
        f"ErrImagePull: image '{IMAGE}' cannot be pulled: "
        f'failed to pull and unpack image "{IMAGE}": not found'
    )
    assert exit_status(p) is None, "the pod itself has not stopped"


def test_image_pull_backoff_fails():
    p = pod(conditions=[SCHEDULED], statuses=[cstatus(state=waiting("ImagePullBackOff", f'Back-off pulling image "{IMAGE}"'))])
    verdict = assess(p)
    assert (verdict.state, verdict.reason) == (FAILED, "ImagePullBackOff")
    assert IMAGE in verdict.message and "Back-off pulling image" in verdict.message


def test_image_pull_failure_without_message():
    p = pod(conditions=[SCHEDULED], statuses=[cstatus(state=waiting("InvalidImageName"))])
    assert assess(p).message == f"InvalidImageName: image '{IMAGE}' cannot be pulled"


def test_create_container_config_error_names_the_container():
    p = pod(
        conditions=[SCHEDULED],
        statuses=[cstatus(name="gate", state=waiting("CreateContainerConfigError", 'secret "hub-token" not found'))],
    )
    verdict = assess(p)
    assert verdict == Verdict(
        FAILED, "CreateContainerConfigError: container 'gate': secret \"hub-token\" not found", "CreateContainerConfigError"
    )


def test_crash_loop_back_off_reports_the_last_exit_code():
    p = pod(
        phase="Running",
        conditions=[SCHEDULED, condition("Ready", "False", "ContainersNotReady")],
        pod_ip="10.244.0.12",
        statuses=[
            cstatus(
                state=waiting("CrashLoopBackOff", "back-off 20s restarting failed container=notebook"),
                last=terminated(2, "Error"),
                restarts=3,
            )
        ],
    )
    verdict = assess(p)
    assert verdict.state == FAILED and verdict.reason == "CrashLoopBackOff"
    assert verdict.message == "CrashLoopBackOff: container 'notebook' error with exit code 2"
    assert exit_status(p) == 2


def test_crash_loop_back_off_with_termination_message():
    p = pod(
        phase="Running",
        statuses=[cstatus(state=waiting("CrashLoopBackOff"), last=terminated(137, "OOMKilled", "out of memory"))],
    )
    verdict = assess(p)
    assert "OOMKilled with exit code 137: out of memory" in verdict.message
    assert exit_status(p) == 137


def test_crash_loop_back_off_without_last_state():
    p = pod(phase="Running", statuses=[cstatus(state=waiting("CrashLoopBackOff", "back-off 10s"))])
    assert assess(p).message == "CrashLoopBackOff: container 'notebook': back-off 10s"
    assert exit_status(p) == 1


def test_a_failing_sidecar_fails_the_start_too():
    p = pod(
        phase="Pending",
        conditions=[SCHEDULED],
        statuses=[
            cstatus(name="gate", state=waiting("ErrImagePull", "manifest unknown"), image="ghcr.io/x/gate:0"),
            cstatus(name="rstudio", state=RUNNING, ready=False),
        ],
    )
    verdict = assess(p)
    assert verdict.state == FAILED and "ghcr.io/x/gate:0" in verdict.message


def test_init_container_failures_count():
    p = pod(
        conditions=[SCHEDULED],
        init_statuses=[cstatus(name="setup", state=waiting("CrashLoopBackOff"), last=terminated(1))],
        statuses=[cstatus(state=waiting("PodInitializing"))],
    )
    verdict = assess(p)
    assert verdict.state == FAILED and "container 'setup' error with exit code 1" in verdict.message


def test_fatal_reasons_can_be_tuned():
    p = pod(phase="Running", statuses=[cstatus(state=waiting("CrashLoopBackOff"), last=terminated(1))])
    assert assess(p).state == FAILED
    assert assess(p, fatal_reasons=("ErrImagePull",)).state == PENDING
    p = pod(conditions=[SCHEDULED], statuses=[cstatus(state=waiting("ContainerCreating"))])
    assert assess(p, fatal_reasons=DEFAULT_FATAL_REASONS + ("ContainerCreating",)).state == FAILED


@pytest.mark.parametrize("reason", ["ContainerCreating", "PodInitializing"])
def test_ordinary_waiting_reasons_keep_waiting(reason):
    p = pod(conditions=[SCHEDULED], statuses=[cstatus(state=waiting(reason))])
    verdict = assess(p)
    assert verdict.state == PENDING
    assert verdict.message == "starting containers on node-1"
    assert verdict.reason == CONTAINERS_NOT_STARTED  # the spawner then reads the pod's events
    assert exit_status(p) is None


# --------------------------------------------------------------------------- scheduling


UNSCHEDULABLE = condition(
    "PodScheduled", "False", "Unschedulable", "0/3 nodes are available: 3 Insufficient memory."
)


def test_unschedulable_is_fatal_by_default():
    p = pod(conditions=[UNSCHEDULABLE], node=None)
    verdict = assess(p)
    assert verdict == Verdict(
        FAILED,
        "no node can run this server: 3 nodes have too little memory free",
        "Unschedulable",
        "0/3 nodes are available: 3 Insufficient memory.",
    )
    assert exit_status(p) is None


def test_unschedulable_waits_when_an_autoscaler_may_add_a_node():
    verdict = assess(pod(conditions=[UNSCHEDULABLE], node=None), unschedulable_is_fatal=False)
    assert verdict.state == PENDING
    assert verdict.message == "waiting for a node: 3 nodes have too little memory free"
    assert verdict.detail == "0/3 nodes are available: 3 Insufficient memory."


# What kube-scheduler 1.20 (the test bed's) says, as seen in tests/testbed/test_gpu_node.py.
GPU_AND_TAINT_120 = ("0/2 nodes are available: 1 Insufficient nvidia.com/gpu, "
                     "1 node(s) had taint {nvidia.com/gpu: present}, that the pod didn't tolerate.")


def test_the_scheduler_s_reasons_are_told_in_words_with_its_own_text_kept_for_the_log():
    verdict = assess(pod(conditions=[condition("PodScheduled", "False", "Unschedulable", GPU_AND_TAINT_120)],
                         node=None))
    assert verdict == Verdict(
        FAILED,
        "no node can run this server: 1 node has too few nvidia.com/gpu free, "
        "1 node has a taint (nvidia.com/gpu) this server does not tolerate",
        "Unschedulable",
        GPU_AND_TAINT_120,
    )


@pytest.mark.parametrize("message, words", [
    # kube-scheduler 1.20, seen on the test bed
    ("0/2 nodes are available: 2 Insufficient nvidia.com/gpu.", "2 nodes have too few nvidia.com/gpu free"),
    ("0/2 nodes are available: 1 node(s) didn't match Pod's node affinity, "
     "1 node(s) had taint {nvidia.com/gpu: present}, that the pod didn't tolerate.",
     "1 node does not match this server's node selector or affinity, "
     "1 node has a taint (nvidia.com/gpu) this server does not tolerate"),
    ("0/3 nodes are available: 1 Insufficient cpu, 2 Insufficient amd.com/gpu.",
     "1 node has too little cpu free, 2 nodes have too few amd.com/gpu free"),
    ("0/1 nodes are available: 1 node(s) had taint {node.kubernetes.io/not-ready: }, that the pod didn't tolerate.",
     "1 node is not ready"),
    ("0/2 nodes are available: 2 node(s) were unschedulable.", "2 nodes are cordoned (no new servers)"),
    ("0/1 nodes are available: 1 Too many pods.", "1 node is running as many pods as it can"),
    # newer releases: "untolerated taint", "affinity/selector", and what preemption tried
    ("0/2 nodes are available: 1 Insufficient nvidia.com/gpu, 1 node(s) had untolerated taint "
     "{nvidia.com/gpu: present}. preemption: 0/2 nodes are available: 1 No preemption victims found for "
     "incoming pod, 1 Preemption is not helpful for scheduling.",
     "1 node has too few nvidia.com/gpu free, 1 node has a taint (nvidia.com/gpu) this server does not tolerate"),
    ("0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are "
     "available: 3 Preemption is not helpful for scheduling.",
     "3 nodes do not match this server's node selector or affinity"),
    ("0/2 nodes are available: 2 node(s) had untolerated taint {node.kubernetes.io/unreachable: }.",
     "2 nodes are unreachable"),
    ("0/1 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }.",
     "1 node is a control-plane node"),
    ("no nodes available to schedule pods", "the cluster has no node"),
    # a reason not known here, or another shape: the scheduler's own words
    ("0/2 nodes are available: 2 node(s) frobnicated.", "2 node(s) frobnicated"),
    ("something new", "something new"),
])
def test_the_scheduler_s_words_from_1_20_to_now(message, words):
    assert scheduler_words(message) == words
    verdict = assess(pod(conditions=[condition("PodScheduled", "False", "Unschedulable", message)], node=None))
    assert verdict.message == f"no node can run this server: {words}"
    assert verdict.detail == message


def test_a_transient_reason_still_fails_at_once_unless_an_autoscaler_is_expected():
    # A node restarting (not ready) is as unschedulable as a missing GPU for the scheduler:
    # unschedulable_is_fatal decides, as before; with it off the start waits and says why.
    message = "0/1 nodes are available: 1 node(s) had taint {node.kubernetes.io/not-ready: }, that the pod didn't tolerate."
    p = pod(conditions=[condition("PodScheduled", "False", "Unschedulable", message)], node=None)
    assert assess(p).state == FAILED
    assert assess(p, unschedulable_is_fatal=False) == Verdict(PENDING, "waiting for a node: 1 node is not ready",
                                                              "", message)


def test_not_yet_scheduled_is_pending():
    p = pod(node=None)
    assert assess(p) == Verdict(PENDING, "waiting for a node")


def test_scheduling_gated_is_not_unschedulable():
    p = pod(node=None, conditions=[condition("PodScheduled", "False", "SchedulingGated")])
    assert assess(p).state == PENDING


def test_pod_without_uid_is_being_created():
    assert assess(pod(uid=None, node=None)) == Verdict(PENDING, "creating the pod")


# --------------------------------------------------------------------------- running


def test_running_and_ready():
    p = pod(
        phase="Running",
        pod_ip="10.244.0.12",
        conditions=[SCHEDULED, condition("Initialized"), condition("ContainersReady"), condition("Ready")],
        statuses=[cstatus(state=RUNNING, ready=True, started=True)],
    )
    assert assess(p) == Verdict(READY, "ready")
    assert exit_status(p) is None


def test_running_but_not_ready_waits_naming_the_container():
    p = pod(
        phase="Running",
        pod_ip="10.244.0.12",
        conditions=[SCHEDULED, condition("Ready", "False", "ContainersNotReady", "containers with unready status: [rstudio]")],
        statuses=[
            cstatus(name="gate", state=RUNNING, ready=True, started=True),
            cstatus(name="rstudio", state=RUNNING, ready=False, started=True),
        ],
    )
    verdict = assess(p)
    assert verdict == Verdict(PENDING, "waiting for rstudio to answer")
    assert exit_status(p) is None


def test_ready_needs_every_container():
    p = pod(
        phase="Running",
        pod_ip="10.244.0.12",
        conditions=[SCHEDULED],
        statuses=[
            cstatus(name="gate", state=RUNNING, ready=True),
            cstatus(name="rstudio", state=waiting("ContainerCreating")),
        ],
    )
    assert assess(p).state == PENDING


def test_ready_needs_a_pod_ip():
    p = pod(phase="Running", conditions=[SCHEDULED], statuses=[cstatus(state=RUNNING, ready=True)])
    assert assess(p).state == PENDING


# --------------------------------------------------------------------------- gone / stopped


def test_deleted_while_starting():
    p = pod(phase="Running", deletion="2026-06-01T10:01:00Z", statuses=[cstatus(state=RUNNING, ready=True)], pod_ip="10.0.0.1")
    assert assess(p) == Verdict(FAILED, "the pod was deleted while starting", "Deleted")


def test_missing_pod():
    assert assess(None) == Verdict(MISSING, "the pod does not exist")
    assert exit_status(None) == 1


def test_failed_pod_reports_the_container_exit():
    p = pod(phase="Failed", statuses=[cstatus(state=terminated(3, "Error", "bad config"))])
    verdict = assess(p)
    assert verdict == Verdict(
        FAILED,
        "the app stopped before it was ready: container 'notebook' error with exit code 3: bad config",
        "Error",
    )
    assert exit_status(p) == 3


def test_succeeded_pod_is_stopped_with_zero():
    p = pod(phase="Succeeded", statuses=[cstatus(state=terminated(0, "Completed"))])
    verdict = assess(p)
    assert verdict.state == FAILED and verdict.reason == "Completed"
    assert "container 'notebook' Completed with exit code 0" in verdict.message
    assert exit_status(p) == 0


def test_failed_pod_without_container_status_uses_the_pod_reason():
    p = pod(phase="Failed", reason="Evicted", message="The node was low on resource: memory.")
    verdict = assess(p)
    assert verdict == Verdict(FAILED, "the pod failed: The node was low on resource: memory.", "Evicted")
    assert exit_status(p) == 1
    assert exit_status(pod(phase="Succeeded")) == 0


def test_terminated_container_in_a_running_pod_is_an_exit():
    p = pod(
        phase="Running",
        pod_ip="10.0.0.1",
        statuses=[cstatus(name="gate", state=RUNNING, ready=True), cstatus(name="nginx", state=terminated(1))],
    )
    assert exit_status(p) == 1


def test_assess_does_not_modify_the_pod():
    p = pod(phase="Running", statuses=[cstatus(state=waiting("CrashLoopBackOff"), last=terminated(1))])
    before = copy.deepcopy(p)
    assess(p)
    exit_status(p)
    assert p == before


def test_empty_shapes_do_not_crash():
    assert assess({}).state == PENDING
    assert assess({"metadata": {"uid": "u"}, "status": {}}).state == PENDING
    assert exit_status({}) is None


# --------------------------------------------------------------------------- storage claims

def _unschedulable(message):
    return {
        "metadata": {"uid": "u-1"},
        "spec": {},
        "status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}]},
    }


@pytest.mark.parametrize("message", [
    "0/1 nodes are available: 1 pod has unbound immediate PersistentVolumeClaims.",
    'persistentvolumeclaim "home" not found',
    # The scheduler's cache has the claim bound but not yet its volume (seen after an API server
    # restart, tests/faults/test_api_server_stopped.py): it schedules the pod once it has it.
    "0/1 nodes are available: 1 pvc(s) bound to non-existent pv(s).",
])
def test_a_pod_waiting_for_its_claims_is_not_failed_by_the_scheduler_alone(message):
    verdict = assess(_unschedulable(message), unschedulable_is_fatal=True)
    assert verdict.state == PENDING and verdict.reason == UNBOUND_CLAIM
    assert message in verdict.message


def _event(reason, message, kind="Normal", component="persistentvolume-controller", at="2026-12-01T00:00:01Z"):
    return {"reason": reason, "message": message, "type": kind, "source": {"component": component},
            "last_timestamp": at}


def test_a_claim_of_a_missing_storage_class_fails_with_the_controllers_words():
    verdict = claim_verdict("claim-alice", [
        _event("ProvisioningFailed", 'storageclass.storage.k8s.io "fast" not found', "Warning"),
    ])
    assert verdict.state == FAILED and verdict.reason == "ProvisioningFailed"
    assert verdict.message == (
        "the storage claim 'claim-alice' cannot be provisioned: storageclass.storage.k8s.io \"fast\" not found"
    )


def test_a_claim_being_provisioned_is_waited_for():
    waiting = _event("ExternalProvisioning", 'waiting for a volume to be created, either by external provisioner '
                     '"tycho-testbed.io/hostpath" or manually created by system administrator')
    assert claim_verdict("claim-alice", [waiting]).state == PENDING
    assert claim_verdict("claim-alice", []).state == PENDING
    # an external provisioner's own failure is retried by it: still waiting
    retrying = _event("ProvisioningFailed", "disk quota hiccup", "Warning", component="tycho-testbed.io/hostpath",
                      at="2026-12-01T00:00:02Z")
    assert claim_verdict("claim-alice", [waiting, retrying]).state == PENDING
    # the newest event decides: a class created meanwhile lets the controller go on
    failed_then_waiting = [
        _event("ProvisioningFailed", 'storageclass.storage.k8s.io "fast" not found', "Warning", at="2026-12-01T00:00:01Z"),
        _event("ExternalProvisioning", "waiting for a volume to be created", at="2026-12-01T00:00:05Z"),
    ]
    assert claim_verdict("claim-alice", failed_then_waiting).state == PENDING


def test_age_is_read_from_the_creation_timestamp():
    import datetime

    now = datetime.datetime(2026, 12, 1, 0, 1, 30, tzinfo=datetime.timezone.utc)
    assert age_seconds({"metadata": {"creationTimestamp": "2026-12-01T00:00:00Z"}}, now) == 90
    assert age_seconds({"metadata": {"creationTimestamp": "2026-12-01T00:02:00Z"}}, now) == 0  # clock skew
    assert age_seconds({"metadata": {}}, now) == 0
    assert age_seconds(None, now) == 0


# --------------------------------------------------------------------------- volumes a kubelet cannot mount


@pytest.mark.parametrize("kind, source, word", [("configmap", "site-settings", "ConfigMap"),
                                                ("secret", "tycho-test-db", "Secret")])
def test_a_volume_from_a_missing_config_map_or_secret_fails_naming_it(kind, source, word):
    kubelet = f'MountVolume.SetUp failed for volume "settings" : {kind} "{source}" not found'
    verdict = mount_verdict([_event("Scheduled", "assigned jhub/jupyter-alice to node-1", component="default-scheduler"),
                             _event("FailedMount", kubelet, "Warning", component="kubelet")])
    assert verdict == Verdict(FAILED, f"the {word} {source!r} of volume 'settings' does not exist", "FailedMount", kubelet)


@pytest.mark.parametrize("message", [
    # a claim's volume not attached yet, a timeout: the kubelet's retries may work
    'Unable to attach or mount volumes: unmounted volumes=[home], unattached volumes=[home]: timed out waiting for the condition',
    'MountVolume.SetUp failed for volume "home" : mount failed: exit status 32',
    # a key missing from an existing object is another message (and not this check's business)
    'MountVolume.SetUp failed for volume "settings" : configmap references non-existent config key: x',
])
def test_other_mount_failures_are_waited_for(message):
    assert mount_verdict([_event("FailedMount", message, "Warning", component="kubelet")]) is None
    assert mount_verdict([]) is None


def test_only_pods_with_config_map_or_secret_volumes_have_their_events_read():
    plain = pod(conditions=[SCHEDULED])
    plain["spec"]["volumes"] = [{"name": "home", "persistentVolumeClaim": {"claimName": "claim-alice"}}]
    assert not mounts_objects(plain) and not mounts_objects(None)
    token = {"name": "kube-api-access-x1", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}
    plain["spec"]["volumes"].append(token)  # what a cluster adds to every pod that mounts a token
    assert not mounts_objects(plain)
    for source in ({"configMap": {"name": "site"}}, {"secret": {"secretName": "db"}}):
        mounting = copy.deepcopy(plain)
        mounting["spec"]["volumes"].append({"name": "extra", **source})
        assert mounts_objects(mounting), source
