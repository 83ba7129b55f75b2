"""z2jh's own hub configuration drives TychoSpawner: for each case of ``cases.CASES`` the pod
TychoSpawner creates on the test bed is KubeSpawner's pod under the same configuration, field by
field, except what the catalog entry owns (``podcompare.OWNED``), and every object KubeSpawner
makes for a server exists."""
from __future__ import annotations

import re

import pytest

from .cases import APP, CASES, describe
from .hooks import HOOK_ANNOTATION, HOOK_ENV, hook_config_map_name
from .podcompare import differences, not_owned, owned, owner_of, unresolved_references

# The first test here also sets up case_runs: every case's two servers (about 2.5 minutes on a
# busy 2-core machine), which the project's default per-test timeout (300 s) would cut short.
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

NAMES = [c.name for c in CASES]


def _ran(run):
    assert not run.error and run.tycho and run.kube and not run.tycho.error and not run.kube.error, describe(run)
    return run


def _at(path: str, prefix: str) -> bool:
    """``path`` is ``prefix`` or a field below it (``args`` covers ``args[0]``)."""
    return path == prefix or path.startswith((prefix + ".", prefix + "["))


def _ports(pod):
    return {p.get("name"): p["containerPort"] for c in pod["spec"]["containers"] for p in c.get("ports") or []}


def _selects(match_labels: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in match_labels.items())


@pytest.mark.parametrize("name", NAMES)
async def test_pod_is_kubespawners_except_what_the_entry_owns(case_runs, name):
    run = _ran(case_runs[name])
    for key in ("initContainers", "containers"):  # compared by name below; their order matters too
        order = [[c["name"] for c in start.pod["spec"].get(key) or []] for start in (run.kube, run.tycho)]
        assert order[0] == order[1], f"case {name}: {key} KubeSpawner {order[0]}, TychoSpawner {order[1]}"
    diffs = differences(run.kube.pod, run.tycho.pod)
    unexpected = not_owned(diffs)
    assert not unexpected, (
        f"case {name}: TychoSpawner's pod differs from KubeSpawner's outside what a catalog entry owns:\n"
        + "\n".join(f"  {d}" for d in unexpected))
    changed = owned(diffs)
    missing = [p for p in run.case.replaced if not [d for d in changed if _at(d.path, p)]]
    assert not missing, (f"case {name}: the entry should have replaced {missing}; owned differences: "
                         f"{sorted(d.path for d in changed)}")
    kept_but_changed = [str(d) for p in run.case.kept for d in changed if _at(d.path, p)]
    assert not kept_but_changed, (
        f"case {name}: the entry sets none of these, the site's value must apply: {kept_but_changed}")


@pytest.mark.parametrize("name", NAMES)
async def test_env_references_resolve_as_in_kubespawners_pod(case_runs, name):
    """``$(VAR)`` in a site's extraEnv is expanded by Kubernetes only if VAR comes earlier in the
    container's list: KubeSpawner orders the list for that."""
    run = _ran(case_runs[name])
    order = {start.spawner: [v["name"] for v in start.pod["spec"]["containers"][0].get("env") or []]
             for start in (run.kube, run.tycho)}
    assert unresolved_references(run.tycho.pod) == unresolved_references(run.kube.pod), (
        f"case {name}: references Kubernetes cannot expand in TychoSpawner's pod "
        f"{unresolved_references(run.tycho.pod)} (KubeSpawner's: {unresolved_references(run.kube.pod)}); "
        f"env order: {order}")


@pytest.mark.parametrize("name", NAMES)
async def test_every_object_kubespawner_makes_exists(case_runs, name):
    run = _ran(case_runs[name])
    kube, tycho = set(run.kube.objects), set(run.tycho.objects)
    assert kube <= tycho, f"case {name}: KubeSpawner made {sorted(kube)}, TychoSpawner {sorted(tycho)}"
    for (kind, obj_name), obj in run.tycho.objects.items():
        if kind == "PersistentVolumeClaim":
            assert obj["status"]["phase"] == "Bound", f"claim {obj_name}: {obj['status']}"
    # The user's storage outlives every stop.
    assert run.tycho.claims_after_stop == run.kube.claims_after_stop
    assert all(phase == "Bound" for phase in run.tycho.claims_after_stop.values()), run.tycho.claims_after_stop


@pytest.mark.cases("default")
async def test_dynamic_storage_is_one_bound_claim_per_server(case_runs):
    run = _ran(case_runs["default"])
    claims = [n for (kind, n) in run.tycho.objects if kind == "PersistentVolumeClaim"]
    # KubeSpawner's pvc_name_template (z2jh sets none): claim-{user_server}
    assert claims == [f"claim-{run.user}"]
    claim = run.tycho.objects[("PersistentVolumeClaim", claims[0])]
    assert claim["spec"]["storageClassName"] == "standard"  # the cluster's default class
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"  # singleuser.storage.capacity
    volume = next(v for v in run.tycho.pod["spec"]["volumes"] if v.get("persistentVolumeClaim"))
    assert volume["name"] == f"volume-{run.user}"  # volumeNameTemplate volume-{user_server}
    mounts = {m["name"]: m for m in run.tycho.pod["spec"]["containers"][0]["volumeMounts"]}
    assert mounts[volume["name"]]["mountPath"] == "/home/jovyan"
    assert run.tycho.claims_after_stop == {claims[0]: "Bound"}


@pytest.mark.cases("static")
async def test_static_storage_mounts_the_site_claim_with_the_user_sub_path(case_runs):
    run = _ran(case_runs["static"])
    volumes = {v["name"]: v for v in run.tycho.pod["spec"]["volumes"]}
    assert volumes["home"]["persistentVolumeClaim"]["claimName"] == "compat-home"
    mount = next(m for m in run.tycho.pod["spec"]["containers"][0]["volumeMounts"] if m["name"] == "home")
    assert mount == {"name": "home", "mountPath": "/home/jovyan", "subPath": run.user}


@pytest.mark.cases("hooks")
async def test_hooks_set_in_extra_config_run(case_runs):
    run = _ran(case_runs["hooks"])
    for start in (run.kube, run.tycho):
        pod = start.pod
        assert pod["metadata"]["annotations"][HOOK_ANNOTATION] == "modify_pod_hook", start.spawner
        env = {v["name"]: v.get("value") for v in pod["spec"]["containers"][0]["env"]}
        assert env[HOOK_ENV] == run.user, start.spawner
        config_map = start.objects[("ConfigMap", hook_config_map_name(pod["metadata"]["name"]))]
        assert config_map["data"]["pod-uid"] == pod["metadata"]["uid"]
        assert config_map["data"]["spawner"] == start.spawner


@pytest.mark.cases("services")
async def test_services_enabled_makes_a_service_selecting_the_pod(case_runs):
    run = _ran(case_runs["services"])
    pod = run.tycho.pod
    service = run.tycho.objects[("Service", pod["metadata"]["name"])]
    assert _selects(service["spec"]["selector"], pod["metadata"]["labels"])
    ports = set(_ports(pod).values())
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports


@pytest.mark.cases("default", "nometadata", "init")
async def test_init_containers_run_before_the_server(case_runs):
    """z2jh's cloud-metadata blocker (privileged iptables, as root) and a site's own init
    containers (z2jh appends the blocker after them) ran to completion in TychoSpawner's pod."""
    for case, names in (("default", ["block-cloud-metadata"]), ("init", ["compat-init", "block-cloud-metadata"])):
        run = _ran(case_runs[case])
        for start in (run.kube, run.tycho):
            init = start.pod["spec"]["initContainers"]
            assert [c["name"] for c in init] == names, (case, start.spawner)
            blocker = init[-1]
            assert blocker["securityContext"]["privileged"] is True
            assert blocker["securityContext"]["runAsUser"] == 0
            status = {s["name"]: s for s in start.pod["status"]["initContainerStatuses"]}
            for name in names:
                assert status[name]["state"]["terminated"]["exitCode"] == 0, (case, start.spawner, name)
    assert "initContainers" not in _ran(case_runs["nometadata"]).tycho.pod["spec"]


@pytest.mark.cases("default")
async def test_z2jh_network_policies_admit_tycho_servers(case_runs):
    """z2jh's singleuser NetworkPolicy selects TychoSpawner's pods and names a port they have;
    z2jh's hub and proxy may reach that port; TychoSpawner's own policy admits z2jh's hub and
    proxy pods."""
    run = _ran(case_runs["default"])
    pod = run.tycho.pod
    labels = pod["metadata"]["labels"]
    ports = _ports(pod)
    singleuser = run.rendered.get("NetworkPolicy", run.rendered.name("singleuser"))
    assert _selects(singleuser["spec"]["podSelector"]["matchLabels"], labels)
    named = {p["port"] for rule in singleuser["spec"]["ingress"] for p in rule.get("ports") or []}
    assert "notebook-port" in named and "notebook-port" in ports
    served = ports["notebook-port"]
    for component in ("hub", "proxy"):
        policy = run.rendered.get("NetworkPolicy", run.rendered.name(component))
        allowed = {p["port"] for rule in policy["spec"]["egress"]
                   if any(_selects(peer.get("podSelector", {}).get("matchLabels", {"-": "-"}), labels)
                          for peer in rule.get("to") or [])
                   for p in rule.get("ports") or []}
        assert served in allowed, f"z2jh's {component} may not reach TychoSpawner's port {served}: {allowed}"
    tycho_policy = run.tycho.network_policies[pod["metadata"]["name"]]
    assert _selects(tycho_policy["spec"]["podSelector"]["matchLabels"], labels)
    for component in ("hub", "proxy"):
        deployment = run.rendered.get("Deployment", run.rendered.name(component))
        deployment_labels = deployment["spec"]["template"]["metadata"]["labels"]
        rules = [rule for rule in tycho_policy["spec"]["ingress"]
                 if any(_selects(peer.get("podSelector", {}).get("matchLabels", {}), deployment_labels)
                        for peer in rule.get("from") or [])]
        assert rules and any(p["port"] in (served, "notebook-port") for r in rules for p in r.get("ports") or []), (
            f"TychoSpawner's NetworkPolicy does not admit z2jh's {component} pod ({deployment_labels})")


@pytest.mark.parametrize("name", NAMES)
async def test_replaced_settings_are_named_once(case_runs, name):
    """check_config (what the hub runs at start) names each site setting an entry replaces or
    combines with, and says it once per configuration."""
    run = case_runs[name]
    assert run.config is not None, describe(run)
    named = [m.group(1) for m in (re.match(r"TychoSpawner: site setting (\w+) ", n) for n in run.notes) if m]
    assert sorted(named) == sorted(run.case.settings), run.notes
    assert len(named) == len(set(named))
    assert run.notes_again == []
    for note in run.notes:
        assert ("replaced by" in note) or ("applies as" in note), note


def test_owned_paths_of_cases_are_owned():
    """What a case expects replaced or kept is on the owned list (else the expectation could
    never be met by an owned difference)."""
    for case in CASES:
        for path in case.replaced + case.kept:
            assert path.startswith(APP + ".") or path.startswith(("spec.", "metadata.")), path
            assert owner_of(path) is not None, (case.name, path)
