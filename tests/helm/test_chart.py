"""The chart renders what a site needs, and its schema refuses bad values by name."""
from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import pytest
import yaml

from tycho_spawner.rbac import spawner_role_rules

from .conftest import CHART, by_kind_name, load_hub_config, objects, values_file

#: Storage values of each type that renders (static needs its claim).
STORAGE = {
    "none": {"type": "none"},
    "static": {"type": "static", "static": {"pvcName": "homes"}},
    "dynamic": {"type": "dynamic"},
}


def render(chart, values=None, name="demo", namespace="jhub"):
    return by_kind_name(objects(chart.render(values or {}, name=name, namespace=namespace)))


def load_hub_config_with_catalog(tmp_path, docs, name="demo"):
    """The hub's configuration as its pod loads it: with the catalog ConfigMap's catalog.yaml
    where the pod's TYCHO_CHART_CATALOG (from the hub Deployment) says it is, here in tmp_path."""
    import os

    hub = docs[("Deployment", f"{name}-hub")]["spec"]["template"]["spec"]
    (env,) = [e["value"] for e in hub["containers"][0]["env"] if e["name"] == "TYCHO_CHART_CATALOG"]
    (tmp_path / "catalog").mkdir()
    path = tmp_path / "catalog" / os.path.basename(env)
    path.write_text(docs[("ConfigMap", f"{name}-catalog")]["data"][os.path.basename(env)])
    os.environ["TYCHO_CHART_CATALOG"] = str(path)
    try:
        return load_hub_config(tmp_path, {k: d for k, d in docs.items() if k != ("ConfigMap", f"{name}-catalog")})
    finally:
        del os.environ["TYCHO_CHART_CATALOG"]


def test_lint_has_no_errors():
    from helm_python import lint

    result = lint(str(CHART), strict=True)
    assert result["errors"] == []
    assert [m for m in result["messages"] if m["severity"] > 1] == []


def test_default_render_has_every_part(chart):
    docs = render(chart)
    assert set(docs) == {
        ("ConfigMap", "demo-config"), ("ConfigMap", "demo-catalog"), ("Secret", "demo-secret"),
        ("ServiceAccount", "demo-hub"), ("Role", "demo-hub"), ("RoleBinding", "demo-hub"),
        ("Deployment", "demo-hub"), ("Service", "demo-hub"),
        ("Deployment", "demo-proxy"), ("Service", "demo-proxy-api"), ("Service", "demo-public"),
        ("NetworkPolicy", "demo-hub"), ("NetworkPolicy", "demo-proxy"),
        ("PersistentVolumeClaim", "demo-hub-db"),
    }
    assert docs[("Service", "demo-public")]["spec"]["type"] == "NodePort"
    assert docs[("Deployment", "demo-proxy")]["spec"]["strategy"] == {"type": "Recreate"}
    # The proxy never talks to Kubernetes: a token in its filesystem would only be a gift to
    # whoever gets code running there.
    assert docs[("Deployment", "demo-proxy")]["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert "automountServiceAccountToken" not in docs[("Deployment", "demo-hub")]["spec"]["template"]["spec"]
    hub = docs[("Deployment", "demo-hub")]["spec"]["template"]
    assert hub["spec"]["serviceAccountName"] == "demo-hub"
    assert hub["metadata"]["labels"]["component"] == "hub"
    assert hub["spec"]["securityContext"]["runAsNonRoot"] is True
    secret = docs[("Secret", "demo-secret")]["data"]
    assert set(secret) == {"hub.cookie-secret", "proxy.token"}


@pytest.mark.parametrize("storage", sorted(STORAGE))
def test_the_role_is_exactly_what_the_spawner_needs(chart, storage):
    role = render(chart, {"singleuser": {"storage": STORAGE[storage]}})[("Role", "demo-hub")]
    assert role["rules"] == [dict(r) for r in spawner_role_rules(storage)]


def test_the_default_storage_is_dynamic(chart):
    role = render(chart)[("Role", "demo-hub")]
    assert role["rules"] == [dict(r) for r in spawner_role_rules("dynamic")]


def test_secrets_are_generated_per_install(chart):
    first = render(chart)[("Secret", "demo-secret")]["data"]
    second = render(chart)[("Secret", "demo-secret")]["data"]
    assert first["hub.cookie-secret"] != second["hub.cookie-secret"]


def test_the_hub_reads_the_values_the_chart_was_rendered_with(chart, tmp_path):
    docs = render(chart, values_file("custom-catalog.yaml"))
    config = load_hub_config_with_catalog(tmp_path, docs)
    # The catalog reaches the hub as the file it follows, not as config read once.
    assert "catalog" not in config.TychoSpawner
    (catalog_file,) = config.TychoSpawner.catalog_files
    assert yaml.safe_load(open(catalog_file)) == values_file("custom-catalog.yaml")["catalog"]
    assert config.TychoSpawner.namespace == "jhub"
    assert config.JupyterHub.hub_connect_url == "http://demo-hub:8081"
    assert config.ConfigurableHTTPProxy.api_url == "http://demo-proxy-api:8001"
    assert {"component": "proxy", "app.kubernetes.io/instance": "demo"} in config.TychoSpawner.network_policy_ingress_from


def test_a_broken_catalog_in_values_stops_the_hub_naming_the_key(chart, tmp_path, capsys):
    values = {"catalog": {"course": {"system": {"serve": {"container": "x", "port": 1}, "containers": {}}}}}
    docs = render(chart, values)
    with pytest.raises(SystemExit):
        load_hub_config_with_catalog(tmp_path, docs)
    assert "course" in capsys.readouterr().err


def test_a_catalog_change_reaches_the_running_hub_without_a_restart(chart):
    """The catalog is a ConfigMap of its own, mounted as a directory (the kubelet updates it),
    and a change of it leaves the hub pod's template, its checksum included, as it was:
    `helm upgrade` does not restart the hub for it; any other value change still does."""
    before = render(chart)
    after = render(chart, {"catalog": {"course": {"display_name": "Course"}}})
    assert yaml.safe_load(after[("ConfigMap", "demo-catalog")]["data"]["catalog.yaml"]) == {
        "course": {"display_name": "Course"}}
    assert yaml.safe_load(before[("ConfigMap", "demo-catalog")]["data"]["catalog.yaml"]) == {}
    assert before[("Deployment", "demo-hub")] == after[("Deployment", "demo-hub")]
    assert before[("ConfigMap", "demo-config")] == after[("ConfigMap", "demo-config")]
    assert "catalog" not in json.loads(after[("ConfigMap", "demo-config")]["data"]["values.json"])["values"]
    other = render(chart, {"hub": {"cullIdleTimeout": 60}})
    checksum = "checksum/config"
    assert (other[("Deployment", "demo-hub")]["spec"]["template"]["metadata"]["annotations"][checksum]
            != before[("Deployment", "demo-hub")]["spec"]["template"]["metadata"]["annotations"][checksum])
    hub = after[("Deployment", "demo-hub")]["spec"]["template"]["spec"]
    (volume,) = [v for v in hub["volumes"] if v["name"] == "catalog"]
    assert volume["configMap"] == {"name": "demo-catalog"}
    (mount,) = [m for m in hub["containers"][0]["volumeMounts"] if m["name"] == "catalog"]
    assert "subPath" not in mount and "subPathExpr" not in mount
    (env,) = [e["value"] for e in hub["containers"][0]["env"] if e["name"] == "TYCHO_CHART_CATALOG"]
    assert env == f"{mount['mountPath']}/catalog.yaml"


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
        ({"singleuser": {"storage": {"type": "nfs"}}}, "/singleuser/storage/type"),
        ({"singleuser": {"storage": {"sise": "1Gi"}}}, "sise"),
        ({"singleuser": {"storage": {"capacity": "10 GB"}}}, "/singleuser/storage/capacity"),
        ({"singleuser": {"storage": {"homeMountPath": "home/jovyan"}}}, "/singleuser/storage/homeMountPath"),
        ({"singleuser": {"storage": {"dynamic": {"storageClas": "fast"}}}}, "storageClas"),
        ({"singleuser": {"storage": {"dynamic": {"storageAccessModes": ["RWO"]}}}},
         "/singleuser/storage/dynamic/storageAccessModes"),
        ({"singleuser": {"storage": {"dynamic": {"storageAccessModes": []}}}},
         "/singleuser/storage/dynamic/storageAccessModes"),
        ({"singleuser": {"storage": {"type": "static"}}}, "pvcName"),
        ({"singleuser": {"storage": {"type": "static", "static": {"pvcName": ""}}}}, "/singleuser/storage/static/pvcName"),
        ({"singleuser": {"storage": {"static": {"pvcName": "My_Claim"}}}}, "/singleuser/storage/static/pvcName"),
        ({"singleuser": {"storage": {"static": {"subPath": "/abs"}}}}, "/singleuser/storage/static/subPath"),
    ],
)
def test_the_schema_refuses_bad_values_naming_the_key(chart, values, named):
    from helm_python.errors import HelmError

    with pytest.raises(HelmError) as err:
        chart.render(values, name="demo", namespace="jhub")
    assert named in str(err.value)


# --- Names ------------------------------------------------------------------------------------

LONG = "a-release-with-a-name-of-fifty-characters-01234567"
assert len(LONG) == 50
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def _host_port(url):
    parts = urlsplit(url)
    return parts.hostname, parts.port


@pytest.mark.parametrize("name", ["demo", LONG, "b" * 53, "c" * 70], ids=["4", "50", "53", "70"])
def test_every_name_is_computed_once_and_the_hub_config_uses_them(chart, tmp_path, name):
    """Helm refuses release names over 53 characters; 70 is a render that skipped that check."""
    docs = render(chart, values_file("ingress.yaml"), name=name)
    config_map = next(d for k, d in docs.items() if k[0] == "ConfigMap")
    names = json.loads(config_map["data"]["values.json"])["names"]
    base = name[:53].rstrip("-")
    assert names == {
        "hub": f"{base}-hub", "proxy": f"{base}-proxy", "proxyApi": f"{base}-proxy-api", "public": f"{base}-public",
        "config": f"{base}-config", "secret": f"{base}-secret", "ingress": base, "hubDb": f"{base}-hub-db",
        "catalog": f"{base}-catalog",
    }
    # Every object is named by a helper, and within Kubernetes' limits (a Service's name is a DNS label).
    assert {n for _, n in docs} <= set(names.values())
    assert config_map["metadata"]["name"] == names["config"]
    for kind, object_name in docs:
        assert len(object_name) <= 63, (kind, object_name)
        if kind == "Service":
            assert DNS_LABEL.match(object_name), object_name

    # The hub's config points at the chart's Services, on their ports.
    services = {n: d for (k, n), d in docs.items() if k == "Service"}
    config = load_hub_config(tmp_path, docs)
    for url in (config.JupyterHub.hub_connect_url, config.ConfigurableHTTPProxy.api_url):
        host, port = _host_port(url)
        assert host in services, url
        assert port in [p["port"] for p in services[host]["spec"]["ports"]], url
    assert _host_port(config.JupyterHub.hub_connect_url)[0] == names["hub"]
    assert _host_port(config.ConfigurableHTTPProxy.api_url)[0] == names["proxyApi"]

    # ... and so does every reference between the chart's own objects.
    hub = docs[("Deployment", names["hub"])]["spec"]["template"]["spec"]
    assert hub["serviceAccountName"] == names["hub"]
    assert {v["configMap"]["name"] for v in hub["volumes"] if "configMap" in v} == {names["config"], names["catalog"]}
    proxy = docs[("Deployment", names["proxy"])]["spec"]["template"]["spec"]
    refs = [e["valueFrom"]["secretKeyRef"]["name"] for c in hub["containers"] + proxy["containers"]
            for e in c["env"] if "secretKeyRef" in e.get("valueFrom", {})]
    assert len(refs) == 3 and set(refs) == {names["secret"]}
    assert f"--default-target=http://{names['hub']}:8081" in proxy["containers"][0]["command"]
    binding = docs[("RoleBinding", names["hub"])]
    assert binding["subjects"][0]["name"] == names["hub"] and binding["roleRef"]["name"] == names["hub"]
    ingress = docs[("Ingress", names["ingress"])]
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == names["public"]


# --- Users' homes -----------------------------------------------------------------------------

HOME_VOLUME = {"home": {"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}}


@pytest.mark.parametrize(
    "storage, kubespawner, home",
    [
        ({"type": "none"}, {}, None),
        (
            {},  # the default: dynamic, in the cluster's default StorageClass
            {
                "storage_pvc_ensure": True,
                # One claim per user: a named server mounts the same home as the default one.
                "pvc_name_template": "claim-{username}",
                "storage_capacity": "10Gi",
                "storage_access_modes": ["ReadWriteOnce"],
                "volumes": HOME_VOLUME,
                "volume_mounts": {"home": {"name": "home", "mountPath": "/home/jovyan"}},
            },
            "/home/jovyan",
        ),
        (
            {"type": "dynamic", "capacity": "2Gi", "homeMountPath": "/home/user",
             "dynamic": {"storageClass": "fast", "storageAccessModes": ["ReadWriteMany"]}},
            {
                "storage_pvc_ensure": True,
                "pvc_name_template": "claim-{username}",
                "storage_capacity": "2Gi",
                "storage_class": "fast",
                "storage_access_modes": ["ReadWriteMany"],
                "volumes": HOME_VOLUME,
                "volume_mounts": {"home": {"name": "home", "mountPath": "/home/user"}},
            },
            "/home/user",
        ),
        (
            {"dynamic": {"storageClass": ""}},  # "": no class, as in Kubernetes (not the default one)
            {
                "storage_pvc_ensure": True,
                "pvc_name_template": "claim-{username}",
                "storage_capacity": "10Gi",
                "storage_class": "",
                "storage_access_modes": ["ReadWriteOnce"],
                "volumes": HOME_VOLUME,
                "volume_mounts": {"home": {"name": "home", "mountPath": "/home/jovyan"}},
            },
            "/home/jovyan",
        ),
        (
            {"type": "static", "static": {"pvcName": "homes"}},
            {
                "storage_pvc_ensure": False,
                "delete_pvc": False,
                "volumes": {"home": {"name": "home", "persistentVolumeClaim": {"claimName": "homes"}}},
                "volume_mounts": {"home": {"name": "home", "mountPath": "/home/jovyan", "subPath": "{username}"}},
            },
            "/home/jovyan",
        ),
        (
            {"type": "static", "homeMountPath": "/data", "static": {"pvcName": "shared", "subPath": ""}},
            {
                "storage_pvc_ensure": False,
                "delete_pvc": False,
                "volumes": {"home": {"name": "home", "persistentVolumeClaim": {"claimName": "shared"}}},
                "volume_mounts": {"home": {"name": "home", "mountPath": "/data"}},
            },
            "/data",
        ),
    ],
    ids=["none", "dynamic-default", "dynamic-class", "dynamic-no-class", "static", "static-whole-claim"],
)
def test_storage_values_become_exactly_these_kubespawner_settings(chart, tmp_path, storage, kubespawner, home):
    config = load_hub_config(tmp_path, render(chart, {"singleuser": {"storage": storage}}))
    assert dict(config.KubeSpawner) == kubespawner
    # TychoSpawner finds the home among KubeSpawner's volume_mounts by its mountPath.
    if home is None:
        assert "home_mount_path" not in config.TychoSpawner
    else:
        assert config.TychoSpawner.home_mount_path == home
    # No storage setting on TychoSpawner's own section, where it would hide KubeSpawner's.
    assert not set(config.TychoSpawner) & set(kubespawner)


def test_the_hub_refuses_static_storage_without_a_claim_naming_the_key(chart, tmp_path):
    """The schema refuses it first; the hub's config too, for values that skipped the schema."""
    docs = render(chart, {"singleuser": {"storage": STORAGE["static"]}})
    config_map = next(d for k, d in docs.items() if k[0] == "ConfigMap")
    values = json.loads(config_map["data"]["values.json"])
    del values["values"]["singleuser"]["storage"]["static"]["pvcName"]
    config_map["data"]["values.json"] = json.dumps(values)
    with pytest.raises(SystemExit) as err:
        load_hub_config(tmp_path, docs)
    assert "singleuser.storage.static.pvcName" in str(err.value)


def _hub_db(docs) -> tuple:
    """(the data volume of the hub's pod, the hub's db_url)."""
    volumes = docs[("Deployment", "demo-hub")]["spec"]["template"]["spec"]["volumes"]
    return next(v for v in volumes if v["name"] == "data")


def test_the_hub_database_is_on_a_claim_of_the_release_by_default(chart, tmp_path):
    """An upgrade restarts the hub (config checksum): on an emptyDir its database, and with it
    every running server's record, would be gone each time."""
    docs = render(chart)
    claim = docs[("PersistentVolumeClaim", "demo-hub-db")]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert "storageClassName" not in claim["spec"]  # the cluster's default class
    assert _hub_db(docs)["persistentVolumeClaim"] == {"claimName": "demo-hub-db"}
    config = load_hub_config(tmp_path, docs)
    assert config.JupyterHub.db_url == "sqlite:////srv/jupyterhub/jupyterhub.sqlite"


@pytest.mark.parametrize("db, claim, volume, url", [
    ({"pvc": {"storage": "5Gi", "storageClassName": "fast"}}, {"storage": "5Gi", "class": "fast"},
     {"persistentVolumeClaim": {"claimName": "demo-hub-db"}}, "sqlite:////srv/jupyterhub/jupyterhub.sqlite"),
    ({"pvc": {"storageClassName": ""}}, {"storage": "1Gi", "class": ""},
     {"persistentVolumeClaim": {"claimName": "demo-hub-db"}}, "sqlite:////srv/jupyterhub/jupyterhub.sqlite"),
    ({"pvcName": "existing"}, None,
     {"persistentVolumeClaim": {"claimName": "existing"}}, "sqlite:////srv/jupyterhub/jupyterhub.sqlite"),
    ({"type": "sqlite-memory"}, None, {"emptyDir": {}}, "sqlite://"),
])
def test_the_hub_database_values(chart, tmp_path, db, claim, volume, url):
    docs = render(chart, {"hub": {"db": db}})
    made = docs.get(("PersistentVolumeClaim", "demo-hub-db"))
    if claim is None:
        assert made is None
    else:
        assert made["spec"]["resources"]["requests"]["storage"] == claim["storage"]
        assert made["spec"]["storageClassName"] == claim["class"]
    assert {k: v for k, v in _hub_db(docs).items() if k != "name"} == volume
    assert load_hub_config(tmp_path, docs).JupyterHub.db_url == url


@pytest.mark.parametrize("db, named", [
    ({"type": "sqlite"}, "/hub/db/type"),
    ({"pvc": {"storage": "lots"}}, "/hub/db/pvc/storage"),
    ({"pvc": {"accessModes": ["ReadWriteSometimes"]}}, "/hub/db/pvc/accessModes"),
])
def test_the_schema_refuses_bad_hub_database_values(chart, db, named):
    with pytest.raises(Exception) as err:
        render(chart, {"hub": {"db": db}})
    assert named in str(err.value)
