"""Reading the catalog's sources (the packaged built-in file, admin YAML files, config).

The I/O edge of the profiles layer: everything here reads files; :mod:`tycho_spawner.profiles`
does the merging rules and the validation.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from .errors import CatalogError
from .profiles import Catalog, merge, parse_catalog

BUILTIN_CATALOG = Path(__file__).parent / "catalog" / "builtin.yaml"


def read_catalog_file(path: str | Path) -> dict:
    """The ``catalog`` map of a YAML file (a file may hold the map itself or ``catalog: {...}``)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as err:
        raise CatalogError(str(path), f"cannot be read: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise CatalogError(str(path), f"is not valid YAML: {err}") from None
    if data is None:
        return {}
    if isinstance(data, Mapping) and "catalog" in data:
        data = data["catalog"]
    if not isinstance(data, Mapping):
        raise CatalogError(str(path), "must hold a mapping of profiles (optionally under a 'catalog' key)")
    return dict(data)


def catalog_data(builtin: bool, files: Sequence[str], overrides: Mapping[str, Any]) -> dict:
    """The merged catalog map: built-in, then each file, then the config's own map."""
    data: dict = read_catalog_file(BUILTIN_CATALOG) if builtin else {}
    for path in files:
        data = merge(data, read_catalog_file(path))
    return merge(data, dict(overrides))


@lru_cache(maxsize=8)
def _cached(builtin: bool, files: tuple, overrides_json: str) -> Catalog:
    return parse_catalog(catalog_data(builtin, files, json.loads(overrides_json)))


def load_catalog(builtin: bool, files: Sequence[str], overrides: Mapping[str, Any]) -> Catalog:
    """Parse the catalog once per distinct configuration (files are read once per process)."""
    return _cached(bool(builtin), tuple(files), json.dumps(overrides))
