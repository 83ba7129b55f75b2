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


#: Deeper than any catalog or values file has a reason to be; PyYAML and the merge recurse per
#: level, so a hostile file of thousands of nested brackets would otherwise end in a
#: RecursionError traceback.
MAX_YAML_DEPTH = 50
_TOO_DEEP = f"is nested too deeply (at most {MAX_YAML_DEPTH} levels)"


class YamlProblem(ValueError):
    """Why a YAML source cannot be used, in one line (the caller names the source)."""


def _one_line(err: yaml.YAMLError) -> str:
    """PyYAML's message spans several lines with a source excerpt; keep the problem and where."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return " ".join(f"{problem}{where}".split())


def _depth_exceeds(data: Any, limit: int) -> bool:
    """Whether ``data`` nests deeper than ``limit`` (iteratively: no recursion to exhaust)."""
    stack = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Mapping):
            children = list(node.values())
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def parse_yaml(text: str | bytes) -> Any:
    """One YAML document with safe types only (no ``!!python`` tags), nested at most
    ``MAX_YAML_DEPTH`` levels; anything else is a YamlProblem saying why in one line."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            line = text.count(b"\n", 0, err.start) + 1
            raise YamlProblem(f"is not UTF-8 text (line {line}, byte {err.start + 1})") from None
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise YamlProblem(_TOO_DEEP) from None
    except yaml.YAMLError as err:
        raise YamlProblem(f"is not valid YAML: {_one_line(err)}") from None
    if _depth_exceeds(data, MAX_YAML_DEPTH):
        raise YamlProblem(_TOO_DEEP)
    return data


def read_yaml_file(path: str | Path) -> Any:
    """The YAML document in the file at ``path`` (see :func:`parse_yaml`)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise YamlProblem(f"cannot be read: {err.strerror}") from None
    return parse_yaml(raw)


def read_catalog_file(path: str | Path) -> dict:
    """The ``catalog`` map of a YAML file (a file may hold the map itself or ``catalog: {...}``)."""
    try:
        data = read_yaml_file(path)
    except YamlProblem as err:
        raise CatalogError(str(path), str(err)) from None
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
