"""The chart, through PyPI's helm-python-sdk (Helm's Go SDK; no helm binary exists here)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "tycho-spawner"
VALUES = Path(__file__).parent / "values"


def values_file(name: str) -> dict:
    return yaml.safe_load((VALUES / name).read_text())


def objects(rendered: Dict[str, str]) -> List[dict]:
    docs = []
    for text in rendered.values():
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def by_kind_name(docs: List[dict]) -> Dict[tuple, dict]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


@pytest.fixture(scope="session")
def chart():
    from helm_python import Chart

    return Chart.load(str(CHART))


def load_hub_config(tmp_path, docs):
    """Run the chart's hub configuration on the values it carries, as the hub does.

    ``docs``: objects by (kind, name), as `by_kind_name` makes them; the hub's ConfigMap (the
    one with `jupyterhub_config.py`) and, when there is one, the catalog's (`catalog.yaml`,
    handed over as the hub pod does, through TYCHO_CHART_CATALOG).
    """
    from traitlets.config.loader import PyFileConfigLoader

    maps = [d for k, d in docs.items() if k[0] == "ConfigMap"]
    config_map = next(d for d in maps if "jupyterhub_config.py" in (d.get("data") or {}))
    catalog_map = next((d for d in maps if "catalog.yaml" in (d.get("data") or {})), None)
    (tmp_path / "jupyterhub_config.py").write_text(config_map["data"]["jupyterhub_config.py"])
    (tmp_path / "values.json").write_text(config_map["data"]["values.json"])
    env = {"TYCHO_CHART_VALUES": str(tmp_path / "values.json")}
    if catalog_map is not None:
        (tmp_path / "catalog.yaml").write_text(catalog_map["data"]["catalog.yaml"])
        env["TYCHO_CHART_CATALOG"] = str(tmp_path / "catalog.yaml")
    os.environ.update(env)
    try:
        loader = PyFileConfigLoader("jupyterhub_config.py", path=str(tmp_path))
        return loader.load_config()
    finally:
        for key in env:
            del os.environ[key]
