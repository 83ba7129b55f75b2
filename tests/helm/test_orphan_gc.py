"""The chart runs `tycho gc` as a hub service: on this release's servers only, with only the
scopes it needs, and not at all with hub.orphanGcInterval 0."""
from __future__ import annotations

import pytest

from tycho_spawner.cli import build_parser

from .conftest import load_hub_config
from .test_chart import render


def _services(config) -> dict:
    return {s["name"]: s for s in config.JupyterHub.services}


def _roles(config) -> dict:
    return {r["name"]: r for r in config.JupyterHub.load_roles}


def test_the_hub_runs_gc_on_this_release_s_servers_every_ten_minutes(chart, tmp_path):
    config = load_hub_config(tmp_path, render(chart, name="blue", namespace="jhub"))
    assert config.TychoSpawner.extra_labels == {"app.kubernetes.io/instance": "blue"}
    gc = _services(config)["tycho-gc"]
    assert gc["command"][1:4] == ["-m", "tycho_spawner.cli", "gc"]
    args = build_parser().parse_args(gc["command"][3:])
    assert (args.every, args.namespace, args.selector, args.dry_run, args.min_age) == (
        600, "jhub", "app.kubernetes.io/instance=blue", False, 60)
    assert "api_token" not in gc, "the hub makes the service's token"
    role = _roles(config)["tycho-gc"]
    assert role == {"name": "tycho-gc", "scopes": ["list:users", "read:servers"], "services": ["tycho-gc"]}


def test_gc_and_the_idle_culler_run_side_by_side(chart, tmp_path):
    config = load_hub_config(tmp_path, render(chart, {"hub": {"cullIdleTimeout": 3600, "orphanGcInterval": 60}}))
    # Beside them the Tycho API (a service with no role of its own: it acts with its callers'
    # tokens; users get access to it through the `user` role).
    assert set(_services(config)) == {"idle-culler", "tycho-gc", "tycho"}
    assert set(_roles(config)) == {"idle-culler", "tycho-gc", "user"}
    assert "--every=60" in _services(config)["tycho-gc"]["command"]


def test_an_interval_of_0_runs_no_gc_and_keeps_the_label(chart, tmp_path):
    config = load_hub_config(tmp_path, render(chart, {"hub": {"orphanGcInterval": 0}}))
    assert set(_services(config)) == {"tycho"} and set(_roles(config)) == {"user"}
    assert config.TychoSpawner.extra_labels == {"app.kubernetes.io/instance": "demo"}


@pytest.mark.parametrize("value", [-1, "600", 1.5])
def test_the_schema_refuses_a_bad_interval(chart, value):
    from helm_python.errors import HelmError

    with pytest.raises(HelmError) as err:
        chart.render({"hub": {"orphanGcInterval": value}}, name="demo", namespace="jhub")
    assert "/hub/orphanGcInterval" in str(err.value)
