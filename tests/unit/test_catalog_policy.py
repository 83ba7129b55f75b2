"""The catalog's site policy: who may launch what (access), where it runs (scheduling, GPUs),
what it can read (Secrets, ConfigMaps, claims) and the one user-typed value (an image).

What an admin and a user notice: an entry limited to a group is not offered to others and is
refused as if it did not exist; a GPU entry asks for the right resource and tolerates the GPU
nodes' taint; a Secret's value never passes through the hub; a typed image that does not match
the admin's pattern is refused before anything exists.
"""
from __future__ import annotations

import copy

import pytest

from tycho_spawner.errors import CatalogError, OptionsError
from tycho_spawner.profiles import Who, parse_catalog
from tycho_spawner.render import GateSettings, Server, render_pod, template_environment


def system(**extra) -> dict:
    data = {
        "serve": {"container": "app", "port": 8080},
        "containers": {"app": {"image": "example.org/app:1", "ports": {"http": 8080}}},
    }
    data.update(extra)
    return data


def catalog_data() -> dict:
    return {
        "open": {"display_name": "Open to all", "system": system()},
        "course": {"display_name": "Course", "access": {"groups": ["students", "staff"]}, "system": system()},
        "private": {"access": {"users": ["carol"]}, "system": system()},
        "sized": {
            "system": system(),
            "choices": {
                "size": {
                    "default": "small",
                    "options": {
                        "small": {"set": {"containers.app.limits.memory": "1Gi"}},
                        "huge": {"access": {"groups": ["staff"]}, "set": {"containers.app.limits.memory": "64Gi"}},
                    },
                },
                "image": {
                    "kind": "image",
                    "pattern": r"example\.org/app:[0-9]+",
                    "default": "example.org/app:1",
                    "access": {"groups": ["staff"]},
                },
            },
        },
    }


ALICE = Who("alice", frozenset({"students"}))
BOB = Who("bob")
CAROL = Who("carol")
STAFF = Who("sam", frozenset({"staff"}))
ADMIN = Who("root", admin=True)


def keys(catalog) -> list[str]:
    return [p.key for p in catalog.profiles]


def refusal(catalog, options) -> str:
    with pytest.raises(OptionsError) as info:
        catalog.select(options)
    return str(info.value)


# --------------------------------------------------------------------------- access


def test_each_user_is_offered_only_what_their_groups_or_name_allow():
    catalog = parse_catalog(catalog_data())
    assert keys(catalog.visible_to(ALICE)) == ["course", "open", "sized"]
    assert keys(catalog.visible_to(BOB)) == ["open", "sized"]
    assert keys(catalog.visible_to(CAROL)) == ["open", "private", "sized"]
    assert keys(catalog.visible_to(ADMIN)) == ["course", "open", "private", "sized"]
    assert keys(catalog.visible_to(ADMIN, admins_see_all=False)) == ["open", "sized"]


def test_a_forbidden_entry_is_refused_exactly_as_an_unknown_one():
    mine = parse_catalog(catalog_data()).visible_to(BOB)
    forbidden = refusal(mine, {"profile": "course"})
    unknown = refusal(mine, {"profile": "nosuch"})
    assert forbidden == unknown.replace("'nosuch'", "'course'")
    assert "course" not in forbidden.replace("'course'", "")  # the offered list does not name it


def test_an_option_outside_the_users_groups_is_not_offered_nor_accepted():
    catalog = parse_catalog(catalog_data())
    size = catalog.visible_to(ALICE).get("sized").choice("size")
    assert [o.key for o in size.options] == ["small"]
    assert "not offered" in refusal(catalog.visible_to(ALICE), {"profile": "sized", "choices": {"size": "huge"}})
    chosen = catalog.visible_to(STAFF).select({"profile": "sized", "choices": {"size": "huge"}})
    assert chosen.system().served.limits.memory == "64Gi"


def test_when_the_default_option_is_forbidden_the_first_allowed_one_is_the_default():
    data = catalog_data()
    data["sized"]["choices"]["size"]["default"] = "huge"
    catalog = parse_catalog(data)
    assert catalog.visible_to(ALICE).select({"profile": "sized"}).system().served.limits.memory == "1Gi"
    assert catalog.visible_to(STAFF).select({"profile": "sized"}).system().served.limits.memory == "64Gi"


def test_an_entry_whose_choice_has_no_allowed_option_is_not_offered():
    data = catalog_data()
    data["sized"]["choices"]["size"]["options"]["small"]["access"] = {"groups": ["staff"]}
    assert "sized" not in keys(parse_catalog(data).visible_to(ALICE))


def test_a_choice_outside_the_users_groups_keeps_its_default_and_cannot_be_set():
    catalog = parse_catalog(catalog_data())
    mine = catalog.visible_to(ALICE)
    assert mine.select({"profile": "sized"}).system().served.image == "example.org/app:1"
    assert "has no choice 'image'" in refusal(mine, {"profile": "sized", "choices": {"image": "example.org/app:2"}})
    with pytest.raises(OptionsError, match="unexpected form field"):
        mine.options_from_form({"profile": ["sized"], "sized.image": ["example.org/app:1"]})


def test_nobody_offered_anything_gets_a_sentence():
    data = {"only": {"access": {"groups": ["x"]}, "system": system()}}
    mine = parse_catalog(data).visible_to(BOB)
    assert mine.profiles == ()
    assert "no application of this hub's catalog is available to you" in refusal(mine, {})


@pytest.mark.parametrize("access, path", [
    ({"group": ["x"]}, "catalog.e.access.group"),
    ({"groups": "staff"}, "catalog.e.access.groups"),
    ({"groups": [""]}, "catalog.e.access.groups[0]"),
    ({"users": [3]}, "catalog.e.access.users[0]"),
])
def test_a_bad_access_list_is_named(access, path):
    with pytest.raises(CatalogError) as info:
        parse_catalog({"e": {"access": access, "system": system()}})
    assert info.value.path == path


# --------------------------------------------------------------------------- a typed image


def test_a_typed_image_matching_the_pattern_in_full_is_the_containers_image():
    catalog = parse_catalog(catalog_data()).visible_to(STAFF)
    chosen = catalog.select({"profile": "sized", "choices": {"image": "example.org/app:42"}})
    assert chosen.system().served.image == "example.org/app:42"
    assert chosen.as_user_options()["choices"]["image"] == "example.org/app:42"
    form = catalog.options_from_form({"profile": ["sized"], "sized.image": ["example.org/app:7"],
                                      "sized.size": ["small"]})
    assert form["choices"] == {"size": "small", "image": "example.org/app:7"}


@pytest.mark.parametrize("image", [
    "example.org/app:1x",                # a partial match is not a match
    "evil.org/example.org/app:1",
    "example.org/app:1\nimage: evil",    # no line breaks
    "example.org/app: 1",
    "",
    "example.org/app:" + "1" * 600,      # longer than any image reference
    42,
])
def test_a_typed_image_outside_the_pattern_is_refused(image):
    catalog = parse_catalog(catalog_data()).visible_to(STAFF)
    assert "is not offered for image" in refusal(catalog, {"profile": "sized", "choices": {"image": image}})


@pytest.mark.parametrize("change, path, words", [
    ({"pattern": "("}, "catalog.sized.choices.image.pattern", "not a regular expression"),
    ({"pattern": None}, "catalog.sized.choices.image.pattern", "is required"),
    ({"default": "other.org/x:1"}, "catalog.sized.choices.image.default", "does not match the pattern"),
    ({"container": "nosuch"}, "catalog.sized.choices.image.container", "not one of the containers"),
    ({"options": {"a": {}}}, "catalog.sized.choices.image.options", "has no options"),
    ({"kind": "text"}, "catalog.sized.choices.image.kind", "not one of: options, image"),
])
def test_a_bad_image_choice_is_named(change, path, words):
    data = catalog_data()
    choice = data["sized"]["choices"]["image"]
    for key, value in change.items():
        if value is None:
            choice.pop(key)
        else:
            choice[key] = value
    with pytest.raises(CatalogError) as info:
        parse_catalog(data)
    assert (info.value.path, words in info.value.message) == (path, True), info.value


def test_pattern_belongs_to_image_choices_only():
    data = catalog_data()
    data["sized"]["choices"]["size"]["pattern"] = ".*"
    with pytest.raises(CatalogError) as info:
        parse_catalog(data)
    assert info.value.path == "catalog.sized.choices.size.pattern"


# --------------------------------------------------------------------------- the pod


def pod_of(sys_data: dict, base: dict | None = None, user: str = "alice") -> dict:
    catalog = parse_catalog({"e": {"system": sys_data}})
    server = Server(name=f"jupyter-{user}", namespace="ns", gate=GateSettings(), user_slug=user)
    return render_pod(catalog.select({}).system(), server, template_environment(), base)


def test_gpus_ask_for_their_resource_and_tolerate_the_gpu_nodes_taint():
    data = system()
    data["containers"]["app"]["limits"] = {"gpus": {"count": 2, "resource": "amd.com/gpu"}}
    spec = pod_of(data)["spec"]
    assert spec["containers"][0]["resources"]["limits"] == {"amd.com/gpu": "2"}
    assert spec["tolerations"] == [{"key": "amd.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    data["containers"]["app"]["limits"] = {"gpus": 1}
    spec = pod_of(data)["spec"]
    assert spec["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def test_a_mig_slice_is_a_gpu_resource_and_kubernetes_io_names_are_not():
    data = system()
    data["containers"]["app"]["limits"] = {"gpus": {"count": 1, "resource": "nvidia.com/mig-1g.5gb"}}
    assert pod_of(data)["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/mig-1g.5gb": "1"}
    data["containers"]["app"]["limits"] = {"gpus": {"count": 1, "resource": "kubernetes.io/cpu"}}
    with pytest.raises(CatalogError) as info:
        parse_catalog({"e": {"system": data}})
    assert info.value.path == "catalog.e.system.containers.app.limits.gpus.resource"


def test_scheduling_goes_over_the_sites_own():
    sched = {
        "node_selector": {"tycho.test/accelerator": "nvidia-t4", "zone": "b"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "course", "effect": "NoSchedule"}],
        "node_affinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "gpu-memory", "operator": "Gt", "values": ["15"]}]}]},
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "preference": {"matchExpressions": [{"key": "spot", "operator": "DoesNotExist"}]}}],
        },
        "priority_class": "courses",
    }
    site = {"spec": {
        "containers": [{"name": "notebook", "image": "x"}],
        "nodeSelector": {"zone": "a", "pool": "users"},
        "tolerations": [{"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user",
                         "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["users"]}]},
            {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["spare"]}]}]}}},
        "priorityClassName": "default-users", "priority": 0,
    }}
    spec = pod_of(system(scheduling=sched), site)["spec"]
    assert spec["nodeSelector"] == {"zone": "b", "pool": "users", "tycho.test/accelerator": "nvidia-t4"}
    assert [t["key"] for t in spec["tolerations"]] == ["hub.jupyter.org/dedicated", "dedicated"]
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    # Each of the site's alternatives AND the entry's requirement.
    assert [[e["key"] for e in t["matchExpressions"]] for t in terms] == [["pool", "gpu-memory"], ["pool", "gpu-memory"]]
    assert spec["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"] == 10
    assert spec["priorityClassName"] == "courses" and "priority" not in spec


@pytest.mark.parametrize("sched, path", [
    ({"node_selector": {"bad key!": "x"}}, "node_selector.bad key!"),
    ({"tolerations": [{"key": "k", "operator": "Sometimes"}]}, "tolerations[0].operator"),
    ({"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}, "tolerations[0].value"),
    ({"tolerations": [{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}]}, "tolerations[0].tolerationSeconds"),
    ({"node_affinity": {"required": {}}}, "node_affinity.required"),
    ({"node_affinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}},
     "node_affinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"),
    ({"priority_class": "Not A Name"}, "priority_class"),
    ({"nodeSelector": {}}, "nodeSelector"),
])
def test_bad_scheduling_is_named(sched, path):
    with pytest.raises(CatalogError) as info:
        parse_catalog({"e": {"system": system(scheduling=sched)}})
    assert info.value.path == f"catalog.e.system.scheduling.{path}"


def test_an_option_can_move_an_entry_to_gpu_nodes():
    data = {"e": {"system": system(), "choices": {"where": {"options": {
        "cpu": {},
        "gpu": {"set": {"containers.app.limits.gpus": 1,
                        "scheduling.node_selector": {"tycho.test/accelerator": "nvidia-t4"}}},
    }}}}}
    catalog = parse_catalog(data)
    gpu = catalog.select({"choices": {"where": "gpu"}}).system()
    assert gpu.scheduling.node_selector == (("tycho.test/accelerator", "nvidia-t4"),)
    assert gpu.tolerations() == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert catalog.select({}).system().tolerations() == []


# --------------------------------------------------------------------------- secrets, config, data


def test_secrets_and_config_maps_reach_the_container_by_reference_only():
    data = system()
    data["containers"]["app"]["env"] = {
        "MODE": "demo",
        "DB_PASSWORD": {"secret": "db", "key": "password"},
        "THEME": {"config_map": "look", "key": "theme", "optional": True},
    }
    data["containers"]["app"]["env_from"] = [{"secret": "api-keys"}, {"config_map": "settings", "prefix": "APP_"}]
    container = pod_of(data)["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["DB_PASSWORD"] == {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}
    assert env["THEME"]["valueFrom"] == {"configMapKeyRef": {"name": "look", "key": "theme", "optional": True}}
    assert env["MODE"] == {"name": "MODE", "value": "demo"}
    assert container["envFrom"] == [{"secretRef": {"name": "api-keys"}},
                                    {"configMapRef": {"name": "settings"}, "prefix": "APP_"}]


def test_data_volumes_from_claims_config_maps_and_secrets():
    data = system(volumes={
        "dataset": {"claim": "shared-data", "read_only": True},
        "mine": {"claim": "group-space", "sub_path": "people/{username}"},
        "conf": {"config_map": "app-config"},
        "creds": {"secret": "app-creds", "optional": True},
        "scratch": {"size_limit": "1Gi"},
    })
    data["containers"]["app"]["mounts"] = {"dataset": "/data", "mine": "/work", "conf": "/etc/app",
                                           "creds": "/run/creds", "scratch": "/scratch"}
    spec = pod_of(data, user="alice-2d2e")["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["dataset"]["persistentVolumeClaim"] == {"claimName": "shared-data", "readOnly": True}
    assert volumes["mine"]["persistentVolumeClaim"] == {"claimName": "group-space"}
    assert volumes["conf"]["configMap"] == {"name": "app-config"}
    assert volumes["creds"]["secret"] == {"secretName": "app-creds", "optional": True}
    assert volumes["scratch"]["emptyDir"] == {"sizeLimit": "1Gi"}
    mounts = {m["name"]: m for m in spec["containers"][0]["volumeMounts"]}
    assert mounts["dataset"] == {"name": "dataset", "mountPath": "/data", "readOnly": True}
    assert mounts["mine"] == {"name": "mine", "mountPath": "/work", "subPath": "people/alice-2d2e"}


@pytest.mark.parametrize("volume, path, words", [
    ({"claim": "a", "secret": "b"}, "", "at most one of"),
    ({"claim": "Not_A_Name"}, ".claim", "not a claim name"),
    ({"claim": "a", "size_limit": "1Gi"}, ".size_limit", "only for scratch space"),
    ({"claim": "a", "sub_path": "../other"}, ".sub_path", "inside the volume"),
    ({"claim": "a", "sub_path": "{user}"}, ".sub_path", "only {username} is replaced"),
    ({"claim": "a", "optional": True}, ".optional", "only for a config_map or secret"),
])
def test_bad_data_volumes_are_named(volume, path, words):
    data = system(volumes={"v": volume})
    data["containers"]["app"]["mounts"] = {"v": "/v"}
    with pytest.raises(CatalogError) as info:
        parse_catalog({"e": {"system": data}})
    assert info.value.path == f"catalog.e.system.volumes.v{path}" and words in info.value.message, info.value


@pytest.mark.parametrize("env, path", [
    ({"X": {"secret": "db"}}, "env.X.key"),
    ({"X": {"secret": "db", "config_map": "c", "key": "k"}}, "env.X"),
    ({"X": {"secret": "db", "key": "a b"}}, "env.X.key"),
    ({"X": {"vault": "db", "key": "k"}}, "env.X.vault"),
])
def test_bad_references_are_named(env, path):
    data = copy.deepcopy(system())
    data["containers"]["app"]["env"] = env
    with pytest.raises(CatalogError) as info:
        parse_catalog({"e": {"system": data}})
    assert info.value.path == f"catalog.e.system.containers.app.{path}"


def test_a_half_typed_image_on_another_card_does_not_refuse_the_chosen_start():
    catalog = parse_catalog(catalog_data()).visible_to(STAFF)
    form = catalog.options_from_form({"profile": ["open"], "sized.image": ["example.org/ap"], "sized.size": ["small"]})
    assert form == {"profile": "open", "choices": {}}
    with pytest.raises(OptionsError):
        catalog.options_from_form({"profile": ["open"], "sized.image": ["x" * 600]})
    with pytest.raises(OptionsError):
        catalog.options_from_form({"profile": ["sized"], "sized.image": ["example.org/ap"]})
