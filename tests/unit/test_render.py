"""Rendering a System into the pod's containers, a Service and a NetworkPolicy.

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
    GateSettings,
    Owner,
    Server,
    render_all,
    render_network_policy,
    render_pod,
    render_pod_parts,
    render_service,
    selector_value,
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
    return {e["name"]: e["value"] for e in container.get("env") or []}


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
    assert [d["kind"] for d in docs] == ["Pod", "Service", "NetworkPolicy"]


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
    objects = render_all(system, server(), template_environment(), Owner(name="jupyter-alice", uid="u-1"))
    assert [o["kind"] for o in objects] == ["Pod", "Service", "NetworkPolicy"]
    pod = objects[0]
    names = [c["name"] for c in pod["spec"]["containers"]]
    assert len(names) == len(set(names))
    served = [p for c in pod["spec"]["containers"] for p in c.get("ports", []) if p["name"] == SERVER_PORT_NAME]
    assert len(served) == 1
    assert objects[1]["spec"]["ports"][0]["port"] == served[0]["containerPort"]
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
    pod = render_pod(system_of("base"), server(hub_env=(("JUPYTERHUB_DEFAULT_URL", "/hub-says"),)), template_environment())
    assert env_of(pod["spec"]["containers"][0])["JUPYTERHUB_DEFAULT_URL"] == "/hub-says"


# --------------------------------------------------------------------------- ports, labels, selectors


def test_served_port_is_named_notebook_port():
    pod = render_pod(system_of("scipy"), server(), template_environment())
    assert pod["spec"]["containers"][0]["ports"] == [
        {"name": SERVER_PORT_NAME, "containerPort": 8888, "protocol": "TCP"}
    ]
    assert SERVER_PORT_NAME == "notebook-port"


@pytest.mark.parametrize("key, app_port", [("rstudio", 8787), ("nginx", 8080)])
def test_gate_port_is_the_notebook_port_of_a_gated_app(key, app_port):
    env = template_environment()
    pod = render_pod(system_of(key), server(), env)
    gate, app = pod["spec"]["containers"]
    assert gate["ports"] == [{"name": SERVER_PORT_NAME, "containerPort": 8888, "protocol": "TCP"}]
    assert [p["name"] for p in app["ports"]] == ["http"] and app["ports"][0]["containerPort"] == app_port
    assert "--upstream" in gate["args"] and f"http://127.0.0.1:{app_port}" in gate["args"]
    assert render_pod_parts(system_of(key), server(), env).port == 8888
    service = render_service(system_of(key), server(), env)
    assert service["spec"]["ports"] == [
        {"name": SERVER_PORT_NAME, "port": 8888, "targetPort": SERVER_PORT_NAME, "protocol": "TCP"}
    ]


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
    pod, service, policy = docs
    assert service["spec"]["selector"] == {SERVER_LABEL: "jupyter-alice"}
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
        selector = objs[1]["spec"]["selector"]
        assert selector.items() <= pod_labels.items()
        assert not selector.items() <= other_labels.items()
        assert objs[2]["spec"]["podSelector"]["matchLabels"] == selector


def test_selector_value_is_a_valid_label_value():
    assert selector_value("jupyter-alice") == "jupyter-alice"
    long = selector_value("x" * 64)
    assert long.startswith("h-") and len(long) <= 63
    assert selector_value("x" * 64) != selector_value("x" * 65)


# --------------------------------------------------------------------------- owner references


@pytest.mark.parametrize("key", ["scipy", "rstudio"])
def test_service_and_network_policy_are_owned_by_the_pod(key):
    owner = Owner(name="jupyter-alice", uid="0d6f4a4c-7d8e-4c38-9c3e-2d0b7f6c1a11")
    env = template_environment()
    for obj in (
        render_service(system_of(key), server(), env, owner),
        render_network_policy(system_of(key), server(), env, owner),
    ):
        assert obj["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": "jupyter-alice",
                "uid": "0d6f4a4c-7d8e-4c38-9c3e-2d0b7f6c1a11",
                "blockOwnerDeletion": True,
            }
        ]


def test_no_owner_no_owner_references():
    env = template_environment()
    assert "ownerReferences" not in render_service(system_of("base"), server(), env)["metadata"]
    assert "ownerReferences" not in render_network_policy(system_of("base"), server(), env)["metadata"]
    assert "ownerReferences" not in render_pod(system_of("base"), server(), env)["metadata"]


# --------------------------------------------------------------------------- network policy


@pytest.mark.parametrize("key, port", [("base", 8888), ("rstudio", 8888), ("nginx", 8888)])
def test_network_policy_admits_only_hub_and_proxy_on_the_served_port(key, port):
    policy = render_network_policy(system_of(key), server(), template_environment())
    assert policy["apiVersion"] == "networking.k8s.io/v1"
    assert policy["spec"]["policyTypes"] == ["Ingress"]
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


# --------------------------------------------------------------------------- security context


@pytest.mark.parametrize("key", sorted(["base", "minimal", "scipy", "datascience", "r", "pyspark", "rstudio", "nginx"]))
def test_everything_runs_as_non_root(key):
    pod = render_pod(system_of(key), server(), template_environment())
    spec = pod["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] > 0
    for container in spec["containers"]:
        sc = container["securityContext"]
        assert sc["runAsNonRoot"] is True, container["name"]
        assert sc["runAsUser"] > 0
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert not sc.get("privileged")


def test_security_of_the_system_is_used():
    pod = render_pod(system_of("nginx"), server(), template_environment())
    assert pod["spec"]["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 101,
        "runAsGroup": 101,
        "fsGroup": 101,
    }


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


def test_base_pod_site_settings_are_kept():
    base = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "jupyter-alice", "labels": {"site": "yes"}, "annotations": {"a": "b"}},
        "spec": {
            "nodeSelector": {"pool": "users"},
            "tolerations": [{"key": "users", "operator": "Exists"}],
            "securityContext": {"supplementalGroups": [5000]},
            "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": "claim-alice"}}],
            "containers": [
                {
                    "name": "notebook",
                    "image": "site/default:1",
                    "imagePullPolicy": "IfNotPresent",
                    "volumeMounts": [{"name": "home", "mountPath": "/home/jovyan"}],
                }
            ],
        },
    }
    pod = render_pod(system_of("rstudio"), server(), template_environment(), base_pod=base)
    spec = pod["spec"]
    assert spec["nodeSelector"] == {"pool": "users"}
    assert spec["tolerations"] == [{"key": "users", "operator": "Exists"}]
    assert spec["securityContext"]["supplementalGroups"] == [5000]
    assert spec["securityContext"]["runAsUser"] == 1000
    assert [v["name"] for v in spec["volumes"]] == ["home", "rstudio-tmp"]
    gate, app = spec["containers"]
    assert app["volumeMounts"] == [
        {"name": "home", "mountPath": "/home/jovyan"},
        {"name": "rstudio-tmp", "mountPath": "/tmp"},
    ]
    assert "volumeMounts" not in gate, "the home directory is for the app, not the gate"
    assert gate["imagePullPolicy"] == app["imagePullPolicy"] == "IfNotPresent"
    assert pod["metadata"]["labels"]["site"] == "yes"
    assert pod["metadata"]["labels"][SERVER_LABEL] == "jupyter-alice"
    assert base["spec"]["containers"][0]["image"] == "site/default:1", "the base pod is not modified"


# --------------------------------------------------------------------------- templates


def test_admin_template_directory_overrides_one_template(tmp_path):
    (tmp_path / "service.yaml.j2").write_text(
        "apiVersion: v1\n"
        "kind: Service\n"
        "metadata:\n"
        "  name: {{ server.name }}\n"
        "  annotations: {site-template: 'yes'}\n"
        "spec:\n"
        "  type: NodePort\n"
        "  selector: {{ selector }}\n"
        "  ports: [{port: {{ port }}, targetPort: {{ port_name }}}]\n"
    )
    env = template_environment(str(tmp_path))
    service = render_service(system_of("base"), server(), env)
    assert service["spec"]["type"] == "NodePort"
    assert service["metadata"]["annotations"] == {"site-template": "yes"}
    # the other templates are still the packaged ones
    policy = render_network_policy(system_of("base"), server(), env)
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert render_service(system_of("base"), server(), template_environment())["spec"]["type"] == "ClusterIP"


@pytest.mark.parametrize(
    "template, expression, name",
    [
        ("service.yaml.j2", "{{ no_such_variable }}", "no_such_variable"),
        ("networkpolicy.yaml.j2", "{{ server.no_such_attribute }}", "no_such_attribute"),
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
    (tmp_path / "service.yaml.j2").write_text("{% if typo_flag %}kind: Service{% endif %}\n")
    with pytest.raises(RenderError, match="typo_flag"):
        render_service(system_of("base"), server(), template_environment(str(tmp_path)))


def test_template_that_is_not_yaml_is_a_render_error(tmp_path):
    (tmp_path / "service.yaml.j2").write_text("kind: Service\n  bad: [indent\n")
    with pytest.raises(RenderError, match="did not produce YAML"):
        render_service(system_of("base"), server(), template_environment(str(tmp_path)))


def test_template_producing_the_wrong_kind_is_a_render_error(tmp_path):
    (tmp_path / "networkpolicy.yaml.j2").write_text("apiVersion: v1\nkind: Service\n")
    with pytest.raises(RenderError, match="NetworkPolicy"):
        render_network_policy(system_of("base"), server(), template_environment(str(tmp_path)))
    (tmp_path / "pod.yaml.j2").write_text("containers: nope\n")
    with pytest.raises(RenderError, match="containers"):
        render_pod(system_of("base"), server(), template_environment(str(tmp_path)))

