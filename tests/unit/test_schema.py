"""The catalog's structure is defined once (tycho_spawner/schema.py), and what comes from it
does not drift: the documentation's field reference, the chart's catalog schema, the validation.

What an admin notices: the documentation site documents every key the hub accepts (and no
other), and `helm install` refuses a values file with a misspelt catalog key before a hub ever
starts.
"""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import jsonschema
import pytest

from tycho_spawner import schema
from tycho_spawner.catalog_files import catalog_data
from tycho_spawner.errors import CatalogError
from tycho_spawner.profiles import parse_catalog

ROOT = Path(__file__).resolve().parents[2]
CATALOG_PAGE = ROOT / "docs" / "reference" / "catalog.md"
VALUES_SCHEMA = ROOT / "helm" / "tycho-spawner" / "values.schema.json"
REGENERATE = "run `python -m tycho_spawner.schema` and commit what it changes"


def test_the_documentation_writes_the_field_reference_from_the_definition():
    """The site's catalog page holds no copy of the reference: its marker is replaced, as the
    site is built, by reference_markdown() whole (tests/unit/test_docs.py builds the site and
    finds every field on the page)."""
    sys.path.insert(0, str(ROOT / "docs" / "_ext"))
    try:
        import tycho_reference
    finally:
        sys.path.remove(str(ROOT / "docs" / "_ext"))
    page = CATALOG_PAGE.read_text()
    assert "<!-- tycho-reference: catalog -->" in page
    assert "| `display_name` |" not in page, "the catalog page holds a written copy of the reference"
    assert schema.reference_markdown().strip() in tycho_reference.expand(page, "reference/catalog")


def test_the_chart_catalog_schema_is_the_generated_one():
    checked_in = json.loads(VALUES_SCHEMA.read_text())["properties"]["catalog"]
    assert checked_in == schema.chart_catalog_schema(), REGENERATE


def test_every_field_of_every_part_has_help_and_a_row_in_the_reference():
    reference = schema.reference_markdown()
    for model in schema.REFERENCE:
        assert model.__doc__, model
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name} has no description"
            assert f"| `{name}` |" in reference, name


def _chart_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema.chart_catalog_schema())


def test_the_builtin_catalog_and_partial_overrides_pass_the_chart_schema():
    validator = _chart_validator()
    builtin = catalog_data(True, [], {})
    assert list(validator.iter_errors(builtin)) == []
    # What values files hold: parts of entries, null to delete a key or an entry.
    partial = {"scipy": {"display_name": "SciPy", "choices": None}, "nginx": None,
               "rstudio": {"disabled": True}, "base": {"system": {"containers": {"notebook": {"image": "x:1"}}}}}
    assert list(validator.iter_errors(partial)) == []


@pytest.mark.parametrize("values, where", [
    ({"lab": {"sytem": {}}}, "sytem"),
    ({"lab": {"system": {"containers": {"app": {"imag": "x"}}}}}, "imag"),
    ({"lab": {"system": {"containers": {"App": {"image": "x"}}}}}, "App"),
    ({"lab": {"access": {"groups": "staff"}}}, "staff"),
    ({"lab": {"choices": {"size": {"kind": "text"}}}}, "text"),
    ({"lab": {"system": {"containers": {"app": {"limits": {"gpus": {"count": 100}}}}}}}, "100"),
    ({"lab": {"system": {"scheduling": {"nodeSelector": {}}}}}, "nodeSelector"),
])
def test_the_chart_schema_refuses_what_the_hub_would(values, where):
    errors = list(_chart_validator().iter_errors(values))
    assert errors and any(where in str(e.message) or where in "/".join(map(str, e.absolute_path)) for e in errors), \
        [e.message for e in errors]


def test_the_hub_validation_names_the_exact_key_from_the_definition():
    data = copy.deepcopy(catalog_data(True, [], {}))
    data["scipy"]["system"]["containers"]["notebook"]["env_form"] = []
    with pytest.raises(CatalogError) as info:
        parse_catalog(data)
    assert info.value.path == "catalog.scipy.system.containers.notebook.env_form"
    assert "unknown key (expected one of: image, command, args, env, env_from," in info.value.message


def test_model_keys_come_from_the_definition():
    from tycho_spawner import model, profiles

    assert model.Container.FIELDS == tuple(schema.Container.model_fields)
    assert model.System.FIELDS == tuple(schema.System.model_fields)
    assert profiles.PROFILE_FIELDS == tuple(schema.Entry.model_fields)
