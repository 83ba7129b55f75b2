"""Reading a Pod's status the way a person would: ready, still coming, or never going to work.

KubeSpawner waits the whole start timeout when an image cannot be pulled (kubespawner #795).
Kubernetes already says why a pod can never become ready (``ErrImagePull``, ``Unschedulable``,
``CrashLoopBackOff``...): :func:`assess` turns the pod object into a verdict carrying
Kubernetes' own reason, so the spawner can fail within seconds and tell the user why.

Pure: the input is the pod as a dict (as the watch delivers it).
"""
from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Iterable, Optional

#: Waiting reasons after which a container does not start without someone changing something.
DEFAULT_FATAL_REASONS = (
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "CrashLoopBackOff",
)

PENDING, READY, FAILED, MISSING = "pending", "ready", "failed", "missing"
#: Reason of a pending verdict whose pod waits for its storage claims to be bound: only the
#: claims' own events say whether that will happen (see :func:`claim_verdict`).
UNBOUND_CLAIM = "UnboundClaim"
#: Reason of a pending verdict whose pod is on a node where none of its containers runs yet:
#: the kubelet mounts volumes and pulls images. Whether a mount can ever work is only in the
#: pod's events (see :func:`mount_verdict`).
CONTAINERS_NOT_STARTED = "ContainersNotStarted"
#: The in-tree controller that binds and provisions claims; its failures do not heal by waiting
#: (a StorageClass that does not exist), while external provisioners retry theirs.
_PV_CONTROLLER = "persistentvolume-controller"


@dataclass(frozen=True)
class Verdict:
    """``state`` is one of pending / ready / failed / missing; ``message`` is for the user.

    ``detail`` is Kubernetes' own text when ``message`` puts it in other words (the scheduler's
    "0/2 nodes are available: ..."), for the log: what an admin searches for is that text.
    """

    state: str
    message: str
    reason: str = ""
    detail: str = ""


# --------------------------------------------------------------------------- the scheduler's words

#: kube-scheduler's summary when no node fits (``FitError.Error``; 1.20 to now): "0/N nodes are
#: available: " + "<count> <reason>" per reason, sorted, joined with ", " + "."; since 1.23 it
#: may go on with the PostFilter plugins' message (" preemption: 0/N nodes are available: ...").
#: Before 1.17 the middle was "to run pod ...".
_FIT_ERROR = re.compile(r"0/(?P<nodes>\d+) nodes are available(?: to run pod [^:]*)?: (?P<reasons>.*?)\.(?: (?P<post>.*))?",
                        re.DOTALL)
#: One "<count> <reason>" of the list (a reason may hold ", " itself: 1.20's taint reason does).
_REASON_SPLIT = re.compile(r", (?=\d+ )")
#: The TaintToleration plugin's reason: "node(s) had taint {k: v}, that the pod didn't tolerate"
#: (1.18-1.24), "node(s) had untolerated taint {k: v}" (1.25 on).
_TAINT = re.compile(r"node\(s\) had (?:untolerated )?taint \{(?P<key>[^:{}]*): ?(?P<value>[^{}]*)\}"
                    r"(?:, that the pod didn't tolerate)?")
#: Taints Kubernetes itself puts on nodes, in words.
_KNOWN_TAINTS = {
    "node.kubernetes.io/not-ready": "{is} not ready",
    "node.kubernetes.io/unreachable": "{is} unreachable",
    "node.kubernetes.io/unschedulable": "{is} cordoned (no new servers)",
    "node.kubernetes.io/memory-pressure": "{is} short of memory",
    "node.kubernetes.io/disk-pressure": "{is} short of disk space",
    "node.kubernetes.io/pid-pressure": "{is} short of process ids",
    "node.kubernetes.io/network-unavailable": "{has} no network yet",
    "node-role.kubernetes.io/control-plane": "{is} a control-plane node",
    "node-role.kubernetes.io/master": "{is} a control-plane node",
}
#: Resources counted in whole things, not amounts: "too few", not "too little".
_AMOUNTS = ("cpu", "memory", "ephemeral-storage")
#: The other filter plugins' reasons across versions, and their words; ``{has}``, ``{is}``,
#: ``{does}`` agree with the count of nodes.
_REASONS = {
    "Too many pods": "{is} running as many pods as {it} can",
    "node(s) didn't match node selector": "{does} not match this server's node selector",
    "node(s) didn't match Pod's node affinity": "{does} not match this server's node selector or affinity",
    "node(s) didn't match Pod's node affinity/selector": "{does} not match this server's node selector or affinity",
    "node(s) didn't match scheduler-enforced node affinity": "{is} excluded by the scheduler's own node affinity",
    "node(s) were unschedulable": "{is} cordoned (no new servers)",
    "node(s) had taints that the pod didn't tolerate": "{has} a taint this server does not tolerate",
    "node(s) didn't have free ports for the requested pod ports": "{has} none of this server's host ports free",
    "node(s) didn't match pod affinity rules": "{does} not satisfy this server's pod affinity",
    "node(s) didn't match pod affinity/anti-affinity": "{does} not satisfy this server's pod affinity or anti-affinity",
    "node(s) didn't match pod anti-affinity rules": "{does} not satisfy this server's pod anti-affinity",
    "node(s) didn't satisfy existing pods anti-affinity rules": "{is} kept free by other pods' anti-affinity",
    "node(s) didn't match pod topology spread constraints": "{does} not satisfy this server's topology spread",
    "node(s) had volume node affinity conflict": "cannot reach this server's storage volume",
    "node(s) didn't find available persistent volumes to bind": "{has} no storage volume for this server",
    "node(s) exceed max volume count": "{has} as many volumes attached as {it} can",
    "node(s) had no available volume zone": "{is} not in the zone of this server's storage",
    "node(s) didn't match the requested node name": "{is} not the node this server asks for",
    "node(s) didn't match the requested hostname": "{is} not the node this server asks for",
    "node(s) had disk pressure": "{is} short of disk space",
    "node(s) had memory pressure": "{is} short of memory",
    "node(s) had pid pressure": "{is} short of process ids",
}


def _agree(phrase: str, count: int) -> str:
    """The phrase with ``{has}``, ``{is}``, ``{does}``, ``{it}`` agreeing with ``count`` nodes."""
    forms = {"{has}": ("has", "have"), "{is}": ("is", "are"), "{does}": ("does", "do"), "{it}": ("it", "they")}
    for token, (one, many) in forms.items():
        phrase = phrase.replace(token, one if count == 1 else many)
    return phrase


def _reason_words(count: int, reason: str) -> str:
    """One "<count> <reason>" of the scheduler, as "<count> node(s) <what>"."""
    subject = f"{count} node" if count == 1 else f"{count} nodes"
    if reason.startswith("Insufficient "):
        resource = reason[len("Insufficient "):]
        return f"{subject} {_agree('{has}', count)} too {'little' if resource in _AMOUNTS else 'few'} {resource} free"
    taint = _TAINT.fullmatch(reason)
    if taint:
        phrase = _KNOWN_TAINTS.get(taint["key"], f"{{has}} a taint ({taint['key']}) this server does not tolerate")
    else:
        phrase = _REASONS.get(reason)
    if phrase is None:
        return f"{count} {reason}"  # the scheduler's own words: better than a guess
    return f"{subject} {_agree(phrase, count)}"


def scheduler_words(message: str) -> str:
    """The scheduler's reason for not placing a pod, as a person would say it.

    "0/2 nodes are available: 1 Insufficient nvidia.com/gpu, 1 node(s) had taint
    {nvidia.com/gpu: present}, that the pod didn't tolerate." becomes "1 node has too few
    nvidia.com/gpu free, 1 node has a taint (nvidia.com/gpu) this server does not tolerate".
    The wording is kube-scheduler's from 1.20 (the test bed's) to current releases; what
    follows the list (what preemption tried) is left out. A message of another shape, or a
    reason this does not know, is kept as the scheduler wrote it.
    """
    text = message.strip()
    if text == "no nodes available to schedule pods":  # 1.20 and older, with no node at all
        return "the cluster has no node"
    fit = _FIT_ERROR.fullmatch(text)
    if not fit:
        return text
    if fit["nodes"] == "0":
        return "the cluster has no node"
    words = []
    for entry in _REASON_SPLIT.split(fit["reasons"]):
        count, _, reason = entry.partition(" ")
        words.append(_reason_words(int(count), reason) if count.isdigit() else entry)
    return ", ".join(words)


def _describe_termination(name: str, terminated: dict) -> str:
    code = terminated.get("exitCode")
    why = terminated.get("reason") or "exited"
    detail = terminated.get("message")
    text = f"container {name!r} {why.lower() if why == 'Error' else why} with exit code {code}"
    return f"{text}: {detail}" if detail else text


def assess(
    pod: Optional[dict],
    fatal_reasons: Iterable[str] = DEFAULT_FATAL_REASONS,
    unschedulable_is_fatal: bool = True,
) -> Verdict:
    if pod is None:
        return Verdict(MISSING, "the pod does not exist")
    metadata = pod.get("metadata") or {}
    status = pod.get("status") or {}
    if metadata.get("deletionTimestamp"):
        return Verdict(FAILED, "the pod was deleted while starting", "Deleted")

    statuses = list(status.get("initContainerStatuses") or []) + list(status.get("containerStatuses") or [])
    phase = status.get("phase")
    if phase in ("Failed", "Succeeded"):
        for cs in statuses:
            terminated = (cs.get("state") or {}).get("terminated")
            if terminated:
                return Verdict(
                    FAILED,
                    f"the app stopped before it was ready: {_describe_termination(cs['name'], terminated)}",
                    terminated.get("reason") or "Terminated",
                )
        reason = status.get("reason") or phase
        return Verdict(FAILED, f"the pod {phase.lower()}: {status.get('message') or reason}", reason)

    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    scheduled = conditions.get("PodScheduled")
    if scheduled and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        message = scheduled.get("message") or "no node can run it"
        if "persistentvolumeclaim" in message.lower() or "bound to non-existent pv" in message.lower():
            # The scheduler waits for the user's storage (or for its cache to see the volume a
            # claim was just bound to, e.g. after an API server restart); whether it will come
            # is the claim's story.
            return Verdict(PENDING, f"waiting for the storage volume: {message}", UNBOUND_CLAIM)
        words = scheduler_words(message)
        if unschedulable_is_fatal:
            return Verdict(FAILED, f"no node can run this server: {words}", "Unschedulable", message)
        # An autoscaler may add a node that fits (or a busy GPU may be freed): wait, and say why.
        return Verdict(PENDING, f"waiting for a node: {words}", "", message)

    fatal = set(fatal_reasons)
    for cs in statuses:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in fatal:
            message = waiting.get("message") or ""
            last = (cs.get("lastState") or {}).get("terminated")
            if reason == "CrashLoopBackOff" and last:
                message = _describe_termination(cs["name"], last)
            elif reason in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"):
                message = f"image {cs.get('image')!r} cannot be pulled" + (f": {message}" if message else "")
            else:
                message = f"container {cs['name']!r}: {message}" if message else f"container {cs['name']!r}"
            return Verdict(FAILED, f"{reason}: {message}", reason)

    if not metadata.get("uid"):
        return Verdict(PENDING, "creating the pod")
    if not (scheduled and scheduled.get("status") == "True") and not pod.get("spec", {}).get("nodeName"):
        return Verdict(PENDING, "waiting for a node")
    app_statuses = status.get("containerStatuses") or []
    if phase == "Running" and status.get("podIP") and app_statuses and all(cs.get("ready") for cs in app_statuses):
        return Verdict(READY, "ready")
    if any((cs.get("state") or {}).get("running") for cs in statuses):
        not_ready = [cs["name"] for cs in statuses if not cs.get("ready") and (cs.get("state") or {}).get("running")]
        if not_ready:
            return Verdict(PENDING, f"waiting for {', '.join(not_ready)} to answer")
    node = (pod.get("spec") or {}).get("nodeName")
    return Verdict(PENDING, f"starting containers on {node}" if node else "starting containers", CONTAINERS_NOT_STARTED)


#: A kubelet's FailedMount event for a configMap or secret volume whose object does not exist
#: (its wording from 1.20 to now: `MountVolume.SetUp failed for volume "V" : configmap "N" not found`).
_MISSING_SOURCE = re.compile(
    r'MountVolume\.SetUp failed for volume "(?P<volume>[^"]*)" : (?P<kind>configmap|secret) "(?P<name>[^"]*)" not found'
)


def mounts_objects(pod: Optional[dict]) -> bool:
    """Whether the pod has a volume from a ConfigMap or Secret (whose absence only events tell).

    Not projected volumes: every pod of a cluster that mounts service account tokens has one
    (kube-api-access-*), and :func:`mount_verdict` does not read their failures.
    """
    for volume in ((pod or {}).get("spec") or {}).get("volumes") or ():
        if volume.get("configMap") or volume.get("secret"):
            return True
    return False


def mount_verdict(events: Iterable[dict]) -> Optional[Verdict]:
    """A failed verdict if the pod's events (as the client's dicts) say that one of its volumes
    comes from a ConfigMap or Secret that does not exist; else None.

    A kubelet keeps retrying such a mount (the object may be created later) and the pod waits
    in ContainerCreating, where the same missing object named by an environment variable is
    CreateContainerConfigError at once; without this a user waits the whole start timeout
    for what the first event already said.
    """
    for event in events:
        if event.get("reason") != "FailedMount":
            continue
        found = _MISSING_SOURCE.search(event.get("message") or "")
        if found:
            kind = "ConfigMap" if found["kind"] == "configmap" else "Secret"
            return Verdict(FAILED, f"the {kind} {found['name']!r} of volume {found['volume']!r} does not exist",
                           "FailedMount", event.get("message") or "")
    return None


def claim_verdict(name: str, events: Iterable[dict]) -> Verdict:
    """Whether a claim that is not bound yet is coming, from its events (as the client's dicts).

    A StorageClass that does not exist, or any other refusal of the in-tree volume controller,
    fails at once with its message; anything else (an external provisioner at work, or
    retrying) is waited for.
    """
    def when(event: dict) -> str:
        return str(event.get("last_timestamp") or event.get("event_time") or event.get("first_timestamp") or "")

    ordered = sorted(events, key=when)
    if not ordered:
        return Verdict(PENDING, f"waiting for the storage claim {name!r} to be bound")
    latest = ordered[-1]
    message = latest.get("message") or latest.get("reason") or ""
    source = (latest.get("source") or {}).get("component") or ""
    if latest.get("type") == "Warning" and latest.get("reason") == "ProvisioningFailed" and source == _PV_CONTROLLER:
        return Verdict(FAILED, f"the storage claim {name!r} cannot be provisioned: {message}", "ProvisioningFailed")
    return Verdict(PENDING, f"waiting for the storage claim {name!r}: {message}")


def exit_status(pod: Optional[dict]) -> Optional[int]:
    """``None`` while the server runs (or is starting), else an exit code, as ``Spawner.poll``.

    A container that crashes and is restarted (``CrashLoopBackOff``) counts as stopped with
    its last exit code: the server does not answer, so the hub should say so.
    """
    if pod is None:
        return 1
    status = pod.get("status") or {}
    phase = status.get("phase")
    statuses = status.get("containerStatuses") or []
    if phase in ("Failed", "Succeeded"):
        for cs in statuses:
            terminated = (cs.get("state") or {}).get("terminated")
            if terminated:
                return int(terminated.get("exitCode", 1))
        return 0 if phase == "Succeeded" else 1
    for cs in statuses:
        state = cs.get("state") or {}
        if state.get("terminated"):
            return int(state["terminated"].get("exitCode", 1))
        if (state.get("waiting") or {}).get("reason") == "CrashLoopBackOff":
            last = (cs.get("lastState") or {}).get("terminated") or {}
            return int(last.get("exitCode", 1))
    return None


def age_seconds(pod: Optional[dict], now: Optional[datetime.datetime] = None) -> float:
    """Seconds since the pod was created (0 when unknown)."""
    created = ((pod or {}).get("metadata") or {}).get("creationTimestamp")
    if not created:
        return 0.0
    if isinstance(created, str):
        created = datetime.datetime.fromisoformat(created.replace("Z", "+00:00"))
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return max(0.0, (now - created).total_seconds())
