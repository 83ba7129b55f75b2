"""The chart's image pre-puller (prePuller): a DaemonSet pulling the catalog's images, listed by
`tycho images --helm-values`, and the gate's, on every node; run on the test bed's node."""
from __future__ import annotations

import time

import pytest
import yaml

from tycho_spawner import cli

from .conftest import by_kind_name, objects

GATE = "ghcr.io/tycho-spawner/tycho-gate:0.1.0"


def helm_values(capsys) -> dict:
    """What `tycho images --helm-values` prints for the built-in catalog, as a values dict."""
    capsys.readouterr()
    assert cli.main(["images", "--helm-values"]) == 0
    return yaml.safe_load(capsys.readouterr().out)


def daemon_set(chart, values, name="demo") -> dict:
    docs = by_kind_name(objects(chart.render(values, name=name, namespace="jhub")))
    return docs[("DaemonSet", f"{name}-image-puller")]


def pulled(pod_spec: dict) -> list[str]:
    """The images the pod pulls through its init containers (the first copies `true`)."""
    return [c["image"] for c in pod_spec["initContainers"][1:]]


def test_off_by_default(chart):
    docs = by_kind_name(objects(chart.render({}, name="demo", namespace="jhub")))
    assert not [key for key in docs if key[0] == "DaemonSet"]


def test_pulls_every_catalog_image_and_the_gate_once_then_pauses(chart, capsys):
    values = helm_values(capsys)
    catalog = values["prePuller"]["images"]
    assert "quay.io/jupyter/scipy-notebook:2026-05-31" in catalog and GATE not in catalog
    values["prePuller"]["enabled"] = True
    values["singleuser"] = {"gate": {"image": "registry.example.org/site/tycho-gate:1.2"}}
    spec = daemon_set(chart, values)["spec"]["template"]["spec"]
    assert pulled(spec) == catalog + ["registry.example.org/site/tycho-gate:1.2"]
    # Listing the gate too (an older list, or by hand) pulls it once.
    values["prePuller"]["images"] = catalog + ["registry.example.org/site/tycho-gate:1.2"]
    assert pulled(daemon_set(chart, values)["spec"]["template"]["spec"]) == pulled(spec)
    (pause,) = spec["containers"]
    assert pause["image"] == "registry.k8s.io/pause:3.10.1"


def test_each_image_runs_the_copied_true_not_a_file_of_its_own(chart):
    spec = daemon_set(chart, {"prePuller": {"enabled": True, "images": ["gcr.io/distroless/static:nonroot"]}})[
        "spec"]["template"]["spec"]
    copy, pull, gate = spec["initContainers"]
    assert copy["image"] == "docker.io/library/busybox:1.37.0-musl"
    assert copy["command"] == ["cp", "/bin/true", "/tycho-puller/true"]
    assert (pull["image"], gate["image"]) == ("gcr.io/distroless/static:nonroot", GATE)
    for container in (pull, gate):
        assert container["command"] == ["/tycho-puller/true"] and "args" not in container
        assert container["workingDir"] == "/tycho-puller"
        assert container["volumeMounts"] == [{"name": "tycho-puller", "mountPath": "/tycho-puller", "readOnly": True}]
    assert spec["volumes"] == [{"name": "tycho-puller", "emptyDir": {"sizeLimit": "16Mi"}}]


def test_runs_as_nobody_with_no_token_tiny_and_where_it_is_told(chart):
    toleration = {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"}
    ds = daemon_set(chart, {"prePuller": {"enabled": True, "tolerations": [toleration],
                                          "nodeSelector": {"hub.jupyter.org/node-purpose": "user"}}}, name="tycho")
    assert ds["metadata"]["labels"]["component"] == "image-puller"
    assert ds["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "tycho-spawner", "app.kubernetes.io/instance": "tycho", "component": "image-puller"}
    spec = ds["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"] == {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534}
    assert spec["tolerations"] == [toleration]
    assert spec["nodeSelector"] == {"hub.jupyter.org/node-purpose": "user"}
    for container in spec["initContainers"] + spec["containers"]:
        assert container["securityContext"]["runAsUser"] == 65534
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert container["resources"] == {"requests": {"cpu": "1m", "memory": "8Mi"},
                                          "limits": {"cpu": "50m", "memory": "32Mi"}}


@pytest.mark.parametrize(
    "values, named",
    [
        ({"prePuller": {"enabeld": True}}, "enabeld"),
        ({"prePuller": {"images": ["quay.io/jupyter/base-notebook: latest"]}}, "/prePuller/images/0"),
        ({"prePuller": {"images": "quay.io/jupyter/base-notebook:latest"}}, "/prePuller/images"),
        ({"prePuller": {"pause": {"image": {"tag": ""}}}}, "/prePuller/pause/image/tag"),
        ({"prePuller": {"tolerations": {"key": "x"}}}, "/prePuller/tolerations"),
    ],
)
def test_the_schema_refuses_bad_values_naming_the_key(chart, values, named):
    from helm_python.errors import HelmError

    with pytest.raises(HelmError) as err:
        chart.render(values, name="demo", namespace="jhub")
    assert named in str(err.value)


# ------------------------------------------------------------------------------ on the test bed


def _create(control_plane, namespace, ds):
    from kubernetes import client

    apps = client.AppsV1Api(control_plane.api_client())
    apps.create_namespaced_daemon_set(namespace, ds)
    return client.CoreV1Api(control_plane.api_client())


def _pods(core, namespace):
    return core.list_namespaced_pod(namespace, label_selector="component=image-puller").items


@pytest.mark.cluster
def test_on_a_node_every_image_is_pulled_and_the_pod_becomes_ready(chart, capsys, control_plane, node_agent,
                                                                   kube_namespace):
    values = helm_values(capsys)
    values["prePuller"]["enabled"] = True
    ds = daemon_set(chart, values)
    core = _create(control_plane, kube_namespace, ds)
    deadline, pod = time.monotonic() + 180, None
    while time.monotonic() < deadline:
        pods = _pods(core, kube_namespace)
        pod = pods[0] if pods else None
        if pod and any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []):
            break
        time.sleep(0.5)
    assert pod is not None, "the DaemonSet made no pod"
    states = {c.name: (c.image, c.state) for c in pod.status.init_container_statuses or []}
    assert pod.status.phase == "Running", states
    assert pod.spec.node_name == node_agent
    wanted = values["prePuller"]["images"] + [GATE]
    assert [states[c.name][0] for c in pod.spec.init_containers[1:]] == wanted
    for name, (image, state) in states.items():
        assert state.terminated is not None and state.terminated.exit_code == 0, (name, image, state)
    (pause,) = pod.status.container_statuses
    assert pause.ready and pause.image == "registry.k8s.io/pause:3.10.1"


@pytest.mark.cluster
def test_an_image_the_node_cannot_pull_is_named_on_the_pod(chart, control_plane, node_agent, kube_namespace):
    missing = "registry.example.invalid/nothing:1"
    ds = daemon_set(chart, {"prePuller": {"enabled": True, "images": [missing]}})
    core = _create(control_plane, kube_namespace, ds)
    deadline, waiting = time.monotonic() + 120, None
    while time.monotonic() < deadline and waiting is None:
        for pod in _pods(core, kube_namespace):
            for status in pod.status.init_container_statuses or []:
                if status.image == missing and status.state.waiting and status.state.waiting.reason in (
                        "ErrImagePull", "ImagePullBackOff"):
                    waiting = (pod, status)
        time.sleep(0.5)
    assert waiting is not None, [p.status for p in _pods(core, kube_namespace)]
    pod, status = waiting
    assert status.name == "pull-0"
    assert not any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
