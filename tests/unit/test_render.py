"""Rendering a System into the pod's containers and a NetworkPolicy.

Golden files
------------
``tests/unit/golden/<name>.yaml`` holds the exact output of ``tycho render`` for every built-in
profile (``tycho render PROFILE --user alice``) plus a few cases with a named server and
non-default choices (see ``GOLDEN_EXTRA``). A change to the templates, the built-in catalog or
the naming shows up as a diff of these files in review.

To regenerate them after an intended change, run::

    TYCHO_UPDATE_GOLDEN=1 python -m pytest tests/unit/test_render.py -p no:tycho_testbed

then read ``git diff tests/unit/golden`` before committing. With the switch set, the golden
tests rewrite the files (and stale ones are deleted) instead of comparing.
"""
from __future__ import annotations

import itertools
import os
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

from tycho_spawner import cli
from tycho_spawner.catalog_files import catalog_data
from tycho_spawner.errors import RenderError
from tycho_spawner.model import System
from tycho_spawner.profiles import Catalog, parse_catalog
from tycho_spawner.render import (
    SERVER_LABEL,
    SERVER_PORT_NAME,
    EnvSource,
    GateSettings,
    Server,
    render_all,
    render_network_policy,
    render_pod,
    render_pod_parts,
    selector_value,
    served_port,
    template_environment,
)

GOLDEN_DIR = Path(__file__).parent / "golden"
UPDATE = os.environ.get("TYCHO_UPDATE_GOLDEN") == "1"

#: Golden cases beyond `tycho render PROFILE --user alice` for each built-in profile.
GOLDEN_EXTRA = {
    "scipy-named-large-classic": [
        "scipy", "--user", "alice", "--server", "analysis", "--set", "size=large", "--set", "ui=classic",
    ],
    "rstudio-named-large": ["rstudio", "--user", "alice", "--server", "my-r", "--set", "size=large"],
    "nginx-long-unicode-user": ["nginx", "--user", "Ünïcødé.Üser+" + "x" * 80, "--server", "Web Site"],
}

HUB_ENV = (
    ("JUPYTERHUB_API_TOKEN", "s3cret-token"),
    ("JUPYTERHUB_USER", "alice"),
    ("JUPYTERHUB_SERVER_NAME", ""),
    ("JUPYTERHUB_API_URL", "http://hub:8081/hub/api"),
    ("JUPYTERHUB_SERVICE_PREFIX", "/user/alice/"),
    ("JUPYTERHUB_OAUTH_CALLBACK_URL", "/user/alice/oauth_callback"),
    ("JUPYTERHUB_CLIENT_ID", "jupyterhub-user-alice"),
)
APP_ENV = (("MEM_LIMIT", "2147483648"), ("SITE_SETTING", "on"))


@lru_cache(maxsize=1)
def builtin() -> Catalog:
    return parse_catalog(catalog_data(True, [], {}))


def builtin_keys() -> list[str]:
    return [p.key for p in builtin().profiles]


def golden_cases() -> dict[str, list[str]]:
    cases = {key: [key, "--user", "alice"] for key in builtin_keys()}
    cases.update(GOLDEN_EXTRA)
    return cases


def server(name="jupyter-alice", **kw) -> Server:
    kw.setdefault("hub_env", HUB_ENV)
    kw.setdefault("app_env", APP_ENV)
    return Server(name=name, namespace="jhub", **kw)


def env_of(container: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env") or []}


def system_of(key: str, **choices) -> System:
    return builtin().select({"profile": key, "choices": choices}).system()


def sidecar_system() -> System:
    """A Jupyter app with a sidecar: only the notebook container authenticates."""
    catalog = parse_catalog(
        {
            "lab": {
                "system": {
                    "serve": {"container": "notebook", "port": 8888},
                    "containers": {
                        "metrics": {"image": "example.org/metrics:1", "ports": {"metrics": 9100}, "env": {"A": "1"}},
                        "notebook": {
                            "image": "quay.io/jupyter/base-notebook:2026-05-31",
                            "ports": {"http": 8888},
                            "env": {"NB": "yes"},
                        },
                    },
                }
            }
        }
    )
    return catalog.select({}).system()


# --------------------------------------------------------------------------- golden files


def render_cli(argv, capsys) -> str:
    capsys.readouterr()
    assert cli.main(["render", *argv]) == 0
    out = capsys.readouterr()
    assert out.err == ""
    return out.out


@pytest.mark.parametrize("name", sorted(golden_cases()))
def test_golden(name, capsys):
    text = render_cli(golden_cases()[name], capsys)
    path = GOLDEN_DIR / f"{name}.yaml"
    if UPDATE:
        GOLDEN_DIR.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no golden file {path.name}: run TYCHO_UPDATE_GOLDEN=1 pytest {__file__}"
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"{path.name} differs from `tycho render {' '.join(golden_cases()[name])}`"
    docs = list(yaml.safe_load_all(text))
    assert [d["kind"] for d in docs] == ["Pod", "NetworkPolicy"]


def test_no_stale_golden_files():
    expected = {f"{name}.yaml" for name in golden_cases()}
    present = {p.name for p in GOLDEN_DIR.glob("*.yaml")}
    if UPDATE:
        for stale in present - expected:
            (GOLDEN_DIR / stale).unlink()
        present &= expected
    assert present == expected


def test_every_builtin_profile_has_a_golden_file():
    for key in builtin_keys():
        assert (GOLDEN_DIR / f"{key}.yaml").exists(), key


# --------------------------------------------------------------------------- every profile, every option


def all_selections():
    for profile in builtin().profiles:
        keys = [c.key for c in profile.choices]
        for combo in itertools.product(*[[o.key for o in c.options] for c in profile.choices]):
            yield profile.key, dict(zip(keys, combo))


@pytest.mark.parametrize("key, choices", list(all_selections()), ids=lambda v: v if isinstance(v, str) else ",".join(f"{k}={o}" for k, o in v.items()) or "-")
def test_every_profile_and_option_renders(key, choices):
    system = builtin().select({"profile": key, "choices": choices}).system()
    objects = render_all(system, server(), template_environment())
    assert [o["kind"] for o in objects] == ["Pod", "NetworkPolicy"]
    pod, policy = objects
    names = [c["name"] for c in pod["spec"]["containers"]]
    assert len(names) == len(set(names))
    served = [p for c in pod["spec"]["containers"] for p in c.get("ports", []) if p["name"] == SERVER_PORT_NAME]
    assert len(served) == 1
    assert policy["spec"]["ingress"][0]["ports"][0]["port"] == served[0]["containerPort"]
    # a round trip through YAML (what `tycho render` prints, what kubectl reads) changes nothing
    assert list(yaml.safe_load_all(yaml.safe_dump_all(objects))) == objects


# --------------------------------------------------------------------------- hub environment


@pytest.mark.parametrize("key", ["base", "minimal", "scipy", "datascience", "r", "pyspark"])
def test_jupyter_container_gets_the_hub_env(key):
    pod = render_pod(system_of(key), server(), template_environment())
    (notebook,) = pod["spec"]["containers"]
    env = env_of(notebook)
    for name, value in HUB_ENV:
        assert env[name] == value
    assert env["MEM_LIMIT"] == "2147483648"


def test_sidecar_of_a_jupyter_app_gets_no_hub_env():
    pod = render_pod(sidecar_system(), server(), template_environment())
    containers = {c["name"]: c for c in pod["spec"]["containers"]}
    assert list(containers) == ["notebook", "metrics"], "the serving container comes first"
    assert env_of(containers["metrics"]) == {"A": "1"}
    nb = env_of(containers["notebook"])
    assert nb["NB"] == "yes" and nb["JUPYTERHUB_API_TOKEN"] == "s3cret-token"


@pytest.mark.parametrize("key", ["rstudio", "nginx"])
def test_gated_app_gets_no_hub_env_and_the_gate_gets_all_of_it(key):
    pod = render_pod(system_of(key), server(), template_environment())
    containers = {c["name"]: c for c in pod["spec"]["containers"]}
    assert list(containers) == ["gate", key]
    gate_env, app_env = env_of(containers["gate"]), env_of(containers[key])
    assert gate_env == dict(HUB_ENV)
    assert not [name for name in app_env if name.startswith("JUPYTERHUB_")]
    assert "s3cret-token" not in yaml.safe_dump(containers[key])
    # the site's own environment goes to the app, not the gate
    assert app_env["MEM_LIMIT"] == "2147483648" and "MEM_LIMIT" not in gate_env


def test_env_precedence_site_then_catalog_then_hub():
    sys_ = system_of("rstudio")
    pod = render_pod(sys_, server(app_env=(("USER", "site"), ("X", "site"))), template_environment())
    app = pod["spec"]["containers"][1]
    assert env_of(app)["USER"] == "rstudio", "the catalog's env beats the site's"
    assert env_of(app)["X"] == "site"
    site = server(hub_env=(("JUPYTERHUB_DEFAULT_URL", "/hub-says"), ("JUPYTERHUB_USER", "alice")))
    pod = render_pod(system_of("base"), site, template_environment())
    assert env_of(pod["spec"]["containers"][0])["JUPYTERHUB_DEFAULT_URL"] == "/lab", "the entry's ui choice wins"
    catalog = parse_catalog({"plain": {"system": {
        "serve": {"container": "nb", "port": 8888},
        "containers": {"nb": {"image": "quay.io/jupyter/base-notebook:1", "ports": {"http": 8888},
                              "env": {"JUPYTERHUB_USER": "catalog-cannot-say-who"}}}}}})
    pod = render_pod(catalog.select({}).system(), site, template_environment())
    env = env_of(pod["spec"]["containers"][0])
    assert env["JUPYTERHUB_DEFAULT_URL"] == "/hub-says", "an entry that chooses nothing gets the site's default_url"
    assert env["JUPYTERHUB_USER"] == "alice", "the hub's identity variables beat the catalog's"


# --------------------------------------------------------------------------- ports, labels, selectors


def test_served_port_is_named_notebook_port():
    pod = render_pod(system_of("scipy"), server(), template_environment())
    assert pod["spec"]["containers"][0]["ports"] == [
        {"name": SERVER_PORT_NAME, "containerPort": 8888, "protocol": "TCP"}
    ]
    assert SERVER_PORT_NAME == "notebook-port"


def test_served_port_is_read_back_off_a_rendered_pod():
    # What the hub connects to, found again from the pod alone (a hub restarted mid-spawn).
    assert served_port(render_pod(system_of("scipy"), server(), template_environment())) == 8888
    gate = GateSettings(port=9999)
    assert served_port(render_pod(system_of("nginx"), server(gate=gate), template_environment())) == 9999
    assert served_port({"spec": {"containers": [{"name": "x", "ports": [{"name": "http", "containerPort": 80}]}]}}) is None
    assert served_port(None) is None


@pytest.mark.parametrize("key, app_port", [("rstudio", 8787), ("nginx", 8080)])
def test_gate_port_is_the_notebook_port_of_a_gated_app(key, app_port):
    env = template_environment()
    pod = render_pod(system_of(key), server(), env)
    gate, app = pod["spec"]["containers"]
    assert gate["ports"] == [{"name": SERVER_PORT_NAME, "containerPort": 8888, "protocol": "TCP"}]
    assert [p["name"] for p in app["ports"]] == ["http"] and app["ports"][0]["containerPort"] == app_port
    assert "--upstream" in gate["args"] and f"http://127.0.0.1:{app_port}" in gate["args"]
    assert render_pod_parts(system_of(key), server(), env).port == 8888


def test_gate_settings_are_used():
    gate = GateSettings(image="registry.local/gate:9", port=9999, keep_prefix=True)
    pod = render_pod(system_of("nginx"), server(gate=gate), template_environment())
    container = pod["spec"]["containers"][0]
    assert container["image"] == "registry.local/gate:9"
    assert container["ports"][0]["containerPort"] == 9999
    assert "--keep-prefix" in container["args"]
    policy = render_network_policy(system_of("nginx"), server(gate=gate), template_environment())
    assert policy["spec"]["ingress"][0]["ports"] == [{"port": 9999, "protocol": "TCP"}]


def test_gate_port_clash_is_a_render_error():
    with pytest.raises(RenderError, match="8787"):
        render_pod(system_of("rstudio"), server(gate=GateSettings(port=8787)), template_environment())


def test_objects_carry_the_kubespawner_labels(capsys):
    docs = list(yaml.safe_load_all(render_cli(["scipy", "--user", "alice"], capsys)))
    for doc in docs:
        labels = doc["metadata"]["labels"]
        assert labels["component"] == "singleuser-server"
        assert labels["app.kubernetes.io/component"] == "singleuser-server"
        assert labels["hub.jupyter.org/username"] == "alice"
        assert labels[SERVER_LABEL] == "jupyter-alice"
        assert labels["tycho-spawner/profile"] == "scipy"
        assert doc["metadata"]["name"] == "jupyter-alice"
        assert doc["metadata"]["namespace"] == "default"
    pod, policy = docs
    assert policy["spec"]["podSelector"] == {"matchLabels": {SERVER_LABEL: "jupyter-alice"}}
    assert pod["metadata"]["annotations"] == {"hub.jupyter.org/username": "alice"}


def test_selectors_match_the_pod_labels_only_of_their_own_server():
    env = template_environment()
    sys_ = system_of("base")
    a = render_all(sys_, server("jupyter-alice"), env)
    b = render_all(sys_, server("jupyter-alice--x"), env)
    for objs, other in ((a, b), (b, a)):
        pod_labels = objs[0]["metadata"]["labels"]
        other_labels = other[0]["metadata"]["labels"]
        selector = objs[1]["spec"]["podSelector"]["matchLabels"]
        assert selector.items() <= pod_labels.items()
        assert not selector.items() <= other_labels.items()


def test_selector_value_is_a_valid_label_value():
    assert selector_value("jupyter-alice") == "jupyter-alice"
    long = selector_value("x" * 64)
    assert long.startswith("h-") and len(long) <= 63
    assert selector_value("x" * 64) != selector_value("x" * 65)


# --------------------------------------------------------------------------- ownership


def test_network_policy_is_not_owned_it_exists_before_the_pod():
    """Created before the pod (so the pod is never reachable without it), it cannot name the
    pod's uid as its owner: the spawner deletes it at stop."""
    env = template_environment()
    assert "ownerReferences" not in render_network_policy(system_of("base"), server(), env)["metadata"]
    assert "ownerReferences" not in render_pod(system_of("base"), server(), env)["metadata"]


# --------------------------------------------------------------------------- network policy


@pytest.mark.parametrize("key, port", [("base", 8888), ("rstudio", 8888), ("nginx", 8888)])
def test_network_policy_admits_only_hub_and_proxy_on_the_served_port(key, port):
    policy = render_network_policy(system_of(key), server(), template_environment())
    assert policy["apiVersion"] == "networking.k8s.io/v1"
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert policy["spec"]["ingress"] == [
        {
            "from": [
                {"podSelector": {"matchLabels": {"component": "hub"}}},
                {"podSelector": {"matchLabels": {"component": "proxy"}}},
            ],
            "ports": [{"port": port, "protocol": "TCP"}],
        }
    ]


def test_network_policy_does_not_admit_the_apps_own_port_of_a_gated_app():
    policy = render_network_policy(system_of("rstudio"), server(), template_environment())
    ports = [p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]]
    assert 8787 not in ports


def test_network_policy_peers_are_configurable():
    peers = ((("app", "jupyterhub"), ("component", "hub")), (("hub.jupyter.org/network-access-singleuser", "true"),))
    policy = render_network_policy(system_of("base"), server(ingress_from=peers), template_environment())
    assert policy["spec"]["ingress"][0]["from"] == [
        {"podSelector": {"matchLabels": {"app": "jupyterhub", "component": "hub"}}},
        {"podSelector": {"matchLabels": {"hub.jupyter.org/network-access-singleuser": "true"}}},
    ]


# --------------------------------------------------------------------------- egress


def reaches(policy: dict, address: str, port: int, protocol: str = "TCP") -> bool:
    """Whether the policy's egress rules let a connection to an address (not a pod selected by
    label) through, as Kubernetes reads them: any rule whose peers and ports both match."""
    import ipaddress

    target = ipaddress.ip_address(address)

    def peer_matches(peer):
        block = peer.get("ipBlock")
        if block is None:
            return False
        inside = target in ipaddress.ip_network(block["cidr"], strict=False)
        return inside and not any(target in ipaddress.ip_network(c, strict=False) for c in block.get("except", []))

    def port_matches(entry):
        number, end = entry.get("port"), entry.get("endPort")
        if entry.get("protocol", "TCP") != protocol:
            return False
        return number is None or number == port or (end is not None and number <= port <= end)

    assert "Egress" in policy["spec"]["policyTypes"]
    return any(
        (not rule.get("to") or any(peer_matches(p) for p in rule["to"]))
        and (not rule.get("ports") or any(port_matches(p) for p in rule["ports"]))
        for rule in policy["spec"].get("egress") or []
    )


INTERNET, METADATA = "203.0.113.10", "169.254.169.254"
#: Addresses a server must not reach by default: the kubernetes Service, an API server on a
#: node's private address, another user's pod, anything on the private ranges.
PRIVATE = ("10.96.0.1", "10.255.255.1", "10.213.1.7", "172.16.3.4", "192.168.49.2")


def egress_entry(network: dict) -> System:
    """A one-container app whose entry sets `system.network`."""
    catalog = parse_catalog({"lab": {"system": {
        "serve": {"container": "app", "port": 8888},
        "containers": {"app": {"image": "python:3.11", "ports": {"http": 8888}}},
        "network": network,
    }}})
    return catalog.select({}).system()


def test_by_default_a_server_reaches_dns_the_hub_and_the_internet_only():
    policy = render_network_policy(system_of("base"), server(), template_environment())
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    egress = policy["spec"]["egress"]
    # The hub's API, on its pods (JUPYTERHUB_API_URL names the hub's Service here).
    assert egress[0] == {"to": [{"podSelector": {"matchLabels": {"component": "hub"}}}],
                         "ports": [{"port": 8081, "protocol": "TCP"}]}
    assert reaches(policy, INTERNET, 443) and reaches(policy, "8.8.8.8", 80)
    for address in (METADATA, *PRIVATE):
        assert not reaches(policy, address, 443), address
        assert not reaches(policy, address, 80), address
    # DNS, wherever the cluster runs it (kube-system, a private address, GKE's metadata server)
    for address in ("10.96.0.10", "192.168.0.53", METADATA):
        assert reaches(policy, address, 53, "UDP") and reaches(policy, address, 53, "TCP"), address
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}} in egress[1]["to"]


def test_a_hub_outside_the_cluster_is_reached_at_the_address_in_its_url():
    hub_env = dict(HUB_ENV, JUPYTERHUB_API_URL="http://192.168.49.1:8081/hub/api")
    policy = render_network_policy(system_of("base"), server(hub_env=tuple(hub_env.items())), template_environment())
    assert reaches(policy, "192.168.49.1", 8081)
    assert not reaches(policy, "192.168.49.1", 22) and not reaches(policy, "192.168.49.2", 8081)
    # A name (a Service, or a host name) or loopback (the pod's own) adds no address.
    default = render_network_policy(system_of("base"), server(), template_environment())
    for url in ("http://127.0.0.1:8081/hub/api", "http://hub.example.org:8081/hub/api"):
        hub_env = dict(HUB_ENV, JUPYTERHUB_API_URL=url)
        policy = render_network_policy(system_of("base"), server(hub_env=tuple(hub_env.items())),
                                       template_environment())
        assert policy["spec"]["egress"] == default["spec"]["egress"], url


def test_the_hub_pods_labels_and_port_are_the_sites():
    policy = render_network_policy(
        system_of("base"), server(hub_selector=(("app.kubernetes.io/instance", "tycho"), ("component", "hub")),
                                  hub_port=9000),
        template_environment())
    assert policy["spec"]["egress"][0] == {
        "to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/instance": "tycho", "component": "hub"}}}],
        "ports": [{"port": 9000, "protocol": "TCP"}],
    }


def test_the_site_widens_or_narrows_every_server():
    lab = server(egress_allow=(("privateIPs", True), ("cloudMetadataServer", True)))
    policy = render_network_policy(system_of("base"), lab, template_environment())
    assert all(reaches(policy, a, 5432) for a in (METADATA, *PRIVATE, INTERNET))
    offline = server(egress_allow=(("nonPrivateIPs", False), ("dnsPortsPrivateIPs", False),
                                   ("dnsPortsCloudMetadataServer", False), ("dnsPortsKubeSystemNamespace", False)))
    policy = render_network_policy(system_of("base"), offline, template_environment())
    assert not any(reaches(policy, a, p) for a in (METADATA, *PRIVATE, INTERNET) for p in (53, 443))
    assert len(policy["spec"]["egress"]) == 1  # the hub's API only


def test_the_sites_extra_rules_come_after_the_allowances():
    import json

    rule = {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [{"port": 5432, "protocol": "TCP"}]}
    policy = render_network_policy(system_of("base"), server(egress=(json.dumps(rule),)), template_environment())
    assert policy["spec"]["egress"][-1] == rule
    assert reaches(policy, "10.20.3.4", 5432) and not reaches(policy, "10.20.3.4", 22)


def test_an_entry_allows_more_or_less_than_the_site():
    widened = egress_entry({"egress_allow": {"privateIPs": True}})
    policy = render_network_policy(widened, server(), template_environment())
    assert all(reaches(policy, a, 8888) for a in PRIVATE) and not reaches(policy, METADATA, 80)
    # The site's keys the entry does not set still apply.
    assert reaches(policy, INTERNET, 443)
    narrowed = egress_entry({"egress_allow": {"nonPrivateIPs": False}})
    site = server(egress_allow=(("nonPrivateIPs", True), ("privateIPs", True)))
    policy = render_network_policy(narrowed, site, template_environment())
    assert not reaches(policy, INTERNET, 443) and reaches(policy, "10.96.0.1", 443)


def test_an_entrys_rules_are_added_to_the_sites():
    import json

    site_rule = {"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}], "ports": [{"port": 5432}]}
    entry_rule = {"to": [{"podSelector": {"matchLabels": {"app": "postgres"}}}], "ports": [{"port": "pg"}]}
    system = egress_entry({"egress": [entry_rule]})
    policy = render_network_policy(system, server(egress=(json.dumps(site_rule),)), template_environment())
    assert policy["spec"]["egress"][-2:] == [site_rule, entry_rule]


def test_a_choice_can_open_the_private_network():
    catalog = parse_catalog({"lab": {
        "choices": {"network": {"options": {"internet": {}, "cluster": {"set": {"network.egress_allow.privateIPs": True}}}}},
        "system": {"serve": {"container": "app", "port": 8888},
                   "containers": {"app": {"image": "python:3.11", "ports": {"http": 8888}}}},
    }})
    env = template_environment()
    internet = render_network_policy(catalog.select({}).system(), server(), env)
    cluster = render_network_policy(catalog.select({"choices": {"network": "cluster"}}).system(), server(), env)
    assert not reaches(internet, "10.96.0.1", 443) and reaches(cluster, "10.96.0.1", 443)


# --------------------------------------------------------------------------- security context


@pytest.mark.parametrize("key", sorted(["base", "minimal", "scipy", "datascience", "r", "pyspark", "rstudio", "nginx"]))
def test_everything_runs_as_non_root(key):
    pod = render_pod(system_of(key), server(), template_environment())
    spec = pod["spec"]
    for container in spec["containers"]:
        sc = container["securityContext"]
        assert sc["runAsNonRoot"] is True, container["name"]
        assert sc["runAsUser"] > 0
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert not sc.get("privileged")


def test_security_of_the_system_is_used():
    pod = render_pod(system_of("nginx"), server(), template_environment())
    # The pod level holds only what volumes need: the site's init containers are the site's.
    assert pod["spec"]["securityContext"] == {"fsGroup": 101, "seccompProfile": {"type": "RuntimeDefault"}}
    for container in pod["spec"]["containers"]:
        assert (container["securityContext"]["runAsUser"], container["securityContext"]["runAsGroup"]) == (101, 101)


# --------------------------------------------------------------------------- resources and volumes


def test_resources_follow_the_size_choice():
    pod = render_pod(system_of("scipy", size="large"), server(), template_environment())
    assert pod["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": "4", "memory": "16Gi"},
        "requests": {"cpu": "1", "memory": "8Gi"},
    }


def test_volumes_and_mounts():
    pod = render_pod(system_of("rstudio"), server(), template_environment())
    assert pod["spec"]["volumes"] == [{"name": "rstudio-tmp", "emptyDir": {}}]
    assert pod["spec"]["containers"][1]["volumeMounts"] == [{"name": "rstudio-tmp", "mountPath": "/tmp"}]
    assert "volumeMounts" not in pod["spec"]["containers"][0]


def kubespawner_pod(**container) -> dict:
    """A pod shaped like KubeSpawner 7's (its make_pod, sanitized) with z2jh's usual settings."""
    notebook = {
        "name": "notebook",
        "image": "quay.io/jupyterhub/k8s-singleuser-sample:4.4.0",
        "args": ["jupyterhub-singleuser"],
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "notebook-port", "containerPort": 8888}],
        "env": [
            {"name": "JUPYTERHUB_API_TOKEN", "value": "s3cret-token"},
            {"name": "JUPYTER_IMAGE", "value": "quay.io/jupyterhub/k8s-singleuser-sample:4.4.0"},
            {"name": "MEM_GUARANTEE", "value": "1073741824"},
            {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
        ],
        "lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", "echo hi"]}}},
        "resources": {"requests": {"memory": "1G"}, "limits": {"nvidia.com/gpu": "1"}},
        "securityContext": {"runAsUser": 1000, "runAsGroup": 100, "allowPrivilegeEscalation": False,
                            "privileged": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "volumeMounts": [
            {"name": "home", "mountPath": "/home/jovyan"},
            {"name": "shared", "mountPath": "/home/jovyan/shared", "readOnly": True},
            {"name": "data", "mountPath": "/srv/data"},
        ],
        "workingDir": "/srv/site-dir",
        "envFrom": [{"configMapRef": {"name": "site-env"}}],
    }
    notebook.update(container)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "jupyter-alice", "labels": {"site": "yes"}, "annotations": {"a": "b"}},
        "spec": {
            "nodeSelector": {"pool": "users"},
            "tolerations": [{"key": "users", "operator": "Exists"}],
            "securityContext": {"fsGroup": 100, "supplementalGroups": [5000]},
            "initContainers": [{"name": "block-cloud-metadata", "image": "quay.io/jupyterhub/k8s-network-tools:4.4.0",
                                "securityContext": {"runAsUser": 0, "privileged": True}}],
            "volumes": [
                {"name": "home", "persistentVolumeClaim": {"claimName": "claim-alice"}},
                {"name": "shared", "persistentVolumeClaim": {"claimName": "shared"}},
                {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
            ],
            "containers": [notebook, {"name": "site-sidecar", "image": "example.org/sidecar:1"}],
        },
    }


def test_every_pod_gets_the_runtime_default_seccomp_profile_unless_the_site_sets_one():
    for key in ("base", "rstudio", "nginx"):
        pod = render_pod(system_of(key), server(), template_environment())
        assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, key
    base = kubespawner_pod()
    base["spec"]["securityContext"]["seccompProfile"] = {"type": "Localhost", "localhostProfile": "site.json"}
    pod = render_pod(system_of("base"), server(), template_environment(), base_pod=base)
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "Localhost", "localhostProfile": "site.json"}


def test_base_pod_site_settings_are_kept():
    base = kubespawner_pod()
    pod = render_pod(system_of("rstudio"), server(), template_environment(), base_pod=base)
    spec = pod["spec"]
    assert spec["nodeSelector"] == {"pool": "users"}
    assert spec["tolerations"] == [{"key": "users", "operator": "Exists"}]
    assert spec["initContainers"] == base["spec"]["initContainers"], "the site's init containers are kept as they are"
    assert spec["securityContext"] == {"fsGroup": 1000, "supplementalGroups": [5000],
                                       "seccompProfile": {"type": "RuntimeDefault"}}
    assert [v["name"] for v in spec["volumes"]] == ["home", "shared", "data", "rstudio-tmp"]
    gate, app, sidecar = spec["containers"]
    assert sidecar == {"name": "site-sidecar", "image": "example.org/sidecar:1"}, "extra_containers are kept"
    assert "volumeMounts" not in gate, "the home directory is for the app, not the gate"
    assert gate["imagePullPolicy"] == app["imagePullPolicy"] == "IfNotPresent"
    assert pod["metadata"]["labels"]["site"] == "yes"
    assert pod["metadata"]["labels"][SERVER_LABEL] == "jupyter-alice"
    assert base["spec"]["containers"][0]["image"] == "quay.io/jupyterhub/k8s-singleuser-sample:4.4.0", \
        "the base pod is not modified"


def test_the_app_container_keeps_the_sites_container_settings():
    pod = render_pod(system_of("rstudio"), server(app_env=()), template_environment(), base_pod=kubespawner_pod())
    app = pod["spec"]["containers"][1]
    assert app["name"] == "rstudio" and app["image"].startswith("docker.io/rocker/rstudio:")
    assert app["lifecycle"] == {"postStart": {"exec": {"command": ["sh", "-c", "echo hi"]}}}
    assert app["envFrom"] == [{"configMapRef": {"name": "site-env"}}], "extra_container_config keys stay"
    # the entry's size wins key by key; the site's other resources stay
    assert app["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert app["resources"]["limits"]["memory"] == "2Gi" and app["resources"]["requests"]["memory"] == "512Mi"
    # the site's security settings stay unless the entry decides them; never privileged
    sc = app["securityContext"]
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert (sc["runAsUser"], sc["runAsGroup"], sc["runAsNonRoot"]) == (1000, 1000, True)
    assert "privileged" not in sc and sc["allowPrivilegeEscalation"] is False
    assert "args" in app and "jupyterhub-singleuser" not in app["args"], "the entry's command, not the site's cmd"
    nginx = render_pod(system_of("nginx"), server(), template_environment(), base_pod=kubespawner_pod())
    assert nginx["spec"]["containers"][1]["workingDir"] == "/srv/site-dir", "an entry without a working dir gets the site's"


def test_site_env_with_value_from_reaches_the_app_as_value_from():
    site_env = (("DB_PASSWORD", EnvSource('{"secretKeyRef": {"key": "password", "name": "db"}}')), ("PLAIN", "x"))
    for key, app_index in (("scipy", 0), ("rstudio", 1)):
        pod = render_pod(system_of(key), server(app_env=site_env), template_environment())
        app = pod["spec"]["containers"][app_index]
        assert {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"key": "password", "name": "db"}}} in app["env"]
        assert {"name": "PLAIN", "value": "x"} in app["env"]


def mounts(container: dict) -> list:
    return [(m["name"], m["mountPath"], m.get("subPath"), bool(m.get("readOnly"))) for m in container.get("volumeMounts") or []]


def test_the_home_goes_where_each_app_keeps_the_users_files():
    env = template_environment()
    jupyter = render_pod(system_of("scipy"), server(), env, base_pod=kubespawner_pod())["spec"]["containers"][0]
    assert mounts(jupyter) == [
        ("home", "/home/jovyan", None, False),
        ("shared", "/home/jovyan/shared", None, True),
        ("data", "/srv/data", None, False),
    ]
    rstudio = render_pod(system_of("rstudio"), server(), env, base_pod=kubespawner_pod())["spec"]["containers"][1]
    assert mounts(rstudio)[:3] == [
        ("home", "/home/rstudio", None, False),
        ("shared", "/home/rstudio/shared", None, True),
        ("data", "/srv/data", None, False),
    ]
    nginx = render_pod(system_of("nginx"), server(), env, base_pod=kubespawner_pod())["spec"]["containers"][1]
    # Only public_html, read-only; what is mounted inside the home is not published.
    assert mounts(nginx)[:2] == [("home", "/srv/public_html", "public_html", True), ("data", "/srv/data", None, False)]


def test_a_site_sub_path_home_keeps_its_sub_path():
    base = kubespawner_pod(volumeMounts=[{"name": "home", "mountPath": "/home/jovyan", "subPath": "alice"}])
    nginx = render_pod(system_of("nginx"), server(), template_environment(), base_pod=base)["spec"]["containers"][1]
    assert mounts(nginx)[0] == ("home", "/srv/public_html", "alice/public_html", True)


def test_an_entry_without_a_home_gets_none_and_no_claim():
    catalog = parse_catalog({"kiosk": {"system": {
        "home": False,
        "serve": {"container": "web", "port": 8080},
        "containers": {"web": {"image": "python:3.11", "ports": {"http": 8080}}}}}})
    pod = render_pod(catalog.select({}).system(), server(), template_environment(), base_pod=kubespawner_pod())
    assert mounts(pod["spec"]["containers"][0]) == [("data", "/srv/data", None, False)]
    assert [v["name"] for v in pod["spec"]["volumes"]] == ["data"], "unused claims are not in the pod"


def test_an_entry_that_says_nothing_keeps_the_home_at_the_sites_path():
    catalog = parse_catalog({"custom": {"system": {
        "serve": {"container": "lab", "port": 8888},
        "containers": {"lab": {"image": "quay.io/jupyter/base-notebook:1", "ports": {"http": 8888}}}}}})
    pod = render_pod(catalog.select({}).system(), server(), template_environment(), base_pod=kubespawner_pod())
    assert mounts(pod["spec"]["containers"][0])[0] == ("home", "/home/jovyan", None, False)


def test_a_different_site_home_path_is_followed():
    base = kubespawner_pod(volumeMounts=[{"name": "home", "mountPath": "/data/home"}])
    pod = render_pod(system_of("rstudio"), server(home_mount_path="/data/home"), template_environment(), base_pod=base)
    assert mounts(pod["spec"]["containers"][1])[0] == ("home", "/home/rstudio", None, False)


def test_internal_ssl_certificates_go_to_the_authenticating_container():
    base = kubespawner_pod(volumeMounts=[
        {"name": "home", "mountPath": "/home/jovyan"},
        {"name": "jupyterhub-internal-certs", "mountPath": "/etc/jupyterhub/ssl/"},
    ])
    ssl = server(auth_volumes=("jupyterhub-internal-certs",))
    pod = render_pod(sidecar_system(), ssl, template_environment(), base_pod=base)
    notebook, metrics = pod["spec"]["containers"][:2]
    assert ("jupyterhub-internal-certs", "/etc/jupyterhub/ssl/", None, False) in mounts(notebook)
    assert "volumeMounts" not in metrics
    with pytest.raises(RenderError, match="internal SSL"):
        render_pod(system_of("nginx"), ssl, template_environment(), base_pod=base)


# --------------------------------------------------------------------------- templates


def test_admin_template_directory_overrides_one_template(tmp_path):
    (tmp_path / "networkpolicy.yaml.j2").write_text(
        "apiVersion: networking.k8s.io/v1\n"
        "kind: NetworkPolicy\n"
        "metadata:\n"
        "  name: {{ server.name }}\n"
        "  annotations: {site-template: 'yes'}\n"
        "spec:\n"
        "  podSelector: {matchLabels: {{ selector }}}\n"
        "  policyTypes: [Ingress]\n"
        "  ingress: [{ports: [{port: {{ port }}}]}]\n"
    )
    env = template_environment(str(tmp_path))
    policy = render_network_policy(system_of("base"), server(), env)
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["metadata"]["annotations"] == {"site-template": "yes"}
    # the other templates are still the packaged ones
    assert render_pod(system_of("base"), server(), env)["spec"]["containers"][0]["name"] == "notebook"
    packaged = render_network_policy(system_of("base"), server(), template_environment())
    assert packaged["spec"]["policyTypes"] == ["Ingress", "Egress"]


@pytest.mark.parametrize(
    "template, expression, name",
    [
        ("networkpolicy.yaml.j2", "{{ server.no_such_attribute }}", "no_such_attribute"),
        ("networkpolicy.yaml.j2", "{{ no_such_variable }}", "no_such_variable"),
        ("pod.yaml.j2", "{{ system.nope }}", "nope"),
    ],
)
def test_undefined_variable_is_a_render_error_naming_it(tmp_path, template, expression, name):
    (tmp_path / template).write_text(f"apiVersion: v1\nkind: X\nmetadata:\n  name: {expression}\n")
    env = template_environment(str(tmp_path))
    with pytest.raises(RenderError) as info:
        render_all(system_of("base"), server(), env)
    assert name in str(info.value)
    assert template in str(info.value)


def test_undefined_in_a_condition_is_an_error_too(tmp_path):
    (tmp_path / "networkpolicy.yaml.j2").write_text("{% if typo_flag %}kind: NetworkPolicy{% endif %}\n")
    with pytest.raises(RenderError, match="typo_flag"):
        render_network_policy(system_of("base"), server(), template_environment(str(tmp_path)))


def test_template_that_is_not_yaml_is_a_render_error(tmp_path):
    (tmp_path / "networkpolicy.yaml.j2").write_text("kind: NetworkPolicy\n  bad: [indent\n")
    with pytest.raises(RenderError, match="did not produce YAML"):
        render_network_policy(system_of("base"), server(), template_environment(str(tmp_path)))


def test_template_producing_the_wrong_kind_is_a_render_error(tmp_path):
    (tmp_path / "networkpolicy.yaml.j2").write_text("apiVersion: v1\nkind: Service\n")
    with pytest.raises(RenderError, match="NetworkPolicy"):
        render_network_policy(system_of("base"), server(), template_environment(str(tmp_path)))
    (tmp_path / "pod.yaml.j2").write_text("containers: nope\n")
    with pytest.raises(RenderError, match="containers"):
        render_pod(system_of("base"), server(), template_environment(str(tmp_path)))


def test_variables_keep_kubespawners_order_so_references_resolve():
    # KubeSpawner sorts a site's `$(VAR)` references after what they refer to; Kubernetes expands
    # only variables defined earlier in the list.
    hub_env = (("JUPYTERHUB_USER", "alice"), ("JUPYTERHUB_API_TOKEN", "t"))
    app_env = (("HOME_NAME", "$(JUPYTERHUB_USER)-home"), ("PLAIN", "x"))
    order = ("JUPYTERHUB_API_TOKEN", "JUPYTERHUB_USER", "PLAIN", "HOME_NAME")
    site = server(hub_env=hub_env, app_env=app_env, env_order=order)
    notebook = render_pod(system_of("base"), site, template_environment())["spec"]["containers"][0]
    names = [e["name"] for e in notebook["env"]]
    assert names[:4] == list(order)
    assert names.index("JUPYTERHUB_DEFAULT_URL") > names.index("HOME_NAME"), "the entry's own come last"
    gate, app = render_pod(system_of("rstudio"), site, template_environment())["spec"]["containers"]
    assert [e["name"] for e in gate["env"]] == ["JUPYTERHUB_API_TOKEN", "JUPYTERHUB_USER"]
    assert [e["name"] for e in app["env"]][:2] == ["PLAIN", "HOME_NAME"]
