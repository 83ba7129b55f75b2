"""Orphans are reconciled: servers' objects no hub record owns are removed, users' claims never.

The example `jupyterhub_config.py` in a real `jupyterhub` process with its proxy, on the test
bed, runs `tycho gc` as a hub-managed service (scopes list:users and read:servers). Two ways a
hub loses track of its servers:

- its database is deleted while servers run: at the next start the service deletes every
  pod and NetworkPolicy of those servers, one log line each, and leaves users' claims, another
  hub's objects in the namespace, and a server started after the restart;
- its database is restored from a backup taken while only one server ran: that server is
  adopted by the hub and keeps running; the later one is an orphan, which `tycho gc --dry-run`
  lists without deleting and `tycho gc` deletes (with the kube credentials of exactly the
  chart's Role). A token without read:servers, an unreachable hub or API server, and a
  ServiceAccount without rights each get one sentence and exit 1, deleting nothing.

The service's minimum age is set per test (0: act at once; 3600: leave everything this test
made, so the command line has something to find); the default (60 s) is in the unit tests.
"""
from __future__ import annotations

import os
import secrets
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tycho_spawner.rbac import spawner_role_rules
from tycho_testbed.cluster import free_port

from .examplehub import ExampleHub

pytestmark = pytest.mark.cluster

SELECTOR = "app.kubernetes.io/instance=tycho"  # the example config's label (TYCHO_HUB_NAME unset)


def _gc_service_args(*args: str) -> str:
    """Config appended to the example's: the tycho-gc service with these arguments added."""
    return (
        "for _service in c.JupyterHub.services:\n"
        "    if _service['name'] == 'tycho-gc':\n"
        f"        _service['command'] = list(_service['command']) + {list(args)!r}\n"
    )


def _server_path(user: str, server: str) -> str:
    return f"users/{user}/servers/{server}" if server else f"users/{user}/server"


def _start(hub: ExampleHub, user: str, server: str, profile: str) -> None:
    if hub.api("GET", f"users/{user}").status_code == 404:
        assert hub.api("POST", f"users/{user}").status_code == 201
    r = hub.api("POST", _server_path(user, server), json={"profile": profile})
    assert r.status_code in (201, 202), r.text


def _wait_ready(hub: ExampleHub, servers: dict[str, set[str]], timeout: float = 180) -> None:
    """Until the hub has exactly these servers (user -> server names) ready."""
    deadline = time.monotonic() + timeout
    seen: dict = {}
    while time.monotonic() < deadline:
        seen = {}
        for user in servers:
            r = hub.api("GET", f"users/{user}")
            seen[user] = r.json()["servers"] if r.status_code == 200 else None
        if all(s is not None and set(s) == servers[u] and all(m["ready"] for m in s.values())
               for u, s in seen.items()):
            return
        time.sleep(0.5)
    raise AssertionError(f"not ready: {seen}\n{hub.log_tail()}")


def _objects(control_plane, namespace: str) -> dict[tuple[str, str], str]:
    """Every pod and NetworkPolicy of the namespace: (kind, name) -> uid."""
    api = control_plane.api_client()
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace).items
    policies = client.NetworkingV1Api(api).list_namespaced_network_policy(namespace).items
    return {**{("pod", p.metadata.name): p.metadata.uid for p in pods if not p.metadata.deletion_timestamp},
            **{("networkpolicy", p.metadata.name): p.metadata.uid for p in policies}}


def _claims(control_plane, namespace: str) -> dict[str, str]:
    claims = client.CoreV1Api(control_plane.api_client()).list_namespaced_persistent_volume_claim(namespace).items
    return {c.metadata.name: c.metadata.uid for c in claims}


def _pod_of(user: str, server: str = "") -> str:
    """KubeSpawner's default pod name (and so the policy's)."""
    return f"jupyter-{user}--{server}" if server else f"jupyter-{user}"


def _another_hubs_server(control_plane, namespace: str) -> None:
    """A server of a second hub in the same namespace: made like ours, labelled for its hub."""
    name = "jupyter-carol"
    labels = {"component": "singleuser-server", "app": "jupyterhub", "tycho-spawner/server": name,
              "app.kubernetes.io/instance": "other", "hub.jupyter.org/username": "carol",
              "hub.jupyter.org/servername": ""}
    meta = {"name": name, "labels": labels, "annotations": {"hub.jupyter.org/username": "carol"}}
    api = control_plane.api_client()
    client.CoreV1Api(api).create_namespaced_pod(namespace, {
        "apiVersion": "v1", "kind": "Pod", "metadata": meta,
        "spec": {"containers": [{"name": "main", "image": "busybox:1.36", "args": ["-c", "sleep 3600"]}]},
    })
    client.NetworkingV1Api(api).create_namespaced_network_policy(namespace, {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta,
        "spec": {"podSelector": {"matchLabels": {"tycho-spawner/server": name}}, "policyTypes": ["Ingress"]},
    })


def _gc(hub: ExampleHub, namespace: str, kubeconfig: Path, *args: str, token: str | None = None,
        hub_api_url: str | None = None, selector: str = SELECTOR) -> subprocess.CompletedProcess:
    """`tycho gc` from the shell, as an admin runs it."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "JUPYTERHUB_API_TOKEN": token or hub.token}
    env.pop("JUPYTERHUB_API_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "tycho_spawner.cli", "gc", "--namespace", namespace, "--selector", selector,
         "--hub-api-url", hub_api_url or f"{hub.url}/hub/api", *args],
        env=env, capture_output=True, text=True, timeout=300,
    )


def _service_account(control_plane, namespace: str, name: str, path: Path, rules) -> Path:
    """A kubeconfig acting as a ServiceAccount with exactly these Role rules (None: no Role)."""
    api = control_plane.api_client()
    client.CoreV1Api(api).create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    if rules is not None:
        rbac = client.RbacAuthorizationV1Api(api)
        rbac.create_namespaced_role(namespace, {"metadata": {"name": name}, "rules": [dict(r) for r in rules]})
        rbac.create_namespaced_role_binding(namespace, {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        })
    control_plane.service_account_kubeconfig(namespace, name, path)
    return path


def _wait_for(condition, what: str, hub: ExampleHub, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}\n{hub.log_tail()}"
        time.sleep(0.5)


@pytest.fixture
def make_hub(tmp_path, control_plane, node_agent, kube_namespace):
    hubs = []

    def make(extra_config: str) -> ExampleHub:
        hub = ExampleHub(tmp_path, kube_namespace, control_plane.kubeconfig_path, extra_config=extra_config)
        hubs.append(hub)
        return hub

    try:
        yield make
    finally:
        for hub in hubs:
            hub.tear_down()


def test_a_lost_database_leaves_orphans_the_hub_removes_at_its_next_start(make_hub, control_plane, kube_namespace):
    hub = make_hub(_gc_service_args("--min-age", "0"))
    _another_hubs_server(control_plane, kube_namespace)
    hub.start()
    servers = {"alice": {"": "base", "web": "nginx"}, "bob": {"": "minimal"}}
    for user, named in servers.items():
        for server, profile in named.items():
            _start(hub, user, server, profile)
    _wait_ready(hub, {user: set(named) for user, named in servers.items()})
    before = _objects(control_plane, kube_namespace)
    ours = {(kind, _pod_of(user, server)) for user, named in servers.items() for server in named
            for kind in ("pod", "networkpolicy")}
    assert ours <= set(before), before
    theirs = {key: uid for key, uid in before.items() if key[1] == "jupyter-carol"}
    assert len(theirs) == 2
    claims = _claims(control_plane, kube_namespace)
    assert set(claims) == {"claim-alice", "claim-bob"}

    hub.stop_gracefully()
    assert _objects(control_plane, kube_namespace) == before, "a hub stop must leave the servers running"
    (hub.workdir / "jupyterhub.sqlite").unlink()
    hub.start()

    _wait_for(lambda: not ours & set(_objects(control_plane, kube_namespace)),
              f"the orphans were not removed: {sorted(ours & set(_objects(control_plane, kube_namespace)))}", hub)
    log = hub.log_path.read_text(errors="replace")
    for user, named in servers.items():
        for server in named:
            name = _pod_of(user, server)
            why = f"(user {user!r}, server {server!r}: not running or pending in the hub)"
            for kind in ("pod", "networkpolicy"):
                assert log.count(f"deleting {kind} {name} {why}") == 1, (kind, name, log[-4000:])
    assert "Traceback" not in log
    assert _claims(control_plane, kube_namespace) == claims, "users' claims are never deleted"
    after = _objects(control_plane, kube_namespace)
    assert {key: uid for key, uid in after.items() if key[1] == "jupyter-carol"} == theirs, "another hub's"

    # A server started after the restart is the hub's: gc from the shell leaves it.
    _start(hub, "dave", "", "base")
    _wait_ready(hub, {"dave": {""}})
    dave = {key: uid for key, uid in _objects(control_plane, kube_namespace).items() if key[1] == "jupyter-dave"}
    assert len(dave) == 2
    done = _gc(hub, kube_namespace, control_plane.kubeconfig_path, "--min-age", "0")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"0 orphans removed among 1 pod and 1 NetworkPolicy in namespace {kube_namespace!r} (0 left for now); "
        "users' claims are never touched"]
    now = _objects(control_plane, kube_namespace)
    assert {key: uid for key, uid in now.items() if key[1] == "jupyter-dave"} == dave
    assert hub.get("/user/dave/api/status").status_code == 200
    # Without the hub's label, gc sees two hubs' servers and refuses to judge either.
    blind = _gc(hub, kube_namespace, control_plane.kubeconfig_path, "--min-age", "0", selector="")
    assert blind.returncode == 1 and blind.stdout == ""
    assert blind.stderr == (
        "tycho: nothing deleted: the selected servers' objects carry different app.kubernetes.io/instance labels "
        "('other', 'tycho'): they belong to more than one hub; label this hub's servers "
        "(KubeSpawner.extra_labels) and give that label to --selector\n")
    assert _objects(control_plane, kube_namespace) == now
    assert hub.api("DELETE", "users/dave/server").status_code in (202, 204)


def test_a_database_restored_from_an_old_backup(make_hub, control_plane, kube_namespace, tmp_path):
    weak = secrets.token_hex(16)
    hub = make_hub(
        _gc_service_args("--min-age", "3600")
        + f"c.JupyterHub.services.append({{'name': 'weak', 'api_token': {weak!r}}})\n"
        "c.JupyterHub.load_roles.append({'name': 'weak', 'services': ['weak'], 'scopes': ['list:users']})\n"
    )
    hub.start()
    _start(hub, "alice", "", "base")
    _wait_ready(hub, {"alice": {""}})
    backup = tmp_path / "backup.sqlite"
    with sqlite3.connect(hub.workdir / "jupyterhub.sqlite") as live, sqlite3.connect(backup) as copy:
        live.backup(copy)
    _start(hub, "bob", "web", "nginx")
    _wait_ready(hub, {"bob": {"web"}})
    before = _objects(control_plane, kube_namespace)
    claims = _claims(control_plane, kube_namespace)

    hub.stop_gracefully()
    (hub.workdir / "jupyterhub.sqlite").write_bytes(backup.read_bytes())
    hub.start()
    _wait_ready(hub, {"alice": {""}})  # adopted: the backup's record, the same pod
    assert hub.api("GET", "users/bob").status_code == 404
    spared = "leaving pod jupyter-bob--web (created "
    _wait_for(lambda: spared in hub.log_path.read_text(errors="replace"), "the service did not run", hub)
    assert _objects(control_plane, kube_namespace) == before

    dry = _gc(hub, kube_namespace, control_plane.kubeconfig_path, "--dry-run", "--min-age", "0")
    assert dry.returncode == 0, dry.stderr
    why = "(user 'bob', server 'web': not running or pending in the hub)"
    assert dry.stdout.splitlines() == [
        f"would delete pod jupyter-bob--web {why}",
        f"would delete networkpolicy jupyter-bob--web {why}",
        f"2 orphans found among 2 pods and 2 NetworkPolicies in namespace {kube_namespace!r} (0 left for now); "
        "users' claims are never touched",
    ]
    assert _objects(control_plane, kube_namespace) == before, "--dry-run deletes nothing"

    # Each failure: one sentence, exit 1, nothing deleted.
    refused = _gc(hub, kube_namespace, control_plane.kubeconfig_path, "--min-age", "0", token=weak)
    assert refused.returncode == 1
    assert refused.stderr.startswith("tycho: the hub's token lacks the scope read:servers"), refused.stderr
    nobody = _service_account(control_plane, kube_namespace, "nobody", tmp_path / "nobody.kubeconfig", None)
    forbidden = _gc(hub, kube_namespace, nobody, "--min-age", "0")
    assert forbidden.returncode == 1
    assert forbidden.stderr.startswith(
        f"tycho: Kubernetes does not allow listing pods in namespace {kube_namespace!r} (403 Forbidden)"), forbidden.stderr
    no_hub = _gc(hub, kube_namespace, control_plane.kubeconfig_path, "--min-age", "0",
                 hub_api_url=f"http://127.0.0.1:{free_port()}/hub/api")
    assert no_hub.returncode == 1
    assert no_hub.stderr.startswith("tycho: cannot reach the hub's API at http://127.0.0.1:"), no_hub.stderr
    moved = yaml.safe_load(control_plane.kubeconfig_path.read_text())
    dead = f"https://127.0.0.1:{free_port()}"
    for cluster in moved["clusters"]:
        cluster["cluster"]["server"] = dead
    (tmp_path / "moved.kubeconfig").write_text(yaml.safe_dump(moved))
    no_cluster = _gc(hub, kube_namespace, tmp_path / "moved.kubeconfig", "--min-age", "0")
    assert no_cluster.returncode == 1
    assert no_cluster.stderr.startswith(f"tycho: cannot reach the cluster's API at {dead}: "), no_cluster.stderr
    for failed in (refused, forbidden, no_hub, no_cluster):
        assert failed.stdout == "" and failed.stderr.count("\n") == 1, failed.stderr
    assert _objects(control_plane, kube_namespace) == before

    # With exactly the chart's Role: the orphan goes, pod then policy; alice's server stays.
    role = _service_account(control_plane, kube_namespace, "hub", tmp_path / "hub.kubeconfig",
                            spawner_role_rules("dynamic"))
    done = _gc(hub, kube_namespace, role, "--min-age", "0")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"deleting pod jupyter-bob--web {why}",
        f"deleting networkpolicy jupyter-bob--web {why}",
        f"2 orphans removed among 2 pods and 2 NetworkPolicies in namespace {kube_namespace!r} (0 left for now); "
        "users' claims are never touched",
    ]
    after = _objects(control_plane, kube_namespace)
    assert after == {key: uid for key, uid in before.items() if key[1] != "jupyter-bob--web"}
    assert _claims(control_plane, kube_namespace) == claims, "users' claims are never deleted"
    assert hub.get("/user/alice/api/status").status_code == 200
    assert hub.api("DELETE", "users/alice/server").status_code in (202, 204)
    assert "Traceback" not in hub.log_path.read_text(errors="replace")
