"""`tycho images` and catalog_images: every image a user can launch from the catalog, for a
site's pre-puller or registry mirror, with where each comes from."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from tycho_spawner import cli
from tycho_spawner.catalog_files import BUILTIN_CATALOG, catalog_data
from tycho_spawner.catalog_images import ImageSource, TypedImage, catalog_images, typed_images
from tycho_spawner.profiles import MAX_COMBINATIONS, parse_catalog
from tycho_spawner.spawner import TychoSpawner

GATE = "registry.example.org/tycho-gate:9.9"
TYCHO = shutil.which("tycho", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))


def builtin_catalog():
    return parse_catalog(catalog_data(True, [], {}))


def app(image: str, **extra) -> dict:
    """A minimal entry serving one container, the given image."""
    system = {"serve": {"container": "app", "port": 8000},
              "containers": {"app": {"image": image, "ports": {"http": 8000}}}}
    system.update(extra)
    return {"system": system}


def images_of(catalog_map: dict, gate=GATE) -> dict[str, tuple[ImageSource, ...]]:
    return {i.image: i.sources for i in catalog_images(parse_catalog(catalog_map), gate)}


def written_images() -> set[str]:
    """Every container image written in the built-in catalog file, read from the YAML itself."""
    raw = yaml.safe_load(BUILTIN_CATALOG.read_text())["catalog"]
    found = set()
    for entry in raw.values():
        found.update(c["image"] for c in entry["system"]["containers"].values())
        for choice in (entry.get("choices") or {}).values():
            for option in choice["options"].values():
                found.update(v for k, v in (option.get("set") or {}).items() if k.endswith(".image"))
    return found


def test_the_builtin_catalog_lists_each_image_once_sorted_with_the_gate():
    images = catalog_images(builtin_catalog(), GATE)
    listed = [i.image for i in images]
    assert listed == sorted(set(listed))
    assert set(listed) == written_images() | {GATE}
    by_image = {i.image: i.sources for i in images}
    assert by_image["quay.io/jupyter/scipy-notebook:2026-05-31"] == (ImageSource("scipy", "notebook", ()),)
    # The gate runs in front of every gated entry (RStudio, nginx), with their defaults.
    assert by_image[GATE] == (ImageSource("rstudio", "gate", ()), ImageSource("nginx", "gate", ()))


def test_without_a_gate_image_the_gate_is_left_out():
    assert GATE not in {i.image for i in catalog_images(builtin_catalog(), None)}


def test_an_options_image_is_listed_with_the_option_that_puts_it_there():
    entry = app("example.org/tool:1.0")
    entry["choices"] = {"version": {"default": "stable", "options": {
        "stable": {},
        "beta": {"set": {"containers.app.image": "example.org/tool:2.0-beta"}},
    }}}
    found = images_of({"tool": entry})
    assert found == {
        "example.org/tool:1.0": (ImageSource("tool", "app", ()),),
        "example.org/tool:2.0-beta": (ImageSource("tool", "app", (("version", "beta"),)),),
    }


def test_an_option_adding_a_container_brings_its_image():
    entry = app("example.org/app:1")
    entry["choices"] = {"extras": {"options": {
        "none": {},
        "sidecar": {"set": {"containers.metrics": {"image": "example.org/metrics:3"}}},
    }}}
    found = images_of({"web": entry})
    assert found["example.org/metrics:3"] == (ImageSource("web", "metrics", (("extras", "sidecar"),)),)


def test_an_image_reached_only_by_a_combination_of_options_is_listed():
    # 'flavor' (applied after 'tag') pins the image in its default option: tag=v2 alone never
    # launches tool:v2; with flavor=custom it does.
    entry = app("example.org/tool:v1")
    entry["choices"] = {
        "tag": {"options": {"v1": {}, "v2": {"set": {"containers.app.image": "example.org/tool:v2"}}}},
        "flavor": {"options": {
            "plain": {"set": {"containers.app.image": "example.org/tool:plain"}},
            "custom": {"set": {"containers.app.env.FLAVOR": "custom"}},
        }},
    }
    found = images_of({"tool": entry})
    assert set(found) == {"example.org/tool:plain", "example.org/tool:v1", "example.org/tool:v2"}
    assert found["example.org/tool:v2"] == (ImageSource("tool", "app", (("tag", "v2"), ("flavor", "custom"))),)
    assert found["example.org/tool:v1"] == (ImageSource("tool", "app", (("flavor", "custom"),)),)


def test_an_entry_gated_only_by_an_option_brings_the_gate_with_that_option():
    entry = app("example.org/app:1")
    entry["choices"] = {"login": {"options": {"app": {}, "hub": {"set": {"auth": "gate"}}}}}
    found = images_of({"web": entry, "plain": app("example.org/plain:1")})
    assert found[GATE] == (ImageSource("web", "gate", (("login", "hub"),)),)
    assert GATE not in images_of({"plain": app("example.org/plain:1")})


def test_an_image_shared_by_entries_names_each_in_catalog_order():
    found = images_of({"zeta": dict(app("example.org/shared:1"), order=1),
                       "alpha": dict(app("example.org/shared:1"), order=2)})
    assert found == {"example.org/shared:1": (ImageSource("zeta", "app", ()), ImageSource("alpha", "app", ()))}


def test_disabled_entries_launch_nothing():
    data = catalog_data(True, [], {"nginx": {"disabled": True}, "rstudio": {"disabled": True}})
    listed = {i.image for i in catalog_images(parse_catalog(data), GATE)}
    assert "docker.io/library/nginx:1.28.0" not in listed and GATE not in listed


def test_combinations_stop_where_the_catalog_check_stops():
    # Four choices of eight options: 4096 combinations; each option alone is still listed.
    entry = app("example.org/base:0")
    entry["choices"] = {f"c{n}": {"options": {f"o{i}": ({"set": {f"containers.app.env.C{n}": str(i)}} if i else {})
                                              for i in range(8)}} for n in range(4)}
    entry["choices"]["c3"]["options"]["o7"] = {"set": {"containers.app.image": "example.org/last:7"}}
    assert 8 ** 4 > MAX_COMBINATIONS
    found = images_of({"big": entry})
    assert found["example.org/last:7"] == (ImageSource("big", "app", (("c3", "o7"),)),)


# ---------------------------------------------------------------------------------- the command


def run(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(["images", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


SITE = textwrap.dedent(
    """\
    catalog:
      nginx: {disabled: true}
      rstudio: {disabled: true}
      whoami:
        system:
          serve: {container: whoami, port: 8000}
          containers:
            whoami:
              image: docker.io/traefik/whoami:v1.10.3
              ports: {http: 8000}
        choices:
          version:
            options:
              current: {}
              next: {set: {containers.whoami.image: "docker.io/traefik/whoami:v1.11.0"}}
    """
)


def test_tycho_images_prints_one_image_a_line_with_the_spawners_gate_image(capsys):
    code, out, err = run(capsys)
    assert (code, err) == (0, "")
    expected = [i.image for i in catalog_images(builtin_catalog(), TychoSpawner.class_traits()["gate_image"].default_value)]
    assert out.splitlines() == expected
    assert "ghcr.io/tycho-spawner/tycho-gate:0.1.0" in expected


def test_tycho_images_of_a_site_file_and_a_gate_image(capsys, tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text(SITE)
    code, out, err = run(capsys, str(site), "--gate-image", GATE)
    assert code == 0, err
    lines = out.splitlines()
    assert "docker.io/traefik/whoami:v1.11.0" in lines and "docker.io/traefik/whoami:v1.10.3" in lines
    # no gated entry left: no gate image, nor nginx's
    assert GATE not in lines and "docker.io/library/nginx:1.28.0" not in lines
    code, out, _ = run(capsys, "--alone", str(site))
    assert out.splitlines() == ["docker.io/traefik/whoami:v1.10.3", "docker.io/traefik/whoami:v1.11.0"]


def test_tycho_images_json_says_where_each_image_comes_from(capsys, tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text(SITE)
    code, out, _ = run(capsys, "--alone", str(site), "--json")
    assert code == 0
    assert json.loads(out) == [
        {"image": "docker.io/traefik/whoami:v1.10.3",
         "sources": [{"entry": "whoami", "container": "whoami", "options": {}}]},
        {"image": "docker.io/traefik/whoami:v1.11.0",
         "sources": [{"entry": "whoami", "container": "whoami", "options": {"version": "next"}}]},
    ]


def test_tycho_images_helm_values_is_a_values_file_without_the_gate(capsys, tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text(SITE)
    code, out, _ = run(capsys, str(site), "--helm-values")
    assert code == 0
    values = yaml.safe_load(out)
    images = values["prePuller"]["images"]
    assert set(values) == {"prePuller"} and set(values["prePuller"]) == {"images"}
    assert "docker.io/traefik/whoami:v1.11.0" in images and "quay.io/jupyter/base-notebook:2026-05-31" in images
    assert not [i for i in images if "tycho-gate" in i]


def test_a_broken_catalog_is_reported_as_validate_reports_it(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("catalog:\n  scipy:\n    system:\n      containers:\n        notebook:\n          limits: {memory: 2GG}\n")
    code, out, err = run(capsys, str(bad))
    assert (code, out) == (1, "")
    assert cli.main(["validate", str(bad)]) == 1
    assert err == capsys.readouterr().err
    assert err == (f"{bad}: invalid: catalog.scipy.system.containers.notebook.limits.memory: "
                   "'2GG' is not a Kubernetes quantity\n")
    code, out, err = run(capsys, str(tmp_path / "missing.yaml"))
    assert (code, out) == (1, "") and err.startswith(f"{tmp_path / 'missing.yaml'}: invalid: cannot be read")


def test_the_installed_command_prints_the_list():
    assert TYCHO, "the `tycho` console script is not on PATH (pip install -e .)"
    result = subprocess.run([TYCHO, "images"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    gate = TychoSpawner.class_traits()["gate_image"].default_value
    assert result.stdout.splitlines() == sorted(written_images() | {gate})


# ---------------------------------------------------------------------------------- typed images

TYPED = textwrap.dedent(
    """\
    catalog:
      custom:
        display_name: Your own image
        system:
          serve: {container: app, port: 8000}
          containers:
            app: {image: "example.org/lab/app:1", ports: {http: 8000}}
            metrics: {image: "example.org/metrics:3"}
        choices:
          image:
            kind: image
            container: app
            pattern: 'example\\.org/lab/[a-z]+:[0-9]+'
            default: "example.org/lab/app:1"
      fixed: {system: {serve: {container: app, port: 8000}, containers: {app: {image: "example.org/fixed:2", ports: {http: 8000}}}}}
    """
)


def test_a_typed_image_choice_lists_its_default_and_marks_its_container(tmp_path):
    """A choice of kind image: the list has the default (what a start with no typed image runs)
    and the container is marked with the pattern; the entry's other container is not."""
    found = images_of(yaml.safe_load(TYPED)["catalog"])
    assert found["example.org/lab/app:1"] == (ImageSource("custom", "app", (), r"example\.org/lab/[a-z]+:[0-9]+"),)
    assert found["example.org/metrics:3"] == (ImageSource("custom", "metrics", ()),)
    assert found["example.org/fixed:2"] == (ImageSource("fixed", "app", ()),)
    (typed,) = typed_images(parse_catalog(yaml.safe_load(TYPED)["catalog"]))
    assert typed == TypedImage("custom", "image", "app", r"example\.org/lab/[a-z]+:[0-9]+", "example.org/lab/app:1")


def test_tycho_images_names_the_entries_whose_image_a_user_types_on_stderr(capsys, tmp_path):
    site = tmp_path / "typed.yaml"
    site.write_text(TYPED)
    notice = ("tycho images: a user may type the image of these entries (only their defaults are listed; "
              "a pre-puller cannot pull the images users type):\n"
              "  custom (container app, choice image): pattern 'example\\\\.org/lab/[a-z]+:[0-9]+', "
              "default example.org/lab/app:1\n")
    code, out, err = run(capsys, "--alone", str(site))
    assert code == 0
    assert out.splitlines() == ["example.org/fixed:2", "example.org/lab/app:1", "example.org/metrics:3"]
    assert err == notice
    code, out, err = run(capsys, "--alone", str(site), "--helm-values")
    assert code == 0 and err == notice
    assert yaml.safe_load(out)["prePuller"]["images"] == ["example.org/fixed:2", "example.org/lab/app:1",
                                                          "example.org/metrics:3"]
    code, out, err = run(capsys, "--alone", str(site), "--json")
    assert code == 0 and err == notice
    by_image = {i["image"]: i["sources"] for i in json.loads(out)}
    assert by_image["example.org/lab/app:1"] == [{"entry": "custom", "container": "app", "options": {},
                                                  "user_typed": {"pattern": r"example\.org/lab/[a-z]+:[0-9]+"}}]
    assert by_image["example.org/metrics:3"] == [{"entry": "custom", "container": "metrics", "options": {}}]
    # No typed image in the catalog: nothing on stderr (the site file above has none).
    plain = tmp_path / "site.yaml"
    plain.write_text(SITE)
    assert run(capsys, "--alone", str(plain))[2] == ""
