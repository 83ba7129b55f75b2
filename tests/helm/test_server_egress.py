"""The chart's `singleuser.networkPolicy` (zero-to-jupyterhub's shape): where users' servers may
connect to reaches the hub's configuration, and bad values are refused by name. Also the catalog
entry fields the schema lets through (`system.network` and `default`)."""
from __future__ import annotations

import pytest
import yaml

from tycho_spawner.render import DEFAULT_EGRESS_ALLOW

from .conftest import by_kind_name, load_hub_config, objects


def render(chart, values=None):
    return by_kind_name(objects(chart.render(values or {}, name="demo", namespace="jhub")))


def test_by_default_servers_get_zero_to_jupyterhubs_egress_and_this_releases_hub(chart, tmp_path):
    config = load_hub_config(tmp_path, render(chart))
    assert config.TychoSpawner.network_policy_enabled is True
    assert config.TychoSpawner.network_policy_egress_allow == dict(DEFAULT_EGRESS_ALLOW)
    assert config.TychoSpawner.network_policy_egress == []
    # The hub pod this release runs (and no other release's) is where servers reach the API.
    hub = render(chart)[("Deployment", "demo-hub")]["spec"]["template"]["metadata"]["labels"]
    selector = config.TychoSpawner.network_policy_hub_selector
    assert selector == {"component": "hub", "app.kubernetes.io/instance": "demo"}
    assert selector.items() <= hub.items()


def test_a_sites_allowances_and_rules_reach_the_spawner(chart, tmp_path):
    rule = {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [{"port": 5432, "protocol": "TCP"}]}
    values = {"singleuser": {"networkPolicy": {"egressAllowRules": {"privateIPs": True}, "egress": [rule]}}}
    config = load_hub_config(tmp_path, render(chart, values))
    # Helm merges the site's keys over the chart's defaults, as zero-to-jupyterhub's values do.
    assert config.TychoSpawner.network_policy_egress_allow == {**dict(DEFAULT_EGRESS_ALLOW), "privateIPs": True}
    assert config.TychoSpawner.network_policy_egress == [rule]


def test_a_bad_egress_rule_stops_the_hub_at_start(chart, tmp_path, capsys):
    values = {"singleuser": {"networkPolicy": {"egress": [{"to": [{"ipBlock": {"cidr": "everywhere"}}]}]}}}
    with pytest.raises(SystemExit):
        load_hub_config(tmp_path, render(chart, values))
    assert ("TychoSpawner.network_policy_egress[0].to[0].ipBlock.cidr: 'everywhere' is not a CIDR"
            in capsys.readouterr().err)


@pytest.mark.parametrize(
    "network_policy, named",
    [
        ({"egressAllowRules": {"privateIps": True}}, "privateIps"),
        ({"egressAllowRules": {"privateIPs": "yes"}}, "/singleuser/networkPolicy/egressAllowRules/privateIPs"),
        ({"egress": [{"from": []}]}, "from"),
        ({"enabeld": True}, "enabeld"),
    ],
)
def test_the_schema_refuses_bad_network_values_naming_the_key(chart, network_policy, named):
    from helm_python.errors import HelmError

    with pytest.raises(HelmError) as err:
        chart.render({"singleuser": {"networkPolicy": network_policy}}, name="demo", namespace="jhub")
    assert named in str(err.value)


def test_the_schema_takes_every_catalog_entry_field(chart, tmp_path):
    catalog = {"base": {"default": True,
                        "system": {"network": {"egress_allow": {"nonPrivateIPs": False}}}}}
    docs = render(chart, {"catalog": catalog})
    load_hub_config(tmp_path, docs)
    assert yaml.safe_load((tmp_path / "catalog.yaml").read_text()) == catalog
