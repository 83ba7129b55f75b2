"""Kubernetes unreachable: starts while nothing answers at the API server's address, then
after it answers again.

A real `jupyterhub` process with the example configuration, whose kubeconfig names a loopback
port nothing listens on at first (the test bed's own kubeconfig, its server moved there): every
connection is refused, as when the API server is down. Then a plain TCP relay opens on that
port to the real API server (TLS passes through it untouched): the API server is back.
"""
from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest
import yaml

from tests.tcprelay import TcpRelay
from tycho_testbed.cluster import free_port

from .examplehub import ExampleHub

pytestmark = pytest.mark.cluster

UNREACHABLE = "The cluster's API is not reachable; try again in a minute."


@pytest.fixture
def hub_and_api_port(tmp_path, control_plane, node_agent, kube_namespace):
    kubeconfig = yaml.safe_load(control_plane.kubeconfig_path.read_text())
    real = urlsplit(kubeconfig["clusters"][0]["cluster"]["server"])
    port = free_port()
    for cluster in kubeconfig["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{port}"
    moved = tmp_path / "moved.kubeconfig"
    moved.write_text(yaml.safe_dump(kubeconfig))
    hub = ExampleHub(tmp_path, kube_namespace, moved)
    try:
        hub.start()
        yield hub, lambda: TcpRelay(port, (real.hostname, real.port))
    finally:
        hub.tear_down()


def test_a_start_while_the_api_server_is_down_is_a_503_in_words_then_works_once_it_is_back(hub_and_api_port):
    hub, api_server_back = hub_and_api_port
    assert hub.api("POST", "users/kim").status_code == 201
    before = len(hub.log_path.read_text(errors="replace"))
    for attempt in (1, 2):
        r = hub.api("POST", "users/kim/server", json={"profile": "base"})
        assert r.status_code == 503, (attempt, r.text)
        assert r.json()["message"] == UNREACHABLE
        assert hub.api("GET", "users/kim").json()["servers"] == {}, "the failed start left a server record"
    logged = hub.log_path.read_text(errors="replace")[before:]
    assert "Traceback" not in logged, logged
    assert "Unhandled error" not in logged and "cleanup after a failed start failed" not in logged, logged
    assert logged.count("the cluster's API is not reachable: Cannot connect to host 127.0.0.1") == 2, logged

    relay = api_server_back().start()
    try:
        r = hub.api("POST", "users/kim/server", json={"profile": "base"})
        assert r.status_code in (201, 202), r.text
        deadline = time.monotonic() + 120
        while not (hub.api("GET", "users/kim").json()["servers"].get("", {}).get("ready")):
            assert time.monotonic() < deadline, hub.log_tail()
            time.sleep(0.5)
        assert hub.get("/user/kim/api/status").status_code == 200
        assert hub.api("DELETE", "users/kim/server").status_code in (202, 204)
        deadline = time.monotonic() + 60
        while hub.api("GET", "users/kim").json()["servers"]:
            assert time.monotonic() < deadline, hub.log_tail()
            time.sleep(0.5)
    finally:
        relay.stop()
