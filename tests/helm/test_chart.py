"""The chart renders what a site needs, and its schema refuses bad values by name."""
from __future__ import annotations

import os

import pytest
from traitlets.config import Config

from tycho_spawner.rbac import SPAWNER_ROLE_RULES

from .conftest import CHART, by_kind_name, objects, values_file


def render(chart, values=None, name="demo", namespace="jhub"):
    return by_kind_name(objects(chart.render(values or {}, name=name, namespace=namespace)))


def test_lint_has_no_errors():
    from helm_python import lint

    result = lint(str(CHART), strict=True)
    assert result["errors"] == []
    assert [m for m in result["messages"] if m["severity"] > 1] == []


def test_default_render_has_every_part(chart):
    docs = render(chart)
    assert set(docs) == {
        ("ConfigMap", "demo-config"), ("Secret", "demo-secret"),
        ("ServiceAccount", "demo-hub"), ("Role", "demo-hub"), ("RoleBinding", "demo-hub"),
        ("Deployment", "demo-hub"), ("Service", "demo-hub"),
        ("Deployment", "demo-proxy"), ("Service", "demo-proxy-api"), ("Service", "demo-public"),
        ("NetworkPolicy", "demo-hub"), ("NetworkPolicy", "demo-proxy"),
    }
    assert docs[("Service", "demo-public")]["spec"]["type"] == "NodePort"
    assert docs[("Deployment", "demo-proxy")]["spec"]["strategy"] == {"type": "Recreate"}
    hub = docs[("Deployment", "demo-hub")]["spec"]["template"]
    assert hub["spec"]["serviceAccountName"] == "demo-hub"
    assert hub["metadata"]["labels"]["component"] == "hub"
    assert hub["spec"]["securityContext"]["runAsNonRoot"] is True
    secret = docs[("Secret", "demo-secret")]["data"]
    assert set(secret) == {"hub.cookie-secret", "proxy.token"}


def test_the_role_is_exactly_what_the_spawner_needs(chart):
    role = render(chart)[("Role", "demo-hub")]
    assert role["rules"] == [dict(r) for r in SPAWNER_ROLE_RULES]


def test_secrets_are_generated_per_install(chart):
    first = render(chart)[("Secret", "demo-secret")]["data"]
    second = render(chart)[("Secret", "demo-secret")]["data"]
    assert first["hub.cookie-secret"] != second["hub.cookie-secret"]


def load_hub_config(tmp_path, docs) -> Config:
    """Run the chart's hub configuration on the values it carries, as the hub does."""
    from traitlets.config.loader import PyFileConfigLoader

    config_map = next(d for k, d in docs.items() if k[0] == "ConfigMap")
    (tmp_path / "jupyterhub_config.py").write_text(config_map["data"]["jupyterhub_config.py"])
    (tmp_path / "values.json").write_text(config_map["data"]["values.json"])
    os.environ["TYCHO_CHART_VALUES"] = str(tmp_path / "values.json")
    try:
        loader = PyFileConfigLoader("jupyterhub_config.py", path=str(tmp_path))
        return loader.load_config()
    finally:
        del os.environ["TYCHO_CHART_VALUES"]


def test_the_hub_reads_the_values_the_chart_was_rendered_with(chart, tmp_path):
    docs = render(chart, values_file("custom-catalog.yaml"))
    config = load_hub_config(tmp_path, docs)
    assert config.TychoSpawner.catalog == values_file("custom-catalog.yaml")["catalog"]
    assert config.TychoSpawner.namespace == "jhub"
    assert config.JupyterHub.hub_connect_url == "http://demo-hub:8081"
    assert config.ConfigurableHTTPProxy.api_url == "http://demo-proxy-api:8001"
    assert {"component": "proxy", "app.kubernetes.io/instance": "demo"} in config.TychoSpawner.network_policy_ingress_from


def test_a_broken_catalog_in_values_stops_the_hub_naming_the_key(chart, tmp_path):
    values = {"catalog": {"course": {"system": {"serve": {"container": "x", "port": 1}, "containers": {}}}}}
    docs = render(chart, values)
    with pytest.raises(SystemExit):
        load_hub_config(tmp_path, docs)


def test_ingress_values(chart):
    docs = render(chart, values_file("ingress.yaml"))
    ingress = docs[("Ingress", "demo")]
    assert ingress["spec"]["rules"][0]["host"] == "hub.example.org"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert docs[("Service", "demo-public")]["spec"]["type"] == "ClusterIP"


def test_network_policies_can_be_turned_off(chart, tmp_path):
    docs = render(chart, values_file("no-network-policies.yaml"))
    assert not [k for k in docs if k[0] == "NetworkPolicy"]
    assert load_hub_config(tmp_path, docs).TychoSpawner.network_policy_enabled is False


@pytest.mark.parametrize(
    "values, named",
    [
        ({"hub": {"imgae": {}}}, "imgae"),
        ({"nope": 1}, "nope"),
        ({"catalog": {"My App": {}}}, "My App"),
        ({"catalog": {"course": {"sytem": {}}}}, "sytem"),
        ({"proxy": {"service": {"type": "Magic"}}}, "type"),
    ],
)
def test_the_schema_refuses_bad_values_naming_the_key(chart, values, named):
    from helm_python.errors import HelmError

    with pytest.raises(HelmError) as err:
        chart.render(values, name="demo", namespace="jhub")
    assert named in str(err.value)
