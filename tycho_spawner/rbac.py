"""The Kubernetes permissions TychoSpawner needs in the namespace it launches servers in.

One list, used by the chart's Role and by the test that runs the spawner with exactly these
permissions: if the spawner starts needing more, that test fails before a site finds out.
"""

#: Rules of a namespaced Role (``rbac.authorization.k8s.io/v1`` ``PolicyRule`` fields).
SPAWNER_ROLE_RULES = (
    # The pod cache lists and watches pods; start creates, stop deletes.
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "create", "delete"]},
    # Each server's Service, created with the pod and deleted with it.
    {"apiGroups": [""], "resources": ["services"], "verbs": ["create", "delete"]},
    # Progress messages come from the events of the server's own pod.
    {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
    # Each server's NetworkPolicy.
    {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["create", "delete"]},
)
