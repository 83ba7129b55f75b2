"""The Kubernetes permissions TychoSpawner needs in the namespace it launches servers in.

One definition, used by the chart's Role and by the tests that run the spawner with exactly
these permissions: if the spawner starts needing more, those tests fail before a site finds out.
"""

#: Rules of a namespaced Role (``rbac.authorization.k8s.io/v1`` ``PolicyRule`` fields) that
#: every hub needs.
SPAWNER_ROLE_RULES = (
    # The pod cache lists and watches pods; start creates, stop deletes.
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "create", "delete"]},
    # Progress messages come from the events of the server's own pod (and of its claim).
    {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
    # Each server's hub token, in a Secret created before its pod, then owned by it (patch),
    # deleted at stop. Never get, list or watch: the hub reads no Secret.
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "patch", "delete"]},
    # Each server's NetworkPolicy, created before its pod and deleted with it; listed by
    # `tycho gc` (a hub service) to find those no server record owns.
    {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["list", "create", "delete"]},
    # The Tycho API (a hub service, with the hub's credentials) shows a server's container logs
    # (GET /apps/{server}/logs). Read only; exec and attach are never granted.
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
)

#: Per storage type (z2jh's ``singleuser.storage.type``): what users' homes need on top.
#: ``dynamic``: KubeSpawner creates each user's claim at start (``storage_pvc_ensure``) and
#: deletes it with the user when ``delete_pvc`` is on. ``static``: one claim made by the admin
#: is only read, to explain a start that waits for it.
STORAGE_ROLE_RULES = {
    "none": (),
    "static": ({"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get"]},),
    "dynamic": (
        {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get", "create", "delete"]},
    ),
}


def spawner_role_rules(storage: str = "dynamic") -> tuple:
    """The Role's rules for a storage type (``none``, ``static`` or ``dynamic``)."""
    if storage not in STORAGE_ROLE_RULES:
        raise ValueError(f"storage type {storage!r} is not one of: {', '.join(STORAGE_ROLE_RULES)}")
    return SPAWNER_ROLE_RULES + STORAGE_ROLE_RULES[storage]
