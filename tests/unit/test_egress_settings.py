"""Where servers may connect to: the catalog entry's `system.network` and the site's settings
(`TychoSpawner.network_policy_egress_allow`, `network_policy_egress`,
`network_policy_hub_selector`) are checked before any server starts, and a mistake is one line
naming the exact key.

What the settings render to is in test_render.py (egress); what the test bed's network does with
it, in tests/spawner/test_network_policy.py.
"""
from __future__ import annotations

import json

import pytest
import yaml
from traitlets.config import Config

from tycho_spawner import TychoSpawner, cli
from tycho_spawner.model import EGRESS_ALLOW_RULES, System, parse_egress_rules
from tycho_spawner.render import DEFAULT_EGRESS_ALLOW

PATH = "catalog.lab.system"


def entry(network=None, **extra) -> dict:
    system = {
        "serve": {"container": "app", "port": 8888},
        "containers": {"app": {"image": "python:3.11", "ports": {"http": 8888}}},
    }
    if network is not None:
        system["network"] = network
    return {"lab": {"system": system, **extra}}


def validate(capsys, tmp_path, catalog: dict) -> tuple[int, str, str]:
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(catalog))
    capsys.readouterr()
    code = cli.main(["validate", str(path)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_allowances_are_zero_to_jupyterhubs():
    # Same names and defaults as z2jh 4.4.0's singleuser.networkPolicy.egressAllowRules, so a
    # site's values carry over as they are.
    assert dict(DEFAULT_EGRESS_ALLOW) == {
        "cloudMetadataServer": False,
        "dnsPortsCloudMetadataServer": True,
        "dnsPortsKubeSystemNamespace": True,
        "dnsPortsPrivateIPs": True,
        "nonPrivateIPs": True,
        "privateIPs": False,
    }
    assert set(EGRESS_ALLOW_RULES) == set(dict(DEFAULT_EGRESS_ALLOW))


def test_an_entry_with_network_settings_validates(capsys, tmp_path):
    network = {
        "egress_allow": {"privateIPs": True, "nonPrivateIPs": False},
        "egress": [
            {"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.96.0.0/12"]}}],
             "ports": [{"port": 5432, "protocol": "TCP"}, {"port": 6000, "endPort": 6010}]},
            {"to": [{"namespaceSelector": {"matchLabels": {"team": "data"}},
                     "podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["pg"]}]}}],
             "ports": [{"port": "postgres"}]},
            {},
        ],
    }
    code, out, err = validate(capsys, tmp_path, entry(network))
    assert (code, err) == (0, ""), err
    system = System.from_dict("lab", entry(network)["lab"]["system"], PATH)
    assert system.network.egress_allow == (("privateIPs", True), ("nonPrivateIPs", False))
    assert system.network.egress_rules == network["egress"]


@pytest.mark.parametrize(
    "network, message",
    [
        ({"egres": []}, "network.egres: unknown key (expected one of: egress_allow, egress)"),
        ({"egress_allow": {"privateIps": True}},
         "network.egress_allow.privateIps: unknown key (expected one of: cloudMetadataServer,"),
        ({"egress_allow": {"privateIPs": "yes"}}, "network.egress_allow.privateIPs: must be true or false, got 'yes'"),
        ({"egress_allow": [True]}, "network.egress_allow: expected a mapping, got list"),
        ({"egress": {"to": []}}, "network.egress: expected a list of NetworkPolicy egress rules"),
        ({"egress": [{"from": []}]}, "network.egress[0].from: unknown key (expected one of: to, ports)"),
        ({"egress": [{"to": [{}]}]}, "network.egress[0].to[0]: give an ipBlock, a podSelector or a namespaceSelector"),
        ({"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0"}}]}]},
         "network.egress[0].to[0].ipBlock.cidr: '10.0.0.0' is not a CIDR"),
        ({"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]},
         "network.egress[0].to[0].ipBlock.cidr: '10.0.0.0/33' is not a CIDR"),
        ({"egress": [{"to": [{"ipBlock": {"except": ["10.1.0.0/16"]}}]}]},
         "network.egress[0].to[0].ipBlock.cidr: is required"),
        ({"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["192.168.0.0/16"]}}]}]},
         "network.egress[0].to[0].ipBlock.except[0]: '192.168.0.0/16' is not a strict part of '10.0.0.0/8'"),
        ({"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}]},
         "network.egress[0].to[0]: an ipBlock cannot be combined with a selector"),
        ({"egress": [{"to": [{"podSelector": {"matchLabels": {"app": "a b"}}}]}]},
         "network.egress[0].to[0].podSelector.matchLabels.app: 'a b' is not a label value"),
        ({"egress": [{"to": [{"podSelector": {"matchExpressions": [{"key": "app", "operator": "Has"}]}}]}]},
         "network.egress[0].to[0].podSelector.matchExpressions[0].operator: 'Has' is not one of: In, NotIn"),
        ({"egress": [{"to": [{"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "In"}]}}]}]},
         "network.egress[0].to[0].namespaceSelector.matchExpressions[0].values: In needs at least one value"),
        ({"egress": [{"ports": [{"port": 70000}]}]},
         "network.egress[0].ports[0].port: expected an integer from 1 to 65535, got 70000"),
        ({"egress": [{"ports": [{"port": "Not A Name"}]}]},
         "network.egress[0].ports[0].port: 'Not A Name' is neither a port number nor a port name"),
        ({"egress": [{"ports": [{"port": 53, "protocol": "ICMP"}]}]},
         "network.egress[0].ports[0].protocol: 'ICMP' is not one of: TCP, UDP, SCTP"),
        ({"egress": [{"ports": [{"port": 6010, "endPort": 6000}]}]},
         "network.egress[0].ports[0].endPort: 6000 is below the port 6010"),
    ],
)
def test_tycho_validate_names_the_bad_network_key(capsys, tmp_path, network, message):
    code, out, err = validate(capsys, tmp_path, entry(network))
    assert code == 1 and out == ""
    assert f"invalid: {PATH}.{message}" in err, err
    assert len(err.splitlines()) == 1


def test_a_choice_that_sets_a_bad_allowance_is_named(capsys, tmp_path):
    catalog = entry(choices={"net": {"options": {"closed": {}, "open": {"set": {"network.egress_allow.privateIPs": 1}}}}})
    code, _, err = validate(capsys, tmp_path, catalog)
    assert code == 1
    assert ("catalog.lab.choices.net.options.open: with this option, "
            "catalog.lab.system.network.egress_allow.privateIPs: must be true or false, got 1") in err


def test_rules_are_kept_as_written():
    rule = {"to": [{"ipBlock": {"cidr": "10.1.2.3/8"}}], "ports": [{"port": 443}]}
    (kept,) = parse_egress_rules([rule], "x")
    assert json.loads(kept) == rule  # Kubernetes reads 10.1.2.3/8 as 10.0.0.0/8; so does the check


def site(**settings) -> Config:
    config = Config()
    for name, value in settings.items():
        setattr(config.TychoSpawner, name, value)
    return config


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"network_policy_egress_allow": {"privateIps": True}},
         "TychoSpawner.network_policy_egress_allow.privateIps: unknown key"),
        ({"network_policy_egress_allow": {"privateIPs": "true"}},
         "TychoSpawner.network_policy_egress_allow.privateIPs: must be true or false"),
        ({"network_policy_egress": [{"to": [{"ipBlock": {"cidr": "everything"}}]}]},
         "TychoSpawner.network_policy_egress[0].to[0].ipBlock.cidr: 'everything' is not a CIDR"),
        ({"network_policy_hub_selector": {}},
         "TychoSpawner.network_policy_hub_selector: name at least one label of the hub's pods"),
    ],
)
def test_a_bad_site_setting_stops_the_hub_at_start_naming_it(capsys, settings, message):
    with pytest.raises(SystemExit) as stopped:
        TychoSpawner.check_config(site(**settings))
    assert stopped.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"tycho_spawner: a setting is invalid: {message}")
    assert len(err.splitlines()) == 1


def test_site_settings_reach_the_servers_context():
    probe = TychoSpawner.__new__(TychoSpawner)
    from traitlets.config import Configurable

    Configurable.__init__(probe, config=site(
        network_policy_egress_allow={"privateIPs": True},
        network_policy_egress=[{"to": [{"ipBlock": {"cidr": "100.64.0.0/10"}}]}],
        network_policy_hub_selector={"component": "hub", "app.kubernetes.io/instance": "tycho"},
    ))
    context = probe._site_egress()
    # Keys the site leaves out keep zero-to-jupyterhub's defaults.
    assert dict(context["egress_allow"]) == {**dict(DEFAULT_EGRESS_ALLOW), "privateIPs": True}
    assert [json.loads(r) for r in context["egress"]] == [{"to": [{"ipBlock": {"cidr": "100.64.0.0/10"}}]}]
    assert context["hub_selector"] == (("app.kubernetes.io/instance", "tycho"), ("component", "hub"))
