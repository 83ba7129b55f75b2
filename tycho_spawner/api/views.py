"""What the API answers, built from what the hub and Kubernetes say (pure: no I/O, no clock).

The hub's server model (``GET /hub/api/users/{name}``) says which servers a user has, their
``user_options`` (entry and choices), URL, readiness and activity; the server's pod (as a dict,
the way the Kubernetes API serialises it) says what runs: each container's state and restarts,
the node, requests and limits. :func:`app_view` joins the two.
"""
from __future__ import annotations

import datetime
from typing import Any, Mapping, Optional

from ..errors import SpecError
from ..form import resources_text
from ..podstatus import age_seconds, assess
from ..profiles import Catalog, Choice, Profile

#: The path segment naming a user's default server (whose hub name is ""), as in ``/apps/~``.
DEFAULT_SERVER_ID = "~"
#: KubeSpawner's annotations naming a pod's user and server exactly (labels are escaped).
USER_ANNOTATION = "hub.jupyter.org/username"
SERVER_ANNOTATION = "hub.jupyter.org/servername"


def server_id(name: str) -> str:
    """The path segment of a server: its name, or ``~`` for the default server."""
    return name or DEFAULT_SERVER_ID


def server_name(segment: str) -> str:
    """The hub's name of the server a path segment names (``~`` is the default server, "")."""
    return "" if segment == DEFAULT_SERVER_ID else segment


# ------------------------------------------------------------------------------- the catalog


def _option_gives(profile: Profile, choice: Choice, option_key: str) -> dict:
    """What picking this option (others at their defaults) gives the served container."""
    try:
        served = profile.system({**profile.default_choices(), choice.key: option_key}).served
    except SpecError:
        return {"resources": "this option cannot start with the other choices' defaults", "image": None}
    return {"resources": resources_text(served), "image": served.image}


def _choice_view(profile: Profile, choice: Choice) -> dict:
    view: dict[str, Any] = {"key": choice.key, "display_name": choice.display_name, "kind": choice.kind,
                            "default": choice.default}
    if choice.kind == "image":
        view["pattern"] = choice.pattern
        view["options"] = []
    else:
        view["options"] = [
            {"key": o.key, "display_name": o.display_name, "description": o.description,
             "gives": _option_gives(profile, choice, o.key)}
            for o in choice.options
        ]
    return view


def catalog_view(catalog: Catalog) -> dict:
    """The entries a caller may launch (``catalog`` already narrowed to them), each with its
    choices and what each option gives; a choice the caller may not change is left out (it
    stays at its default, and naming it in a launch is refused, as on the form)."""
    entries = []
    for profile in catalog.profiles:
        try:
            served = profile.system(profile.default_choices()).served
            resources, image = resources_text(served), served.image
        except SpecError:
            resources, image = "cannot start with its defaults", None
        entries.append({
            "key": profile.key,
            "display_name": profile.display_name,
            "description": profile.description,
            "category": profile.category,
            "default": profile.default,
            "resources": resources,
            "image": image,
            "choices": [_choice_view(profile, c) for c in profile.choices if not c.locked],
        })
    return {"entries": entries}


# ------------------------------------------------------------------------------------ the apps


def pod_of(pods: list[dict], user: str, server: str) -> Optional[dict]:
    """The pod of one server among listed pods, matched by KubeSpawner's exact annotations; of
    several (a stopping one and its successor), the newest."""
    mine = [p for p in pods
            if (p.get("metadata") or {}).get("annotations", {}).get(USER_ANNOTATION) == user
            and (p.get("metadata") or {}).get("annotations", {}).get(SERVER_ANNOTATION, "") == server]
    mine.sort(key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "")
    return mine[-1] if mine else None


def _state_words(state: Mapping) -> tuple[str, Optional[str]]:
    for key in ("running", "waiting", "terminated"):
        if key in state and state[key] is not None:
            detail = state[key] or {}
            return key, detail.get("reason")
    return "unknown", None


def _quantities(values: Optional[Mapping]) -> dict[str, str]:
    return {str(k): str(v) for k, v in (values or {}).items()}


def container_views(pod: Mapping) -> list[dict]:
    """Each container of the pod: image, state (and Kubernetes' reason), ready, restarts,
    requests and limits, in the pod's order."""
    statuses = {s.get("name"): s for s in ((pod.get("status") or {}).get("containerStatuses") or [])}
    out = []
    for container in (pod.get("spec") or {}).get("containers") or []:
        status = statuses.get(container.get("name")) or {}
        state, reason = _state_words(status.get("state") or {})
        resources = container.get("resources") or {}
        out.append({
            "name": container.get("name"),
            "image": container.get("image"),
            "state": state,
            "reason": reason,
            "ready": bool(status.get("ready")),
            "restarts": int(status.get("restartCount") or 0),
            "requests": _quantities(resources.get("requests")),
            "limits": _quantities(resources.get("limits")),
        })
    return out


def _hub_state(server: Mapping) -> str:
    pending = server.get("pending")
    if pending == "spawn":
        return "starting"
    if pending == "stop":
        return "stopping"
    if server.get("ready"):
        return "ready"
    return "starting" if pending else "stopped"


def app_view(user: str, name: str, server: Mapping, pod: Optional[dict], now: datetime.datetime,
             cluster_message: Optional[str] = None) -> dict:
    """One app: the hub's record of the server joined with its pod (None: no pod found, or the
    cluster could not be asked, said by ``cluster_message``)."""
    options = server.get("user_options") or {}
    view: dict[str, Any] = {
        "id": server_id(name),
        "user": user,
        "name": name,
        "profile": options.get("profile") if isinstance(options, Mapping) else None,
        "choices": dict(options.get("choices") or {}) if isinstance(options, Mapping) else {},
        "url": server.get("url"),
        "state": _hub_state(server),
        "ready": bool(server.get("ready")),
        "started": server.get("started"),
        "last_activity": server.get("last_activity"),
        "age_seconds": None,
        "pod": None,
        "containers": [],
        "message": cluster_message,
    }
    if pod is not None:
        verdict = assess(pod)
        meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
        view["age_seconds"] = round(age_seconds(pod, now), 1)
        view["pod"] = {"name": meta.get("name"), "phase": status.get("phase"), "node": spec.get("nodeName"),
                       "kubernetes_state": verdict.state}
        view["containers"] = container_views(pod)
        if view["message"] is None and verdict.state != "ready":
            view["message"] = verdict.message
    return view


def event_view(event: Mapping) -> dict:
    """A Kubernetes event about a pod, as the stream sends it."""
    when = event.get("lastTimestamp") or event.get("eventTime") or (event.get("metadata") or {}).get("creationTimestamp")
    return {
        "type": event.get("type") or "Normal",
        "reason": event.get("reason") or "",
        "message": event.get("message") or "",
        "count": int(event.get("count") or 1),
        "time": when,
    }
