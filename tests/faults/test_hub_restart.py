"""A hub restart keeps users' running servers.

The example `jupyterhub_config.py`, as `bin/stage hub up` runs it, in a real `jupyterhub`
process with its real configurable-http-proxy, on the test bed. Four servers of one user (a
Jupyter stack as the default server; RStudio, nginx and a second Jupyter stack as named
servers) run; the hub is stopped gracefully (SIGTERM to its process group, as `bin/stage hub
down` does: its proxy goes with it) and started again, then killed with SIGKILL (its proxy
outlives it) and started again. Each time every server is still tracked by the hub, still the
same pod, and answers through the proxy.
"""
from __future__ import annotations

import time

import pytest
from kubernetes import client

from .examplehub import ExampleHub

pytestmark = pytest.mark.cluster

#: server name -> (catalog entry, a path under the server's URL that answers 200 when it is up).
SERVERS = {
    "": ("base", "api/status"),
    "lab": ("minimal", "api/status"),
    "r": ("rstudio", ""),
    "web": ("nginx", ""),
}


def _server_path(user: str, server: str) -> str:
    return f"users/{user}/servers/{server}" if server else f"users/{user}/server"


def _url(user: str, server: str, path: str) -> str:
    return f"/user/{user}/{server + '/' if server else ''}{path}"


def _wait_ready(hub: ExampleHub, user: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    servers: dict = {}
    while time.monotonic() < deadline:
        r = hub.api("GET", f"users/{user}")
        assert r.status_code == 200, r.text
        servers = r.json()["servers"]
        if set(servers) == set(SERVERS) and all(s["ready"] for s in servers.values()):
            return servers
        time.sleep(0.5)
    raise AssertionError(f"not all ready: {servers}\n{hub.log_tail()}")


def _pods(core: client.CoreV1Api, namespace: str) -> dict:
    """Running servers' pods: name -> uid."""
    pods = core.list_namespaced_pod(namespace, label_selector="component=singleuser-server").items
    return {p.metadata.name: p.metadata.uid for p in pods if p.status.phase == "Running"}


def _answer(hub: ExampleHub, user: str) -> dict:
    """Each server's status code through the proxy, at a path that answers when it is up."""
    return {server: hub.get(_url(user, server, path)).status_code for server, (_, path) in SERVERS.items()}


def test_running_servers_survive_a_graceful_restart_and_a_killed_hub(example_hub, control_plane, kube_namespace):
    hub, user = example_hub, "rita"
    core = client.CoreV1Api(control_plane.api_client())
    hub.start()
    assert hub.api("POST", f"users/{user}").status_code == 201
    for server, (profile, _) in SERVERS.items():
        r = hub.api("POST", _server_path(user, server), json={"profile": profile})
        assert r.status_code in (201, 202), r.text
    _wait_ready(hub, user)
    pods = _pods(core, kube_namespace)
    assert len(pods) == 4
    assert _answer(hub, user) == {server: 200 for server in SERVERS}

    for restart in ("graceful", "kill -9"):
        hub.stop_gracefully() if restart == "graceful" else hub.kill()
        assert _pods(core, kube_namespace) == pods, f"after the hub's {restart} stop"
        hub.start()
        models = _wait_ready(hub, user, timeout=60)
        assert {s: m["user_options"]["profile"] for s, m in models.items()} == {
            s: profile for s, (profile, _) in SERVERS.items()}
        assert _pods(core, kube_namespace) == pods, f"after the hub's {restart} restart: other pods"
        assert _answer(hub, user) == {server: 200 for server in SERVERS}, f"after the {restart} restart"

    for server in SERVERS:
        assert hub.api("DELETE", _server_path(user, server)).status_code in (202, 204)
    deadline = time.monotonic() + 60
    while _pods(core, kube_namespace) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _pods(core, kube_namespace) == {}
