"""Which servers' objects no hub record owns: the decisions of `tycho gc`, without any I/O.

A hub that lost its database (or got an old copy back) no longer knows some of the servers
running in its namespace: their pods and NetworkPolicies stay, out of reach of the idle culler
and of their users, holding resources. `tycho gc` lists those objects, asks the hub which
servers it has, and removes the rest. Everything it decides is here, on plain values, so each
rule is a unit test; `tycho_spawner.gc` does the listing, asking and deleting.

What this module holds to:

- a server is owned when the hub has it active: running, or with a start, stop or check
  pending (the hub's own check of recorded servers at its start counts as pending);
- a pod names its server exactly (KubeSpawner's ``hub.jupyter.org/username`` and
  ``hub.jupyter.org/servername`` annotations); a NetworkPolicy carries only the escaped label
  values, so it goes with the pod of its name (created before the pod, deleted after it), and a
  policy without a pod is matched on those labels;
- objects younger than ``min_age`` are left for a later run, whatever the hub says: a
  safety margin on top of the edge's ordering (objects listed before the hub is asked);
- an object that names no user at all is left alone: it is not a server this can judge;
- users' claims are not server objects: nothing here ever names one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Iterable, Optional

POD = "pod"
NETWORK_POLICY = "networkpolicy"

USER_KEY = "hub.jupyter.org/username"
SERVER_KEY = "hub.jupyter.org/servername"

#: Labels that tell one hub's servers from another's in a shared namespace: zero-to-jupyterhub
#: sets ``app.kubernetes.io/instance`` and ``release`` to the release name (this project's
#: chart the first), and ``app`` to its ``nameOverride``.
HUB_LABEL_KEYS = ("app.kubernetes.io/instance", "release", "app")


@dataclass(frozen=True)
class HubServer:
    """A server the hub has active: its user's name and the server's name ('' by default)."""

    user: str
    server: str = ""


@dataclass(frozen=True)
class ServerObject:
    """A pod or NetworkPolicy of a server, as listed from Kubernetes."""

    kind: str
    name: str
    uid: str
    created: datetime
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()

    def label(self, key: str) -> Optional[str]:
        return dict(self.labels).get(key)

    def annotation(self, key: str) -> Optional[str]:
        return dict(self.annotations).get(key)


@dataclass(frozen=True)
class Orphan:
    """An object to delete, with who it was for and why no record owns it."""

    kind: str
    name: str
    uid: str
    user: str
    server: str
    why: str

    def describe(self) -> str:
        return f"{self.kind} {self.name} ({self.why})"


@dataclass(frozen=True)
class Spared:
    """An object that would be an orphan but is left alone for now, and why."""

    kind: str
    name: str
    why: str

    def describe(self) -> str:
        return f"{self.kind} {self.name} ({self.why})"


@dataclass(frozen=True)
class Verdicts:
    """The outcome of one comparison: orphans in deletion order (pods before the policies that
    protect them), and objects spared this time."""

    orphans: tuple[Orphan, ...]
    spared: tuple[Spared, ...]


def _not_active(user: str, server: str) -> str:
    return f"user {user!r}, server {server!r}: not running or pending in the hub"


def find_orphans(
    objects: Iterable[ServerObject],
    active: Iterable[HubServer],
    *,
    now: datetime,
    min_age: float,
    label_value: Callable[[str], str],
) -> Verdicts:
    """The objects no active server of the hub owns.

    ``label_value`` turns a hub name into the label value KubeSpawner writes for it (its
    ``safe_slug``); it is how a NetworkPolicy without its pod is matched.
    """
    objects = list(objects)
    active = set(active)
    active_labels = {(label_value(s.user), label_value(s.server)) for s in active}
    orphans: list[Orphan] = []
    policies: list[Orphan] = []
    spared: list[Spared] = []
    pod_verdicts: dict[str, Optional[str]] = {}  # pod name -> why it is an orphan, None if not

    def too_young(obj: ServerObject) -> Optional[str]:
        age = (now - obj.created).total_seconds()
        if age < min_age:
            return f"created {max(age, 0):.0f} s ago, under the minimum age of {min_age:g} s"
        return None

    for obj in objects:
        if obj.kind != POD:
            continue
        user = obj.annotation(USER_KEY)
        server = obj.annotation(SERVER_KEY) or ""
        if user is not None:
            owned = HubServer(user, server) in active
        else:
            user, server = obj.label(USER_KEY), obj.label(SERVER_KEY) or ""
            if user is None:
                spared.append(Spared(obj.kind, obj.name, f"it names no user ({USER_KEY})"))
                pod_verdicts[obj.name] = None
                continue
            owned = (user, server) in active_labels
        if owned:
            pod_verdicts[obj.name] = None
            continue
        young = too_young(obj)
        if young:
            spared.append(Spared(obj.kind, obj.name, young))
            pod_verdicts[obj.name] = None
            continue
        why = _not_active(user, server)
        pod_verdicts[obj.name] = why
        orphans.append(Orphan(obj.kind, obj.name, obj.uid, user, server, why))

    for obj in objects:
        if obj.kind != NETWORK_POLICY:
            continue
        user, server = obj.label(USER_KEY), obj.label(SERVER_KEY) or ""
        if obj.name in pod_verdicts:
            # The policy protects the pod of its name: it goes with it, never before it.
            why = pod_verdicts[obj.name]
            if why is not None:
                policies.append(Orphan(obj.kind, obj.name, obj.uid, user or "", server, why))
            continue
        if user is None:
            spared.append(Spared(obj.kind, obj.name, f"it names no user ({USER_KEY})"))
            continue
        if (user, server) in active_labels:
            continue
        young = too_young(obj)
        if young:
            spared.append(Spared(obj.kind, obj.name, young))
            continue
        why = f"no pod; user label {user!r}, server label {server!r}: not running or pending in the hub"
        policies.append(Orphan(obj.kind, obj.name, obj.uid, user, server, why))

    return Verdicts(orphans=tuple(orphans + policies), spared=tuple(spared))


# A label selector's equality terms: "key=value" or "key==value" (set-based terms and
# inequalities fix no value).
_EQUALITY = re.compile(r"^\s*([^=!,\s]+)\s*==?\s*([^=!,\s]*)\s*$")


def fixed_label_keys(selector: str) -> frozenset[str]:
    """The label keys a Kubernetes label selector pins to one value."""
    keys = set()
    for term in _split_terms(selector):
        match = _EQUALITY.match(term)
        if match:
            keys.add(match.group(1))
    return frozenset(keys)


def _split_terms(selector: str) -> list[str]:
    # Commas inside "in (a, b)" belong to the term.
    terms, depth, current = [], 0, ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        terms.append(current)
    return [t for t in terms if t.strip()]


def mixed_hubs(objects: Iterable[ServerObject], selector: str) -> Optional[str]:
    """Why the selected objects look like the servers of more than one hub, or None.

    A hub's servers agree on the labels that name a hub (``HUB_LABEL_KEYS``); when the selector
    leaves such a label open and the objects disagree on it (a value, another value, or none),
    a second hub shares the namespace and the selector does not tell them apart: deleting by
    this hub's records could remove the other hub's servers.
    """
    objects = list(objects)
    fixed = fixed_label_keys(selector)
    for key in HUB_LABEL_KEYS:
        if key in fixed:
            continue
        values = {obj.label(key) for obj in objects}
        if len(values) > 1:
            shown = ", ".join(sorted(repr(v) if v is not None else "none" for v in values))
            return (
                f"the selected servers' objects carry different {key} labels ({shown}): they belong to "
                f"more than one hub; label this hub's servers (KubeSpawner.extra_labels) and give that "
                f"label to --selector"
            )
    return None
