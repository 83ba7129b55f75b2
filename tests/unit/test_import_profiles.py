"""`tycho import-profiles`: KubeSpawner's profile_list (z2jh's singleuser.profileList) as catalog entries.

The documentation examples of zero-to-jupyterhub and KubeSpawner (tests/unit/profiles/, one file
each, with its source) are converted, validated as `tycho validate` does, and checked entry by
entry; the report of what was not carried over is compared line for line. The value conversions
(KubeSpawner's 1024-based memory sizes, CPU counts, GPUs) and every input shape and error are
tested on their own, through the pure module and through `tycho.cli.main`.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

from tycho_spawner import cli
from tycho_spawner.catalog_files import BUILTIN_CATALOG, read_catalog_file
from tycho_spawner.errors import OptionsError
from tycho_spawner.import_profiles import (
    ImportResult,
    ProfileListError,
    cpu_quantity,
    find_profiles,
    import_profiles,
    map_override,
    memory_quantity,
)
from tycho_spawner.profiles import merge, parse_catalog

PROFILES_DIR = Path(__file__).parent / "profiles"
EXAMPLES = sorted(PROFILES_DIR.glob("*.yaml"))
BASE_IMAGE = "quay.io/jupyter/base-notebook:2026-05-31"


@lru_cache(maxsize=1)
def builtin() -> dict:
    return read_catalog_file(BUILTIN_CATALOG)


def convert(data) -> ImportResult:
    return import_profiles(data, base_system=builtin()["base"]["system"], builtin_keys=tuple(builtin()))


def convert_file(name: str) -> ImportResult:
    return convert(yaml.safe_load((PROFILES_DIR / name).read_text(encoding="utf-8")))


def lines(result: ImportResult) -> list[str]:
    return [str(notice) for notice in result.notices]


def notebook(entry: dict) -> dict:
    return entry["system"]["containers"]["notebook"]


def image_line(key: str) -> str:
    return (
        f"profile {key}: image: not set: the profile ran the site's image (c.KubeSpawner.image, z2jh: "
        f"singleuser.image), which this file does not give; the entry runs {BASE_IMAGE}: set "
        f"catalog.{key}.system.containers.notebook.image"
    )


def unlisted_line(where: str, regex: str) -> str:
    return (
        f"{where}: unlisted_choice: not carried over: users could type their own value matching "
        f"validation_regex {regex!r} next to listed choices (a catalog choice is either a list of options "
        f"or a typed image): add the values you allow as options, or make a second entry whose choice is "
        f"kind: image"
    )


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


# --------------------------------------------------------------------------- documentation examples


def test_there_is_one_file_per_documentation_example():
    assert [p.name for p in EXAMPLES] == [
        "kubespawner-profile-list-dict.yaml",
        "kubespawner-profile-list-list.yaml",
        "z2jh-user-environment-four-profiles.yaml",
        "z2jh-user-environment-skeleton.yaml",
        "z2jh-user-resources-gpu.yaml",
    ]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_each_example_names_its_source(path):
    head = path.read_text(encoding="utf-8").split("\n\n")[0]
    assert head.startswith("# ")
    assert "Source:" in head and ("zero-to-jupyterhub-k8s" in head or "kubespawner/spawner.py" in head)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_each_example_converts_to_a_valid_catalog(path):
    result = convert_file(path.name)
    assert result.entries
    catalog = result.document()["catalog"]
    # as `tycho validate` sees it (over the built-in catalog), and alone (builtin_catalog = False)
    merged = parse_catalog(merge(builtin(), catalog))
    alone = parse_catalog(catalog)
    assert [p.key for p in merged.profiles] == [p.key for p in alone.profiles] == list(result.entries)
    assert set(result.disabled) == set(builtin())


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_keys_are_kubespawners_own_slugs(path):
    """Where KubeSpawner's slug is a valid key, the entry keeps it (KubeSpawner's code computes it)."""
    from kubespawner import KubeSpawner

    profiles = list(find_profiles(yaml.safe_load(path.read_text(encoding="utf-8"))).profiles)
    initialized = KubeSpawner._get_initialized_profile_list(None, profiles)
    assert list(convert_file(path.name).entries) == [p["slug"] for p in initialized]


def test_z2jh_skeleton():
    result = convert_file("z2jh-user-environment-skeleton.yaml")
    (key,) = result.entries
    assert key == "name-to-be-displayed-to-users"
    entry = result.entries[key]
    assert entry["display_name"] == "Name to be displayed to users"
    assert entry["description"] == "Longer description for users."
    assert entry["default"] is True and entry["order"] == 1
    assert entry["system"] == builtin()["base"]["system"]
    assert lines(result) == [
        f"profile {key}: your_config: not carried over: a catalog entry has no per-entry your_config; "
        f"the site-wide c.KubeSpawner.your_config (z2jh: singleuser.*) still applies to every entry",
        image_line(key),
    ]


def test_z2jh_four_profiles_use_the_sites_image():
    result = convert_file("z2jh-user-environment-four-profiles.yaml")
    entries = result.entries
    assert list(entries) == ["minimal-environment", "datascience-environment", "spark-environment", "learning-data-science"]
    assert [e["order"] for e in entries.values()] == [1, 2, 3, 4]
    assert [e.get("default", False) for e in entries.values()] == [True, False, False, False]
    assert [notebook(e)["image"] for e in entries.values()] == [
        "jupyter/minimal-notebook:2343e33dec46",  # singleuser.image: the profile sets none
        "jupyter/datascience-notebook:2343e33dec46",
        "jupyter/all-spark-notebook:2343e33dec46",
        "jupyter/datascience-notebook:2343e33dec46",
    ]
    assert entries["spark-environment"]["description"] == "The Jupyter Stacks spark image!"
    assert lines(result) == [
        "profile learning-data-science: lifecycle_hooks: not carried over: a catalog entry has no per-entry "
        "lifecycle_hooks; the site-wide c.KubeSpawner.lifecycle_hooks (z2jh: singleuser.lifecycleHooks) "
        "still applies to every entry",
    ]
    assert parse_catalog(entries).default_profile.key == "minimal-environment"


def test_z2jh_gpu_profile():
    result = convert_file("z2jh-user-resources-gpu.yaml")
    entry = result.entries["gpu-server"]
    assert entry["display_name"] == "GPU Server"
    assert notebook(entry)["limits"] == {"gpus": 1}
    assert "default" not in entry  # KubeSpawner's implicit default: the first, as the catalog's
    assert parse_catalog(result.entries).default_profile.key == "gpu-server"
    system = parse_catalog(result.entries).get("gpu-server").system({})
    assert system.served.limits.as_resources() == {"nvidia.com/gpu": "1"}
    assert lines(result) == [image_line("gpu-server")]


def test_kubespawner_list_example():
    result = convert_file("kubespawner-profile-list-list.yaml")
    demo1, demo2 = result.entries["demo-1"], result.entries["demo-2"]
    assert list(result.entries) == ["demo-1", "demo-2"]
    assert demo1["default"] is True and "default" not in demo2
    assert demo1["description"].startswith("Demo description for profile_list entry 1")
    assert notebook(demo1)["env"] == {"JUPYTERHUB_DEFAULT_URL": "/lab"}  # default_url
    assert demo1["choices"] == {
        "image": {
            "display_name": "Image",
            "default": "minimal",
            "options": {
                "base": {
                    "display_name": "jupyter/base-notebook:latest",
                    "set": {"containers.notebook.image": "jupyter/base-notebook:latest"},
                },
                "minimal": {
                    "display_name": "jupyter/minimal-notebook:latest",
                    "set": {"containers.notebook.image": "jupyter/minimal-notebook:latest"},
                },
            },
        }
    }
    # a GPU guarantee is a limit in Kubernetes (a request alone is refused)
    assert notebook(demo2)["limits"] == {"gpus": 1}
    assert lines(result) == [
        unlisted_line("profile demo-1, option image", "^jupyter/.+:.+$"),
        image_line("demo-2"),  # every choice of demo-1 sets its image: no line for it
    ]
    catalog = parse_catalog(result.entries)
    picked = catalog.select({"profile": "demo-1", "choices": {"image": "base"}}).system()
    assert picked.served.image == "jupyter/base-notebook:latest"
    assert catalog.select({}).system().served.image == "jupyter/minimal-notebook:latest"


def test_kubespawner_dict_example_is_ordered_by_key():
    result = convert_file("kubespawner-profile-list-dict.yaml")
    assert list(result.entries) == ["demo-1", "demo-2"]
    assert result.entries["demo-1"]["choices"]["image"]["default"] == "base"  # the first, as KubeSpawner
    assert lines(result) == [
        unlisted_line("profile demo-1, option image", "^jupyter/.+:.+$"),
        image_line("demo-2"),
    ]


# --------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2G", "2Gi"),  # KubeSpawner's G is 1024**3 bytes
        ("512M", "512Mi"),
        ("1.5G", "1536Mi"),
        ("1T", "1Ti"),
        ("100K", "100Ki"),
        (1073741824, "1073741824"),  # bytes stay as written
        (1.5e9, "1500000000"),
        ("2Gi", "2Gi"),  # a Kubernetes quantity KubeSpawner would refuse: one meaning, kept
        ("1000k", "1000k"),
        ("2GG", None),
        ("lots", None),
        (-1, None),
        ("-1G", None),
        (True, None),
        ([1], None),
    ],
)
def test_memory_quantity(value, expected):
    assert memory_quantity(value) == expected


@pytest.mark.parametrize(
    "value, expected",
    [(0.5, "0.5"), (2, "2"), (2.0, "2"), (0.001, "0.001"), (10.0, "10"), ("500m", "500m"),
     ("half", None), (-1, None), (float("inf"), None), (False, None)],
)
def test_cpu_quantity(value, expected):
    assert cpu_quantity(value) == expected


def test_mapped_keys_become_patches_of_the_notebook_container():
    mapped = map_override(
        {
            "image_spec": "registry.example.org/lab:1",  # KubeSpawner's old name for image
            "cpu_limit": 2, "cpu_guarantee": 0.5, "mem_limit": "4G", "mem_guarantee": 1073741824,
            "extra_resource_limits": {"nvidia.com/gpu": 2},
            "default_url": "/tree",
            "environment": {"EDITOR": "vim", "ANSWER": 42, "DROPPED": None},
            "cmd": "start-singleuser.sh", "args": ["--debug"],
            "uid": 1001, "gid": 1001, "fs_gid": 1001,
            "working_dir": "/home/jovyan/work",
        },
        "profile p",
    )
    assert mapped.notices == ()
    assert dict(mapped.patches) == {
        "containers.notebook.image": "registry.example.org/lab:1",
        "containers.notebook.limits.cpu": "2",
        "containers.notebook.requests.cpu": "0.5",
        "containers.notebook.limits.memory": "4Gi",
        "containers.notebook.requests.memory": "1073741824",
        "containers.notebook.limits.gpus": 2,
        "containers.notebook.env.JUPYTERHUB_DEFAULT_URL": "/tree",
        "containers.notebook.env.EDITOR": "vim",
        "containers.notebook.env.ANSWER": "42",
        "containers.notebook.env.DROPPED": None,
        "containers.notebook.command": ["start-singleuser.sh"],
        "containers.notebook.args": ["--debug"],
        "security.run_as_user": 1001,
        "security.run_as_group": 1001,
        "security.fs_group": 1001,
        "containers.notebook.working_dir": "/home/jovyan/work",
    }


def test_zero_and_null_limits_mean_none_as_in_kubespawner():
    mapped = map_override({"mem_limit": 0, "cpu_limit": None, "cmd": None}, "profile p")
    assert dict(mapped.patches) == {
        "containers.notebook.limits.memory": None,
        "containers.notebook.limits.cpu": None,
        "containers.notebook.command": None,
    }


def test_scheduling_is_carried_over_as_the_entrys_and_says_how_it_combines():
    override = {
        "node_selector": {"gpu": "t4"},
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "node_affinity_required": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}],
        "node_affinity_preferred": [{"weight": 5, "preference": {"matchExpressions": [
            {"key": "spot", "operator": "DoesNotExist"}]}}],
        "priority_class_name": "courses",
        "extra_resource_limits": {"amd.com/gpu": 2},
    }
    result = convert([{"display_name": "GPU", "kubespawner_override": override}])
    system = parse_catalog(result.entries).select({}).system()
    assert dict(system.scheduling.node_selector) == {"gpu": "t4"}
    assert system.scheduling.priority_class == "courses"
    assert [t["key"] for t in system.tolerations()] == ["gpu", "amd.com/gpu"]
    assert (system.served.limits.gpus, system.served.limits.gpu_resource) == (2, "amd.com/gpu")
    affinity = json.loads(system.scheduling.node_affinity)
    assert affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchExpressions"][0]["key"] == "zone"
    assert affinity["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"] == 5
    said = "\n".join(lines(result))
    assert "node_selector: carried over as system.scheduling.node_selector: its keys replace the site's" in said
    assert "tolerations: carried over as system.scheduling.tolerations: added to the site's" in said
    assert "node_affinity_required: carried over as system.scheduling.node_affinity: must hold as well" in said


@pytest.mark.parametrize(
    "override, line",
    [
        ({"scheduler_name": "gpu-scheduler"},
         "scheduler_name: not carried over: a catalog entry has no per-entry scheduler_name; the site-wide "
         "c.KubeSpawner.scheduler_name (z2jh: singleuser.*) still applies to every entry"),
        ({"pod_anti_affinity_preferred": [{}]},
         "pod_anti_affinity_preferred: not carried over: a catalog entry has no per-entry pod_anti_affinity_preferred; "
         "the site-wide c.KubeSpawner.pod_anti_affinity_preferred (z2jh: singleuser.extraPodAntiAffinity.preferred) "
         "still applies to every entry"),
        ({"volumes": [{"name": "shm"}]},
         "volumes: not carried over: a catalog entry has no per-entry volumes; the site-wide "
         "c.KubeSpawner.volumes (z2jh: singleuser.storage.extraVolumes) still applies to every entry"),
        ({"image_pull_policy": "Always"},
         "image_pull_policy: not carried over: a catalog entry has no per-entry image_pull_policy; the site-wide "
         "c.KubeSpawner.image_pull_policy (z2jh: singleuser.image.pullPolicy) still applies to every entry"),
        ({"extra_resource_limits": {"xilinx.com/fpga": 1}},
         "extra_resource_limits.xilinx.com/fpga: not carried over: the catalog has GPUs (limits.gpus) "
         "and no other extended resources; the site-wide c.KubeSpawner.extra_resource_limits "
         "(z2jh: singleuser.extraResource.limits) still applies to every entry"),
        ({"extra_resource_limits": {"nvidia.com/gpu": "many"}},
         "extra_resource_limits.nvidia.com/gpu: not carried over: 'many' is not a GPU count from 0 to 64"),
        ({"environment": {"TOKEN": {"valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}}},
         "environment.TOKEN: not carried over: a Kubernetes EnvVar (valueFrom: a Secret, ConfigMap or field) is "
         "not a catalog env value, which is a string; the site-wide c.KubeSpawner.environment "
         "(z2jh: singleuser.extraEnv) still applies to every entry: set it there"),
        ({"environment": {"SCRATCH": "/scratch/{username}"}},
         "environment.SCRATCH: not carried over: KubeSpawner fills in {username} for each user; a catalog value "
         "is the same for every user"),
        ({"environment": {"my.var": "x"}},
         "environment.my.var: not carried over: not a variable name a catalog entry can set"),
        ({"uid": 0},
         "uid: not carried over: 0 is root, and catalog apps run as non-root; the entry keeps its non-root "
         "system.security.run_as_user (use an image that works as a non-root user)"),
        ({"uid": None},
         "uid: not carried over: None is not a numeric id; a catalog entry always gives one (system.security.run_as_user)"),
        ({"working_dir": "work"}, "working_dir: not carried over: 'work' is not an absolute path"),
        ({"mem_limit": "2GG"},
         "mem_limit: not carried over: '2GG' is not a memory size (bytes, or a number with K, M, G or T)"),
        ({"cpu_limit": "two"}, "cpu_limit: not carried over: 'two' is not a number of CPUs"),
        ({"image": "not an image"}, "image: not carried over: 'not an image' is not an image reference"),
        ({"args": "--debug"}, "args: not carried over: '--debug' is not a list of strings"),
        ({"port": 9999},
         "port: not carried over: a Jupyter entry serves on port 8888 (system.serve.port); change the entry if "
         "its image listens elsewhere"),
        ({"privileged": True}, "privileged: not carried over: catalog apps never run privileged"),
    ],
)
def test_what_is_not_carried_over_is_said_with_a_hint(override, line):
    mapped = map_override(override, "profile p")
    assert [str(n) for n in mapped.notices] == [f"profile p: {line}"]
    assert mapped.patches == ()


def test_choice_overrides_become_set_patches_and_name_their_choice_in_notices():
    result = convert([{
        "display_name": "Custom",
        "kubespawner_override": {"image": "lab:1", "mem_limit": "8G", "mem_guarantee": "1G"},
        "profile_options": {
            "resource_allocation": {
                "display_name": "Resources",
                "choices": {
                    "mem_2": {"display_name": "2 GB", "kubespawner_override": {"mem_limit": "2G"}},
                    "gpu": {
                        "display_name": "With a GPU",
                        "description": "One NVIDIA T4",
                        "default": True,
                        "kubespawner_override": {
                            "extra_resource_limits": {"nvidia.com/gpu": "1"},
                            "node_selector": {"gpu": "t4"},
                            "environment": {"CUDA": "1"},
                        },
                    },
                },
            },
        },
    }])
    entry = result.entries["custom"]
    assert notebook(entry)["limits"] == {"memory": "8Gi"}
    assert notebook(entry)["requests"] == {"memory": "1Gi"}
    assert entry["choices"] == {
        "resource-allocation": {
            "display_name": "Resources",
            "default": "gpu",
            "options": {
                "mem-2": {"display_name": "2 GB", "set": {"containers.notebook.limits.memory": "2Gi"}},
                "gpu": {
                    "display_name": "With a GPU",
                    "description": "One NVIDIA T4",
                    "set": {"containers.notebook.limits.gpus": 1, "containers.notebook.env.CUDA": "1",
                            "scheduling.node_selector": {"gpu": "t4"}},
                },
            },
        }
    }
    invalid_key = "is not a valid catalog key (lowercase letters, digits and '-', at most 63)"
    assert lines(result) == [
        f"profile custom, option resource_allocation: key: 'resource_allocation' {invalid_key}; "
        f"imported as choices.resource-allocation",
        f"profile custom, option resource_allocation, choice mem_2: key: 'mem_2' {invalid_key}; imported as options.mem-2",
        f"profile custom, option resource_allocation, choice gpu: node_selector: carried over as "
        f"system.scheduling.node_selector: its keys replace the site's one by one (KubeSpawner replaced the "
        f"whole selector)",
    ]
    catalog = parse_catalog(result.entries)
    small = catalog.select({"profile": "custom", "choices": {"resource-allocation": "mem-2"}}).system().served
    assert (small.limits.memory, small.limits.gpus, small.requests.memory) == ("2Gi", 0, "1Gi")
    gpu = catalog.select({}).system().served
    assert (gpu.limits.memory, gpu.limits.gpus, dict(gpu.env)["CUDA"]) == ("8Gi", 1, "1")


def test_an_unlisted_image_with_a_regex_becomes_a_typed_image_choice_and_others_are_not_offered():
    result = convert([{
        "display_name": "Bring your own image",
        "kubespawner_override": {"image": "jupyter/lab:1"},
        "profile_options": {
            "image": {"display_name": "Image", "unlisted_choice": {
                "enabled": True, "validation_regex": "jupyter/[a-z]+:[0-9]+",
                "kubespawner_override": {"image": "{value}"}}},
            "anything": {"display_name": "Any", "unlisted_choice": {"enabled": True, "kubespawner_override": {"image": "{value}"}}},
            "cpu": {"display_name": "CPU", "unlisted_choice": {
                "enabled": True, "validation_regex": "[0-9]+", "kubespawner_override": {"cpu_limit": "{value}"}}},
            "off": {"choices": {"a": {"display_name": "A"}}, "unlisted_choice": {"enabled": False}},
        },
    }])
    entry = result.entries["bring-your-own-image"]
    assert list(entry["choices"]) == ["image", "off"]
    assert entry["choices"]["image"] == {"display_name": "Image", "kind": "image", "pattern": "jupyter/[a-z]+:[0-9]+",
                                         "default": "jupyter/lab:1"}
    catalog = parse_catalog(result.entries)
    chosen = catalog.select({"choices": {"image": "jupyter/scipy:2"}}).system()
    assert chosen.served.image == "jupyter/scipy:2"
    with pytest.raises(OptionsError):
        catalog.select({"choices": {"image": "evil/jupyter/scipy:2"}})
    said = lines(result)
    assert said[0].startswith("profile bring-your-own-image, option image: unlisted_choice: carried over as a choice "
                              "of kind: image with pattern 'jupyter/[a-z]+:[0-9]+': the whole image must match it")
    assert "option anything: unlisted_choice: not carried over: users could type any image (no validation_regex)" in said[1]
    assert "option cpu: unlisted_choice: not carried over: users could type their own value for settings other than the image (cpu_limit)" in said[3]


def test_unknown_fields_are_reported():
    result = convert([{
        "display_name": "X", "kubespawner_override": {"image": "lab:1"}, "extra": 1,
        "profile_options": {"o": {"choices": {"a": {"slug": "a"}}, "dynamic_image_building": {"enabled": True}}},
    }])
    assert lines(result) == [
        "profile x: extra: not carried over: not a profile field KubeSpawner or the catalog knows",
        "profile x, option o: dynamic_image_building: not carried over: not a profile_options field KubeSpawner "
        "or the catalog knows",
        "profile x, option o, choice a: slug: not carried over: not a choice field KubeSpawner or the catalog knows",
    ]


# --------------------------------------------------------------------------- keys and defaults


def test_keys_are_valid_unique_and_avoid_the_builtin_ones():
    long_name = "A very long display name " * 5
    result = convert([
        {"display_name": "One", "slug": "Demo_1", "kubespawner_override": {"image": "a:1"}},
        {"display_name": "One", "kubespawner_override": {"image": "a:2"}},
        {"display_name": "R", "kubespawner_override": {"image": "a:3"}},  # the built-in `r`
        {"display_name": long_name, "kubespawner_override": {"image": "a:4"}},
        {"display_name": "Ünïcödé Straße", "kubespawner_override": {"image": "a:5"}},
        {"display_name": "!!!", "kubespawner_override": {"image": "a:6"}},
    ])
    keys = list(result.entries)
    assert keys[:3] == ["one", "one-2", "r-2"]
    assert len(keys[3]) <= 63 and keys[3].startswith("a-very-long-display-name-") and not keys[3].endswith("-")
    assert keys[4:] == ["unicode-strasse", "profile-6"]
    assert lines(result)[:3] == [
        "profile one: slug: 'Demo_1' is not a valid catalog key (lowercase letters, digits and '-', at most 63); "
        "imported as catalog.one",
        "profile one-2: slug: 'one' is already the key of another one; imported as catalog.one-2",
        "profile r-2: slug: 'r' is a built-in entry's key (merged over it, the two entries would mix); "
        "imported as catalog.r-2",
    ]
    assert len(result.notices) == 5  # the long one and '!!!' are renamed too
    assert not set(keys) & set(builtin())


def test_only_the_first_default_is_kept():
    result = convert([
        {"display_name": "A", "kubespawner_override": {"image": "a:1"}},
        {"display_name": "B", "default": True, "kubespawner_override": {"image": "a:1"}},
        {"display_name": "C", "default": True, "kubespawner_override": {"image": "a:1"}},
    ])
    assert [e.get("default", False) for e in result.entries.values()] == [False, True, False]
    assert lines(result) == [
        "profile c: default: not carried over: only one entry can be the default, and KubeSpawner used the first: b",
    ]
    assert parse_catalog(result.entries).default_profile.key == "b"


def test_a_profile_that_cannot_be_an_entry_is_left_out_and_said_why():
    result = convert([
        {"display_name": "Bad", "kubespawner_override": {"image": "a:1", "mem_limit": "1G", "mem_guarantee": "2G"}},
        {"display_name": "Good", "kubespawner_override": {"image": "a:1"}},
    ])
    assert list(result.entries) == ["good"]
    assert result.entries["good"]["order"] == 2
    assert lines(result) == [
        "profile bad: (whole profile): not carried over: the converted entry is invalid: "
        "catalog.bad.system.containers.notebook.requests.memory: 2Gi is more than the limit 1Gi",
    ]


def test_site_settings_of_a_values_file_are_the_base_of_every_entry():
    result = convert({"singleuser": {
        "image": {"name": "registry.example.org/lab", "tag": "2024-04-22"},
        "uid": 1001, "fsGid": 1001, "cmd": "start-singleuser.sh",
        "profileList": [
            {"display_name": "Site"},
            {"display_name": "Own", "kubespawner_override": {"image": "own:1", "uid": 2000}},
        ],
    }})
    site, own = result.entries["site"], result.entries["own"]
    assert notebook(site)["image"] == "registry.example.org/lab:2024-04-22"
    assert notebook(site)["command"] == ["start-singleuser.sh"]
    assert site["system"]["security"] == {"run_as_user": 1001, "run_as_group": 100, "fs_group": 1001}
    assert notebook(own)["image"] == "own:1" and own["system"]["security"]["run_as_user"] == 2000
    assert lines(result) == []


def test_a_root_site_uid_is_reported_once():
    result = convert({"singleuser": {"uid": 0, "profileList": [{"display_name": "A", "kubespawner_override": {"image": "a:1"}}]}})
    assert lines(result) == [
        "singleuser: uid: not carried over: 0 is root, and catalog apps run as non-root; the entry keeps its "
        "non-root system.security.run_as_user (use an image that works as a non-root user)",
    ]


# --------------------------------------------------------------------------- input shapes


@pytest.mark.parametrize(
    "data, path",
    [
        ([{"display_name": "A"}], "profile_list"),
        ({"profile_list": [{"display_name": "A"}]}, "profile_list"),
        ({"profile_list": {"a": {"display_name": "A"}}}, "profile_list"),
        ({"singleuser": {"profileList": [{"display_name": "A"}]}, "hub": {}}, "singleuser.profileList"),
        ({"jupyterhub": {"singleuser": {"profileList": [{"display_name": "A"}]}}}, "jupyterhub.singleuser.profileList"),
    ],
)
def test_accepted_shapes(data, path):
    source = find_profiles(data)
    assert source.path == path and source.profiles == ({"display_name": "A"},)


EXPECTED = (
    "expected a zero-to-jupyterhub values file (singleuser.profileList), a KubeSpawner profile_list "
    "(a list of profiles), or a mapping with a profile_list key"
)


@pytest.mark.parametrize(
    "data, message",
    [
        (None, f"is empty; {EXPECTED}"),
        ("just text", f"holds a str; {EXPECTED}"),
        ({"hub": {}, "singleuser": {"image": {}}}, f"has no singleuser.profileList (top-level keys: hub, singleuser); {EXPECTED}"),
        ([], "profile_list: is empty: no profiles to import"),
        ({"singleuser": {"profileList": []}}, "singleuser.profileList: is empty: no profiles to import"),
        ({"singleuser": {"profileList": None}}, "singleuser.profileList: expected a list of profiles, got NoneType"),
        ({"profile_list": "x"}, "profile_list: expected a list of profiles, got str"),
        ([{"display_name": "A"}, "B"], "profile_list[1]: expected a profile (a mapping), got 'B'"),
        ({"a": {"singleuser": {"profileList": [{}]}}, "b": {"singleuser": {"profileList": [{}]}}},
         "has several profile lists (a.singleuser.profileList, b.singleuser.profileList); import one at a time"),
    ],
)
def test_refused_shapes_say_what_was_expected(data, message):
    with pytest.raises(ProfileListError) as info:
        find_profiles(data)
    assert str(info.value) == message


# --------------------------------------------------------------------------- the command


EXPECTED_STDERR = {
    "kubespawner-profile-list-dict.yaml": [
        unlisted_line("profile demo-1, option image", "^jupyter/.+:.+$"), image_line("demo-2"),
    ],
    "kubespawner-profile-list-list.yaml": [
        unlisted_line("profile demo-1, option image", "^jupyter/.+:.+$"), image_line("demo-2"),
    ],
    "z2jh-user-environment-four-profiles.yaml": [
        "profile learning-data-science: lifecycle_hooks: not carried over: a catalog entry has no per-entry "
        "lifecycle_hooks; the site-wide c.KubeSpawner.lifecycle_hooks (z2jh: singleuser.lifecycleHooks) "
        "still applies to every entry",
    ],
    "z2jh-user-environment-skeleton.yaml": [
        "profile name-to-be-displayed-to-users: your_config: not carried over: a catalog entry has no per-entry "
        "your_config; the site-wide c.KubeSpawner.your_config (z2jh: singleuser.*) still applies to every entry",
        image_line("name-to-be-displayed-to-users"),
    ],
    "z2jh-user-resources-gpu.yaml": [image_line("gpu-server")],
}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_command_prints_a_catalog_that_tycho_validate_accepts(capsys, tmp_path, path):
    code, out, err = run_main(capsys, "import-profiles", str(path))
    assert code == 0
    assert err.splitlines() == EXPECTED_STDERR[path.name]
    document = yaml.safe_load(out)
    assert list(document) == ["catalog"]
    assert document == convert_file(path.name).document()
    imported = [k for k, v in document["catalog"].items() if not v.get("disabled")]
    written = tmp_path / "catalog.yaml"
    written.write_text(out, encoding="utf-8")
    for flags in ((), ("--alone",)):
        code, vout, verr = run_main(capsys, "validate", *flags, str(written))
        assert (code, verr) == (0, "")
        assert vout == f"{written}: ok ({len(imported)} applications)\n"
    code, cout, _ = run_main(capsys, "catalog", "--catalog", str(written))
    assert code == 0
    assert [line.split(":")[0].split(" ")[0] for line in cout.splitlines() if not line.startswith(" ")] == imported


def test_command_output_keeps_quantities_as_strings(capsys, tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(
        "singleuser:\n  profileList:\n    - display_name: Small\n      kubespawner_override:\n"
        "        image: lab:1\n        cpu_limit: 0.5\n        mem_limit: 2G\n        mem_guarantee: 1073741824\n"
    )
    code, out, err = run_main(capsys, "import-profiles", str(values))
    assert (code, err) == (0, "")
    small = yaml.safe_load(out)["catalog"]["small"]
    assert notebook(small)["limits"] == {"cpu": "0.5", "memory": "2Gi"}
    assert notebook(small)["requests"] == {"memory": "1073741824"}


@pytest.mark.parametrize(
    "text, message",
    [
        ("singleuser: [unclosed\n", "is not valid YAML: expected ',' or ']', but got '<stream end>' (line 2, column 1)"),
        ("a: b: c\n", "is not valid YAML: mapping values are not allowed here (line 1, column 5)"),
        ("", f"is empty; {EXPECTED}"),
        ("just a string\n", f"holds a str; {EXPECTED}"),
        ("hub: {}\nproxy: {}\n", f"has no singleuser.profileList (top-level keys: hub, proxy); {EXPECTED}"),
        ("[]\n", "profile_list: is empty: no profiles to import"),
        ("singleuser:\n  profileList: []\n", "singleuser.profileList: is empty: no profiles to import"),
        ("- just a string\n", "profile_list[0]: expected a profile (a mapping), got 'just a string'"),
    ],
)
def test_command_errors_are_one_line_and_exit_1(capsys, tmp_path, text, message):
    values = tmp_path / "values.yaml"
    values.write_text(text, encoding="utf-8")
    code, out, err = run_main(capsys, "import-profiles", str(values))
    assert (code, out) == (1, "")
    assert err == f"tycho: {values}: {message}\n"


def test_command_on_a_missing_or_binary_file(capsys, tmp_path):
    code, out, err = run_main(capsys, "import-profiles", str(tmp_path / "missing.yaml"))
    assert (code, out, err) == (1, "", f"tycho: {tmp_path / 'missing.yaml'}: cannot be read: No such file or directory\n")
    binary = tmp_path / "values.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    code, out, err = run_main(capsys, "import-profiles", str(binary))
    assert (code, out) == (1, "")
    assert err.startswith(f"tycho: {binary}: ") and err.count("\n") == 1


def test_command_exits_1_when_no_profile_could_be_imported(capsys, tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text("- display_name: Bad\n  kubespawner_override: {image: 'a:1', mem_limit: 1G, mem_guarantee: 2G}\n")
    code, out, err = run_main(capsys, "import-profiles", str(values))
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "profile bad: (whole profile): not carried over: the converted entry is invalid: "
        "catalog.bad.system.containers.notebook.requests.memory: 2Gi is more than the limit 1Gi",
        f"tycho: {values}: no profile could be imported",
    ]
