"""The chart, through PyPI's helm-python-sdk (Helm's Go SDK; no helm binary exists here)."""
from __future__ import annotations

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
