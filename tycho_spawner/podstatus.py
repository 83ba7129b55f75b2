"""Reading a Pod's status the way a person would: ready, still coming, or never going to work.

KubeSpawner waits the whole start timeout when an image cannot be pulled (kubespawner #795).
Kubernetes already says why a pod can never become ready (``ErrImagePull``, ``Unschedulable``,
``CrashLoopBackOff``...): :func:`assess` turns the pod object into a verdict carrying
Kubernetes' own reason, so the spawner can fail within seconds and tell the user why.

Pure: the input is the pod as a dict (as the watch delivers it).
"""
from __future__ import annotations

import datetime
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
#: The in-tree controller that binds and provisions claims; its failures do not heal by waiting
#: (a StorageClass that does not exist), while external provisioners retry theirs.
_PV_CONTROLLER = "persistentvolume-controller"


@dataclass(frozen=True)
class Verdict:
    """``state`` is one of pending / ready / failed / missing; ``message`` is for the user."""

    state: str
    message: str
    reason: str = ""


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
        if unschedulable_is_fatal:
            return Verdict(FAILED, f"no node can run this server (Unschedulable): {message}", "Unschedulable")
        return Verdict(PENDING, f"waiting for a node (Unschedulable): {message}")

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
    return Verdict(PENDING, f"starting containers on {node}" if node else "starting containers")


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
