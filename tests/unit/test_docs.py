"""The documentation site: everything a site can set is documented, and the site builds.

The reference pages are written from the code (docs/_ext/tycho_reference.py): TychoSpawner's
settings, the catalog's fields, the `tycho` and `tycho-gate` command lines, the chart's
values and the REST API (from its OpenAPI document). These tests fail when one of them has no
help text or description, or is missing from the built pages; and they build the site as
`bin/stage docs` does, with warnings as errors, in the docs environment (built by
`bin/stage docs` itself when missing: nothing is skipped).
"""
from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "docs" / "_ext"))

import tycho_reference as ref  # noqa: E402

# The first build of the docs environment installs it from the package index (about a
# minute); later builds take seconds.
pytestmark = pytest.mark.timeout(900)

#: Where each item's text is defined, for a test that finds one without it:
#: - a TychoSpawner setting: its trait's help= (tycho_spawner/spawner.py);
#: - a catalog field: its description in tycho_spawner/schema.py;
#: - a `tycho` option: a help= in tycho_spawner/cli.py's build_parser; tycho-gate's: its trait;
#: - a chart value: a "description" in helm/tycho-spawner/values.schema.json (or a comment right
#:   above the key in values.yaml);
#: - an API operation: its summary in tycho_spawner/api/openapi.py.


# --- every item has its text --------------------------------------------------------------


def test_every_spawner_setting_has_help():
    settings = ref.spawner_settings()
    names = {s.name for s in settings}
    # The settings this project adds: a sample that must be among them (the list is not empty
    # by accident, and inherited KubeSpawner settings are not taken for ours).
    assert {"catalog", "catalog_files", "gate_image", "network_policy_egress_allow"} <= names
    assert "image" not in names and "namespace" not in names
    assert [s.name for s in settings if not s.help.strip()] == []


def test_every_replaced_kubespawner_setting_is_a_kubespawner_setting_with_help():
    from kubespawner import KubeSpawner

    from tycho_spawner import site_settings

    traits = KubeSpawner.class_traits(config=True)
    for name in (*site_settings.REPLACED, *site_settings.COMBINED):
        assert name in traits, f"site_settings names {name!r}, which KubeSpawner does not have"
        assert (traits[name].help or "").strip(), name


def test_every_catalog_field_has_a_description():
    fields = ref.catalog_fields()
    assert len(fields) > 50
    assert [f.name for f in fields if not f.help.strip()] == []


def test_every_cli_option_has_help():
    items = ref.cli_options()
    names = {i.name for i in items}
    assert {"tycho render --set", "tycho gc --dry-run", "tycho images --helm-values"} <= names
    assert [i.name for i in items if not i.help.strip()] == []


def test_every_gate_option_has_help():
    items = ref.gate_options()
    names = {i.name for i in items}
    assert {"--upstream", "--keep-prefix", "--prefix-header", "--GateApp.pool_size"} <= names
    assert [i.name for i in items if not i.help.strip()] == []


def test_every_chart_value_has_a_description():
    values = {v.path for v in ref.chart_values()}
    assert {"hub.orphanGcInterval", "singleuser.storage.type", "catalog", "prePuller.images"} <= values
    assert ref.undocumented_chart_values() == []


def test_values_comments_are_read_by_key_path():
    text = (
        "# file header\n\n"
        "hub:\n"
        "  # Who may log in.\n"
        "  # Second line.\n"
        "  authenticator:\n"
        "    class: dummy\n"
        "  # Rules, e.g.:\n"
        "  #   - to: [x]\n"
        "  egress: []\n"
        "other: 1\n"
    )
    assert ref.values_comments(text) == {
        "hub.authenticator": "Who may log in. Second line.",
        "hub.egress": "Rules, e.g.: `- to: [x]`",
    }


# --- the site builds, and the reference pages hold every item ------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built as `bin/stage docs` builds it (warnings are errors), into a directory of
    this test's own (docs/_build stays the developer's)."""
    out = tmp_path_factory.mktemp("docs") / "html"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}
    result = subprocess.run(
        ["bash", str(ROOT / "bin" / "stage"), "docs", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=840,
    )
    noise = re.compile(r"^WARNING: Location '.*' is ignored", re.M)   # the machine's pip index config
    output = noise.sub("", result.stdout + result.stderr).strip()
    assert result.returncode == 0, f"bin/stage docs failed:\n{output[-6000:]}"
    assert (out / "index.html").is_file()
    return out


def _text(page: Path) -> str:
    body = page.read_text(encoding="utf-8")
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def test_site_builds_without_warnings_with_every_page(site):
    pages = {p.relative_to(site).as_posix() for p in site.rglob("*.html")}
    for page in (
        "index.html",
        "tutorials/testbed.html", "tutorials/minikube.html",
        "howto/switch-z2jh.html", "howto/catalog-entry.html", "howto/gate.html", "howto/homes.html",
        "howto/groups-gpus.html", "howto/tycho-api.html", "howto/operate.html",
        "explanation/architecture.html", "explanation/gate.html", "explanation/security.html",
        "explanation/performance.html",
        "reference/settings.html", "reference/catalog.html", "reference/cli.html",
        "reference/chart.html", "reference/rest-api.html",
    ):
        assert page in pages, f"{page} was not built"
    # JupyterHub's theme, not Sphinx's default.
    assert "pydata-sphinx-theme" in (site / "index.html").read_text(encoding="utf-8")


def test_settings_page_has_a_section_per_setting(site):
    page = (site / "reference" / "settings.html").read_text(encoding="utf-8")
    headings = {_squash(h) for h in re.findall(r"<h3[^>]*>(.*?)</h3>", page, flags=re.S)}
    for setting in ref.spawner_settings():
        assert setting.name in headings, f"no section for TychoSpawner.{setting.name}"
    text = _text(site / "reference" / "settings.html")
    from tycho_spawner import site_settings

    for name in (*site_settings.REPLACED, *site_settings.COMBINED):
        assert name in text, f"KubeSpawner setting {name} missing"


def _squash(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split()).rstrip("#").strip()


def test_catalog_page_has_every_field_under_its_part(site):
    text = _text(site / "reference" / "catalog.html")
    from tycho_spawner import schema

    marks = [(text.find(f"({model.__name__}):"), model) for model in schema.REFERENCE]
    assert all(at >= 0 for at, _ in marks), [m.__name__ for at, m in marks if at < 0]
    marks.sort(key=lambda pair: pair[0])
    for i, (at, model) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else len(text)
        part = text[at:end]
        for field in model.model_fields:
            assert field in part, f"{model.__name__}.{field} missing from the catalog reference"


def test_cli_page_has_every_option(site):
    text = _text(site / "reference" / "cli.html")
    for item in ref.cli_options():
        command, _, option = item.name.partition(" ")[2].partition(" ")
        assert f"tycho {command}" in text, command
        assert option.split(",")[0] in text, item.name
    for item in ref.gate_options():
        assert item.name in text, item.name


def test_chart_page_has_every_value_with_its_default(site):
    text = _text(site / "reference" / "chart.html")
    for value in ref.chart_values():
        if value.path in ref.CHART_SKIPPED:
            continue
        assert value.path in text, value.path
    assert '"ghcr.io/tycho-spawner/tycho-gate:0.1.0"' in text   # a default, from values.yaml


def test_every_api_operation_has_a_summary():
    operations = ref.api_operations()
    assert {"GET /catalog", "POST /apps", "DELETE /apps/{server}"} <= {op.name for op in operations}
    assert [op.name for op in operations if not op.help.strip()] == []


def test_rest_api_page_has_every_operation_and_schema(site):
    text = _text(site / "reference" / "rest-api.html")
    for op in ref.api_operations():
        assert op.name in text, op.name
    from tycho_spawner.api.openapi import document

    for name, schema in document()["components"]["schemas"].items():
        assert name in text, name
        for field in schema.get("properties") or {}:
            assert field in text, f"{name}.{field}"
